/**
 * A seeded PRNG of our own (xoshiro128**, seeded through splitmix32), so that a seed replays the
 * same run on every Node version (TigerBeetle keeps its PRNG in-tree for the same reason).
 *
 * Streams fork by *label*, not by consumption: `rng.fork('net')` depends only on the root seed and
 * the label path, so adding a node (one more `fork('node:7')`) never shifts the network's stream.
 * Probabilities are integer ratios (`chance(1, 20)`), never floats compared against `float()`.
 */
import { assert } from './assert.js';

const TWO_POW_32 = 0x1_0000_0000;

/** Parses a seed given as a number, a bigint, or a decimal / `0x` hex string (up to 64 bits). */
export function parseSeed(seed: number | bigint | string): bigint {
  let value: bigint;
  if (typeof seed === 'bigint') value = seed;
  else if (typeof seed === 'number') {
    if (!Number.isSafeInteger(seed) || seed < 0)
      throw new RangeError(`seed must be a non-negative safe integer, got ${seed}`);
    value = BigInt(seed);
  } else {
    const text = seed.trim();
    if (!/^(0x[0-9a-fA-F]{1,16}|[0-9]{1,20})$/.test(text))
      throw new RangeError(`seed must be decimal or 0x-hex, got "${seed}"`);
    value = BigInt(text);
  }
  if (value < 0n || value >= 1n << 64n) throw new RangeError(`seed must fit in 64 bits, got ${value}`);
  return value;
}

/** Formats a seed the way `--seed` accepts it back. */
export function formatSeed(seed: bigint): string {
  return `0x${seed.toString(16)}`;
}

function splitmix32(state: number): [next: number, output: number] {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return [next, (z ^ (z >>> 16)) >>> 0];
}

/** FNV-1a over a string, 32 bits; mixes labels into fork keys. */
function fnv1a32(text: string, basis = 0x811c9dc5): number {
  let hash = basis;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  /** Key material of this stream; forks derive from it and the label only. */
  private readonly keyHigh: number;
  private readonly keyLow: number;

  private constructor(keyHigh: number, keyLow: number) {
    this.keyHigh = keyHigh >>> 0;
    this.keyLow = keyLow >>> 0;
    let state = this.keyLow ^ Math.imul(this.keyHigh, 0x6c8e9cf5);
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [next, output] = splitmix32(state ^ (i === 2 ? this.keyHigh : 0));
      state = next;
      words.push(output);
    }
    this.s0 = words[0]!;
    this.s1 = words[1]!;
    this.s2 = words[2]!;
    this.s3 = words[3]!;
    // xoshiro must not start from the all-zero state.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  static fromSeed(seed: number | bigint | string): Rng {
    const value = parseSeed(seed);
    return new Rng(Number(value >> 32n), Number(value & 0xffff_ffffn));
  }

  /** An independent stream named `label`; the same label path always yields the same stream. */
  fork(label: string): Rng {
    const high = fnv1a32(label, this.keyHigh ^ 0x811c9dc5);
    const low = fnv1a32(label, (this.keyLow ^ 0x01000193) >>> 0) ^ Math.imul(high, 0x27d4eb2d);
    return new Rng(high, low >>> 0);
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform integer in [0, bound), bound in [1, 2^32]; unbiased (rejection sampling). */
  int(bound: number): number {
    if (!(Number.isInteger(bound) && bound >= 1 && bound <= TWO_POW_32)) assert(false, `Rng.int: bad bound ${bound}`);
    const limit = TWO_POW_32 - (TWO_POW_32 % bound);
    for (;;) {
      const value = this.u32();
      if (value < limit) return value % bound;
    }
  }

  /** Uniform integer in [low, high], both inclusive. */
  between(low: number, high: number): number {
    if (!(high >= low)) assert(false, `Rng.between: high ${high} < low ${low}`);
    return low + this.int(high - low + 1);
  }

  /** True with probability numerator/denominator (integer ratio, as TigerBeetle's `Ratio`). */
  chance(numerator: number, denominator: number): boolean {
    if (!(denominator > 0 && numerator >= 0)) assert(false, `Rng.chance: bad ratio ${numerator}/${denominator}`);
    if (numerator >= denominator) return true;
    if (numerator === 0) return false;
    return this.int(denominator) < numerator;
  }

  boolean(): boolean {
    return (this.u32() & 1) === 1;
  }

  /** Uniform float in [0, 1) with 53 random bits; for shaping distributions, not for odds. */
  float(): number {
    const high = this.u32() >>> 5;
    const low = this.u32() >>> 6;
    return (high * 67108864 + low) / 9007199254740992;
  }

  /** Exponentially distributed value with the given mean (latency tails). */
  exponential(mean: number): number {
    return -Math.log(1 - this.float()) * mean;
  }

  pick<T>(items: readonly T[]): T {
    assert(items.length > 0, 'Rng.pick: empty list');
    return items[this.int(items.length)]!;
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const swap = items[i]!;
      items[i] = items[j]!;
      items[j] = swap;
    }
    return items;
  }

  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i += 4) {
      const word = this.u32();
      out[i] = word & 0xff;
      if (i + 1 < length) out[i + 1] = (word >>> 8) & 0xff;
      if (i + 2 < length) out[i + 2] = (word >>> 16) & 0xff;
      if (i + 3 < length) out[i + 3] = word >>> 24;
    }
    return out;
  }
}

function rotl(value: number, shift: number): number {
  return (value << shift) | (value >>> (32 - shift));
}
