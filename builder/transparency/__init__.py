"""transparency: the public release log's formats, each pure: the RFC 6962/9162 Merkle
tree with inclusion and consistency proofs, C2SP signed notes, tlog-checkpoints and
tlog-cosignatures with Ed25519 keys, witness key sets, and the proof bundle that
travels on a key.

May import: builder.core, builder.formats, builder.trust.
"""
