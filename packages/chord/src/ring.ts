/**
 * The identifier circle (Chord §4.2 / TON §IV.A): identifiers are m-bit integers ordered on a circle
 * modulo 2^m; a key is stored at its *successor*, the first node whose identifier is equal to or
 * follows the key's. Every interval test in Chord is on this circle, so `(a, b)` wraps past zero when
 * b <= a, and `(a, a)` is the whole circle except a (which is exactly what a single-node ring needs:
 * its first stabilize adopts any other node as successor).
 *
 * Identifiers are `bigint`s in [0, 2^m). SHA-1 (as in the paper; deterministic, so fine in protocol
 * code) gives 160 bits; smaller rings keep its top m bits, so an id on a 160-bit ring and on a 16-bit
 * ring agree in their leading bits.
 */
import { sha1 } from '@noble/hashes/legacy.js';

export const ID_BITS_MAX = 160;
export const ID_BITS_MIN = 3;

const textEncoder = new TextEncoder();

/** The ring of one run: m bits and the modulus 2^m. */
export interface Ring {
  readonly bits: number;
  readonly size: bigint;
  readonly mask: bigint;
}

const rings = new Map<number, Ring>();

export function ringOf(bits: number): Ring {
  if (!Number.isInteger(bits) || bits < ID_BITS_MIN || bits > ID_BITS_MAX) {
    throw new RangeError(`idBits must be an integer in [${ID_BITS_MIN}, ${ID_BITS_MAX}], got ${bits}`);
  }
  let ring = rings.get(bits);
  if (ring === undefined) {
    const size = 1n << BigInt(bits);
    ring = Object.freeze({ bits, size, mask: size - 1n });
    rings.set(bits, ring);
  }
  return ring;
}

/** True when `id` is a valid identifier on `ring` (untrusted input check). */
export function isRingId(ring: Ring, id: bigint): boolean {
  return typeof id === 'bigint' && id >= 0n && id < ring.size;
}

/** Clockwise distance from a to b: how far b is past a (0 when equal). */
export function distance(ring: Ring, a: bigint, b: bigint): bigint {
  return (b - a) & ring.mask;
}

/** (a + delta) mod 2^m. */
export function addId(ring: Ring, a: bigint, delta: bigint): bigint {
  return (a + delta) & ring.mask;
}

/** x in the open interval (a, b) on the circle; (a, a) is everything but a. */
export function inOpen(x: bigint, a: bigint, b: bigint): boolean {
  if (a < b) return a < x && x < b;
  // Wraps past zero (or a == b: the whole circle but a).
  return x > a || x < b ? x !== a : false;
}

/** x in the half-open interval (a, b]; (a, a] is the whole circle. */
export function inOpenClosed(x: bigint, a: bigint, b: bigint): boolean {
  if (a < b) return a < x && x <= b;
  if (a === b) return true;
  return x > a || x <= b;
}

/** x in the half-open interval [a, b); [a, a) is the whole circle. */
export function inClosedOpen(x: bigint, a: bigint, b: bigint): boolean {
  if (a < b) return a <= x && x < b;
  if (a === b) return true;
  return x >= a || x < b;
}

/** The first `bits` bits of SHA-1(bytes), as an identifier. */
export function hashToId(ring: Ring, bytes: Uint8Array): bigint {
  const digest = sha1(bytes);
  let value = 0n;
  for (let i = 0; i < digest.length; i++) value = (value << 8n) | BigInt(digest[i]!);
  return value >> BigInt(ID_BITS_MAX - ring.bits);
}

/** A key's identifier: SHA-1 of its UTF-8 bytes (consistent hashing, §4.2). */
export function keyId(ring: Ring, key: string): bigint {
  return hashToId(ring, textEncoder.encode(key));
}

// Node identifiers are hashes of the node's address and its virtual-node index (§4.2 "hashing the
// node's IP address"; §6.2 virtual nodes). They are recomputed to verify every identifier a peer
// claims, so a small memo saves the SHA-1: a pure function of its arguments, bounded, and never
// observable except as speed. Cleared wholesale when full (no eviction order to keep deterministic).
const NODE_ID_MEMO_MAX = 1 << 16;
const nodeIdMemo = new Map<string, bigint>();

/** The identifier of virtual node `vnode` of the physical node named `name` (its address). */
export function nodeId(ring: Ring, name: string, vnode: number): bigint {
  const memoKey = `${ring.bits}|${name}#${vnode}`;
  const known = nodeIdMemo.get(memoKey);
  if (known !== undefined) return known;
  const id = hashToId(ring, textEncoder.encode(`${name}#${vnode}`));
  if (nodeIdMemo.size >= NODE_ID_MEMO_MAX) nodeIdMemo.clear();
  nodeIdMemo.set(memoKey, id);
  return id;
}

/** finger[i].start = (n + 2^i) mod 2^m, 0 <= i < m (TON's 0-based form of §4.3's n + 2^(k-1)). */
export function fingerStart(ring: Ring, n: bigint, index: number): bigint {
  return (n + (1n << BigInt(index))) & ring.mask;
}

/** Hex with the ring's full width, for humans (`dsys chord ring`). */
export function formatId(ring: Ring, id: bigint): string {
  return id.toString(16).padStart(Math.ceil(ring.bits / 4), '0');
}

/** A short prefix of the hex form, for status lines. */
export function shortId(ring: Ring, id: bigint): string {
  return formatId(ring, id).slice(0, 8);
}
