/**
 * The leader's view of one follower (Figure 2 nextIndex/matchIndex) and the flow control around it,
 * after etcd's `tracker` package (design.md there draws the three states):
 *
 * - probe: the leader does not know where the follower's log matches; it sends one AppendEntries and
 *   waits for the answer (or the next heartbeat answer) before sending another.
 * - replicate: the follower is known to match through `match`; the leader streams entries optimistically
 *   (advancing `next` as it sends), up to `maxInflightMsgs` messages and `maxInflightBytes` bytes in flight.
 * - snapshot: the follower needs entries the leader has compacted; the leader sends an InstallSnapshot
 *   in chunks and nothing else until the follower reports the snapshot applied.
 */
import { assert } from '@dsys/kit';
import { LogIndex } from './types.js';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** A bounded FIFO of in-flight AppendEntries (last index and bytes of each), freed by acknowledgements. */
export class Inflights {
  private readonly lastIndexes: number[] = [];
  private readonly sizes: number[] = [];
  private head = 0;
  bytes = 0;

  constructor(
    private readonly countMax: number,
    private readonly bytesMax: number,
  ) {}

  get count(): number {
    return this.lastIndexes.length - this.head;
  }

  full(): boolean {
    return this.count >= this.countMax || this.bytes >= this.bytesMax;
  }

  add(lastIndex: number, bytes: number): void {
    assert(!this.full(), 'Inflights.add: window is full');
    const count = this.count;
    assert(count === 0 || this.lastIndexes[this.lastIndexes.length - 1]! < lastIndex, 'Inflights.add: not increasing');
    this.lastIndexes.push(lastIndex);
    this.sizes.push(bytes);
    this.bytes += bytes;
  }

  /** Frees every message whose last index is at or below `index` (the follower acknowledged it). */
  freeThrough(index: number): void {
    while (this.head < this.lastIndexes.length && this.lastIndexes[this.head]! <= index) {
      this.bytes -= this.sizes[this.head]!;
      this.head++;
    }
    if (this.head > 64 && this.head * 2 > this.lastIndexes.length) {
      this.lastIndexes.splice(0, this.head);
      this.sizes.splice(0, this.head);
      this.head = 0;
    }
  }

  reset(): void {
    this.lastIndexes.length = 0;
    this.sizes.length = 0;
    this.head = 0;
    this.bytes = 0;
  }
}

/** Where a chunked snapshot transfer to one follower stands. */
export interface SnapshotTransfer {
  /** Index of the snapshot being sent. */
  readonly index: LogIndex;
  /** Bytes the follower has acknowledged. */
  acked: number;
  /** Bytes sent so far (acked <= sent). */
  sent: number;
  /** The last chunk has been sent (distinguishes an empty snapshot's single chunk). */
  sentFinal: boolean;
  /** Heartbeat intervals since `acked` last moved; a stalled transfer rewinds to `acked`. */
  idleBeats: number;
}

export class Progress {
  match: LogIndex = LogIndex(0);
  next: LogIndex;
  state: ProgressState = 'probe';
  /** Probe state: one AppendEntries is out, wait for its answer or a heartbeat answer. Replicate: window full. */
  paused = false;
  /** Set when the follower answered since the last check-quorum (dissertation §6.2). */
  recentActive = false;
  /** Highest heartbeat round this follower has answered in the current term (ReadIndex, leases). */
  ackedRound = 0;
  /** The last commit index sent to this follower in a `commit` notice (to send each one once). */
  committedSent = 0;
  /** An empty append or commit notice to this follower waits for the Ready (dropped if an AppendEntries goes first). */
  appendDue = false;
  snapshot: SnapshotTransfer | null = null;
  readonly inflights: Inflights;

  constructor(
    next: LogIndex,
    public isLearner: boolean,
    inflightCountMax: number,
    inflightBytesMax: number,
  ) {
    this.next = next;
    this.inflights = new Inflights(inflightCountMax, inflightBytesMax);
  }

  becomeProbe(): void {
    // After a snapshot the follower matches at least through the snapshot index.
    const floor =
      this.state === 'snapshot' && this.snapshot !== null ? Math.max(this.match, this.snapshot.index) : this.match;
    this.state = 'probe';
    this.snapshot = null;
    this.paused = false;
    this.next = LogIndex(floor + 1);
    this.inflights.reset();
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.snapshot = null;
    this.paused = false;
    this.next = LogIndex(this.match + 1);
    this.inflights.reset();
  }

  becomeSnapshot(index: LogIndex): void {
    this.state = 'snapshot';
    this.paused = false;
    this.snapshot = { index, acked: 0, sent: 0, sentFinal: false, idleBeats: 0 };
    this.inflights.reset();
  }

  /** The follower acknowledged everything through `index`; false if that is old news. */
  maybeUpdate(index: LogIndex): boolean {
    if (index <= this.match) return false;
    this.match = index;
    if (this.next <= index) this.next = LogIndex(index + 1);
    this.paused = false;
    return true;
  }

  /** Records that entries through `lastIndex` were sent (`count` entries, `bytes` bytes). */
  sentEntries(count: number, bytes: number, lastIndex: LogIndex): void {
    if (this.state === 'replicate') {
      if (count > 0) {
        this.next = LogIndex(lastIndex + 1);
        this.inflights.add(lastIndex, bytes);
      }
      this.paused = this.inflights.full();
    } else if (this.state === 'probe') {
      this.paused = true;
    }
  }

  /**
   * The follower rejected an AppendEntries whose prevIndex was `rejected`; `probeFrom` is where the
   * leader should try next (from the follower's hints). Returns false for a stale rejection.
   */
  maybeDecreaseTo(rejected: LogIndex, probeFrom: LogIndex): boolean {
    if (this.state === 'replicate') {
      // In replicate state everything up to `match` is known good, so a rejection at or below it is stale.
      if (rejected <= this.match) return false;
      this.next = LogIndex(this.match + 1);
      return true;
    }
    // In probe state only the answer to the one outstanding probe counts.
    if (this.next - 1 !== rejected) return false;
    this.next = LogIndex(Math.max(Math.min(rejected, probeFrom + 1), this.match + 1));
    this.paused = false;
    return true;
  }

  isPaused(): boolean {
    if (this.state === 'snapshot') return true;
    return this.paused;
  }

  describe(): string {
    let text = `${this.state} match=${this.match} next=${this.next}`;
    if (this.isLearner) text += ' learner';
    if (this.paused) text += ' paused';
    if (this.snapshot !== null) text += ` snapshot=${this.snapshot.index}@${this.snapshot.acked}/${this.snapshot.sent}`;
    if (this.inflights.count > 0) text += ` inflight=${this.inflights.count}`;
    return text;
  }
}
