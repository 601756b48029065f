"""core: what every other part stands on, and nothing of boothkey's own domain.

Errors and exit codes, canonical JSON and digests, atomic file writes, the cache
paths, progress output, the tool environment, strict YAML/JSON loading, tree
digests, and the sandbox that runs the tools tree's programs (with the user
namespace for rootless builds).

May import: the standard library and third-party libraries only (no other part of
builder). Everything else may import it.
"""
