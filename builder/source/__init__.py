"""source: where the bytes come from, and the only network access. The recipe,
the lock (its format, and `make_lock`, which writes it from the signed archive
index), the dependency resolver, the archive index and its signatures, mirrors from
the machine's apt configuration, HTTP downloads, fetching, the verified .deb cache,
and the tools set that the lock pins.

May import: builder.core, builder.formats, builder.trust, builder.transparency.
"""
