"""observe: what an observer (or a release engineer checking a key) does with
published files: verify an image or a USB key, compare two builds and explain the
difference, rebuild from a source bundle (and make that bundle), signed rebuild
statements, witnessing the release log and checking a key's proof of publication,
booting an image in QEMU, and the release page that lets the public check a release
in a browser.

May import: every other part of builder except builder.commands and builder.cli.
"""
