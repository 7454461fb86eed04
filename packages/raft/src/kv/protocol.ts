/**
 * `kvProtocol`: the replicated key-value service as a kit `Protocol`, so the simulator and the real
 * runtime drive it alike. It maps kit events to the Raft core and the core's `Ready` batches to kit
 * effects, keeping the core's order contract with kit's barriers:
 *
 *   send(messages) · reply(applied writes, served reads) · persist|compact (synced: a barrier) ·
 *   send(messagesAfterPersist)
 *
 * Replies may precede the write of the same batch: they answer entries that were already committed
 * and durable here (the core hands out only those). Votes and AppendEntries acknowledgements follow
 * the barrier. When a batch has promises to send but writes nothing itself while an earlier synced
 * write is still in flight, an empty synced persist serves as the barrier (the disk is FIFO).
 *
 * Durable records are those of records.ts; a compaction (`compact` effect) re-persists the retained
 * log tail and the hard state after the snapshot, atomically.
 */
import {
  assert,
  type ClientId,
  DsError,
  type Effect,
  type Event,
  encode,
  type NodeContext,
  type NodeId,
  type Protocol,
  type RequestId,
  unreachable,
  validate,
  Writer,
} from '@dsys/kit';
import { type RaftConfig, validateRaftConfig } from '../config.js';
import type { RaftMessage } from '../messages.js';
import { RaftCore, type RaftError, type Ready } from '../raft-core.js';
import { ReadyDriver, type ReadyHooks } from '../ready-driver.js';
import { RaftRecoveryError, recoverDurable } from '../records.js';
import { type ConfState, EMPTY_CONF_STATE, type Entry, type LogIndex, type RaftRole, type Snapshot } from '../types.js';
import { type EtcdTxn, type EtcdTxnError, TXN_OPS_MAX, txnMayWrite } from './etcd-schema.js';
import {
  type KvCommand,
  type KvErrorCode,
  type KvRequest,
  type KvResponse,
  kvCommandSchema,
  kvRequestSchema,
  SCAN_LIMIT_MAX,
} from './schema.js';
import { type KvApplyResult, KvStateMachine } from './state-machine.js';
import { type TxnOutcome, txnRequestProblem } from './store.js';

/** Instrumentation for checkers (the simulator's state-machine-safety check); never affects the protocol. */
export interface KvObserver {
  /** The node's state machine now reflects the log through `index` (boot, or a snapshot restored). */
  reset(node: NodeId, index: LogIndex): void;
  /** The node applied `entry` (in order, each once per incarnation). */
  applied(node: NodeId, entry: Entry): void;
}

export interface KvConfig {
  readonly raft: RaftConfig;
  /** Voters of the initial cluster (null: every peer). A node not listed starts empty, waiting to be added. */
  readonly initialVoters: readonly NodeId[] | null;
  /** Take a snapshot and compact the log once this many entries are applied past the last snapshot. */
  readonly snapshotEntries: number;
  readonly sessionTimeoutMs: number;
  readonly sessionsMax: number;
  /** Client writes waiting for their entry to apply, per node; beyond it, BUSY. */
  readonly pendingProposalsMax: number;
  /** Client reads waiting for ReadIndex or apply, per node; beyond it, BUSY. */
  readonly pendingReadsMax: number;
  /**
   * Hand the requests of one turn of the event loop to the core as one batch (see `scheduleFlush`):
   * on in real processes, drawn per seed in the simulator.
   */
  readonly batchRequests: boolean;
  /**
   * A follower answers an etcd write it forwarded to the leader once it applies the entry; if that
   * does not happen within this many ticks, it answers TIMED_OUT (outcome unknown). Default: ten
   * election timeouts.
   */
  readonly forwardTimeoutTicks: number;
  /**
   * A log write of entries still unacknowledged after this many ticks gets one explicit synced persist
   * (`SyncNudge`): for drivers that sync only when asked (the simulator's disk). Default 2.
   */
  readonly syncNudgeTicks: number;
  readonly observer?: KvObserver;
}

export class KvConfigError extends DsError<{ code: 'INVALID_KV_CONFIG'; field: string; reason: string }> {
  constructor(field: string, reason: string) {
    super({ code: 'INVALID_KV_CONFIG', field, reason }, `kv config ${field}: ${reason}`);
  }
}

export type KvConfigInput = Partial<Omit<KvConfig, 'raft'>> & { readonly raft?: Partial<RaftConfig> };

/** Fills defaults and validates (throws `KvConfigError` or `RaftConfigError`). */
export function kvConfig(input: KvConfigInput = {}): KvConfig {
  const raft = validateRaftConfig(input.raft);
  const config: KvConfig = {
    initialVoters: null,
    snapshotEntries: 1000,
    sessionTimeoutMs: 60_000,
    sessionsMax: 10_000,
    pendingProposalsMax: 4096,
    pendingReadsMax: 4096,
    batchRequests: false,
    forwardTimeoutTicks: 10 * raft.electionTicks,
    syncNudgeTicks: 2,
    ...input,
    raft,
  };
  for (const field of [
    'snapshotEntries',
    'sessionTimeoutMs',
    'sessionsMax',
    'pendingProposalsMax',
    'pendingReadsMax',
    'forwardTimeoutTicks',
    'syncNudgeTicks',
  ] as const) {
    const value = config[field];
    if (!Number.isSafeInteger(value) || value < 1)
      throw new KvConfigError(field, `must be a positive integer, got ${value}`);
  }
  if (typeof config.batchRequests !== 'boolean') throw new KvConfigError('batchRequests', 'must be a boolean');
  if (config.initialVoters !== null && config.initialVoters.length === 0) {
    throw new KvConfigError('initialVoters', 'must name at least one voter');
  }
  return Object.freeze(config);
}

type KvEffect = Effect<RaftMessage, KvResponse>;

/** Longest wait of a write for the batch in flight (see `KvNode.mustWait`): one to two ticks. */
const WRITES_WAIT_TICKS_MAX = 2;
/** Retries of one in-flight write that wait on its entry. */
const WAITERS_MAX = 8;
type KvEvent = Event<RaftMessage, KvRequest>;

interface Waiter {
  readonly client: ClientId;
  readonly requestId: RequestId;
}

interface PendingWrite {
  /** The client's request and any retries of it that arrived while the entry was in flight. */
  readonly waiters: Waiter[];
  readonly term: number;
  readonly kind: 'write' | 'openSession' | 'changeMembership' | 'etcd';
  /** `sessionId:seq` of a write, so that a retry joins the entry already proposed. */
  readonly key: string | null;
}

type ReadRequest = Extract<KvRequest, { type: 'get' | 'scan' | 'etcdRange' | 'etcdTxn' }>;

interface PendingRead {
  readonly client: ClientId;
  readonly requestId: RequestId;
  readonly request: ReadRequest;
}

/** An etcd write this follower forwarded to its leader, answered when its entry applies here. */
interface ForwardedWrite {
  readonly client: ClientId;
  readonly requestId: RequestId;
  readonly expiresAtTick: number;
}

export class KvNode {
  readonly id: NodeId;
  readonly config: KvConfig;
  readonly core: RaftCore;
  machine: KvStateMachine;
  /** Index through which `machine` has applied the log. */
  appliedIndex: LogIndex;
  /** The node's local clock (the last tick's `nowMs`), stamped on commands for session expiry. */
  nowMs: number;
  private readonly pendingWrites = new Map<number, PendingWrite>();
  /** `sessionId:seq` -> index of the pending entry that carries that write. */
  private readonly pendingBySession = new Map<string, number>();
  /** Reads waiting for their read index, by the core's read id: the reads of one turn share one. */
  private readonly pendingReads = new Map<number, PendingRead[]>();
  /** Reads in `pendingReads`, over all batches. */
  private pendingReadCount = 0;
  /** The read batch that later reads of this turn may join (see `readThroughIndex`); null after a drain. */
  private openReadBatch: { readId: number; term: number; committed: LogIndex; role: RaftRole } | null = null;
  private readsAwaitingApply: { index: LogIndex; read: PendingRead }[] = [];
  private readIdNext = 1;
  private role: RaftRole;
  /** A snapshot the core is about to restore, decoded once when vetted. */
  private incomingSnapshot: { index: LogIndex; machine: KvStateMachine } | null = null;
  /** Requests refused as malformed, for logs. */
  badRequests = 0;
  /** Reused to encode commands (`encode` copies the bytes out). */
  private readonly writer = new Writer();
  /** Requests that wait for the batch in flight to commit (see `mustWait`), in arrival order. */
  private waitingWrites: { client: ClientId; requestId: RequestId; request: KvRequest }[] = [];
  private waitingSinceTick = 0;
  /** The last log index handed out by a drain (proposed entries leave with the drain's messages). */
  private flushedIndex = 0;
  /** A `localFlush` is on its way to this node (batching; see `scheduleFlush`). */
  private flushScheduled = false;
  /**
   * This incarnation, in the forwarded commands' `origin`: the clock at start, so that an entry a
   * previous incarnation forwarded never answers a request of this one (etcd's request ids also start
   * from the member's start time).
   */
  private readonly boot: number;
  /** Forwarded etcd writes by their `origin.seq`, oldest first (so expiry stops at the first live one). */
  private readonly forwarded = new Map<number, ForwardedWrite>();
  private forwardSeqNext = 1;
  private ticks = 0;
  /** Ready output -> storage effects, sends and promises. */
  private readonly storage: ReadyDriver<RaftMessage>;
  private readonly readyHooks: ReadyHooks<RaftMessage, KvResponse> = {
    handle: (ready, effects) => this.handleReady(ready, effects),
    drained: (effects) => {
      this.noticeRoleChange(effects);
      this.flushedIndex = this.core.log.lastIndex();
    },
    localSnapshot: () =>
      this.appliedIndex - this.core.log.snapshot.index >= this.config.snapshotEntries ? this.machine.snapshot() : null,
  };

  constructor(context: NodeContext<KvConfig>) {
    const config = context.config;
    this.id = context.id;
    this.config = config;
    this.nowMs = context.nowMs;
    this.boot = Math.max(0, Math.floor(context.nowMs));
    const recovered = recoverDurable(context.durable);
    if (!recovered.ok) throw recovered.error;
    const { hardState, snapshot, entries } = recovered.value;
    this.machine = this.machineFrom(snapshot);
    this.appliedIndex = snapshot?.meta.index ?? (0 as LogIndex);
    this.core = new RaftCore({
      id: context.id,
      config: config.raft,
      rng: context.rng,
      hardState,
      snapshot,
      entries,
      bootstrapConfig: bootstrapConfig(context.id, config.initialVoters ?? context.peers),
      acceptSnapshot: (incoming) => this.vetSnapshot(incoming),
    });
    this.storage = new ReadyDriver(this.core, hardState, config.syncNudgeTicks, (message) => message, 'KvNode');
    this.role = this.core.role;
    config.observer?.reset(this.id, this.appliedIndex);
  }

  private limits() {
    return { sessionTimeoutMs: this.config.sessionTimeoutMs, sessionsMax: this.config.sessionsMax };
  }

  private machineFrom(snapshot: Snapshot | null): KvStateMachine {
    if (snapshot === null) return new KvStateMachine(this.limits());
    const restored = KvStateMachine.restore(snapshot.data, this.limits());
    if (!restored.ok) {
      throw new RaftRecoveryError({
        code: 'CORRUPT_SNAPSHOT',
        reason: `kv state does not decode: ${restored.error.code}`,
      });
    }
    return restored.value;
  }

  private vetSnapshot(snapshot: Snapshot): boolean {
    const restored = KvStateMachine.restore(snapshot.data, this.limits());
    if (!restored.ok) return false;
    this.incomingSnapshot = { index: snapshot.meta.index, machine: restored.value };
    return true;
  }

  step(event: KvEvent): KvEffect[] {
    const effects: KvEffect[] = [];
    switch (event.type) {
      case 'tick':
        this.nowMs = event.nowMs;
        this.ticks++;
        this.core.tick();
        this.expireForwarded(effects);
        this.storage.tick(effects);
        break;
      case 'receive':
        // Our own flush note: the batch of requests is complete; `drain` below hands it to the core.
        if (event.from === this.id && event.message.type === 'localFlush') break;
        this.core.step(event.from, event.message);
        // A follower's forwarded proposals join the leader's batch like its own clients' requests.
        if (this.config.batchRequests && event.message.type === 'propose' && this.core.hasReady()) {
          // A proposal with a newer term may have deposed this leader: its waiting writes go now.
          this.releaseWaitingWrites(effects);
          this.scheduleFlush(effects);
          return effects;
        }
        break;
      case 'request':
        if (this.mustWait(event.request)) {
          if (this.waitingWrites.length === 0) this.waitingSinceTick = this.ticks;
          this.waitingWrites.push({ client: event.client, requestId: event.requestId, request: event.request });
          return effects;
        }
        this.handleRequest(event.client, event.requestId, event.request, effects);
        if (this.config.batchRequests && this.core.hasReady()) {
          this.scheduleFlush(effects);
          return effects;
        }
        break;
      case 'persisted': {
        this.storage.persisted(event.ack, effects);
        break;
      }
    }
    this.releaseWaitingWrites(effects);
    this.drain(effects);
    return effects;
  }

  /**
   * Writes wait while the leader's previous batch is still being replicated (flushed, not yet
   * committed), for at most `WRITES_WAIT_TICKS_MAX` ticks, and then leave together: the step that
   * commits the batch proposes them, so its AppendEntries carry both the new entries and the new
   * commit index. Without it, clients on several connections make one small batch per connection
   * (each with its own messages, steps and fsyncs on every node). A write waits at most one round of
   * replication it would partly wait anyway (its AppendEntries would queue behind the previous batch's
   * log write); a lone client never waits (its write finds nothing in flight). Reads (get, scan, etcd
   * ranges) and status never wait; other requests (writes, etcd txns, membership) do, in order.
   */
  private mustWait(request: KvRequest): boolean {
    if (!this.config.batchRequests) return false;
    if (
      request.type === 'get' ||
      request.type === 'scan' ||
      request.type === 'etcdRange' ||
      request.type === 'status'
    ) {
      return false;
    }
    if (this.waitingWrites.length > 0) return true;
    return this.core.role === 'leader' && this.flushedIndex > this.core.log.committed;
  }

  private releaseWaitingWrites(effects: KvEffect[]): void {
    if (this.waitingWrites.length === 0) return;
    const keepWaiting =
      this.core.role === 'leader' &&
      this.flushedIndex > this.core.log.committed &&
      this.ticks - this.waitingSinceTick < WRITES_WAIT_TICKS_MAX &&
      this.waitingWrites.length < this.config.pendingProposalsMax;
    if (keepWaiting) return;
    const waiting = this.waitingWrites;
    this.waitingWrites = [];
    for (const write of waiting) this.handleRequest(write.client, write.requestId, write.request, effects);
  }

  /**
   * Batching (etcd's proposals between two Ready calls): the requests of one turn of the event loop
   * share an AppendEntries per follower, a log write and a heartbeat round. The node sends itself a
   * `localFlush`, which arrives after every request already received; any step drains anyway, so a
   * lost or late note only delays the batch to the next event (a tick at most).
   */
  private scheduleFlush(effects: KvEffect[]): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    effects.push({ type: 'send', to: this.id, message: { type: 'localFlush', term: this.core.term } });
  }

  // ------------------------------------------------------------------------------------------
  // Client requests

  private handleRequest(client: ClientId, requestId: RequestId, request: KvRequest, effects: KvEffect[]): void {
    const reply = (response: KvResponse): void => {
      effects.push({ type: 'reply', client, requestId, response });
    };
    const checked = validate(kvRequestSchema, request);
    if (!checked.ok) {
      this.badRequests++;
      reply(this.error('BAD_REQUEST', checked.error));
      return;
    }
    switch (request.type) {
      case 'status':
        reply(this.status());
        return;
      case 'get':
      case 'scan':
        this.handleRead(client, requestId, request, reply);
        return;
      case 'openSession':
        this.propose(client, requestId, 'openSession', { type: 'openSession', timeMs: this.timeMs() }, reply);
        return;
      case 'put':
      case 'delete':
      case 'cas':
        this.handleWrite(client, requestId, request, reply);
        return;
      case 'changeMembership':
        this.handleMembership(client, requestId, request, reply);
        return;
      case 'transferLeader': {
        const accepted = this.core.transferLeader(request.to);
        reply(accepted.ok ? { type: 'transferLeader' } : this.raftError(accepted.error));
        return;
      }
      case 'etcdRange':
        this.handleEtcdRead(client, requestId, request, reply);
        return;
      case 'etcdTxn': {
        const problem = txnRequestProblem(request.txn, TXN_OPS_MAX);
        if (problem !== null) {
          this.badRequests++;
          reply(this.error('BAD_REQUEST', problem));
        } else if (txnMayWrite(request.txn)) this.handleEtcdWrite(client, requestId, request.txn, reply);
        else this.handleEtcdRead(client, requestId, request, reply);
        return;
      }
    }
  }

  /** etcd reads: serializable ones from this node's state at once, the others through ReadIndex on any node. */
  private handleEtcdRead(
    client: ClientId,
    requestId: RequestId,
    request: Extract<KvRequest, { type: 'etcdRange' | 'etcdTxn' }>,
    reply: (response: KvResponse) => void,
  ): void {
    if (request.serializable) {
      reply(this.read(request));
      return;
    }
    if (request.type === 'etcdRange' && request.query.key.length === 0) {
      reply(this.error('BAD_REQUEST', 'key is not provided'));
      return;
    }
    this.readThroughIndex(client, requestId, request, reply);
  }

  /**
   * An etcd write: the leader proposes it; a follower forwards it to the leader (etcd followers do) and
   * answers once the entry applies here, or TIMED_OUT after `forwardTimeoutTicks`.
   */
  private handleEtcdWrite(
    client: ClientId,
    requestId: RequestId,
    txn: EtcdTxn,
    reply: (response: KvResponse) => void,
  ): void {
    if (this.core.role === 'leader') {
      this.propose(client, requestId, 'etcd', { type: 'etcdTxn', timeMs: this.timeMs(), origin: null, txn }, reply);
      return;
    }
    if (this.forwarded.size >= this.config.pendingProposalsMax) {
      reply(this.error('BUSY', `${this.forwarded.size} forwarded writes pending`));
      return;
    }
    const seq = this.forwardSeqNext;
    const origin = { node: this.id, boot: this.boot, seq };
    const command: KvCommand = { type: 'etcdTxn', timeMs: this.timeMs(), origin, txn };
    const accepted = this.core.forwardProposal(encode(kvCommandSchema, command, this.writer));
    if (!accepted.ok) {
      reply(this.notLeader());
      return;
    }
    this.forwardSeqNext++;
    this.forwarded.set(seq, { client, requestId, expiresAtTick: this.ticks + this.config.forwardTimeoutTicks });
  }

  private expireForwarded(effects: KvEffect[]): void {
    for (const [seq, waiter] of this.forwarded) {
      if (waiter.expiresAtTick > this.ticks) return;
      this.forwarded.delete(seq);
      const response = this.error('TIMED_OUT', 'the forwarded write was not seen applied in time: outcome unknown');
      effects.push({ type: 'reply', client: waiter.client, requestId: waiter.requestId, response });
    }
  }

  private handleWrite(
    client: ClientId,
    requestId: RequestId,
    request: Extract<KvRequest, { type: 'put' | 'delete' | 'cas' }>,
    reply: (response: KvResponse) => void,
  ): void {
    if (this.core.role !== 'leader') {
      reply(this.notLeader());
      return;
    }
    // Dissertation §6.3: a retry of a write that was applied already is answered from the session.
    const cached = this.machine.cachedResult(request.sessionId, request.seq);
    if (cached !== null) {
      reply(cached);
      return;
    }
    const { sessionId, seq, ...op } = request;
    // A retry of a write that is still in flight joins it instead of growing the log.
    const key = `${sessionId}:${seq}`;
    const inFlight = this.pendingBySession.get(key);
    if (inFlight !== undefined) {
      const waiters = this.pendingWrites.get(inFlight)!.waiters;
      // Bounded: a client that keeps retrying waits on its latest attempts only.
      if (waiters.length >= WAITERS_MAX) waiters.shift();
      waiters.push({ client, requestId });
      return;
    }
    const command: KvCommand = { type: 'write', sessionId, seq, timeMs: this.timeMs(), op };
    this.propose(client, requestId, 'write', command, reply, key);
  }

  private propose(
    client: ClientId,
    requestId: RequestId,
    kind: PendingWrite['kind'],
    command: KvCommand,
    reply: (response: KvResponse) => void,
    key: string | null = null,
  ): void {
    if (this.core.role !== 'leader') {
      reply(this.notLeader());
      return;
    }
    if (this.pendingWrites.size >= this.config.pendingProposalsMax) {
      reply(this.error('BUSY', `${this.pendingWrites.size} writes pending`));
      return;
    }
    const proposed = this.core.propose(encode(kvCommandSchema, command, this.writer));
    if (!proposed.ok) {
      reply(this.raftError(proposed.error));
      return;
    }
    this.pendingWrites.set(proposed.index, { waiters: [{ client, requestId }], term: proposed.term, kind, key });
    if (key !== null) this.pendingBySession.set(key, proposed.index);
  }

  private handleMembership(
    client: ClientId,
    requestId: RequestId,
    request: Extract<KvRequest, { type: 'changeMembership' }>,
    reply: (response: KvResponse) => void,
  ): void {
    if (this.core.role !== 'leader') {
      reply(this.notLeader());
      return;
    }
    if (this.pendingWrites.size >= this.config.pendingProposalsMax) {
      reply(this.error('BUSY', 'writes pending'));
      return;
    }
    const proposed = this.core.proposeConfChange(request.changes);
    if (!proposed.ok) {
      reply(this.raftError(proposed.error));
      return;
    }
    this.pendingWrites.set(proposed.index, {
      waiters: [{ client, requestId }],
      term: proposed.term,
      kind: 'changeMembership',
      key: null,
    });
  }

  private handleRead(
    client: ClientId,
    requestId: RequestId,
    request: Extract<KvRequest, { type: 'get' | 'scan' }>,
    reply: (response: KvResponse) => void,
  ): void {
    if (request.type === 'scan' && request.limit > SCAN_LIMIT_MAX) {
      reply(this.error('BAD_REQUEST', `scan limit ${request.limit} over ${SCAN_LIMIT_MAX}`));
      return;
    }
    if (this.core.role !== 'leader') {
      reply(this.notLeader());
      return;
    }
    this.readThroughIndex(client, requestId, request, reply);
  }

  /** Dissertation §6.4: the read waits for a read index (the leader's, confirmed by a quorum) to apply here. */
  private readThroughIndex(
    client: ClientId,
    requestId: RequestId,
    request: ReadRequest,
    reply: (response: KvResponse) => void,
  ): void {
    if (this.pendingReadCount + this.readsAwaitingApply.length >= this.config.pendingReadsMax) {
      reply(this.error('BUSY', 'reads pending'));
      return;
    }
    const read: PendingRead = { client, requestId, request };
    // With batching, the reads of one turn share one read index (etcd's linearizableReadLoop batches
    // the same way): a follower forwards ONE request to the leader, after every read of the batch
    // arrived, instead of one per read. A read joins only while nothing changed that a fresh request
    // would see differently (term, role, and on a leader the commit index, which is the read index it
    // would get). Every step that could change them also drains, which closes the batch; the checks
    // keep that an invariant rather than a coincidence.
    const open = this.openReadBatch;
    const batch = open === null ? undefined : this.pendingReads.get(open.readId);
    if (
      batch !== undefined &&
      open !== null &&
      open.term === this.core.term &&
      open.role === this.core.role &&
      open.committed === this.core.log.committed
    ) {
      batch.push(read);
      this.pendingReadCount++;
      return;
    }
    const readId = this.readIdNext++;
    const accepted = this.core.readIndex(readId);
    if (!accepted.ok) {
      reply(this.raftError(accepted.error));
      return;
    }
    this.pendingReads.set(readId, [read]);
    this.pendingReadCount++;
    if (this.config.batchRequests) {
      this.openReadBatch = { readId, term: this.core.term, committed: this.core.log.committed, role: this.core.role };
    }
  }

  private timeMs(): number {
    return Math.max(0, Math.floor(this.nowMs));
  }

  // ------------------------------------------------------------------------------------------
  // Core output -> effects

  /** Turns every Ready the core has into effects (`ReadyDriver`). */
  private drain(effects: KvEffect[]): void {
    this.flushScheduled = false;
    // The read batch's request leaves with this drain: later reads need a request of their own.
    this.openReadBatch = null;
    this.storage.drain(effects, this.readyHooks);
  }

  /** Everything of a `Ready` but its messages and storage (`drain` does those). */
  private handleReady(ready: Ready, effects: KvEffect[]): void {
    if (ready.snapshot !== null) this.restoreMachine(ready.snapshot);
    for (const entry of ready.committedEntries) this.applyEntry(entry, effects);
    for (const failure of ready.readFailures) {
      for (const read of this.takeReadBatch(failure.requestId)) {
        effects.push({ type: 'reply', client: read.client, requestId: read.requestId, response: this.notLeader() });
      }
    }
    for (const state of ready.readStates) {
      for (const read of this.takeReadBatch(state.requestId)) {
        this.readsAwaitingApply.push({ index: state.index, read });
      }
    }
    this.serveReads(effects);
  }

  private restoreMachine(snapshot: Snapshot): void {
    const incoming = this.incomingSnapshot;
    assert(incoming !== null && incoming.index === snapshot.meta.index, 'restoreMachine: snapshot was not vetted');
    this.incomingSnapshot = null;
    this.machine = incoming.machine;
    this.appliedIndex = snapshot.meta.index;
    this.config.observer?.reset(this.id, this.appliedIndex);
  }

  private applyEntry(entry: Entry, effects: KvEffect[]): void {
    if (entry.index !== this.appliedIndex + 1) assert(false, `applyEntry: ${entry.index} after ${this.appliedIndex}`);
    this.appliedIndex = entry.index;
    this.config.observer?.applied(this.id, entry);
    const result: KvApplyResult | null = entry.type === 'normal' ? this.machine.apply(entry.index, entry.data) : null;
    if (result?.type === 'etcdTxn' && result.origin !== null) this.answerForwarded(result, effects);
    const pending = this.pendingWrites.get(entry.index);
    if (pending === undefined) return;
    this.forgetPending(entry.index, pending);
    // Another entry took the index: the proposal was lost with a leader change (the client retries).
    let response: KvResponse;
    if (pending.term !== entry.term) response = this.notLeader();
    else if (result?.type === 'etcdTxn') response = this.etcdTxnResponse(result.outcome);
    else response = responseFor(pending, entry, result);
    for (const waiter of pending.waiters)
      effects.push({ type: 'reply', client: waiter.client, requestId: waiter.requestId, response });
  }

  /** An etcd write this incarnation forwarded has applied: its client gets the answer from here. */
  private answerForwarded(result: Extract<KvApplyResult, { type: 'etcdTxn' }>, effects: KvEffect[]): void {
    const origin = result.origin;
    if (origin === null || origin.node !== this.id || origin.boot !== this.boot) return;
    const waiter = this.forwarded.get(origin.seq);
    if (waiter === undefined) return;
    this.forwarded.delete(origin.seq);
    const response = this.etcdTxnResponse(result.outcome);
    effects.push({ type: 'reply', client: waiter.client, requestId: waiter.requestId, response });
  }

  private forgetPending(index: number, pending: PendingWrite): void {
    this.pendingWrites.delete(index);
    if (pending.key !== null) this.pendingBySession.delete(pending.key);
  }

  private takeReadBatch(readId: number): readonly PendingRead[] {
    const batch = this.pendingReads.get(readId);
    if (batch === undefined) return [];
    this.pendingReads.delete(readId);
    this.pendingReadCount -= batch.length;
    return batch;
  }

  private serveReads(effects: KvEffect[]): void {
    if (this.readsAwaitingApply.length === 0) return;
    const waiting: { index: LogIndex; read: PendingRead }[] = [];
    for (const item of this.readsAwaitingApply) {
      if (item.index > this.appliedIndex) {
        waiting.push(item);
        continue;
      }
      const { read } = item;
      effects.push({
        type: 'reply',
        client: read.client,
        requestId: read.requestId,
        response: this.read(read.request),
      });
    }
    this.readsAwaitingApply = waiting;
  }

  private read(request: ReadRequest): KvResponse {
    switch (request.type) {
      case 'get':
        return { type: 'get', value: this.machine.get(request.key) };
      case 'scan': {
        const { entries, more } = this.machine.scan(request.prefix, request.limit);
        return { type: 'scan', entries, more };
      }
      case 'etcdRange': {
        const outcome = this.machine.range(request.query);
        if (!outcome.ok) return this.etcdError(outcome.error);
        return { type: 'etcdRange', term: this.core.term, revision: outcome.revision, result: outcome.result };
      }
      case 'etcdTxn':
        return this.etcdTxnResponse(this.machine.readTxn(request.txn));
    }
  }

  private etcdTxnResponse(outcome: TxnOutcome): KvResponse {
    if (!outcome.ok) return this.etcdError(outcome.error);
    const { revision, succeeded, responses } = outcome;
    return { type: 'etcdTxn', term: this.core.term, revision, succeeded, responses };
  }

  private etcdError(error: EtcdTxnError): KvResponse {
    const messages: Record<EtcdTxnError, string> = {
      KEY_NOT_FOUND: 'key not found',
      COMPACTED: `mvcc: required revision has been compacted (only revision ${this.machine.revision} is kept)`,
      FUTURE_REV: 'mvcc: required revision is a future revision',
    };
    return this.error(error, messages[error]);
  }

  /** A leader that stepped down answers its pending writes LEADER_CHANGED: their fate is unknown, so clients retry. */
  private noticeRoleChange(effects: KvEffect[]): void {
    const role = this.core.role;
    if (role === this.role) return;
    const wasLeader = this.role === 'leader';
    this.role = role;
    if (!wasLeader) return;
    const hint = this.core.leader === this.id ? null : this.core.leader;
    const response: KvResponse = {
      type: 'error',
      code: 'LEADER_CHANGED',
      leaderHint: hint,
      message: `n${this.id} stopped leading with the write in flight: its outcome is unknown`,
    };
    for (const pending of this.pendingWrites.values()) {
      for (const waiter of pending.waiters)
        effects.push({ type: 'reply', client: waiter.client, requestId: waiter.requestId, response });
    }
    this.pendingWrites.clear();
    this.pendingBySession.clear();
  }

  // ------------------------------------------------------------------------------------------
  // Responses

  private notLeader(): KvResponse {
    const hint = this.core.leader === this.id ? null : this.core.leader;
    return { type: 'error', code: 'NOT_LEADER', leaderHint: hint, message: `n${this.id} is not the leader` };
  }

  private error(code: KvErrorCode, message: string): KvResponse {
    return { type: 'error', code, leaderHint: null, message: message.slice(0, 1000) };
  }

  private raftError(error: RaftError): KvResponse {
    switch (error.code) {
      case 'NOT_LEADER':
      case 'NO_LEADER':
        return this.notLeader();
      case 'TRANSFERRING':
        return {
          type: 'error',
          code: 'NOT_LEADER',
          leaderHint: error.to,
          message: `leadership moving to n${error.to}`,
        };
      case 'UNCOMMITTED_LIMIT':
      case 'READS_FULL':
        return this.error('BUSY', DsError.describe(error));
      default:
        return this.error('REFUSED', DsError.describe(error));
    }
  }

  status(): KvResponse {
    const status = this.core.status();
    return {
      type: 'status',
      node: this.id,
      role: status.role,
      term: status.term,
      leader: status.leader,
      commit: status.commit,
      applied: status.applied,
      voters: [...status.config.voters],
      votersOutgoing: [...status.config.votersOutgoing],
      learners: [...status.config.learners],
    };
  }

  invariants(): void {
    this.core.invariants();
    // Run after every step: the message is built only on failure.
    if (this.appliedIndex !== this.core.log.applied) {
      assert(false, `kv: applied ${this.appliedIndex} != core ${this.core.log.applied}`);
    }
    assert(this.pendingWrites.size <= this.config.pendingProposalsMax, 'kv: pending writes over the limit');
    assert(
      this.pendingReadCount + this.readsAwaitingApply.length <= this.config.pendingReadsMax,
      'kv: reads over the limit',
    );
    assert(this.core.role === 'leader' || this.pendingWrites.size === 0, 'kv: a non-leader holds pending writes');
    assert(this.core.role === 'leader' || this.waitingWrites.length === 0, 'kv: a non-leader holds waiting writes');
    assert(this.pendingBySession.size <= this.pendingWrites.size, 'kv: session index larger than pending writes');
    assert(this.forwarded.size <= this.config.pendingProposalsMax, 'kv: forwarded writes over the limit');
  }
}

function responseFor(pending: PendingWrite, entry: Entry, result: KvApplyResult | null): KvResponse {
  if (pending.kind === 'changeMembership') return { type: 'changeMembership', index: entry.index };
  assert(result !== null, 'responseFor: a client command applied without a result');
  switch (result.type) {
    case 'openSession':
      return { type: 'openSession', sessionId: result.sessionId };
    case 'write':
      return result.result;
    case 'rejected':
      return {
        type: 'error',
        code: result.code,
        leaderHint: null,
        message: result.code === 'SESSION_EXPIRED' ? 'session expired' : 'stale sequence number',
      };
    case 'etcdTxn':
      return unreachable(result as never, 'responseFor: etcd results are answered by KvNode');
    case 'none':
      return { type: 'error', code: 'BAD_REQUEST', leaderHint: null, message: 'command did not decode' };
  }
}

function bootstrapConfig(id: NodeId, initialVoters: readonly NodeId[]): ConfState {
  if (!initialVoters.includes(id)) return EMPTY_CONF_STATE;
  return {
    voters: [...new Set(initialVoters)].sort((a, b) => a - b),
    votersOutgoing: [],
    learners: [],
    autoLeave: false,
  };
}

export const kvProtocol: Protocol<KvNode, RaftMessage, KvRequest, KvResponse, KvConfig> = {
  name: 'raft-kv',
  init: (context) => new KvNode(context),
  step: (node, event) => node.step(event),
  invariants: (node) => node.invariants(),
};
