"""A QR code encoder (ISO/IEC 18004) for the ballot code, in plain Python.

Alphanumeric mode (the ballot code's characters: 0-9 A-Z space $ % * + - . / :) or
byte mode, error correction level M (15% of the symbol may be damaged), versions 1
to 20 (up to 970 alphanumeric characters), the mask with the lowest penalty score.
The result is a square of booleans (True: dark module), without the quiet zone.
Written for the booth so that the image needs no imaging library; the tests read its
output back with zbarimg.
"""

from __future__ import annotations

from collections.abc import Callable

ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
MAX_VERSION = 20
# Level M, versions 1..20: error correction codewords per block, and number of blocks.
_ECC_PER_BLOCK = (10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26)
_BLOCKS = (1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16)
_LEVEL_M_BITS = 0b00


def _gf_tables() -> tuple[list[int], list[int]]:
    exp = [0] * 512
    log = [0] * 256
    value = 1
    for power in range(255):
        exp[power] = value
        log[value] = power
        value <<= 1
        if value & 0x100:
            value ^= 0x11D
    for power in range(255, 512):
        exp[power] = exp[power - 255]
    return exp, log


_EXP, _LOG = _gf_tables()


def _multiply(a: int, b: int) -> int:
    return 0 if a == 0 or b == 0 else _EXP[_LOG[a] + _LOG[b]]


def _generator(degree: int) -> list[int]:
    """Coefficients (highest power first, leading 1 omitted) of prod(x - a^i), i < degree."""
    poly = [1]
    for i in range(degree):
        nxt = [0] * (len(poly) + 1)
        for j, coefficient in enumerate(poly):
            nxt[j] ^= coefficient
            nxt[j + 1] ^= _multiply(coefficient, _EXP[i])
        poly = nxt
    return poly[1:]


def _remainder(data: list[int], degree: int) -> list[int]:
    generator = _generator(degree)
    remainder = [0] * degree
    for byte in data:
        factor = byte ^ remainder.pop(0)
        remainder.append(0)
        for i, coefficient in enumerate(generator):
            remainder[i] ^= _multiply(coefficient, factor)
    return remainder


def _raw_modules(version: int) -> int:
    """Modules available for data and error correction in a symbol of this version."""
    count = (16 * version + 128) * version + 64
    if version >= 2:
        aligns = version // 7 + 2
        count -= (25 * aligns - 10) * aligns - 55
        if version >= 7:
            count -= 36
    return count


def _data_codewords(version: int) -> int:
    return _raw_modules(version) // 8 - _ECC_PER_BLOCK[version - 1] * _BLOCKS[version - 1]


def _segment_bits(text: str, version: int) -> list[int]:
    bits: list[int] = []

    def put(value: int, length: int) -> None:
        bits.extend((value >> i) & 1 for i in range(length - 1, -1, -1))

    if all(char in ALPHANUMERIC for char in text):
        put(0b0010, 4)
        put(len(text), 9 if version < 10 else 11)
        for i in range(0, len(text) - 1, 2):
            put(ALPHANUMERIC.index(text[i]) * 45 + ALPHANUMERIC.index(text[i + 1]), 11)
        if len(text) % 2:
            put(ALPHANUMERIC.index(text[-1]), 6)
    else:
        data = text.encode("utf-8")
        put(0b0100, 4)
        put(len(data), 8 if version < 10 else 16)
        for byte in data:
            put(byte, 8)
    return bits


def _codewords(text: str) -> tuple[int, list[int]]:
    """(version, final codeword sequence: data and error correction, interleaved)."""
    for version in range(1, MAX_VERSION + 1):
        capacity = _data_codewords(version) * 8
        bits = _segment_bits(text, version)
        if len(bits) <= capacity:
            break
    else:
        raise ValueError(f"too long for a QR code of version {MAX_VERSION}: {len(text)} characters")
    bits += [0] * min(4, capacity - len(bits))
    bits += [0] * (-len(bits) % 8)
    data = [int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8)]
    pad = (0xEC, 0x11)
    data += [pad[i % 2] for i in range(capacity // 8 - len(data))]
    blocks_count = _BLOCKS[version - 1]
    ecc_length = _ECC_PER_BLOCK[version - 1]
    total = _raw_modules(version) // 8
    short_blocks = blocks_count - total % blocks_count
    short_length = total // blocks_count - ecc_length  # data codewords in a short block
    blocks: list[list[int]] = []
    eccs: list[list[int]] = []
    start = 0
    for index in range(blocks_count):
        length = short_length + (0 if index < short_blocks else 1)
        block = data[start : start + length]
        start += length
        blocks.append(block)
        eccs.append(_remainder(block, ecc_length))
    result = [block[i] for i in range(short_length + 1) for block in blocks if i < len(block)]
    result += [ecc[i] for i in range(ecc_length) for ecc in eccs]
    return version, result


def _bch_format(mask: int) -> int:
    data = (_LEVEL_M_BITS << 3) | mask
    remainder = data
    for _ in range(10):
        remainder = (remainder << 1) ^ ((remainder >> 9) * 0x537)
    return ((data << 10) | remainder) ^ 0x5412


def _bch_version(version: int) -> int:
    remainder = version
    for _ in range(12):
        remainder = (remainder << 1) ^ ((remainder >> 11) * 0x1F25)
    return (version << 12) | remainder


def _alignment_positions(version: int) -> list[int]:
    if version == 1:
        return []
    count = version // 7 + 2
    size = version * 4 + 17
    step = (version * 8 + count * 3 + 5) // (count * 4 - 4) * 2
    return [6, *sorted(size - 7 - i * step for i in range(count - 1))]


class _Symbol:
    def __init__(self, version: int) -> None:
        self.version = version
        self.size = version * 4 + 17
        self.dark = [[False] * self.size for _ in range(self.size)]
        self.fixed = [[False] * self.size for _ in range(self.size)]
        self._function_patterns()

    def set(self, x: int, y: int, dark: bool) -> None:
        self.dark[y][x] = dark
        self.fixed[y][x] = True

    def _function_patterns(self) -> None:
        size = self.size
        for i in range(size):
            self.set(6, i, i % 2 == 0)
            self.set(i, 6, i % 2 == 0)
        for cx, cy in ((3, 3), (size - 4, 3), (3, size - 4)):
            for dy in range(-4, 5):
                for dx in range(-4, 5):
                    x, y = cx + dx, cy + dy
                    if 0 <= x < size and 0 <= y < size:
                        ring = max(abs(dx), abs(dy))
                        self.set(x, y, ring not in (2, 4))
        positions = _alignment_positions(self.version)
        last = len(positions) - 1
        for i, cx in enumerate(positions):
            for j, cy in enumerate(positions):
                if (i, j) in ((0, 0), (0, last), (last, 0)):
                    continue
                for dy in range(-2, 3):
                    for dx in range(-2, 3):
                        self.set(cx + dx, cy + dy, max(abs(dx), abs(dy)) != 1)
        self.format_bits(0)  # reserve the areas; written again with the chosen mask
        if self.version >= 7:
            bits = _bch_version(self.version)
            for i in range(18):
                bit = (bits >> i) & 1 == 1
                a, b = size - 11 + i % 3, i // 3
                self.set(a, b, bit)
                self.set(b, a, bit)

    def format_bits(self, mask: int) -> None:
        bits = _bch_format(mask)
        size = self.size
        for i in range(15):
            bit = (bits >> i) & 1 == 1
            # Around the top-left finder.
            if i < 6:
                self.set(8, i, bit)
            elif i < 8:
                self.set(8, i + 1, bit)
            elif i == 8:
                self.set(7, 8, bit)
            else:
                self.set(14 - i, 8, bit)
            # Split between the other two finders.
            if i < 8:
                self.set(size - 1 - i, 8, bit)
            else:
                self.set(8, size - 15 + i, bit)
        self.set(8, size - 8, True)  # the dark module

    def place(self, codewords: list[int]) -> None:
        bits = [(byte >> (7 - i)) & 1 for byte in codewords for i in range(8)]
        index = 0
        size = self.size
        right = size - 1
        while right >= 1:
            if right == 6:
                right = 5
            for vertical in range(size):
                upward = ((right + 1) & 2) == 0
                y = size - 1 - vertical if upward else vertical
                for x in (right, right - 1):
                    if not self.fixed[y][x]:
                        self.dark[y][x] = index < len(bits) and bits[index] == 1
                        index += 1
            right -= 2

    def masked(self, mask: int) -> list[list[bool]]:
        tests: tuple[Callable[[int, int], bool], ...] = (
            lambda x, y: (x + y) % 2 == 0,
            lambda x, y: y % 2 == 0,
            lambda x, y: x % 3 == 0,
            lambda x, y: (x + y) % 3 == 0,
            lambda x, y: (x // 3 + y // 2) % 2 == 0,
            lambda x, y: x * y % 2 + x * y % 3 == 0,
            lambda x, y: (x * y % 2 + x * y % 3) % 2 == 0,
            lambda x, y: ((x + y) % 2 + x * y % 3) % 2 == 0,
        )
        test = tests[mask]
        self.format_bits(mask)
        return [
            [self.dark[y][x] != (not self.fixed[y][x] and test(x, y)) for x in range(self.size)]
            for y in range(self.size)
        ]


def _penalty(grid: list[list[bool]]) -> int:
    size = len(grid)
    score = 0
    lines = grid + [list(column) for column in zip(*grid, strict=True)]
    finder = [True, False, True, True, True, False, True]
    for line in lines:
        run = 1
        for i in range(1, size + 1):
            if i < size and line[i] == line[i - 1]:
                run += 1
                continue
            if run >= 5:
                score += run - 2
            run = 1
        padded = [False] * 4 + line + [False] * 4
        for i in range(len(padded) - 10):
            window = padded[i : i + 11]
            if window[:7] == finder and not any(window[7:]):
                score += 40
            if window[4:] == finder and not any(window[:4]):
                score += 40
    for y in range(size - 1):
        for x in range(size - 1):
            if grid[y][x] == grid[y][x + 1] == grid[y + 1][x] == grid[y + 1][x + 1]:
                score += 3
    dark = sum(sum(row) for row in grid)
    score += abs(dark * 20 - size * size * 10) // (size * size) * 10
    return score


def encode(text: str) -> list[list[bool]]:
    """The QR code of `text` (rows of modules, True dark); `ValueError` if too long."""
    version, codewords = _codewords(text)
    symbol = _Symbol(version)
    symbol.place(codewords)
    candidates = [symbol.masked(mask) for mask in range(8)]
    scores = [_penalty(grid) for grid in candidates]
    return candidates[scores.index(min(scores))]
