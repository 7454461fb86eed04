/**
 * What a Raft node keeps on disk, and how it gets it back after a crash.
 *
 * Durable layout (kit's `Durable`: the last snapshot plus the records appended after it):
 * - snapshot: `{ version, meta: {index, term, config}, data }`, written only by a `compact` effect
 *   (which atomically replaces the snapshot and every record);
 * - records, in append order, each one of
 *   - `hardState {term, vote, commit}`: the latest one wins;
 *   - `entries {entries}`: entries from index i on; any stored entries at i or later are replaced
 *     (that is how a follower's truncation of a conflicting suffix is written).
 *
 * Recovery never trusts the bytes: every record is decoded with the schemas (lengths checked before
 * allocating) and the sequence is checked against the invariants a correct node never breaks (terms
 * never decrease, a vote never changes within a term, the log has no gaps, committed entries are never
 * replaced, the commit index lies within the log). Any violation is a `RaftRecoveryError` naming the
 * record, so a damaged node refuses to start instead of serving wrong data.
 */
import { type Decoded, DsError, type Durable, decode, describeDecodeError, encode, s } from '@dsys/kit';
import {
  configProblem,
  entriesProblem,
  entrySchema,
  indexSchema,
  nodeIdSchema,
  snapshotMetaSchema,
  termSchema,
} from './messages.js';
import { type Entry, type HardState, LogIndex, type Snapshot, Term } from './types.js';

/** Format version of the snapshot envelope; a different one is refused, not guessed at. */
export const SNAPSHOT_FORMAT_VERSION = 1;
/** Largest application snapshot a node will load (bounds allocation while decoding). */
export const SNAPSHOT_DATA_BYTES_MAX = 1024 * 1024 * 1024;
/** Entries in one `entries` record (one persist batch or one compaction's retained tail). */
export const RECORD_ENTRIES_MAX = 1_000_000;

export const hardStateSchema = s.struct({ term: termSchema, vote: s.nullable(nodeIdSchema), commit: indexSchema });

const recordSchema = s.union('type', {
  hardState: hardStateSchema,
  entries: s.struct({ entries: s.array(entrySchema, { itemsMax: RECORD_ENTRIES_MAX }) }),
});
export type DurableRecord = ReturnType<typeof recordSchema.read>;

const snapshotSchema = s.struct({
  version: s.u8,
  meta: snapshotMetaSchema,
  data: s.bytes({ bytesMax: SNAPSHOT_DATA_BYTES_MAX }),
});

export function encodeHardStateRecord(hardState: HardState): Uint8Array {
  return encode(recordSchema, { type: 'hardState', ...hardState });
}

export function encodeEntriesRecord(entries: readonly Entry[]): Uint8Array {
  return encode(recordSchema, { type: 'entries', entries: [...entries] });
}

/**
 * Appends the records of one `Ready` in an order that any torn prefix of them recovers from, and
 * returns the hard state they leave on disk. Entries come before the hard state that commits them (a
 * crash between the two loses the commit index, never entries it names); but when the batch also
 * raises the term or changes the vote, a hard state with the new term and vote (and the commit index
 * already durable) goes first, so recovery never finds entries of a term its hard state has not
 * reached (simulator seed 0xd24f53889692c2e1 tore exactly there).
 */
export function appendReadyRecords(
  records: Uint8Array[],
  entries: readonly Entry[],
  hardState: HardState | null,
  written: HardState,
): HardState {
  if (hardState !== null && entries.length > 0 && (hardState.term !== written.term || hardState.vote !== written.vote))
    records.push(encodeHardStateRecord({ ...hardState, commit: written.commit }));
  if (entries.length > 0) records.push(encodeEntriesRecord(entries));
  if (hardState === null) return written;
  records.push(encodeHardStateRecord(hardState));
  return hardState;
}

export function encodeSnapshot(snapshot: Snapshot): Uint8Array {
  return encode(snapshotSchema, { version: SNAPSHOT_FORMAT_VERSION, meta: snapshot.meta, data: snapshot.data });
}

export function decodeSnapshot(bytes: Uint8Array): Decoded<Snapshot> {
  const decoded = decode(snapshotSchema, bytes);
  if (!decoded.ok) return decoded;
  if (decoded.value.version !== SNAPSHOT_FORMAT_VERSION) {
    return {
      ok: false,
      error: { code: 'INVALID', reason: `snapshot format ${decoded.value.version}`, at: '$.version' },
    };
  }
  return { ok: true, value: { meta: decoded.value.meta, data: decoded.value.data } };
}

export function decodeRecord(bytes: Uint8Array): Decoded<DurableRecord> {
  return decode(recordSchema, bytes);
}

export type RaftRecoveryErrorDetail =
  | { code: 'CORRUPT_SNAPSHOT'; reason: string }
  | { code: 'CORRUPT_RECORD'; record: number; reason: string }
  | { code: 'INCONSISTENT_RECORD'; record: number; reason: string }
  | { code: 'INCONSISTENT_STATE'; reason: string };

export class RaftRecoveryError extends DsError<RaftRecoveryErrorDetail> {
  constructor(detail: RaftRecoveryErrorDetail) {
    super(detail, `raft recovery: ${describeRecoveryError(detail)}`);
  }
}

function describeRecoveryError(detail: RaftRecoveryErrorDetail): string {
  switch (detail.code) {
    case 'CORRUPT_SNAPSHOT':
      return `snapshot does not decode: ${detail.reason}`;
    case 'CORRUPT_RECORD':
      return `record ${detail.record} does not decode: ${detail.reason}`;
    case 'INCONSISTENT_RECORD':
      return `record ${detail.record} contradicts the records before it: ${detail.reason}`;
    case 'INCONSISTENT_STATE':
      return `recovered state is inconsistent: ${detail.reason}`;
  }
}

/** The node's durable state, ready to build a `RaftCore` from. */
export interface RecoveredState {
  readonly hardState: HardState;
  readonly snapshot: Snapshot | null;
  /** Entries after the snapshot (or from index 1), contiguous. */
  readonly entries: readonly Entry[];
  /** Records read, for logs. */
  readonly records: number;
}

export type Recovered = { ok: true; value: RecoveredState } | { ok: false; error: RaftRecoveryError };

/** Rebuilds the durable state from kit's `Durable`, or says precisely what is wrong with it. */
export function recoverDurable(durable: Durable): Recovered {
  try {
    return { ok: true, value: replay(durable) };
  } catch (error) {
    if (error instanceof RaftRecoveryError) return { ok: false, error };
    throw error;
  }
}

class Replay {
  hardState: HardState = { term: Term(0), vote: null, commit: LogIndex(0) };
  entries: Entry[] = [];
  constructor(readonly snapshotIndex: LogIndex) {}

  lastIndex(): number {
    return this.snapshotIndex + this.entries.length;
  }

  hard(next: HardState, record: number): void {
    const fail = (reason: string) => new RaftRecoveryError({ code: 'INCONSISTENT_RECORD', record, reason });
    const previous = this.hardState;
    if (next.term < previous.term) throw fail(`term goes back from ${previous.term} to ${next.term}`);
    // One vote per term (Raft §5.2): a changed vote within a term would be a second vote.
    if (next.term === previous.term && previous.vote !== null && next.vote !== previous.vote) {
      throw fail(
        `vote changes within term ${next.term} from n${previous.vote} to ${next.vote === null ? 'none' : `n${next.vote}`}`,
      );
    }
    if (next.commit < previous.commit) throw fail(`commit goes back from ${previous.commit} to ${next.commit}`);
    this.hardState = next;
  }

  append(entries: readonly Entry[], record: number): void {
    const fail = (reason: string) => new RaftRecoveryError({ code: 'INCONSISTENT_RECORD', record, reason });
    const problem = entriesProblem(entries);
    if (problem !== null) throw fail(problem);
    const first = entries[0];
    if (first === undefined) return;
    if (first.index <= this.snapshotIndex)
      throw fail(`entry ${first.index} is inside the snapshot (through ${this.snapshotIndex})`);
    if (first.index > this.lastIndex() + 1)
      throw fail(`gap: entry ${first.index} after last index ${this.lastIndex()}`);
    if (first.index <= this.hardState.commit)
      throw fail(`replaces committed entry ${first.index} (commit ${this.hardState.commit})`);
    for (const entry of entries) {
      if (entry.type === 'config' && configProblem(entry.config) !== null) throw fail(`bad config at ${entry.index}`);
    }
    this.entries.length = first.index - this.snapshotIndex - 1;
    const previous = this.entries[this.entries.length - 1];
    if (previous !== undefined && first.term < previous.term) throw fail(`term decreases at entry ${first.index}`);
    for (const entry of entries) this.entries.push(entry);
  }
}

function replay(durable: Durable): RecoveredState {
  let snapshot: Snapshot | null = null;
  if (durable.snapshot !== null) {
    const decoded = decodeSnapshot(durable.snapshot);
    if (!decoded.ok)
      throw new RaftRecoveryError({ code: 'CORRUPT_SNAPSHOT', reason: describeDecodeError(decoded.error) });
    snapshot = decoded.value;
  }
  const state = new Replay(snapshot?.meta.index ?? LogIndex(0));
  durable.records.forEach((bytes, record) => {
    const decoded = decodeRecord(bytes);
    if (!decoded.ok)
      throw new RaftRecoveryError({ code: 'CORRUPT_RECORD', record, reason: describeDecodeError(decoded.error) });
    const value = decoded.value;
    if (value.type === 'hardState') state.hard({ term: value.term, vote: value.vote, commit: value.commit }, record);
    else state.append(value.entries, record);
  });
  const inconsistent = (reason: string) => new RaftRecoveryError({ code: 'INCONSISTENT_STATE', reason });
  const lastIndex = state.lastIndex();
  const hardState = state.hardState;
  if (hardState.commit > lastIndex) throw inconsistent(`commit ${hardState.commit} beyond last index ${lastIndex}`);
  const lastTerm = state.entries[state.entries.length - 1]?.term ?? snapshot?.meta.term ?? 0;
  if (lastTerm > hardState.term) throw inconsistent(`log holds term ${lastTerm} above current term ${hardState.term}`);
  return { hardState, snapshot, entries: state.entries, records: durable.records.length };
}
