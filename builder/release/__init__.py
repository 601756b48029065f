"""release: what a release engineer does with a built image before publishing it:
signing (and co-signing) its manifest, the source bundle observers rebuild from, and
the append-only release log that records every release.

May import: builder.core, builder.formats, builder.trust, builder.transparency,
builder.source, builder.build, builder.station.
"""
