"""build: turning a recipe and its lock into an image, offline. `image.build_image`
runs the pipeline (`pipeline`) of steps (`steps/`, each with its private helpers
beside it) through the content-addressed step cache (`stepcache`), then writes the
manifest, the file list, the SBOMs (SPDX 2.3, SPDX 3.0.1, CycloneDX 1.6) and the
provenance.

May import: builder.core, builder.formats, builder.trust, builder.transparency,
builder.source (never the network: only `lock` and `fetch` download).
"""
