/**
 * The set of operations linearized so far, as a bitset with three incrementally maintained summaries
 * so that memoizing a search configuration costs O(1) instead of O(operations):
 * - `hash`: Zobrist hash (XOR of a fixed random word per member), updated by one XOR per change;
 * - `low`: index of the first word that is not all ones; every word below it is full;
 * - `high`: one past the last non-zero word.
 * Operations are numbered in call order and the search linearizes roughly in that order, so the set
 * is "everything before a frontier plus a few stragglers": the words in [low, high) are a canonical
 * encoding that is usually one or two words long (see `ConfigCache`).
 */
import { assert } from '@dsys/kit';

const FULL = 0xffff_ffff;

/** murmur3's fmix32: a bijective avalanche on 32 bits, used to derive the Zobrist words. */
export function mix32(value: number): number {
  let h = value | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

export class LinearizedSet {
  readonly words: Uint32Array;
  hash = 0;
  low = 0;
  high = 0;
  private readonly zobrist: Int32Array;

  constructor(readonly size: number) {
    this.words = new Uint32Array(Math.max(1, Math.ceil(size / 32)));
    this.zobrist = new Int32Array(size);
    for (let i = 0; i < size; i++) this.zobrist[i] = mix32(i + 0x9e3779b9);
  }

  has(index: number): boolean {
    return (this.words[index >>> 5]! & (1 << (index & 31))) !== 0;
  }

  add(index: number): void {
    const word = index >>> 5;
    const updated = (this.words[word]! | (1 << (index & 31))) >>> 0;
    this.words[word] = updated;
    this.hash ^= this.zobrist[index]!;
    if (word >= this.high) this.high = word + 1;
    if (updated === FULL && word === this.low) {
      let low = word + 1;
      while (low < this.words.length && this.words[low] === FULL) low++;
      this.low = low;
    }
  }

  delete(index: number): void {
    const word = index >>> 5;
    const updated = this.words[word]! & ~(1 << (index & 31));
    this.words[word] = updated;
    this.hash ^= this.zobrist[index]!;
    if (word < this.low) this.low = word;
    if (updated === 0 && word === this.high - 1) {
      let high = word;
      while (high > 0 && this.words[high - 1] === 0) high--;
      this.high = high;
    }
  }

  /** Members in ascending order (for counter-examples and tests; not on the hot path). */
  members(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.size; i++) if (this.has(i)) out.push(i);
    return out;
  }

  /** Cross-checks the summaries against the words; O(words), for tests. */
  invariants(): void {
    let low = 0;
    while (low < this.words.length && this.words[low] === FULL) low++;
    let high = this.words.length;
    while (high > 0 && this.words[high - 1] === 0) high--;
    let hash = 0;
    for (const member of this.members()) hash ^= this.zobrist[member]!;
    assert(this.low === low, `LinearizedSet: low ${this.low} != ${low}`);
    assert(this.high === high, `LinearizedSet: high ${this.high} != ${high}`);
    assert(this.hash === hash, 'LinearizedSet: hash out of date');
  }
}
