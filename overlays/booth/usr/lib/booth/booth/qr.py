"""A small QR code encoder (ISO/IEC 18004, model 2) for the booth's fingerprint code.

Only what the booth needs: alphanumeric mode (``0-9 A-Z``, space and ``$%*+-./:``),
versions 1 to 6 and the four error correction levels. The booth has Debian's
python3 and nothing else; Debian's python3-qrcode would bring Pillow into the image.
The tests check every version, level and mask against an independent encoder
(segno) and decode the booth's screen with zbarimg.
"""

from __future__ import annotations

ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
LEVELS = ("L", "M", "Q", "H")
_LEVEL_BITS = {"L": 1, "M": 0, "Q": 3, "H": 2}

# Per version and level: (error correction codewords per block,
# ((blocks, data codewords per block), ...)).
_BLOCKS: dict[tuple[int, str], tuple[int, tuple[tuple[int, int], ...]]] = {
    (1, "L"): (7, ((1, 19),)),
    (1, "M"): (10, ((1, 16),)),
    (1, "Q"): (13, ((1, 13),)),
    (1, "H"): (17, ((1, 9),)),
    (2, "L"): (10, ((1, 34),)),
    (2, "M"): (16, ((1, 28),)),
    (2, "Q"): (22, ((1, 22),)),
    (2, "H"): (28, ((1, 16),)),
    (3, "L"): (15, ((1, 55),)),
    (3, "M"): (26, ((1, 44),)),
    (3, "Q"): (18, ((2, 17),)),
    (3, "H"): (22, ((2, 13),)),
    (4, "L"): (20, ((1, 80),)),
    (4, "M"): (18, ((2, 32),)),
    (4, "Q"): (26, ((2, 24),)),
    (4, "H"): (16, ((4, 9),)),
    (5, "L"): (26, ((1, 108),)),
    (5, "M"): (24, ((2, 43),)),
    (5, "Q"): (18, ((2, 15), (2, 16))),
    (5, "H"): (22, ((2, 11), (2, 12))),
    (6, "L"): (18, ((2, 68),)),
    (6, "M"): (16, ((4, 27),)),
    (6, "Q"): (24, ((4, 19),)),
    (6, "H"): (28, ((4, 15),)),
}
MAX_VERSION = 6
_ALIGNMENT = {1: (), 2: (6, 18), 3: (6, 22), 4: (6, 26), 5: (6, 30), 6: (6, 34)}

Matrix = list[list[bool]]  # rows of modules, True = dark


def data_capacity(version: int, level: str) -> int:
    """Data codewords of a symbol."""
    _ec, groups = _BLOCKS[(version, level)]
    return sum(count * size for count, size in groups)


def _bits_for(text: str) -> list[int]:
    bits: list[int] = []

    def put(value: int, width: int) -> None:
        bits.extend((value >> shift) & 1 for shift in range(width - 1, -1, -1))

    put(0b0010, 4)
    put(len(text), 9)  # the character count indicator is 9 bits for versions 1-9
    values = [ALPHANUMERIC.index(char) for char in text]
    for index in range(0, len(values) - 1, 2):
        put(values[index] * 45 + values[index + 1], 11)
    if len(values) % 2:
        put(values[-1], 6)
    return bits


def _codewords(bits: list[int], capacity: int) -> list[int]:
    """The data codewords: `bits`, the terminator, zero bits to a byte, then pad bytes."""
    bits = bits + [0] * min(4, capacity * 8 - len(bits))
    bits += [0] * (-len(bits) % 8)
    words = [int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8)]
    pad = (0xEC, 0x11)
    words += [pad[i % 2] for i in range(capacity - len(words))]
    return words


def _gf_tables() -> tuple[list[int], list[int]]:
    exp, log = [0] * 512, [0] * 256
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


def _error_correction(data: list[int], count: int) -> list[int]:
    """Reed-Solomon remainder of data(x) * x^count by the generator of degree `count`."""
    generator = [1]
    for power in range(count):
        # multiply by (x - alpha^power); coefficients highest degree first
        generator = [
            a ^ _multiply(b, _EXP[power])
            for a, b in zip([*generator, 0], [0, *generator], strict=True)
        ]
    remainder = [*data, *([0] * count)]
    for index in range(len(data)):
        factor = remainder[index]
        if factor:
            for offset, coefficient in enumerate(generator):
                remainder[index + offset] ^= _multiply(coefficient, factor)
    return remainder[len(data) :]


def _interleaved(words: list[int], version: int, level: str) -> list[int]:
    ec_count, groups = _BLOCKS[(version, level)]
    blocks: list[list[int]] = []
    start = 0
    for count, size in groups:
        for _ in range(count):
            blocks.append(words[start : start + size])
            start += size
    ecs = [_error_correction(block, ec_count) for block in blocks]
    result = []
    for index in range(max(len(block) for block in blocks)):
        result += [block[index] for block in blocks if index < len(block)]
    for index in range(ec_count):
        result += [ec[index] for ec in ecs]
    return result


class _Symbol:
    def __init__(self, version: int) -> None:
        self.size = 17 + 4 * version
        self.dark = [[False] * self.size for _ in range(self.size)]
        self.reserved = [[False] * self.size for _ in range(self.size)]
        self._function_patterns(version)

    def set(self, row: int, col: int, dark: bool) -> None:
        self.dark[row][col] = dark
        self.reserved[row][col] = True

    def _function_patterns(self, version: int) -> None:
        size = self.size
        for top, left in ((0, 0), (0, size - 7), (size - 7, 0)):
            for dr in range(-1, 8):
                for dc in range(-1, 8):
                    row, col = top + dr, left + dc
                    if 0 <= row < size and 0 <= col < size:
                        ring = max(abs(dr - 3), abs(dc - 3))
                        self.set(row, col, ring in (0, 1, 3))
        for index in range(8, size - 8):
            self.set(6, index, index % 2 == 0)
            self.set(index, 6, index % 2 == 0)
        centres = _ALIGNMENT[version]
        for row in centres:
            for col in centres:
                if self.reserved[row][col]:
                    continue  # under a finder pattern
                for dr in range(-2, 3):
                    for dc in range(-2, 3):
                        self.set(row + dr, col + dc, max(abs(dr), abs(dc)) != 1)
        self.set_format(0)  # reserve the format areas; the real bits come later

    def set_format(self, bits: int) -> None:
        size = self.size

        def bit(index: int) -> bool:
            return (bits >> index) & 1 == 1

        for index in range(6):
            self.set(index, 8, bit(index))
        self.set(7, 8, bit(6))
        self.set(8, 8, bit(7))
        self.set(8, 7, bit(8))
        for index in range(9, 15):
            self.set(8, 14 - index, bit(index))
        for index in range(8):
            self.set(8, size - 1 - index, bit(index))
        for index in range(8, 15):
            self.set(size - 15 + index, 8, bit(index))
        self.set(size - 8, 8, True)  # the dark module

    def place(self, words: list[int]) -> None:
        bits = [(word >> shift) & 1 for word in words for shift in range(7, -1, -1)]
        index = 0
        right = self.size - 1
        while right >= 1:
            if right == 6:
                right = 5  # the vertical timing pattern's column is skipped
            upward = ((right + 1) & 2) == 0
            for step in range(self.size):
                row = self.size - 1 - step if upward else step
                for col in (right, right - 1):
                    if not self.reserved[row][col]:
                        self.dark[row][col] = index < len(bits) and bits[index] == 1
                        index += 1
            right -= 2

    def masked(self, mask: int) -> Matrix:
        test = _MASKS[mask]
        return [
            [
                self.dark[row][col] ^ (not self.reserved[row][col] and test(row, col))
                for col in range(self.size)
            ]
            for row in range(self.size)
        ]


_MASKS = (
    lambda r, c: (r + c) % 2 == 0,
    lambda r, c: r % 2 == 0,
    lambda r, c: c % 3 == 0,
    lambda r, c: (r + c) % 3 == 0,
    lambda r, c: (r // 2 + c // 3) % 2 == 0,
    lambda r, c: (r * c) % 2 + (r * c) % 3 == 0,
    lambda r, c: ((r * c) % 2 + (r * c) % 3) % 2 == 0,
    lambda r, c: ((r + c) % 2 + (r * c) % 3) % 2 == 0,
)


def format_bits(level: str, mask: int) -> int:
    """The 15 format bits: level and mask, BCH(15,5) protected, XOR 0x5412."""
    data = (_LEVEL_BITS[level] << 3) | mask
    remainder = data
    for _ in range(10):
        remainder = (remainder << 1) ^ ((remainder >> 9) * 0x537)
    return ((data << 10) | (remainder & 0x3FF)) ^ 0x5412


def penalty(matrix: Matrix) -> int:
    """The specification's mask penalty (rules N1 to N4) of a finished symbol."""
    size = len(matrix)
    lines = [*matrix, *([matrix[r][c] for r in range(size)] for c in range(size))]
    score = 0
    finder_like = ([True, False, True, True, True, False, True] + [False] * 4, [False] * 4)
    for line in lines:
        run = 1
        for index in range(1, size + 1):
            if index < size and line[index] == line[index - 1]:
                run += 1
                continue
            if run >= 5:
                score += 3 + run - 5
            run = 1
        for start in range(size - 10):
            window = list(line[start : start + 11])
            if window == finder_like[0] or window == finder_like[1] + finder_like[0][:7]:
                score += 40
    for row in range(size - 1):
        for col in range(size - 1):
            colour = matrix[row][col]
            if (
                matrix[row][col + 1] == colour
                and matrix[row + 1][col] == colour
                and matrix[row + 1][col + 1] == colour
            ):
                score += 3
    dark = sum(sum(row) for row in matrix)
    score += 10 * (abs(dark * 20 - size * size * 10) // (size * size))
    return score


def encode(
    text: str, level: str = "M", *, version: int | None = None, mask: int | None = None
) -> Matrix:
    """The modules of `text`'s QR code (no quiet zone): the smallest version that holds it
    unless `version` is given, the mask with the lowest penalty unless `mask` is given."""
    if level not in _LEVEL_BITS:
        raise ValueError(f"unknown error correction level {level!r}")
    bad = sorted({char for char in text if char not in ALPHANUMERIC})
    if bad:
        raise ValueError(f"not in the QR alphanumeric set: {''.join(bad)!r}")
    bits = _bits_for(text)
    versions = [version] if version is not None else list(range(1, MAX_VERSION + 1))
    chosen = next((v for v in versions if len(bits) <= data_capacity(v, level) * 8), None)
    if chosen is None:
        raise ValueError(f"{len(text)} characters do not fit a version {versions[-1]} code")
    symbol = _Symbol(chosen)
    symbol.place(_interleaved(_codewords(bits, data_capacity(chosen, level)), chosen, level))
    candidates = []
    for candidate in [mask] if mask is not None else range(8):
        symbol.set_format(format_bits(level, candidate))
        matrix = symbol.masked(candidate)
        candidates.append((penalty(matrix) if mask is None else 0, candidate, matrix))
    return min(candidates, key=lambda item: (item[0], item[1]))[2]
