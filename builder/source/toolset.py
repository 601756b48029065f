"""The build's own tools: which locked packages make up the tools tree.

Every program that produces image bytes runs from a tree unpacked from these
packages (and their dependency closure), pinned by the lock like the image's own
packages, so a build on another distribution or years later runs the same code.
The host contributes only the kernel, Python and the sandbox starter.

The set is the Essential set (a shell, coreutils, tar, dpkg: what the tools
themselves call) plus `TOOL_PACKAGES`. It is the same for every recipe.
"""

from __future__ import annotations

# The set name in the lock (beside "rootfs" and "boot").
TOOLS_SET = "tools"

TOOL_PACKAGES: tuple[str, ...] = (
    # The root filesystem installer and what it runs outside the target.
    "mmdebstrap",
    "apt",
    "mount",
    # Root filesystem images; libzstd and liblz4 come in as their dependencies.
    "squashfs-tools",
    "erofs-utils",
    # The dm-verity hash tree.
    "cryptsetup-bin",
    # The EFI system partition.
    "dosfstools",
    "mtools",
    # objcopy assembles the UKI.
    "binutils",
    # The initrd's compression and the kernel modules' decompression.
    "zstd",
    "xz-utils",
    # Secure Boot signing and its check; libfaketime fixes sbsign's signing time.
    "sbsigntool",
    "libfaketime",
)
