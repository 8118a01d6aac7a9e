"""placeholder: being written"""


def register(app):
    pass
