/**
 * One node's replicated log (etcd's `raftLog` with its `unstable` part folded in): the entries after
 * the last snapshot, kept in memory, with four cursors that only move in the documented directions:
 *
 *   snapshot.index <= applied <= committed <= lastIndex       (Figure 2 commitIndex / lastApplied)
 *   persisted      <= lastIndex                              (highest index known durable here)
 *   unstableFrom   <= lastIndex + 1                          (first index not yet handed to storage)
 *
 * The log never truncates a committed entry (Raft §5.3: Log Matching plus Leader Completeness mean a
 * committed entry is never in conflict); that is asserted, not assumed.
 */
import { assert } from '@dsys/kit';
import { ENTRY_OVERHEAD_BYTES } from './messages.js';
import {
  type ConfState,
  type Entry,
  entryPayloadBytes,
  LogIndex,
  type Snapshot,
  type SnapshotMeta,
  Term,
} from './types.js';

export class RaftLog {
  /** The compacted prefix: entries through `snapshot.index` live only in the snapshot. */
  snapshot: SnapshotMeta;
  /** Entries `snapshot.index + 1 .. lastIndex`, in order. */
  private entries: Entry[];
  committed: LogIndex;
  /** Highest index handed out for application (the application applies it before the next step). */
  applied: LogIndex;
  persisted: LogIndex;
  unstableFrom: LogIndex;
  /** A snapshot received from the leader that the application must restore and persist. */
  pendingSnapshot: Snapshot | null = null;

  constructor(snapshot: SnapshotMeta, entries: readonly Entry[], committed: LogIndex) {
    this.snapshot = snapshot;
    this.entries = [...entries];
    assert(
      entries.length === 0 || entries[0]!.index === snapshot.index + 1,
      'RaftLog: entries must follow the snapshot',
    );
    this.committed = committed;
    this.applied = snapshot.index;
    // Everything recovered came from disk.
    this.persisted = this.lastIndex();
    this.unstableFrom = LogIndex(this.lastIndex() + 1);
    assert(committed >= snapshot.index && committed <= this.lastIndex(), 'RaftLog: commit outside the log');
  }

  firstIndex(): LogIndex {
    return LogIndex(this.snapshot.index + 1);
  }

  lastIndex(): LogIndex {
    return LogIndex(this.snapshot.index + this.entries.length);
  }

  lastTerm(): Term {
    return this.entries.length === 0 ? this.snapshot.term : this.entries[this.entries.length - 1]!.term;
  }

  /** The term of the entry at `index`, or undefined when it is compacted away or beyond the end. */
  term(index: number): Term | undefined {
    if (index === this.snapshot.index) return this.snapshot.term;
    if (index < this.snapshot.index || index > this.lastIndex()) return undefined;
    return this.entries[index - this.snapshot.index - 1]!.term;
  }

  entryAt(index: number): Entry {
    const entry = this.entries[index - this.snapshot.index - 1];
    // The message is built only on failure: this runs for every entry sent, applied or checked.
    if (entry === undefined || entry.index !== index) assert(false, `RaftLog.entryAt: no entry ${index}`);
    return entry;
  }

  matchTerm(index: number, term: Term): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: a log is more up to date if its last term is higher, or equal with a longer log. */
  isUpToDate(lastIndex: LogIndex, lastTerm: Term): boolean {
    const myLastTerm = this.lastTerm();
    return lastTerm > myLastTerm || (lastTerm === myLastTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Figure 2 AppendEntries receiver steps 2-5. Returns the index of the last new entry, or undefined
   * when the log does not contain an entry at prevIndex whose term matches prevTerm.
   */
  maybeAppend(prevIndex: LogIndex, prevTerm: Term, commit: LogIndex, entries: readonly Entry[]): LogIndex | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNew = LogIndex(prevIndex + entries.length);
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      assert(conflict > this.committed, `RaftLog.maybeAppend: conflict at ${conflict} <= committed ${this.committed}`);
      this.append(entries.slice(conflict - prevIndex - 1));
    }
    // Step 5: commit no further than what this message proved to match.
    this.commitTo(LogIndex(Math.min(commit, lastNew)));
    return lastNew;
  }

  /**
   * The first entry of `entries` that is missing or conflicts with the log (Figure 2 step 3), or 0
   * when the log already contains all of them.
   */
  private findConflict(entries: readonly Entry[]): number {
    for (const entry of entries) {
      if (entry.index <= this.snapshot.index) continue; // Covered by the snapshot: committed, so it matches.
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  /** Appends `entries`, truncating any suffix from `entries[0].index` on (a leader appends at the end). */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    assert(first > this.committed, `RaftLog.append: truncating committed entry ${first}`);
    if (first < this.firstIndex() || first > this.lastIndex() + 1) assert(false, `RaftLog.append: gap before ${first}`);
    this.entries.length = first - this.firstIndex();
    let previous = this.entries[this.entries.length - 1]?.term ?? this.snapshot.term;
    for (const entry of entries) {
      // Per entry: messages built only on failure.
      if (entry.index !== this.lastIndex() + 1) assert(false, `RaftLog.append: entry ${entry.index} out of place`);
      if (entry.term < previous) assert(false, `RaftLog.append: term decreases at ${entry.index}`);
      previous = entry.term;
      this.entries.push(entry);
    }
    if (first < this.unstableFrom) this.unstableFrom = first;
    if (first <= this.persisted) this.persisted = LogIndex(first - 1);
  }

  /**
   * etcd's findConflictByTerm: the largest index at or below `index` whose term is at most `term`
   * (and that term). The leader uses it on a follower's hint to skip a whole term of mismatching
   * entries in one round trip; the follower uses it to pick the hint it sends.
   */
  findConflictByTerm(index: number, term: Term): { index: LogIndex; term: Term } {
    let at = Math.min(index, this.lastIndex());
    for (;;) {
      const atTerm = this.term(at);
      if (atTerm === undefined) return { index: LogIndex(at), term: Term(0) };
      if (atTerm <= term) return { index: LogIndex(at), term: atTerm };
      at--;
    }
  }

  commitTo(index: LogIndex): boolean {
    if (index <= this.committed) return false;
    if (index > this.lastIndex()) assert(false, `RaftLog.commitTo: ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
    return true;
  }

  /** Entries at [from, through], at most `bytesMax` of them (yet always at least one). */
  slice(from: number, through: number, bytesMax: number): Entry[] {
    if (from < this.firstIndex()) assert(false, `RaftLog.slice: ${from} is compacted`);
    const out: Entry[] = [];
    let bytes = 0;
    for (let index = from; index <= through; index++) {
      const entry = this.entryAt(index);
      bytes += entryPayloadBytes(entry) + ENTRY_OVERHEAD_BYTES;
      if (out.length > 0 && bytes > bytesMax) break;
      out.push(entry);
    }
    return out;
  }

  /** Entries not yet handed to storage; marks them handed. */
  takeUnstable(): Entry[] {
    if (this.unstableFrom > this.lastIndex()) return [];
    const out = this.entries.slice(this.unstableFrom - this.firstIndex());
    this.unstableFrom = LogIndex(this.lastIndex() + 1);
    return out;
  }

  /** Storage made entries through `index` (of term `term`) durable; ignored if the log changed since. */
  persistedTo(index: LogIndex, term: Term): void {
    if (index <= this.persisted || index >= this.unstableFrom) return;
    // A (index, term) pair names one entry and its whole prefix (Log Matching), so if it is still in
    // the log, everything through it is what was written.
    if (this.term(index) === term) this.persisted = index;
  }

  /**
   * Committed entries not yet applied (handing them out marks them applied). They need not be durable
   * here yet: committed means durable on a quorum, which is what a reply to a client promises, so a
   * node whose own fsync is slower than the quorum's applies and answers without waiting for it (as
   * etcd/raft hands out committed entries that are still in its unstable log). A crash before the
   * local write loses nothing: the entry comes back from the others, and a snapshot taken at the
   * applied index is written together with the log tail after it (`ReadyDriver`).
   */
  takeCommitted(bytesMax: number): Entry[] {
    const through = this.committed;
    if (through <= this.applied) return [];
    const out = this.slice(this.applied + 1, through, bytesMax);
    this.applied = out[out.length - 1]!.index;
    return out;
  }

  hasCommittedToApply(): boolean {
    return this.committed > this.applied;
  }

  /** Bytes of entries after `index` (the leader's uncommitted tail). */
  bytesAfter(index: number): number {
    let bytes = 0;
    for (let i = Math.max(index + 1, this.firstIndex()); i <= this.lastIndex(); i++) {
      bytes += entryPayloadBytes(this.entryAt(i)) + ENTRY_OVERHEAD_BYTES;
    }
    return bytes;
  }

  /**
   * Replaces the log with a snapshot from the leader (dissertation §5.3, receiver steps 6-7): keep
   * nothing of the log unless it already contains the snapshot's last entry (handled by the caller).
   */
  restore(snapshot: Snapshot): void {
    assert(snapshot.meta.index > this.committed, 'RaftLog.restore: snapshot does not advance the commit index');
    this.snapshot = snapshot.meta;
    this.entries = [];
    this.committed = snapshot.meta.index;
    this.applied = snapshot.meta.index;
    this.unstableFrom = LogIndex(snapshot.meta.index + 1);
    if (this.persisted > snapshot.meta.index) this.persisted = snapshot.meta.index;
    this.pendingSnapshot = snapshot;
  }

  /** The snapshot is durable here. */
  persistedSnapshot(index: LogIndex): void {
    if (index === this.snapshot.index && index > this.persisted) this.persisted = index;
  }

  /** Drops entries through `index`, now covered by an application snapshot taken at that index. */
  compact(index: LogIndex, config: ConfState): void {
    assert(index > this.snapshot.index, `RaftLog.compact: ${index} is not past the snapshot ${this.snapshot.index}`);
    assert(index <= this.applied, `RaftLog.compact: ${index} is not applied (applied ${this.applied})`);
    const term = this.term(index);
    assert(term !== undefined, `RaftLog.compact: no term for ${index}`);
    this.entries = this.entries.slice(index - this.snapshot.index);
    this.snapshot = { index, term, config };
  }

  /** Every entry in memory, for the compact effect's retained tail and for checkers. */
  allEntries(): readonly Entry[] {
    return this.entries;
  }

  /**
   * Cross-field checks (the sim calls them after every step through the protocol's invariants). O(1):
   * the per-entry order is asserted where entries enter the log (`append`).
   */
  invariants(): void {
    const last = this.lastIndex();
    assert(this.applied >= this.snapshot.index, 'log: applied below snapshot');
    assert(this.applied <= this.committed, 'log: applied above committed');
    assert(this.committed <= last, 'log: committed above last index');
    assert(this.persisted <= last, 'log: persisted above last index');
    assert(this.unstableFrom <= last + 1, 'log: unstableFrom beyond the end');
    const first = this.entries[0];
    const final = this.entries[this.entries.length - 1];
    assert(first === undefined || first.index === this.snapshot.index + 1, 'log: first entry out of place');
    assert(final === undefined || final.index === last, 'log: last entry out of place');
    assert(first === undefined || first.term >= this.snapshot.term, 'log: term below the snapshot');
  }
}
