"""trust: keys and signatures. Ed25519 keys (files, key ids), DSSE envelopes around
in-toto statements, and minisign signatures that `minisign -V` checks.

May import: builder.core, builder.formats.
"""
