"""The release page's own SHA-256 and BLAKE2b-512 (builder/observe/page_assets), run as
the page ships them in the machine's node (Debian's nodejs, installed by ./setup),
against hashlib: every length around the block sizes, fed in pieces of every awkward
size, and RFC 7693's and FIPS 180-4's answers for "abc". The same checks run in a real
browser in test_page_browser.py (slow)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

ASSETS = Path(__file__).resolve().parents[2] / "builder" / "observe" / "page_assets"
NODE = shutil.which("node")

SCRIPT = r"""
const fs = require("fs"), vm = require("vm");
const [assets] = process.argv.slice(1);
for (const name of ["sha256.js", "blake2b.js"]) {
  vm.runInThisContext(fs.readFileSync(`${assets}/${name}`, "utf8"), { filename: name });
}
const { cases, pieces } = JSON.parse(fs.readFileSync(0, "utf8"));
const hex = (b) => Buffer.from(b).toString("hex");
const results = cases.map((data) => {
  const bytes = Buffer.from(data, "hex");
  return pieces.map((piece) => {
    const sha = new Sha256(), blake = new Blake2b512();
    for (let at = 0; at < bytes.length; at += piece) {
      sha.update(bytes.subarray(at, at + piece));
      blake.update(bytes.subarray(at, at + piece));
    }
    return [hex(sha.digest()), hex(blake.digest())];
  });
});
console.log(JSON.stringify(results));
"""

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed (./setup installs it)")


def run_page_hashes(cases: list[bytes], pieces: list[int]) -> list[list[list[str]]]:
    assert NODE is not None
    done = subprocess.run(
        [NODE, "-e", SCRIPT, str(ASSETS)],
        input=json.dumps({"cases": [c.hex() for c in cases], "pieces": pieces}),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    results: list[list[list[str]]] = json.loads(done.stdout)
    return results


def test_the_page_hashes_agree_with_hashlib() -> None:
    lengths = [0, 1, 3, 55, 56, 63, 64, 65, 111, 112, 127, 128, 129, 255, 256, 257, 5000,
               1 << 20]  # fmt: skip
    cases = [hashlib.shake_256(str(n).encode()).digest(n) if n else b"" for n in lengths]
    pieces = [1, 3, 64, 127, 128, 129, 1 << 20]
    for data, results in zip(cases, run_page_hashes(cases, pieces), strict=True):
        expected = [hashlib.sha256(data).hexdigest(), hashlib.blake2b(data).hexdigest()]
        for piece, got in zip(pieces, results, strict=True):
            assert got == expected, f"{len(data)} bytes in pieces of {piece}"


def test_known_answers() -> None:
    (abc,) = run_page_hashes([b"abc"], [3])[0]
    assert abc[0] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert abc[1] == (
        "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
        "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
    )
