"""The thin CLI over the library: parse options, call the library, print, exit."""
