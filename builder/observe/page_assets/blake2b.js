// Incremental BLAKE2b-512 (RFC 7693), unkeyed: what minisign's prehashed ("ED")
// signatures sign. 64-bit words are held as (low, high) pairs of 32-bit numbers.
"use strict";

const BLAKE2B_IV = new Uint32Array([
  0xf3bcc908, 0x6a09e667, 0x84caa73b, 0xbb67ae85, 0xfe94f82b, 0x3c6ef372, 0x5f1d36f1, 0xa54ff53a,
  0xade682d1, 0x510e527f, 0x2b3e6c1f, 0x9b05688c, 0xfb41bd6b, 0x1f83d9ab, 0x137e2179, 0x5be0cd19,
]);

// The message word schedule of rounds 0 to 9; rounds 10 and 11 repeat 0 and 1.
const BLAKE2B_SIGMA = [
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
];
const BLAKE2B_SIGMA2 = BLAKE2B_SIGMA.map((row) => Uint8Array.from(row, (i) => 2 * i));

// The G function of RFC 7693 on state words a, b, c, d with message words x and y; every
// index is already doubled (the low half of word i is at 2i, the high half at 2i + 1).
function blake2bMix(v, m, a, b, c, d, x, y) {
  let lo, hi, t0, t1;
  // a = a + b + x
  lo = v[a] + v[b];
  hi = v[a + 1] + v[b + 1] + (lo >= 0x100000000 ? 1 : 0);
  lo >>>= 0;
  t0 = lo + m[x];
  v[a + 1] = hi + m[x + 1] + (t0 >= 0x100000000 ? 1 : 0);
  v[a] = t0;
  // d = (d ^ a) rotated right by 32
  t0 = v[d] ^ v[a];
  v[d] = v[d + 1] ^ v[a + 1];
  v[d + 1] = t0;
  // c = c + d
  lo = v[c] + v[d];
  v[c + 1] = v[c + 1] + v[d + 1] + (lo >= 0x100000000 ? 1 : 0);
  v[c] = lo;
  // b = (b ^ c) rotated right by 24
  t0 = v[b] ^ v[c];
  t1 = v[b + 1] ^ v[c + 1];
  v[b] = (t0 >>> 24) | (t1 << 8);
  v[b + 1] = (t1 >>> 24) | (t0 << 8);
  // a = a + b + y
  lo = v[a] + v[b];
  hi = v[a + 1] + v[b + 1] + (lo >= 0x100000000 ? 1 : 0);
  lo >>>= 0;
  t0 = lo + m[y];
  v[a + 1] = hi + m[y + 1] + (t0 >= 0x100000000 ? 1 : 0);
  v[a] = t0;
  // d = (d ^ a) rotated right by 16
  t0 = v[d] ^ v[a];
  t1 = v[d + 1] ^ v[a + 1];
  v[d] = (t0 >>> 16) | (t1 << 16);
  v[d + 1] = (t1 >>> 16) | (t0 << 16);
  // c = c + d
  lo = v[c] + v[d];
  v[c + 1] = v[c + 1] + v[d + 1] + (lo >= 0x100000000 ? 1 : 0);
  v[c] = lo;
  // b = (b ^ c) rotated right by 63, that is, left by 1
  t0 = v[b] ^ v[c];
  t1 = v[b + 1] ^ v[c + 1];
  v[b] = (t0 << 1) | (t1 >>> 31);
  v[b + 1] = (t1 << 1) | (t0 >>> 31);
}

class Blake2b512 {
  constructor() {
    this.h = new Uint32Array(BLAKE2B_IV);
    this.h[0] ^= 0x01010040; // parameter block: digest length 64, no key, fanout 1, depth 1
    this.v = new Uint32Array(32);
    this.m = new Uint32Array(32);
    this.pending = new Uint8Array(128);
    this.pendingLength = 0;
    this.counted = 0; // bytes compressed so far
    this.finished = false;
  }

  compress(bytes, at, last) {
    const v = this.v, m = this.m, h = this.h;
    for (let i = 0; i < 32; i++) {
      const j = at + 4 * i;
      m[i] = bytes[j] | (bytes[j + 1] << 8) | (bytes[j + 2] << 16) | (bytes[j + 3] << 24);
    }
    v.set(h, 0);
    v.set(BLAKE2B_IV, 16);
    v[24] ^= this.counted >>> 0;
    v[25] ^= Math.floor(this.counted / 0x100000000);
    if (last) {
      v[28] = ~v[28];
      v[29] = ~v[29];
    }
    for (let round = 0; round < 12; round++) {
      const s = BLAKE2B_SIGMA2[round % 10];
      blake2bMix(v, m, 0, 8, 16, 24, s[0], s[1]);
      blake2bMix(v, m, 2, 10, 18, 26, s[2], s[3]);
      blake2bMix(v, m, 4, 12, 20, 28, s[4], s[5]);
      blake2bMix(v, m, 6, 14, 22, 30, s[6], s[7]);
      blake2bMix(v, m, 0, 10, 20, 30, s[8], s[9]);
      blake2bMix(v, m, 2, 12, 22, 24, s[10], s[11]);
      blake2bMix(v, m, 4, 14, 16, 26, s[12], s[13]);
      blake2bMix(v, m, 6, 8, 18, 28, s[14], s[15]);
    }
    for (let i = 0; i < 16; i++) h[i] ^= v[i] ^ v[i + 16];
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
