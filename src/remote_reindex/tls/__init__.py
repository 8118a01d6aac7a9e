"""TLS toolkit: PEM handling, the one SSLContext factory, chain reading and diagnosis."""
