/**
 * Linearizable reads without writing the log (dissertation §6.4, etcd's `readOnly`).
 *
 * ReadIndex: the leader notes its commit index as the read index, then confirms it is still the
 * leader by a round of heartbeats; once a quorum has answered a round at or after the read's, no
 * other leader can have committed anything newer, so serving the read after applying through the
 * read index is linearizable. Rounds are numbered so that one heartbeat round confirms every read
 * queued before it (batching), and queued reads are released in order.
 *
 * Lease (dissertation §6.4.1): the round's send tick also dates the leader's lease. A follower that
 * heard from the leader refuses votes for an election timeout after (check-quorum's "in lease"), so
 * once a quorum answered a round sent at tick t, no other leader can be elected before
 * t + electionTicks on a clock that runs at the leader's rate; the margin absorbs rate differences.
 */
import { assert, type NodeId } from '@dsys/kit';
import type { LogIndex } from './types.js';

export interface PendingRead {
  readonly requestId: number;
  /** The follower that forwarded it, or null for this node's own request. */
  readonly from: NodeId | null;
  readonly index: LogIndex;
  readonly round: number;
}

/** A FIFO of reads waiting for their heartbeat round to be confirmed, bounded by `readsMax`. */
export class ReadQueue {
  private reads: PendingRead[] = [];

  constructor(private readonly readsMax: number) {}

  get size(): number {
    return this.reads.length;
  }

  full(): boolean {
    return this.reads.length >= this.readsMax;
  }

  push(read: PendingRead): void {
    assert(!this.full(), 'ReadQueue.push: full');
    const last = this.reads[this.reads.length - 1];
    assert(last === undefined || last.round <= read.round, 'ReadQueue.push: rounds must not decrease');
    this.reads.push(read);
  }

  /** Removes and returns the reads whose round is at or below `round`. */
  releaseThrough(round: number): PendingRead[] {
    let count = 0;
    while (count < this.reads.length && this.reads[count]!.round <= round) count++;
    if (count === 0) return [];
    return this.reads.splice(0, count);
  }

  drain(): PendingRead[] {
    const out = this.reads;
    this.reads = [];
    return out;
  }
}

/** The tick at which each recent heartbeat round was sent (a ring: older rounds date no lease). */
const ROUND_TICKS_SIZE = 256;

export class RoundTicks {
  private readonly rounds = new Float64Array(ROUND_TICKS_SIZE).fill(-1);
  private readonly ticks = new Float64Array(ROUND_TICKS_SIZE);

  record(round: number, tick: number): void {
    const slot = round % ROUND_TICKS_SIZE;
    this.rounds[slot] = round;
    this.ticks[slot] = tick;
  }

  tickOf(round: number): number | undefined {
    const slot = round % ROUND_TICKS_SIZE;
    return this.rounds[slot] === round ? this.ticks[slot] : undefined;
  }
}
