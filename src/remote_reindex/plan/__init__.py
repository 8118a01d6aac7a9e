"""The plan: the user's ``_reindex`` body, parsed and checked before any request."""
