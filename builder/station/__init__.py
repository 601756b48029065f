"""station: per-polling-station election data: its format and checks, the
fingerprints the booth shows, the station data slot of a key, writing USB keys and
reading them back, and the block devices they are written to.

May import: builder.core, builder.formats, builder.trust, builder.transparency,
builder.source, builder.build.
"""
