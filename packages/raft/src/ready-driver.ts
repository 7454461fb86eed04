/**
 * Turns a `RaftCore`'s Ready output into kit effects: the storage half of an etcd/raft-style node,
 * shared by the KV service (`KvNode`) and the coordination service (`CoordNode`) so that the rules
 * every durable Raft node must follow live in one place:
 *
 * - All of a step's storage work becomes ONE effect, after the step's sends and replies and before its
 *   promises: kit runs effects behind a barrier only once the barrier is durable while the next step's
 *   effects start at once, so a second storage effect could reach the disk after a later step's write
 *   (and a compaction could then drop it).
 * - Records are ordered so that any torn prefix recovers (`appendReadyRecords`).
 * - A log write of entries is acknowledged once durable but is not a barrier: what depends on it,
 *   Raft's promises (votes, AppendEntries acknowledgements), waits for its acknowledgement, so a
 *   leader's AppendEntries and replies never queue behind an unrelated fsync (dissertation §10.2.1).
 * - Two kinds of write stay synced barriers. A new term or vote: a new leader must not send entries of
 *   a term it could forget in a crash (restarted in the old term, it could vote in a second leader of
 *   the same term, whose entries would share (index, term) with ours). And a commit index covering a
 *   configuration entry, made durable before anyone hears it: a node that told the others and forgot
 *   it would restart in the older configuration, where it may need the vote of a node the new one
 *   removed, which may hold entries it never got and refuse it forever (sim seed 0xe02f87eec1f7983b).
 * - A write still unacknowledged after `syncNudgeTicks` gets one explicit sync (`SyncNudge`), for
 *   drivers that sync only when asked (the simulator's disk).
 */
import { assert, type Effect, type NodeId } from '@dsys/kit';
import type { RaftMessage } from './messages.js';
import type { PersistAck, RaftCore, Ready } from './raft-core.js';
import { appendReadyRecords, encodeEntriesRecord, encodeHardStateRecord, encodeSnapshot } from './records.js';
import { SyncNudge } from './sync-nudge.js';
import type { HardState, Snapshot } from './types.js';

interface Outgoing<Message> {
  readonly to: NodeId;
  readonly message: Message;
}

/** What the node does with each Ready besides messages and storage, and when it compacts. */
export interface ReadyHooks<Message, Response> {
  /** Restore a snapshot, apply committed entries, serve reads: everything but messages and storage. */
  handle(ready: Ready, effects: Effect<Message, Response>[]): void;
  /** Runs once the core is drained, before the storage effect (role changes, bookkeeping). */
  drained(effects: Effect<Message, Response>[]): void;
  /** The node's state to compact the log into, when it is due (null: not now). */
  localSnapshot(): Uint8Array | null;
}

export class ReadyDriver<Message> {
  /** The newest hard state in the records emitted so far. */
  private writtenHard: HardState;
  /** Storage acks in flight: kit ack number -> the core's acks it covers. */
  private readonly acks = new Map<number, readonly PersistAck[]>();
  private ackNext = 1;
  /** Promises waiting for earlier writes that are still in flight. */
  private deferred: { readonly afterAck: number; readonly messages: readonly Outgoing<Message>[] }[] = [];
  private readonly nudge: SyncNudge;

  /**
   * @param recovered the hard state recovery found on disk
   * @param wrap the node's envelope for a Raft message
   */
  constructor(
    private readonly core: RaftCore,
    recovered: HardState,
    syncNudgeTicks: number,
    private readonly wrap: (message: RaftMessage) => Message,
    private readonly name: string,
  ) {
    this.writtenHard = recovered;
    this.nudge = new SyncNudge(syncNudgeTicks);
  }

  /** Storage writes not yet acknowledged. */
  get writesInFlight(): number {
    return this.acks.size;
  }

  /** Drains every Ready the core has into `effects`. */
  drain<Response>(effects: Effect<Message, Response>[], hooks: ReadyHooks<Message, Response>): void {
    const records: Uint8Array[] = [];
    const acks: PersistAck[] = [];
    let sync = false;
    let snapshotReceived = false;
    let barrier = false;
    const promises: Outgoing<Message>[] = [];
    /** Sends that wait for this step's barrier (a committed configuration); null while none must. */
    let held: Outgoing<Message>[] | null = null;
    for (let rounds = 0; this.core.hasReady(); rounds++) {
      if (rounds >= 1000) assert(false, `${this.name}: the core keeps producing output`);
      const ready = this.core.ready();
      if (held === null && ready.committedEntries.some((entry) => entry.type === 'config')) held = [];
      for (const outgoing of ready.messages) {
        const send = { to: outgoing.to, message: this.wrap(outgoing.message) };
        if (held !== null) held.push(send);
        else effects.push({ type: 'send', ...send });
      }
      hooks.handle(ready, effects);
      if (ready.snapshot !== null) snapshotReceived = true;
      const hard = ready.hardState;
      if (hard !== null && (hard.term !== this.writtenHard.term || hard.vote !== this.writtenHard.vote)) barrier = true;
      this.writtenHard = appendReadyRecords(records, ready.entries, hard, this.writtenHard);
      if (ready.persistAck !== null) acks.push(ready.persistAck);
      if (ready.mustSync) sync = true;
      for (const outgoing of ready.messagesAfterPersist)
        promises.push({ to: outgoing.to, message: this.wrap(outgoing.message) });
    }
    hooks.drained(effects);
    const synced = this.persist(
      records,
      acks,
      { sync, barrier: barrier || held !== null, snapshotReceived },
      hooks,
      effects,
    );
    if (held !== null) {
      assert(synced, `${this.name}: a committed configuration must be behind a barrier`);
      for (const send of held) effects.push({ type: 'send', ...send });
    }
    if (promises.length === 0) return;
    if (synced || this.acks.size === 0) {
      // Behind this step's own synced write, or nothing is in flight at all.
      for (const send of promises) effects.push({ type: 'send', ...send });
      return;
    }
    // Nothing synced now, but earlier writes are still in flight: these promises may depend on them
    // (a duplicate AppendEntries acknowledged again), so they wait for the newest one to be durable.
    this.deferred.push({ afterAck: this.ackNext - 1, messages: promises });
  }

  /** A `persisted` event: tells the core, then sends the promises whose writes are all durable. */
  persisted<Response>(ack: number, effects: Effect<Message, Response>[]): void {
    const covered = this.acks.get(ack);
    if (covered !== undefined) {
      this.acks.delete(ack);
      for (const persistAck of covered) this.core.persisted(persistAck);
    }
    if (this.deferred.length === 0) return;
    const oldestInFlight = this.oldestAck();
    let released = 0;
    for (const batch of this.deferred) {
      if (batch.afterAck >= oldestInFlight) break;
      for (const send of batch.messages) effects.push({ type: 'send', ...send });
      released++;
    }
    if (released > 0) this.deferred = this.deferred.slice(released);
  }

  /** Once a tick: a write unacknowledged for too long gets one explicit synced persist. */
  tick<Response>(effects: Effect<Message, Response>[]): void {
    if (this.nudge.tick(this.oldestAck())) effects.push({ type: 'persist', records: [], sync: true });
  }

  /** Emits the step's single storage effect; true when it is a synced barrier. */
  private persist<Response>(
    records: Uint8Array[],
    acks: PersistAck[],
    write: { sync: boolean; barrier: boolean; snapshotReceived: boolean },
    hooks: ReadyHooks<Message, Response>,
    effects: Effect<Message, Response>[],
  ): boolean {
    // A received snapshot, or a log long enough to compact, turns the write into a `compact` whose
    // records (the whole retained tail and the hard state) supersede the step's appends.
    const local = write.snapshotReceived ? null : hooks.localSnapshot();
    if (local !== null) this.core.compact(local);
    if (write.snapshotReceived || local !== null) {
      const tail = this.core.durableTail();
      this.writtenHard = tail.hardState;
      const snapshot: Snapshot = this.core.currentSnapshot();
      const last = tail.entries[tail.entries.length - 1];
      const ack = this.ackFor([
        ...acks,
        {
          hardState: tail.hardState,
          lastEntry: last === undefined ? null : { index: last.index, term: last.term },
          snapshotIndex: snapshot.meta.index,
        },
      ]);
      const tailRecords: Uint8Array[] = [];
      if (tail.entries.length > 0) tailRecords.push(encodeEntriesRecord(tail.entries));
      tailRecords.push(encodeHardStateRecord(tail.hardState));
      // A compaction of our own is not a barrier unless the step's write had to be one: what depends
      // on the rewritten tail (this step's promises) waits for its ack like any log write, and the
      // sends and replies of later steps (a leader's heartbeats) keep flowing while the snapshot is
      // written. A received snapshot stays a barrier: the node's whole state is being replaced.
      const barrier = write.snapshotReceived || write.barrier;
      effects.push({ type: 'compact', snapshot: encodeSnapshot(snapshot), records: tailRecords, barrier, ack });
      return barrier;
    }
    if (write.barrier) {
      effects.push({ type: 'persist', records, sync: true, ack: this.ackFor(acks) });
      return true;
    }
    if (records.length === 0 && acks.length === 0) return false;
    if (!write.sync) {
      // Only the commit index changed: nothing waits for it to be durable.
      effects.push({ type: 'persist', records, sync: false });
      return false;
    }
    // Entries: acknowledged once durable, not a barrier (see the header). runtime-node fsyncs at once
    // for an awaited ack (group commit); `tick`'s nudge covers drivers that sync only when asked.
    effects.push({ type: 'persist', records, sync: false, ack: this.ackFor(acks) });
    return false;
  }

  private oldestAck(): number {
    let oldest = Number.POSITIVE_INFINITY;
    for (const ack of this.acks.keys()) if (ack < oldest) oldest = ack;
    return oldest;
  }

  private ackFor(acks: readonly PersistAck[]): number {
    const number = this.ackNext++;
    this.acks.set(number, acks);
    return number;
  }
}
