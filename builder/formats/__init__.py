"""formats: byte formats boothkey reads and writes itself, each a pure function of
its input: GPT, PE/COFF (the UKI), the dm-verity hash tree, FAT reading (an ESP read
back), the cpio newc archive (the initrd) and the .deb ar/tar container.

May import: builder.core.
"""
