"""Licences read by a person from copyright files that are not machine-readable (DEP-5).

Some Debian packages still ship a free-form /usr/share/doc/PKG/copyright. No program
can be trusted to turn such prose into a licence expression, so each of these files
was read and its main licence written down here as an SPDX expression, in the same
sense as a DEP-5 file's `Files: *` paragraph: the licence of the package's own code as
the file states it; documentation and incorporated parts under other licences are
named in the note, not in the expression.

An entry is keyed by the binary package and the sha256 of the copyright file (as the
.deb holds it, UTF-8): a package whose file changes in any byte no longer matches, so
its licence falls back to NOASSERTION until the new file is read and the entry updated.
Nothing is guessed: a package without an entry stays NOASSERTION, and the SBOM's
comment for it says so. Every expression here is checked against the SPDX licence list
by the tests (tests/build/test_sbom.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReviewedLicence:
    """A person's reading of one copyright file for some binary packages."""

    packages: tuple[str, ...]
    copyright_sha256: str
    spdx: str
    note: str


REVIEWED: tuple[ReviewedLicence, ...] = (
    ReviewedLicence(
        ("base-files",),
        "fd7e4aae7e7b05f217bcf2d02322825c360e66c52c4c2f1b28d784d6297a1c23",
        "GPL-2.0-or-later",
        "GNU GPL, 'either version 2 of the License, or (at your option) any later version'",
    ),
    ReviewedLicence(
        (
            "binutils",
            "binutils-common",
            "binutils-x86-64-linux-gnu",
            "libbinutils",
            "libctf-nobfd0",
            "libctf0",
            "libgprofng0",
        ),
        "a81bdd422c2c015deca84bf6ad249bf0d7d19885fc01d1894463291b0b7313e1",
        "GPL-3.0-or-later",
        "GNU Binutils: GPL 'version 3 of the License, or (at your option) any later "
        "version'; the manuals are GFDL 1.3 or later",
    ),
    ReviewedLicence(
        ("busybox-static",),
        "336d995e819d3a7a3fdbf3f5041c07094f75ee849acb3bb742b7503d45786329",
        "GPL-2.0-only",
        "GNU GPL 'version 2 dated June, 1991', no later-version clause",
    ),
    ReviewedLicence(
        ("debian-archive-keyring",),
        "b32aecaae84643700a33bc9ee83fa9b36938d35aa7b61b5042092eca77ddb732",
        "GPL-2.0-or-later",
        "support files: GPL 'version 2, or (at your option) any later version'; the keys "
        "themselves 'don't fall under any copyright'",
    ),
    ReviewedLicence(
        ("gcc-12-base",),
        "da8191658b3452ce9caf31638ba61dab31a38c619fa39df119812e050f592fd3",
        "GPL-3.0-or-later",
        "GCC: GPL 'version 3, or (at your option) any later version'",
    ),
    ReviewedLicence(
        ("libgcc-s1", "libstdc++6"),
        "da8191658b3452ce9caf31638ba61dab31a38c619fa39df119812e050f592fd3",
        "GPL-3.0-or-later WITH GCC-exception-3.1",
        "runtime libraries (libgcc, libstdc++-v3): GPL v3 or later with version 3.1 of the "
        "GCC Runtime Library Exception",
    ),
    ReviewedLicence(
        ("initramfs-tools", "initramfs-tools-core"),
        "d8aeb262235288a4d442df0404a8a29acc39375b41d926a04bcca3f34036bff2",
        "GPL-2.0-or-later",
        "'GPL v2 or any later version'",
    ),
    ReviewedLicence(
        ("libc6",),
        "40c7e1f2118531f038ca22999bd976901254e1bc5cd1b0f0211bdd064c599987",
        "LGPL-2.1-or-later",
        "'Most of the GNU C library': LGPL 'version 2.1 of the License, or (at your "
        "option) any later version'; incorporated BSD, ISC and other permissive notices "
        "are listed in the file",
    ),
    ReviewedLicence(
        ("libc-bin",),
        "40c7e1f2118531f038ca22999bd976901254e1bc5cd1b0f0211bdd064c599987",
        "LGPL-2.1-or-later AND GPL-2.0-or-later",
        "the library: LGPL 2.1 or later; 'The utilities associated with GNU C library': "
        "GPL 'version 2 of the License, or (at your option) any later version'",
    ),
    ReviewedLicence(
        ("libcrypt1",),
        "5a5e7ca0e9f3f9679977e3a3e9ede45ad92885a3297ea78e766979f9866c5a16",
        "LGPL-2.1-or-later",
        "'The overall license for libxcrypt is the GNU Lesser General Public License, "
        "version 2.1 (or, at your option, any later version)'; files under BSD and public "
        "domain terms are listed in the file",
    ),
    ReviewedLicence(
        ("libgcrypt20",),
        "95db2f9da663f2bfe2aabe9c72fce9d6c9ae767b912f397d7823f50bd55a1a7d",
        "LGPL-2.1-or-later",
        "'License (library): LGPLv2.1+'; manual and tools GPLv2+",
    ),
    ReviewedLicence(
        ("libgnutls30",),
        "bb7e5c24b3e27bbba5671dd710d159a0066833bda4caa1d55d8027ffed539337",
        "LGPL-2.1-or-later",
        "the library: LGPL 2.1 or later; tools, tests and documentation under GPL-3+, "
        "GFDL and others as listed in the file",
    ),
    ReviewedLicence(
        ("libgssapi-krb5-2", "libk5crypto3", "libkrb5-3", "libkrb5support0"),
        "936728f4181718f42951b881c1e8f1386bf6b2723c4fbc533c374d6f42c71816",
        "BSD-2-Clause",
        "MIT Kerberos: 'Copyright (C) 1985-2022 by the Massachusetts Institute of "
        "Technology', the two-clause BSD conditions; many further notices follow in the file",
    ),
    ReviewedLicence(
        ("klibc-utils", "libklibc"),
        "d0f580bd7629b15b6bb1b36468b51182545a8002612a030fca39fec2e3203707",
        "BSD-3-Clause AND GPL-2.0-only",
        "'License: BSD/GPL': the GPL v2 and the BSD licence (advertising clause rescinded) "
        "both quoted; both apply to parts",
    ),
    ReviewedLicence(
        ("libnsl2",),
        "7d9c79b73fd956319a90cd210441498b225e00960352c4c6d447436481bb0eec",
        "LGPL-2.1-only AND LGPL-2.1-or-later AND BSD-3-Clause",
        "a DEP-5 file without a 'Files: *' paragraph: the licences of its src/ paragraphs",
    ),
    ReviewedLicence(
        ("libpython3-stdlib", "python3", "python3-minimal"),
        "5b274dbb44b28a54b795b9471c07ab045054d6b8a86273cb9feb632b6fd2760d",
        "Python-2.0",
        "the Python licence stack (PSF, BeOpen, CNRI, CWI) quoted from Python's LICENSE",
    ),
    ReviewedLicence(
        ("libpython3.11-minimal", "libpython3.11-stdlib", "python3.11", "python3.11-minimal"),
        "f1cbf908e1daa8789b389fdcf17811ed36b675d736b39a103591399861350382",
        "Python-2.0",
        "'Python License' (PSF, BeOpen, CNRI, CWI); licences of incorporated software "
        "follow at the end of the file",
    ),
    ReviewedLicence(
        ("libselinux1",),
        "641806738b0c6a3d03168c2649e6b94205198bb66cd557e6bae3a20b71c9bb0b",
        "LicenseRef-libselinux-public-domain",
        "'This library (libselinux) is public domain software, i.e. not copyrighted', with "
        "NSA's warranty exclusion; SPDX has no id for it",
    ),
    ReviewedLicence(
        ("libsemanage-common", "libsemanage2"),
        "e00e6a86c598f9e24ced0180a70a5f2f2e45e133d93adf2b17ce8a06ce4b1b51",
        "LGPL-2.1-or-later",
        "LGPL 'version 2.1 of the License, or (at your option) any later version'; Debian "
        "changes GPL v2",
    ),
    ReviewedLicence(
        ("libtasn1-6",),
        "572ad60ad184d8f52c6dc66d83a61a68f137db560b3452ce00588c9ecf128a65",
        "LGPL-2.1-or-later",
        "'The library itself is licensed as LGPLv2.1+'; tools and build system GPLv3+",
    ),
)

_BY_KEY = {(name, entry.copyright_sha256): entry for entry in REVIEWED for name in entry.packages}


def reviewed_licence(package: str, copyright_sha256: str) -> ReviewedLicence | None:
    """The reading of this exact copyright file for `package`, if there is one."""
    return _BY_KEY.get((package, copyright_sha256))
