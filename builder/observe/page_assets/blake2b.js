// Incremental BLAKE2b-512 (RFC 7693), unkeyed: what minisign's prehashed ("ED")
// signatures sign. 64-bit words are (low, high) pairs of 32-bit integers. A compression
// keeps its 16 working words in 32 local variables and stays in int32 arithmetic (a
// sum's carry into the high half is 1 when its low half is below an addend's low half,
// compared unsigned); no BigInt, no floating point, so the JIT keeps the words in
// registers. The eight G calls of a round (RFC 7693 section 3.1: four columns, four
// diagonals) are written out; the twelve rounds loop over the message schedule.
// bench/bench_page_hash.py measures it against hashlib.
"use strict";

const BLAKE2B_IV = new Int32Array([
  0xf3bcc908, 0x6a09e667, 0x84caa73b, 0xbb67ae85, 0xfe94f82b, 0x3c6ef372, 0x5f1d36f1, 0xa54ff53a,
  0xade682d1, 0x510e527f, 0x2b3e6c1f, 0x9b05688c, 0xfb41bd6b, 0x1f83d9ab, 0x137e2179, 0x5be0cd19,
]);

// The message word schedule of rounds 0 to 9, rounds 10 and 11 repeating 0 and 1, each
// index doubled (the low half of word i is at 2i, the high half at 2i + 1), flat.
const BLAKE2B_SIGMA = Uint8Array.from(
  [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
  ].flat(),
  (i) => 2 * i,
);

// One compression of the 128-byte block at bytes[at] into the state h (16 pairs); m is
// scratch space for the block's 16 message words.
function blake2bCompress(h, m, bytes, at, counted, last) {
  for (let i = 0; i < 32; i++) {
    const j = at + 4 * i;
    m[i] = bytes[j] | (bytes[j + 1] << 8) | (bytes[j + 2] << 16) | (bytes[j + 3] << 24);
  }
  const S = BLAKE2B_SIGMA, IV = BLAKE2B_IV;
  let v0l = h[0], v0h = h[1], v1l = h[2], v1h = h[3], v2l = h[4], v2h = h[5];
  let v3l = h[6], v3h = h[7], v4l = h[8], v4h = h[9], v5l = h[10], v5h = h[11];
  let v6l = h[12], v6h = h[13], v7l = h[14], v7h = h[15];
  let v8l = IV[0], v8h = IV[1], v9l = IV[2], v9h = IV[3], v10l = IV[4], v10h = IV[5];
  let v11l = IV[6], v11h = IV[7];
  let v12l = IV[8] ^ (counted | 0), v12h = IV[9] ^ (Math.floor(counted / 0x100000000) | 0);
  let v13l = IV[10], v13h = IV[11];
  let v14l = last ? ~IV[12] : IV[12], v14h = last ? ~IV[13] : IV[13];
  let v15l = IV[14], v15h = IV[15];
  let t = 0, tl = 0, th = 0, x = 0, xl = 0, xh = 0;
  for (let o = 0; o < 192; o += 16) {
    // G(v0, v4, v8, v12): message words 0 and 1 of the round
    t = (v0l + v4l) | 0; v0h = (v0h + v4h + (((t >>> 0) < (v0l >>> 0)) | 0)) | 0; v0l = t;
    x = S[o + 0]; xl = m[x]; xh = m[x + 1];
    t = (v0l + xl) | 0; v0h = (v0h + xh + (((t >>> 0) < (v0l >>> 0)) | 0)) | 0; v0l = t;
    t = v12l ^ v0l; v12l = v12h ^ v0h; v12h = t;
    t = (v8l + v12l) | 0; v8h = (v8h + v12h + (((t >>> 0) < (v8l >>> 0)) | 0)) | 0; v8l = t;
    tl = v4l ^ v8l; th = v4h ^ v8h; v4l = (tl >>> 24) | (th << 8); v4h = (th >>> 24) | (tl << 8);
    t = (v0l + v4l) | 0; v0h = (v0h + v4h + (((t >>> 0) < (v0l >>> 0)) | 0)) | 0; v0l = t;
    x = S[o + 1]; xl = m[x]; xh = m[x + 1];
    t = (v0l + xl) | 0; v0h = (v0h + xh + (((t >>> 0) < (v0l >>> 0)) | 0)) | 0; v0l = t;
    tl = v12l ^ v0l; th = v12h ^ v0h; v12l = (tl >>> 16) | (th << 16); v12h = (th >>> 16) | (tl << 16);
    t = (v8l + v12l) | 0; v8h = (v8h + v12h + (((t >>> 0) < (v8l >>> 0)) | 0)) | 0; v8l = t;
    tl = v4l ^ v8l; th = v4h ^ v8h; v4l = (tl << 1) | (th >>> 31); v4h = (th << 1) | (tl >>> 31);
    // G(v1, v5, v9, v13): message words 2 and 3 of the round
    t = (v1l + v5l) | 0; v1h = (v1h + v5h + (((t >>> 0) < (v1l >>> 0)) | 0)) | 0; v1l = t;
    x = S[o + 2]; xl = m[x]; xh = m[x + 1];
    t = (v1l + xl) | 0; v1h = (v1h + xh + (((t >>> 0) < (v1l >>> 0)) | 0)) | 0; v1l = t;
    t = v13l ^ v1l; v13l = v13h ^ v1h; v13h = t;
    t = (v9l + v13l) | 0; v9h = (v9h + v13h + (((t >>> 0) < (v9l >>> 0)) | 0)) | 0; v9l = t;
    tl = v5l ^ v9l; th = v5h ^ v9h; v5l = (tl >>> 24) | (th << 8); v5h = (th >>> 24) | (tl << 8);
    t = (v1l + v5l) | 0; v1h = (v1h + v5h + (((t >>> 0) < (v1l >>> 0)) | 0)) | 0; v1l = t;
    x = S[o + 3]; xl = m[x]; xh = m[x + 1];
    t = (v1l + xl) | 0; v1h = (v1h + xh + (((t >>> 0) < (v1l >>> 0)) | 0)) | 0; v1l = t;
    tl = v13l ^ v1l; th = v13h ^ v1h; v13l = (tl >>> 16) | (th << 16); v13h = (th >>> 16) | (tl << 16);
    t = (v9l + v13l) | 0; v9h = (v9h + v13h + (((t >>> 0) < (v9l >>> 0)) | 0)) | 0; v9l = t;
    tl = v5l ^ v9l; th = v5h ^ v9h; v5l = (tl << 1) | (th >>> 31); v5h = (th << 1) | (tl >>> 31);
    // G(v2, v6, v10, v14): message words 4 and 5 of the round
    t = (v2l + v6l) | 0; v2h = (v2h + v6h + (((t >>> 0) < (v2l >>> 0)) | 0)) | 0; v2l = t;
    x = S[o + 4]; xl = m[x]; xh = m[x + 1];
    t = (v2l + xl) | 0; v2h = (v2h + xh + (((t >>> 0) < (v2l >>> 0)) | 0)) | 0; v2l = t;
    t = v14l ^ v2l; v14l = v14h ^ v2h; v14h = t;
    t = (v10l + v14l) | 0; v10h = (v10h + v14h + (((t >>> 0) < (v10l >>> 0)) | 0)) | 0; v10l = t;
    tl = v6l ^ v10l; th = v6h ^ v10h; v6l = (tl >>> 24) | (th << 8); v6h = (th >>> 24) | (tl << 8);
    t = (v2l + v6l) | 0; v2h = (v2h + v6h + (((t >>> 0) < (v2l >>> 0)) | 0)) | 0; v2l = t;
    x = S[o + 5]; xl = m[x]; xh = m[x + 1];
    t = (v2l + xl) | 0; v2h = (v2h + xh + (((t >>> 0) < (v2l >>> 0)) | 0)) | 0; v2l = t;
    tl = v14l ^ v2l; th = v14h ^ v2h; v14l = (tl >>> 16) | (th << 16); v14h = (th >>> 16) | (tl << 16);
    t = (v10l + v14l) | 0; v10h = (v10h + v14h + (((t >>> 0) < (v10l >>> 0)) | 0)) | 0; v10l = t;
    tl = v6l ^ v10l; th = v6h ^ v10h; v6l = (tl << 1) | (th >>> 31); v6h = (th << 1) | (tl >>> 31);
    // G(v3, v7, v11, v15): message words 6 and 7 of the round
    t = (v3l + v7l) | 0; v3h = (v3h + v7h + (((t >>> 0) < (v3l >>> 0)) | 0)) | 0; v3l = t;
    x = S[o + 6]; xl = m[x]; xh = m[x + 1];
    t = (v3l + xl) | 0; v3h = (v3h + xh + (((t >>> 0) < (v3l >>> 0)) | 0)) | 0; v3l = t;
    t = v15l ^ v3l; v15l = v15h ^ v3h; v15h = t;
    t = (v11l + v15l) | 0; v11h = (v11h + v15h + (((t >>> 0) < (v11l >>> 0)) | 0)) | 0; v11l = t;
    tl = v7l ^ v11l; th = v7h ^ v11h; v7l = (tl >>> 24) | (th << 8); v7h = (th >>> 24) | (tl << 8);
    t = (v3l + v7l) | 0; v3h = (v3h + v7h + (((t >>> 0) < (v3l >>> 0)) | 0)) | 0; v3l = t;
    x = S[o + 7]; xl = m[x]; xh = m[x + 1];
    t = (v3l + xl) | 0; v3h = (v3h + xh + (((t >>> 0) < (v3l >>> 0)) | 0)) | 0; v3l = t;
    tl = v15l ^ v3l; th = v15h ^ v3h; v15l = (tl >>> 16) | (th << 16); v15h = (th >>> 16) | (tl << 16);
    t = (v11l + v15l) | 0; v11h = (v11h + v15h + (((t >>> 0) < (v11l >>> 0)) | 0)) | 0; v11l = t;
    tl = v7l ^ v11l; th = v7h ^ v11h; v7l = (tl << 1) | (th >>> 31); v7h = (th << 1) | (tl >>> 31);
    // G(v0, v5, v10, v15): message words 8 and 9 of the round
    t = (v0l + v5l) | 0; v0h = (v0h + v5h + (((t >>> 0) < (v0l >>> 0)) | 0)) | 0; v0l = t;
    x = S[o + 8]; xl = m[x]; xh = m[x + 1];
    t = (v0l + xl) | 0; v0h = (v0h + xh + (((t >>> 0) < (v0l >>> 0)) | 0)) | 0; v0l = t;
    t = v15l ^ v0l; v15l = v15h ^ v0h; v15h = t;
    t = (v10l + v15l) | 0; v10h = (v10h + v15h + (((t >>> 0) < (v10l >>> 0)) | 0)) | 0; v10l = t;
    tl = v5l ^ v10l; th = v5h ^ v10h; v5l = (tl >>> 24) | (th << 8); v5h = (th >>> 24) | (tl << 8);
    t = (v0l + v5l) | 0; v0h = (v0h + v5h + (((t >>> 0) < (v0l >>> 0)) | 0)) | 0; v0l = t;
    x = S[o + 9]; xl = m[x]; xh = m[x + 1];
    t = (v0l + xl) | 0; v0h = (v0h + xh + (((t >>> 0) < (v0l >>> 0)) | 0)) | 0; v0l = t;
    tl = v15l ^ v0l; th = v15h ^ v0h; v15l = (tl >>> 16) | (th << 16); v15h = (th >>> 16) | (tl << 16);
    t = (v10l + v15l) | 0; v10h = (v10h + v15h + (((t >>> 0) < (v10l >>> 0)) | 0)) | 0; v10l = t;
    tl = v5l ^ v10l; th = v5h ^ v10h; v5l = (tl << 1) | (th >>> 31); v5h = (th << 1) | (tl >>> 31);
    // G(v1, v6, v11, v12): message words 10 and 11 of the round
    t = (v1l + v6l) | 0; v1h = (v1h + v6h + (((t >>> 0) < (v1l >>> 0)) | 0)) | 0; v1l = t;
    x = S[o + 10]; xl = m[x]; xh = m[x + 1];
    t = (v1l + xl) | 0; v1h = (v1h + xh + (((t >>> 0) < (v1l >>> 0)) | 0)) | 0; v1l = t;
    t = v12l ^ v1l; v12l = v12h ^ v1h; v12h = t;
    t = (v11l + v12l) | 0; v11h = (v11h + v12h + (((t >>> 0) < (v11l >>> 0)) | 0)) | 0; v11l = t;
    tl = v6l ^ v11l; th = v6h ^ v11h; v6l = (tl >>> 24) | (th << 8); v6h = (th >>> 24) | (tl << 8);
    t = (v1l + v6l) | 0; v1h = (v1h + v6h + (((t >>> 0) < (v1l >>> 0)) | 0)) | 0; v1l = t;
    x = S[o + 11]; xl = m[x]; xh = m[x + 1];
    t = (v1l + xl) | 0; v1h = (v1h + xh + (((t >>> 0) < (v1l >>> 0)) | 0)) | 0; v1l = t;
    tl = v12l ^ v1l; th = v12h ^ v1h; v12l = (tl >>> 16) | (th << 16); v12h = (th >>> 16) | (tl << 16);
    t = (v11l + v12l) | 0; v11h = (v11h + v12h + (((t >>> 0) < (v11l >>> 0)) | 0)) | 0; v11l = t;
    tl = v6l ^ v11l; th = v6h ^ v11h; v6l = (tl << 1) | (th >>> 31); v6h = (th << 1) | (tl >>> 31);
    // G(v2, v7, v8, v13): message words 12 and 13 of the round
    t = (v2l + v7l) | 0; v2h = (v2h + v7h + (((t >>> 0) < (v2l >>> 0)) | 0)) | 0; v2l = t;
    x = S[o + 12]; xl = m[x]; xh = m[x + 1];
    t = (v2l + xl) | 0; v2h = (v2h + xh + (((t >>> 0) < (v2l >>> 0)) | 0)) | 0; v2l = t;
    t = v13l ^ v2l; v13l = v13h ^ v2h; v13h = t;
    t = (v8l + v13l) | 0; v8h = (v8h + v13h + (((t >>> 0) < (v8l >>> 0)) | 0)) | 0; v8l = t;
    tl = v7l ^ v8l; th = v7h ^ v8h; v7l = (tl >>> 24) | (th << 8); v7h = (th >>> 24) | (tl << 8);
    t = (v2l + v7l) | 0; v2h = (v2h + v7h + (((t >>> 0) < (v2l >>> 0)) | 0)) | 0; v2l = t;
    x = S[o + 13]; xl = m[x]; xh = m[x + 1];
    t = (v2l + xl) | 0; v2h = (v2h + xh + (((t >>> 0) < (v2l >>> 0)) | 0)) | 0; v2l = t;
    tl = v13l ^ v2l; th = v13h ^ v2h; v13l = (tl >>> 16) | (th << 16); v13h = (th >>> 16) | (tl << 16);
    t = (v8l + v13l) | 0; v8h = (v8h + v13h + (((t >>> 0) < (v8l >>> 0)) | 0)) | 0; v8l = t;
    tl = v7l ^ v8l; th = v7h ^ v8h; v7l = (tl << 1) | (th >>> 31); v7h = (th << 1) | (tl >>> 31);
    // G(v3, v4, v9, v14): message words 14 and 15 of the round
    t = (v3l + v4l) | 0; v3h = (v3h + v4h + (((t >>> 0) < (v3l >>> 0)) | 0)) | 0; v3l = t;
    x = S[o + 14]; xl = m[x]; xh = m[x + 1];
    t = (v3l + xl) | 0; v3h = (v3h + xh + (((t >>> 0) < (v3l >>> 0)) | 0)) | 0; v3l = t;
    t = v14l ^ v3l; v14l = v14h ^ v3h; v14h = t;
    t = (v9l + v14l) | 0; v9h = (v9h + v14h + (((t >>> 0) < (v9l >>> 0)) | 0)) | 0; v9l = t;
    tl = v4l ^ v9l; th = v4h ^ v9h; v4l = (tl >>> 24) | (th << 8); v4h = (th >>> 24) | (tl << 8);
    t = (v3l + v4l) | 0; v3h = (v3h + v4h + (((t >>> 0) < (v3l >>> 0)) | 0)) | 0; v3l = t;
    x = S[o + 15]; xl = m[x]; xh = m[x + 1];
    t = (v3l + xl) | 0; v3h = (v3h + xh + (((t >>> 0) < (v3l >>> 0)) | 0)) | 0; v3l = t;
    tl = v14l ^ v3l; th = v14h ^ v3h; v14l = (tl >>> 16) | (th << 16); v14h = (th >>> 16) | (tl << 16);
    t = (v9l + v14l) | 0; v9h = (v9h + v14h + (((t >>> 0) < (v9l >>> 0)) | 0)) | 0; v9l = t;
    tl = v4l ^ v9l; th = v4h ^ v9h; v4l = (tl << 1) | (th >>> 31); v4h = (th << 1) | (tl >>> 31);
  }
  h[0] ^= v0l ^ v8l; h[1] ^= v0h ^ v8h; h[2] ^= v1l ^ v9l; h[3] ^= v1h ^ v9h;
  h[4] ^= v2l ^ v10l; h[5] ^= v2h ^ v10h; h[6] ^= v3l ^ v11l; h[7] ^= v3h ^ v11h;
  h[8] ^= v4l ^ v12l; h[9] ^= v4h ^ v12h; h[10] ^= v5l ^ v13l; h[11] ^= v5h ^ v13h;
  h[12] ^= v6l ^ v14l; h[13] ^= v6h ^ v14h; h[14] ^= v7l ^ v15l; h[15] ^= v7h ^ v15h;
}

class Blake2b512 {
  constructor() {
    this.h = new Int32Array(BLAKE2B_IV);
    this.h[0] ^= 0x01010040; // parameter block: digest length 64, no key, fanout 1, depth 1
    this.m = new Int32Array(32);
    this.pending = new Uint8Array(128);
    this.pendingLength = 0;
    this.counted = 0; // bytes compressed so far
    this.finished = false;
  }

  compress(bytes, at, last) {
    blake2bCompress(this.h, this.m, bytes, at, this.counted, last);
  }

  update(bytes) {
    if (this.finished) throw new Error("BLAKE2b: update after digest");
    let at = 0;
    const end = bytes.length;
    while (at < end) {
      // The last block is compressed differently, so a full block waits until more comes.
      if (this.pendingLength === 128) {
        this.counted += 128;
        this.compress(this.pending, 0, false);
        this.pendingLength = 0;
      }
      if (this.pendingLength === 0) {
        for (; end - at > 128; at += 128) {
          this.counted += 128;
          this.compress(bytes, at, false);
        }
      }
      const take = Math.min(128 - this.pendingLength, end - at);
      this.pending.set(bytes.subarray(at, at + take), this.pendingLength);
      this.pendingLength += take;
      at += take;
    }
    return this;
  }

  digest() {
    if (this.finished) throw new Error("BLAKE2b: digest twice");
    this.counted += this.pendingLength;
    this.pending.fill(0, this.pendingLength);
    this.compress(this.pending, 0, true);
    this.finished = true;
    const out = new Uint8Array(64);
    for (let i = 0; i < 16; i++) {
      const word = this.h[i];
      out[4 * i] = word; out[4 * i + 1] = word >>> 8;
      out[4 * i + 2] = word >>> 16; out[4 * i + 3] = word >>> 24;
    }
    return out;
  }
}
