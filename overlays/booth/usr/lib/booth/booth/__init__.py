"""The booth program that runs inside the boothkey image (Python 3.11 + python3-cryptography).

It depends on nothing from the builder: the formats it reads (data partition,
signed envelope, payload, fingerprints) are documented in docs/election-data.md
and tests check that the builder writes exactly what this code reads.
"""

FORMAT = 1
