/**
 * Lowe's memoization ("Testing for linearizability", 2017, §4): the search never explores the same
 * configuration twice. A configuration is (completed operations linearized, indeterminate operations
 * linearized, model state); this table holds the ones the search has finished exploring, all of
 * which failed (a search that succeeds stops).
 *
 * With `subsume`, it also prunes by subsumption on indeterminate ('info') operations: if (C, I, s)
 * failed, then (C, I', s) fails for every I' ⊇ I, because an 'info' operation may also never take
 * effect and never constrains real-time order (its return is +Infinity), so any completion from
 * (C, I', s) is also one from (C, I, s). Without this, every pending 'info' write doubles the
 * configurations to refute ("applied, then overwritten" versus "never applied").
 *
 * Layout: typed arrays. Each set is stored as its canonical slice of words [low, high) (see
 * `LinearizedSet`), usually one or two words. An open-addressing table keyed by the full hash finds
 * equal configurations in O(1); a second one maps (C, s) to the most recent entry of its group,
 * entries of a group being chained newest first, and a subsumption lookup walks at most
 * `SUBSUMPTION_SCAN_MAX` of them: skipping a check only costs pruning, never soundness, and it keeps
 * a step O(1) when a group grows large (many incomparable info sets for one (C, s)).
 */
import { type LinearizedSet, mix32 } from './linearized-set.js';

const EMPTY = 0;
const SLOTS_INITIAL = 1 << 10;
const ENTRIES_INITIAL = 1 << 9;
const SUBSUMPTION_SCAN_MAX = 32;

/** Open addressing (linear probing): slot -> entry index + 1 (0: empty), load factor at most 1/2. */
function rebuilt(slots: Int32Array, hashOf: (entry: number) => number): Int32Array {
  const grown = new Int32Array(slots.length * 2);
  const mask = grown.length - 1;
  for (const stored of slots) {
    if (stored === EMPTY) continue;
    let slot = hashOf(stored - 1) & mask;
    while (grown[slot] !== EMPTY) slot = (slot + 1) & mask;
    grown[slot] = stored;
  }
  return grown;
}

export class FailedConfigs {
  /** Full hash -> entry. */
  private exactSlots: Int32Array = new Int32Array(SLOTS_INITIAL);
  /** (C, s) hash -> newest entry of that group (only with `subsume`). */
  private groupSlots: Int32Array = new Int32Array(SLOTS_INITIAL);
  private groupCount = 0;
  private entryHash = new Int32Array(ENTRIES_INITIAL);
  private entryGroupHash = new Int32Array(ENTRIES_INITIAL);
  /** Next older entry of the same group, or -1. */
  private entryGroupNext = new Int32Array(ENTRIES_INITIAL);
  private entryState = new Int32Array(ENTRIES_INITIAL);
  private entryCompletedLow = new Int32Array(ENTRIES_INITIAL);
  private entryCompletedLength = new Int32Array(ENTRIES_INITIAL);
  private entryInfoLow = new Int32Array(ENTRIES_INITIAL);
  private entryInfoLength = new Int32Array(ENTRIES_INITIAL);
  /** Start of the entry's words in `pool`: the completed slice, then the info slice. */
  private entryOffset = new Int32Array(ENTRIES_INITIAL);
  private pool = new Uint32Array(ENTRIES_INITIAL * 2);
  private poolUsed = 0;
  private count = 0;

  /** With `subsume` false (the 'eager' search), only equal configurations match. */
  constructor(private readonly subsume: boolean) {}

  get size(): number {
    return this.count;
  }

  /** True if (completed, info, state) is known to fail: equal to a failed entry, or (with `subsume`) a superset of one. */
  has(completed: LinearizedSet, info: LinearizedSet, stateId: number): boolean {
    const groupHash = completed.hash ^ mix32(stateId);
    const hash = groupHash ^ mix32(info.hash ^ 0x5bd1e995);
    if (this.findExact(hash, completed, info, stateId) >= 0) return true;
    if (!this.subsume) return false;
    const slot = this.findGroup(groupHash, completed, stateId);
    if (slot < 0) return false;
    let entry = this.groupSlots[slot]! - 1;
    for (let scanned = 0; entry >= 0 && scanned < SUBSUMPTION_SCAN_MAX; scanned++) {
      if (this.infoSubset(entry, info)) return true;
      entry = this.entryGroupNext[entry]!;
    }
    return false;
  }

  /** Records a failed configuration that `has` does not know yet. */
  add(completed: LinearizedSet, info: LinearizedSet, stateId: number): void {
    const groupHash = completed.hash ^ mix32(stateId);
    const hash = groupHash ^ mix32(info.hash ^ 0x5bd1e995);
    const exactSlot = this.findExact(hash, completed, info, stateId);
    if (exactSlot >= 0) return;
    const entry = this.store(completed, info, stateId, hash, groupHash);
    this.exactSlots[~exactSlot] = entry + 1;
    if (this.count * 2 > this.exactSlots.length) this.exactSlots = rebuilt(this.exactSlots, (e) => this.entryHash[e]!);
    if (!this.subsume) return;
    const groupSlot = this.findGroup(groupHash, completed, stateId);
    if (groupSlot >= 0) {
      this.entryGroupNext[entry] = this.groupSlots[groupSlot]! - 1;
      this.groupSlots[groupSlot] = entry + 1;
      return;
    }
    this.groupSlots[~groupSlot] = entry + 1;
    this.groupCount++;
    if (this.groupCount * 2 > this.groupSlots.length)
      this.groupSlots = rebuilt(this.groupSlots, (e) => this.entryGroupHash[e]!);
  }

  /** The slot of the equal entry, or ~(the empty slot where it would go). */
  private findExact(hash: number, completed: LinearizedSet, info: LinearizedSet, stateId: number): number {
    const mask = this.exactSlots.length - 1;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const stored = this.exactSlots[slot]!;
      if (stored === EMPTY) return ~slot;
      const entry = stored - 1;
      if (this.entryHash[entry] !== hash || this.entryState[entry] !== stateId) continue;
      if (this.sameCompleted(entry, completed) && this.sameInfo(entry, info)) return slot;
    }
  }

  /** The slot of the group (completed, state), or ~(the empty slot where it would go). */
  private findGroup(groupHash: number, completed: LinearizedSet, stateId: number): number {
    const mask = this.groupSlots.length - 1;
    for (let slot = groupHash & mask; ; slot = (slot + 1) & mask) {
      const stored = this.groupSlots[slot]!;
      if (stored === EMPTY) return ~slot;
      const entry = stored - 1;
      if (this.entryGroupHash[entry] !== groupHash || this.entryState[entry] !== stateId) continue;
      if (this.sameCompleted(entry, completed)) return slot;
    }
  }

  private store(
    completed: LinearizedSet,
    info: LinearizedSet,
    stateId: number,
    hash: number,
    groupHash: number,
  ): number {
    const entry = this.count;
    if (entry === this.entryHash.length) this.growEntries();
    const completedLength = completed.high - completed.low;
    const infoLength = info.high - info.low;
    if (this.poolUsed + completedLength + infoLength > this.pool.length) this.growPool(completedLength + infoLength);
    const offset = this.poolUsed;
    for (let i = 0; i < completedLength; i++) this.pool[offset + i] = completed.words[completed.low + i]!;
    for (let i = 0; i < infoLength; i++) this.pool[offset + completedLength + i] = info.words[info.low + i]!;
    this.poolUsed += completedLength + infoLength;
    this.entryHash[entry] = hash;
    this.entryGroupHash[entry] = groupHash;
    this.entryGroupNext[entry] = -1;
    this.entryState[entry] = stateId;
    this.entryCompletedLow[entry] = completed.low;
    this.entryCompletedLength[entry] = completedLength;
    this.entryInfoLow[entry] = info.low;
    this.entryInfoLength[entry] = infoLength;
    this.entryOffset[entry] = offset;
    this.count++;
    return entry;
  }

  private sameCompleted(entry: number, completed: LinearizedSet): boolean {
    const low = completed.low;
    const length = completed.high - low;
    if (this.entryCompletedLow[entry] !== low || this.entryCompletedLength[entry] !== length) return false;
    const offset = this.entryOffset[entry]!;
    const words = completed.words;
    for (let i = 0; i < length; i++) if (this.pool[offset + i] !== words[low + i]) return false;
    return true;
  }

  private sameInfo(entry: number, info: LinearizedSet): boolean {
    const low = info.low;
    const length = info.high - low;
    if (this.entryInfoLow[entry] !== low || this.entryInfoLength[entry] !== length) return false;
    const offset = this.entryOffset[entry]! + this.entryCompletedLength[entry]!;
    const words = info.words;
    for (let i = 0; i < length; i++) if (this.pool[offset + i] !== words[low + i]) return false;
    return true;
  }

  /** Stored info set ⊆ `info`: the full words below the stored `low` must be full in `info` too. */
  private infoSubset(entry: number, info: LinearizedSet): boolean {
    const low = this.entryInfoLow[entry]!;
    if (info.low < low) return false;
    const length = this.entryInfoLength[entry]!;
    const offset = this.entryOffset[entry]! + this.entryCompletedLength[entry]!;
    const words = info.words;
    for (let i = 0; i < length; i++) if ((this.pool[offset + i]! & ~words[low + i]!) !== 0) return false;
    return true;
  }

  private growEntries(): void {
    const capacity = this.entryHash.length * 2;
    const grow = (from: Int32Array) => {
      const to = new Int32Array(capacity);
      to.set(from);
      return to;
    };
    this.entryHash = grow(this.entryHash);
    this.entryGroupHash = grow(this.entryGroupHash);
    this.entryGroupNext = grow(this.entryGroupNext);
    this.entryState = grow(this.entryState);
    this.entryCompletedLow = grow(this.entryCompletedLow);
    this.entryCompletedLength = grow(this.entryCompletedLength);
    this.entryInfoLow = grow(this.entryInfoLow);
    this.entryInfoLength = grow(this.entryInfoLength);
    this.entryOffset = grow(this.entryOffset);
  }

  private growPool(extra: number): void {
    let capacity = this.pool.length * 2;
    while (capacity < this.poolUsed + extra) capacity *= 2;
    const pool = new Uint32Array(capacity);
    pool.set(this.pool.subarray(0, this.poolUsed));
    this.pool = pool;
  }
}
