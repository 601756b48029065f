"""release: what a release engineer does with a built image before publishing it:
signing (and co-signing) its manifest, and the source bundle observers rebuild from.

May import: builder.core, builder.formats, builder.trust, builder.source,
builder.build, builder.station.
"""
