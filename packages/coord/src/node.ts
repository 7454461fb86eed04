/**
 * `CoordNode`: one server of the coordination service, a kit `Protocol` node that embeds `RaftCore`
 * (as raft's `KvNode` does) with ZooKeeper's data tree as the state machine.
 *
 * Request path (Hunt et al. §4, ZooKeeper's request processors):
 * - Reads (exists, getData, getChildren, ...) are answered from this server's applied tree, without
 *   any message to the leader; the reply's zxid is the last one applied here.
 * - Writes, connects and closes are forwarded to the leader (a follower keeps one batch in flight
 *   and sends everything queued meanwhile in the next: adaptive batching, FIFO by construction). The
 *   leader prepares each into a transaction against its speculative view (`prep.ts`) and proposes it;
 *   every server answers its own clients when it applies the transaction.
 * - Per connection, requests are answered strictly in order (ZooKeeper's FIFO client order): a read
 *   waits behind the connection's earlier writes until they are applied here.
 * - sync() asks the leader for its commit index (Raft ReadIndex, which the core forwards for a
 *   follower) and answers once this server has applied that far.
 * - Watches fire from `apply`, so the notification leaves before any later reply that could show the
 *   change (same connection, same order).
 * - Storage goes through raft's `ReadyDriver` (as in KvNode): log writes of entries are acknowledged
 *   when durable without holding later sends and replies; a new term or vote stays a barrier.
 *
 * Sessions: created, re-attached (a client moving to another server, or reconnecting) and closed
 * through the log; the leader tracks expiry from the activity followers report (`touch`) and
 * proposes closeSession for a silent session, which deletes its ephemeral nodes on every replica.
 * A re-attach goes through the log, so the server that accepts a moved session has applied at least
 * everything the client saw before (its lastZxidSeen) before it answers: a client never goes back in
 * time. The attach counter also retires the old connection: writes from it are refused, and the
 * server holding it closes it when the new attach applies (ZooKeeper's SessionMoved).
 */
import {
  assert,
  type ClientId,
  decode,
  type Effect,
  type Event,
  encode,
  type NodeContext,
  type NodeId,
  type Protocol,
  RequestId,
  type Rng,
} from '@dsys/kit';
import {
  type ConfState,
  EMPTY_CONF_STATE,
  type Entry,
  type LogIndex,
  RaftCore,
  RaftRecoveryError,
  type RaftRole,
  type Ready,
  ReadyDriver,
  type ReadyHooks,
  recoverDurable,
  type Snapshot,
} from '@dsys/raft';
import type { CoordConfig } from './config.js';
import { type Applied, DataTree, statOf, type Trigger } from './data-tree.js';
import { isWithin } from './path.js';
import { prepare, reapable } from './prep.js';
import {
  type CoordMessage,
  type CoordRequest,
  type CoordResponse,
  FORWARD_ITEMS_MAX,
  type ForwardItem,
  isWriteOp,
  type Op,
  type Result,
  type ServerStatus,
  type Txn,
  txnSchema,
} from './schema.js';
import { AddWatchMode, Err, EventType, KeeperState, zxidOf } from './types.js';
import { type Notification, WatchManager } from './watches.js';

type CoordEvent = Event<CoordMessage, CoordRequest>;
type CoordEffect = Effect<CoordMessage, CoordResponse>;

const PUSH = RequestId(0);
const NONE: Result = Object.freeze({ type: 'none' });
/** Bytes of forwarded data per batch (a batch is one peer frame). */
const FORWARD_BATCH_BYTES_MAX = 4 * 1024 * 1024;
/** Reaper candidates examined per pass. */
const REAP_CHECKS_MAX = 1000;

interface Pending {
  readonly xid: number;
  readonly op: Op;
  /** Writes: their place in the session's chain. */
  readonly writeSeq: number;
  /** Syncs: the ReadIndex request id, and the index to reach once known. */
  readId: number;
  syncIndex: number | null;
  /** Writes: the outcome, once applied here. */
  answer: { zxid: number; err: number; result: Result } | null;
}

interface Connection {
  readonly client: ClientId;
  readonly conn: number;
  state: 'connecting' | 'open';
  sessionId: number;
  attach: number;
  timeoutMs: number;
  readonly token: number;
  readonly openedMs: number;
  lastHeardMs: number;
  /** Next request sequence number expected; later ones wait in `early`. */
  inNext: number;
  readonly early: Map<number, { xid: number; op: Op }>;
  outSeq: number;
  readonly queue: Pending[];
  writeSeq: number;
}

interface Batch {
  readonly id: number;
  readonly keys: readonly string[];
  readonly to: NodeId;
  readonly term: number;
  sentTick: number;
}

/** Counters for status output, metrics and the "reads never touch the leader" measurement. */
export interface CoordCounters {
  readsServed: number;
  writesForwarded: number;
  forwardBatchesSent: number;
  forwardItemsReceived: number;
  touchesSent: number;
  connectionsClosed: number;
  badRequests: number;
}

function forwardKey(item: ForwardItem): string {
  return item.kind === 'connect' ? `c:${item.token}` : `w:${item.sessionId}:${item.attach}:${item.writeSeq}`;
}

export class CoordNode {
  readonly id: NodeId;
  readonly config: CoordConfig;
  readonly core: RaftCore;
  tree: DataTree;
  appliedIndex: LogIndex;
  nowMs: number;
  readonly watches = new WatchManager();
  readonly counters: CoordCounters = {
    readsServed: 0,
    writesForwarded: 0,
    forwardBatchesSent: 0,
    forwardItemsReceived: 0,
    touchesSent: 0,
    connectionsClosed: 0,
    badRequests: 0,
  };
  private readonly peers: readonly NodeId[];
  private readonly rng: Rng;
  /** Identifies this incarnation in forward batches and connect tokens. */
  private readonly incarnation: number;
  private tokenNext = 1;
  private ticks = 0;
  private role: RaftRole;

  private readonly connections = new Map<ClientId, Connection>();
  private readonly bySession = new Map<number, ClientId>();
  private readonly byToken = new Map<number, ClientId>();
  private readonly syncs = new Map<number, ClientId>();
  private readIdNext = 1;
  private touched = new Set<number>();
  private noLeaderTicks = 0;
  private readonly delayedNotifications: Notification[] = [];

  // Forwarding (every role): items waiting for their transaction to apply here.
  private readonly forwardPending = new Map<string, ForwardItem>();
  private forwardUnsent: string[] = [];
  private inFlight: Batch | null = null;
  /** The leader (and term) the forwarded items went to last. */
  private sentTo: { leader: NodeId; term: number } | null = null;
  private batchNext = 1;

  // Leader only.
  private view: DataTree | null = null;
  private readonly expiry = new Map<number, number>();
  private readonly followerBatches = new Map<NodeId, { incarnation: number; batch: number }>();

  /** Ready output -> storage effects, sends and promises (shared with KvNode). */
  private readonly storage: ReadyDriver<CoordMessage>;
  private readonly readyHooks: ReadyHooks<CoordMessage, CoordResponse> = {
    handle: (ready, effects) => this.handleReady(ready, effects),
    drained: () => {
      this.view?.forget(this.appliedIndex);
      this.noticeRoleChange();
    },
    localSnapshot: () => {
      if (this.appliedIndex - this.core.log.snapshot.index < this.snapshotDue) return null;
      this.snapshotDue = this.drawSnapshotDue();
      return this.tree.snapshot();
    },
  };
  /**
   * Applied entries past the last snapshot that trigger the next one: drawn in [snapshotEntries/2,
   * snapshotEntries] per member and per snapshot, as ZooKeeper does (`snapCount/2 + randRoll`), so
   * that the members do not all pause to encode and write a snapshot at the same index.
   */
  private snapshotDue: number;
  private readonly snapshotRng: Rng;
  private incomingSnapshot: { index: LogIndex; tree: DataTree } | null = null;

  constructor(context: NodeContext<CoordConfig>) {
    this.id = context.id;
    this.config = context.config;
    this.peers = context.peers;
    this.nowMs = context.nowMs;
    this.rng = context.rng.fork('coord');
    this.incarnation = this.rng.int(2 ** 31);
    this.snapshotRng = context.rng.fork('coord:snapshot');
    this.snapshotDue = this.drawSnapshotDue();
    const recovered = recoverDurable(context.durable);
    if (!recovered.ok) throw recovered.error;
    const { hardState, snapshot, entries } = recovered.value;
    this.tree = treeFrom(snapshot);
    this.appliedIndex = snapshot?.meta.index ?? (0 as LogIndex);
    this.core = new RaftCore({
      id: context.id,
      config: this.config.raft,
      rng: context.rng,
      hardState,
      snapshot,
      entries,
      bootstrapConfig: bootstrapConfig(context.id, this.config.initialVoters ?? context.peers),
      acceptSnapshot: (incoming) => this.vetSnapshot(incoming),
    });
    this.storage = new ReadyDriver(
      this.core,
      hardState,
      this.config.syncNudgeTicks,
      (message): CoordMessage => ({ type: 'raft', message }),
      'CoordNode',
    );
    this.role = this.core.role;
    this.config.observer?.reset(this.id, this.appliedIndex);
  }

  get isLeader(): boolean {
    return this.view !== null && this.core.role === 'leader';
  }

  step(event: CoordEvent): CoordEffect[] {
    const effects: CoordEffect[] = [];
    switch (event.type) {
      case 'tick':
        this.nowMs = event.nowMs;
        this.ticks++;
        this.core.tick();
        this.onTick(effects);
        break;
      case 'receive':
        this.onMessage(event.from, event.message, effects);
        break;
      case 'request':
        this.onRequest(event.client, event.requestId, event.request, effects);
        break;
      case 'persisted': {
        this.storage.persisted(event.ack, effects);
        break;
      }
    }
    this.drain(effects);
    this.flushForwards(effects);
    this.drain(effects);
    return effects;
  }

  // ------------------------------------------------------------------------------------------------
  // Messages between servers

  private onMessage(from: NodeId, message: CoordMessage, effects: CoordEffect[]): void {
    switch (message.type) {
      case 'raft':
        this.core.step(from, message.message);
        return;
      case 'forward': {
        // The acknowledgement goes after the AppendEntries that carry these writes: the followers'
        // fsyncs are on the write's critical path, the acknowledgement (flow control) is not.
        const acks: CoordEffect[] = [];
        this.onForward(from, message, acks);
        this.drain(effects);
        effects.push(...acks);
        return;
      }
      case 'forwardAck': {
        const batch = this.inFlight;
        if (batch === null || batch.id !== message.batch || message.incarnation !== this.incarnation) return;
        this.inFlight = null;
        for (const chain of message.rejected) {
          this.forwardPending.delete(`w:${chain.sessionId}:${chain.attach}:${chain.writeSeq}`);
          this.breakSession(chain.sessionId, chain.attach, 'write refused by the leader', effects);
        }
        return;
      }
      case 'touch':
        if (!this.isLeader) return;
        for (const sessionId of message.sessions) this.touchAtLeader(sessionId);
        return;
    }
  }

  private onForward(from: NodeId, message: Extract<CoordMessage, { type: 'forward' }>, effects: CoordEffect[]): void {
    if (!this.isLeader || message.term !== this.core.term) return;
    this.counters.forwardItemsReceived += message.items.length;
    const seen = this.followerBatches.get(from);
    const ack = (rejected: { sessionId: number; attach: number; writeSeq: number }[]): void => {
      effects.push({
        type: 'send',
        to: from,
        message: {
          type: 'forwardAck',
          term: message.term,
          incarnation: message.incarnation,
          batch: message.batch,
          rejected,
        },
      });
    };
    if (seen !== undefined && seen.incarnation === message.incarnation && message.batch <= seen.batch) {
      // A resend of a batch already handled: the acknowledgement was lost.
      if (message.batch === seen.batch) ack([]);
      return;
    }
    const outcome = this.prepareItems(message.items);
    if (outcome.stalled) return; // not acknowledged: the follower sends it again
    this.followerBatches.set(from, { incarnation: message.incarnation, batch: message.batch });
    ack(outcome.rejected);
  }

  /** Prepares and proposes items in order; stops (stalled) when Raft refuses a proposal. */
  private prepareItems(items: readonly ForwardItem[]): {
    rejected: { sessionId: number; attach: number; writeSeq: number }[];
    stalled: boolean;
  } {
    const rejected: { sessionId: number; attach: number; writeSeq: number }[] = [];
    for (const item of items) {
      const outcome = this.prepareItem(item);
      if (outcome === 'stalled') return { rejected, stalled: true };
      if (outcome === 'reject' && item.kind === 'write') {
        rejected.push({ sessionId: item.sessionId, attach: item.attach, writeSeq: item.writeSeq });
      }
    }
    return { rejected, stalled: false };
  }

  private prepareItem(item: ForwardItem): 'proposed' | 'duplicate' | 'reject' | 'stalled' {
    const view = this.view;
    assert(view !== null, 'prepareItem: only a leader prepares');
    const prepared = prepare(item, { view, nowMs: this.nowMs, rng: this.rng });
    if (prepared.type !== 'txn') return prepared.type;
    return this.proposeTxn(prepared.txn) ? 'proposed' : 'stalled';
  }

  /** Proposes a prepared transaction and folds it into the view; false when Raft refuses it. */
  private proposeTxn(txn: Txn): boolean {
    const view = this.view;
    assert(view !== null, 'proposeTxn: only a leader proposes');
    const index = this.core.log.lastIndex() + 1;
    const proposed = this.core.propose(encode(txnSchema, txn));
    if (!proposed.ok) return false;
    assert(proposed.index === index, `proposeTxn: index ${proposed.index} != ${index}`);
    view.apply(txn, zxidOf(proposed.term, proposed.index), proposed.index);
    return true;
  }

  // ------------------------------------------------------------------------------------------------
  // Forwarding

  private forward(item: ForwardItem): void {
    const key = forwardKey(item);
    if (this.forwardPending.has(key)) return;
    this.forwardPending.set(key, item);
    this.forwardUnsent.push(key);
    if (item.kind === 'write') this.counters.writesForwarded++;
  }

  /**
   * Sends what is queued for the leader. A leader prepares its own items at once; a follower keeps at
   * most one batch in flight, and when the leader changes it sends every item not yet applied here to
   * the new one, in order (duplicates are recognized by the leader's view).
   */
  private flushForwards(effects: CoordEffect[]): void {
    if (this.forwardPending.size === 0) {
      this.forwardUnsent = [];
      return;
    }
    if (this.core.role === 'leader') {
      if (!this.isLeader) return;
      this.inFlight = null;
      const keys = this.forwardUnsent;
      this.forwardUnsent = [];
      for (let i = 0; i < keys.length; i++) {
        const item = this.forwardPending.get(keys[i]!);
        if (item === undefined) continue;
        const outcome = this.prepareItem(item);
        if (outcome === 'stalled') {
          this.forwardUnsent = keys.slice(i);
          return;
        }
        if (outcome === 'reject' && item.kind === 'write') {
          this.forwardPending.delete(keys[i]!);
          this.breakSession(item.sessionId, item.attach, 'write refused', effects);
        }
      }
      return;
    }
    const leader = this.core.leader;
    if (leader === null || this.core.role !== 'follower') return;
    const sentTo = this.sentTo;
    if (sentTo === null || sentTo.leader !== leader || sentTo.term !== this.core.term) {
      // A new leader: everything not yet applied here goes to it, in order (it recognizes duplicates).
      this.sentTo = { leader, term: this.core.term };
      this.inFlight = null;
      this.forwardUnsent = [...this.forwardPending.keys()];
    }
    const batch = this.inFlight;
    if (batch !== null) {
      if (this.ticks - batch.sentTick < this.config.forwardResendTicks) return;
      batch.sentTick = this.ticks;
      this.sendBatch(batch, effects);
      return;
    }
    const keys = this.forwardUnsent;
    const chosen: string[] = [];
    let bytes = 0;
    let taken = 0;
    for (const key of keys) {
      if (chosen.length >= FORWARD_ITEMS_MAX || bytes > FORWARD_BATCH_BYTES_MAX) break;
      taken++;
      const item = this.forwardPending.get(key);
      if (item === undefined) continue;
      chosen.push(key);
      bytes += itemBytes(item);
    }
    this.forwardUnsent = keys.slice(taken);
    if (chosen.length === 0) return;
    const next: Batch = { id: this.batchNext++, keys: chosen, to: leader, term: this.core.term, sentTick: this.ticks };
    this.inFlight = next;
    this.sendBatch(next, effects);
  }

  private sendBatch(batch: Batch, effects: CoordEffect[]): void {
    const items: ForwardItem[] = [];
    for (const key of batch.keys) {
      const item = this.forwardPending.get(key);
      if (item !== undefined) items.push(item);
    }
    this.counters.forwardBatchesSent++;
    effects.push({
      type: 'send',
      to: batch.to,
      message: { type: 'forward', term: batch.term, incarnation: this.incarnation, batch: batch.id, items },
    });
  }

  // ------------------------------------------------------------------------------------------------
  // Client requests

  private onRequest(client: ClientId, requestId: RequestId, request: CoordRequest, effects: CoordEffect[]): void {
    switch (request.type) {
      case 'status':
        effects.push({ type: 'reply', client, requestId, response: this.status() });
        return;
      case 'connect':
        this.onConnect(client, request, effects);
        return;
      case 'disconnect': {
        const connection = this.connections.get(client);
        if (connection !== undefined && connection.conn === request.conn) this.dropConnection(connection);
        return;
      }
      case 'op':
        this.onOp(client, request, effects);
        return;
    }
  }

  private onConnect(
    client: ClientId,
    request: Extract<CoordRequest, { type: 'connect' }>,
    effects: CoordEffect[],
  ): void {
    const existing = this.connections.get(client);
    if (existing !== undefined) this.dropConnection(existing);
    if (this.connections.size >= this.config.connectionsMax) {
      this.pushTo(client, request.conn, { type: 'closed', expired: false, reason: 'too many connections' }, effects);
      return;
    }
    const timeoutMs = Math.min(
      this.config.maxSessionTimeoutMs,
      Math.max(this.config.minSessionTimeoutMs, request.timeoutMs),
    );
    const token = this.incarnation * 2 ** 21 + (this.tokenNext++ % 2 ** 21);
    const connection: Connection = {
      client,
      conn: request.conn,
      state: 'connecting',
      sessionId: request.sessionId,
      attach: 0,
      timeoutMs,
      token,
      openedMs: this.nowMs,
      lastHeardMs: this.nowMs,
      inNext: 1,
      early: new Map(),
      outSeq: 0,
      queue: [],
      writeSeq: 0,
    };
    this.connections.set(client, connection);
    this.byToken.set(token, client);
    this.forward({ kind: 'connect', token, sessionId: request.sessionId, password: request.password, timeoutMs });
  }

  private onOp(client: ClientId, request: Extract<CoordRequest, { type: 'op' }>, effects: CoordEffect[]): void {
    const connection = this.connections.get(client);
    if (connection === undefined || connection.conn !== request.conn) return;
    if (request.seq < connection.inNext || connection.early.has(request.seq)) return;
    if (connection.early.size + connection.queue.length >= this.config.requestsPerConnectionMax) {
      this.closeConnection(connection, false, 'too many requests in flight', effects);
      return;
    }
    if (connection.state === 'open' && request.seq === connection.inNext && connection.early.size === 0) {
      // The common case, a request in order: no reorder buffer.
      this.admitOne(connection, request.xid, request.op, effects);
      this.pump(connection, effects);
      return;
    }
    connection.early.set(request.seq, { xid: request.xid, op: request.op });
    if (connection.state === 'open') this.admit(connection, effects);
  }

  /** Moves in-order requests into the connection's queue, starting writes and syncs at once. */
  private admit(connection: Connection, effects: CoordEffect[]): void {
    for (;;) {
      const next = connection.early.get(connection.inNext);
      if (next === undefined) break;
      connection.early.delete(connection.inNext);
      this.admitOne(connection, next.xid, next.op, effects);
    }
    this.pump(connection, effects);
  }

  /** Takes the connection's next request (in sequence): answers a ping, starts a write or a sync, queues it. */
  private admitOne(connection: Connection, xid: number, op: Op, effects: CoordEffect[]): void {
    connection.inNext++;
    connection.lastHeardMs = this.nowMs;
    this.touched.add(connection.sessionId);
    if (op.type === 'ping') {
      this.reply(connection, xid, Err.OK, NONE, effects);
      return;
    }
    if (
      this.config.testOnlyBugs?.readsJumpWrites === true &&
      !isWriteOp(op) &&
      op.type !== 'sync' &&
      connection.queue.length > 0
    ) {
      this.serveLocal(connection, xid, op, effects);
      return;
    }
    let writeSeq = 0;
    if (isWriteOp(op)) {
      writeSeq = ++connection.writeSeq;
      this.forward({ kind: 'write', sessionId: connection.sessionId, attach: connection.attach, writeSeq, op });
    }
    const pending: Pending = { xid, op, writeSeq, readId: 0, syncIndex: null, answer: null };
    if (op.type === 'sync') this.startSync(connection, pending);
    connection.queue.push(pending);
  }

  private startSync(connection: Connection, pending: Pending): void {
    const readId = this.readIdNext++;
    const accepted = this.core.readIndex(readId);
    pending.readId = accepted.ok ? readId : 0;
    if (accepted.ok) this.syncs.set(readId, connection.client);
  }

  /** Answers the connection's queue from the front, as far as answers are ready (FIFO order). */
  private pump(connection: Connection, effects: CoordEffect[]): void {
    const queue = connection.queue;
    let answered = 0;
    while (answered < queue.length && this.connections.get(connection.client) === connection) {
      const pending = queue[answered]!;
      const op = pending.op;
      if (isWriteOp(op)) {
        if (pending.answer === null) break;
        // The reply carries this server's zxid now, not the transaction's: an earlier reply on the
        // connection (a sync or read answered after this write applied) may already show a later one.
        const { err, result } = pending.answer;
        this.reply(connection, pending.xid, err, result, effects);
      } else if (op.type === 'sync') {
        if (pending.syncIndex === null || this.appliedIndex < pending.syncIndex) break;
        this.reply(connection, pending.xid, Err.OK, { type: 'path', path: op.path }, effects);
      } else {
        this.serveLocal(connection, pending.xid, op, effects);
      }
      answered++;
    }
    if (answered > 0) queue.splice(0, answered);
  }

  /** Reads and watch management, answered from this server's state. */
  private serveLocal(connection: Connection, xid: number, op: Op, effects: CoordEffect[]): void {
    const tree = this.tree;
    const sessionId = connection.sessionId;
    const answer = (err: number, result: Result = { type: 'none' }): void => {
      this.counters.readsServed++;
      this.reply(connection, xid, err, result, effects);
    };
    switch (op.type) {
      case 'exists': {
        const node = tree.node(op.path);
        // ZooKeeper: exists with a watch leaves a watch whether or not the node exists.
        if (op.watch) this.watches.add(sessionId, 'data', op.path);
        if (node === undefined) answer(Err.NO_NODE);
        else answer(Err.OK, { type: 'stat', stat: statOf(node) });
        return;
      }
      case 'getData': {
        const node = tree.node(op.path);
        if (node === undefined) {
          answer(Err.NO_NODE);
          return;
        }
        if (op.watch) this.watches.add(sessionId, 'data', op.path);
        answer(Err.OK, { type: 'data', data: node.data, stat: statOf(node) });
        return;
      }
      case 'getChildren': {
        const node = tree.node(op.path);
        if (node === undefined) {
          answer(Err.NO_NODE);
          return;
        }
        if (op.watch) this.watches.add(sessionId, 'child', op.path);
        answer(Err.OK, {
          type: 'children',
          children: tree.children(op.path),
          stat: op.withStat ? statOf(node) : null,
        });
        return;
      }
      case 'getACL': {
        const node = tree.node(op.path);
        if (node === undefined) {
          answer(Err.NO_NODE);
          return;
        }
        answer(Err.OK, { type: 'acl', stat: statOf(node) });
        return;
      }
      case 'getEphemerals': {
        answer(Err.OK, { type: 'paths', paths: tree.ephemeralsOf(sessionId, op.prefix) });
        return;
      }
      case 'getAllChildrenNumber': {
        if (tree.node(op.path) === undefined) {
          answer(Err.NO_NODE);
          return;
        }
        answer(Err.OK, { type: 'count', count: tree.descendantCount(op.path) });
        return;
      }
      case 'setWatches':
        this.setWatches(connection, op, effects);
        {
          answer(Err.OK);
          return;
        }
      case 'addWatch':
        if (op.mode !== AddWatchMode.PERSISTENT && op.mode !== AddWatchMode.PERSISTENT_RECURSIVE) {
          answer(Err.BAD_ARGUMENTS);
          return;
        }
        this.watches.add(sessionId, op.mode === AddWatchMode.PERSISTENT ? 'persistent' : 'recursive', op.path);
        {
          answer(Err.OK);
          return;
        }
      case 'removeWatches': {
        const kinds = this.watches.matching(sessionId, op.path, op.watcherType);
        if (kinds.length === 0) {
          answer(Err.NO_WATCHER);
          return;
        }
        if (!op.checkOnly) this.watches.removeKinds(sessionId, op.path, kinds);
        answer(Err.OK);
        return;
      }
      default:
        assert(false, `serveLocal: ${op.type} is not a local operation`);
    }
  }

  /**
   * SetWatches after a reconnect (ZooKeeper's DataTree.setWatches): a watch whose node changed after
   * the client's last seen zxid fires at once; the others are registered here.
   */
  private setWatches(connection: Connection, op: Extract<Op, { type: 'setWatches' }>, effects: CoordEffect[]): void {
    const sessionId = connection.sessionId;
    const relative = op.relativeZxid;
    const event = (path: string, type: number): void => this.pushEvent(connection, path, type, effects);
    for (const path of op.data) {
      const node = this.tree.node(path);
      if (node === undefined) event(path, EventType.NODE_DELETED);
      else if (node.mzxid > relative) event(path, EventType.NODE_DATA_CHANGED);
      else this.watches.add(sessionId, 'data', path);
    }
    for (const path of op.exist) {
      if (this.tree.node(path) !== undefined) event(path, EventType.NODE_CREATED);
      else this.watches.add(sessionId, 'data', path);
    }
    for (const path of op.child) {
      const node = this.tree.node(path);
      if (node === undefined) event(path, EventType.NODE_DELETED);
      else if (node.pzxid > relative) event(path, EventType.NODE_CHILDREN_CHANGED);
      else this.watches.add(sessionId, 'child', path);
    }
    for (const path of op.persistent) this.watches.add(sessionId, 'persistent', path);
    for (const path of op.persistentRecursive) this.watches.add(sessionId, 'recursive', path);
  }

  // ------------------------------------------------------------------------------------------------
  // Output to clients

  private send(
    connection: Connection,
    body: DistributiveOmit<ConnMessage, 'conn' | 'seq'>,
    effects: CoordEffect[],
  ): void {
    connection.outSeq++;
    const response = { ...body, conn: connection.conn, seq: connection.outSeq } as CoordResponse;
    effects.push({ type: 'reply', client: connection.client, requestId: PUSH, response });
  }

  private pushTo(
    client: ClientId,
    conn: number,
    body: DistributiveOmit<ConnMessage, 'conn' | 'seq'>,
    effects: CoordEffect[],
  ): void {
    effects.push({ type: 'reply', client, requestId: PUSH, response: { ...body, conn, seq: 1 } as CoordResponse });
  }

  private reply(connection: Connection, xid: number, err: number, result: Result, effects: CoordEffect[]): void {
    // Built field by field (no spread): this is the hot path of every read.
    connection.outSeq++;
    const response: CoordResponse = {
      type: 'reply',
      conn: connection.conn,
      seq: connection.outSeq,
      xid,
      zxid: this.tree.lastZxid,
      err,
      result,
    };
    effects.push({ type: 'reply', client: connection.client, requestId: PUSH, response });
  }

  private pushEvent(connection: Connection, path: string, type: number, effects: CoordEffect[]): void {
    this.send(
      connection,
      { type: 'event', eventType: type, state: KeeperState.SYNC_CONNECTED, path, zxid: this.tree.lastZxid },
      effects,
    );
  }

  private closeConnection(connection: Connection, expired: boolean, reason: string, effects: CoordEffect[]): void {
    if (this.connections.get(connection.client) !== connection) return;
    if (expired && connection.state === 'open') {
      this.send(
        connection,
        { type: 'event', eventType: EventType.NONE, state: KeeperState.EXPIRED, path: '', zxid: this.tree.lastZxid },
        effects,
      );
    }
    this.send(connection, { type: 'closed', expired, reason }, effects);
    this.dropConnection(connection);
  }

  private dropConnection(connection: Connection): void {
    if (this.connections.get(connection.client) !== connection) return;
    this.counters.connectionsClosed++;
    this.connections.delete(connection.client);
    this.byToken.delete(connection.token);
    if (connection.state === 'open' && this.bySession.get(connection.sessionId) === connection.client) {
      this.bySession.delete(connection.sessionId);
      this.watches.dropSession(connection.sessionId);
    }
    for (const pending of connection.queue) if (pending.readId !== 0) this.syncs.delete(pending.readId);
    // Writes already forwarded stay pending: they may still apply, and a duplicate is harmless.
  }

  /** The connection of `sessionId` with attach `attach`, if it is here, is broken (a write was lost). */
  private breakSession(sessionId: number, attach: number, reason: string, effects: CoordEffect[]): void {
    const client = this.bySession.get(sessionId);
    if (client === undefined) return;
    const connection = this.connections.get(client);
    if (connection !== undefined && connection.attach === attach)
      this.closeConnection(connection, false, reason, effects);
  }

  // ------------------------------------------------------------------------------------------------
  // Applying the log

  private applyEntry(entry: Entry, effects: CoordEffect[]): void {
    assert(entry.index === this.appliedIndex + 1, `applyEntry: ${entry.index} after ${this.appliedIndex}`);
    this.appliedIndex = entry.index;
    this.config.observer?.applied(this.id, entry);
    if (entry.type !== 'normal' || entry.data.length === 0) return;
    const decoded = decode(txnSchema, entry.data);
    // Entries are written by leaders of this cluster from our own encoder: a bad one is our bug.
    assert(decoded.ok, `applyEntry: entry ${entry.index} does not decode`);
    const txn = decoded.value;
    const zxid = zxidOf(entry.term, entry.index);
    const triggers: Trigger[] = [];
    const applied = this.tree.apply(txn, zxid, entry.index, triggers);
    this.notify(triggers, effects);
    this.afterApply(applied, effects);
  }

  private notify(triggers: readonly Trigger[], effects: CoordEffect[]): void {
    if (this.watches.count === 0 || triggers.length === 0) return;
    const notifications: Notification[] = [];
    for (const trigger of triggers) this.watches.trigger(trigger, notifications);
    if (this.config.testOnlyBugs?.delayNotifications === true) {
      this.delayedNotifications.push(...notifications);
      return;
    }
    this.deliver(notifications, effects);
  }

  private deliver(notifications: readonly Notification[], effects: CoordEffect[]): void {
    for (const notification of notifications) {
      const client = this.bySession.get(notification.sessionId);
      const connection = client === undefined ? undefined : this.connections.get(client);
      if (connection !== undefined) this.pushEvent(connection, notification.path, notification.type, effects);
    }
  }

  private afterApply(applied: Applied, effects: CoordEffect[]): void {
    switch (applied.type) {
      case 'sessionCreated':
        this.forwardPending.delete(`c:${applied.token}`);
        if (this.isLeader) this.touchAtLeader(applied.sessionId);
        this.openConnection(applied.token, applied.sessionId, 1, effects);
        return;
      case 'sessionAttached': {
        this.forwardPending.delete(`c:${applied.token}`);
        if (this.isLeader) this.touchAtLeader(applied.sessionId);
        const holder = this.bySession.get(applied.sessionId);
        const held = holder === undefined ? undefined : this.connections.get(holder);
        if (held !== undefined && held.attach < applied.attach)
          this.closeConnection(held, false, 'session moved', effects);
        this.openConnection(applied.token, applied.sessionId, applied.attach, effects);
        return;
      }
      case 'connectRefused': {
        this.forwardPending.delete(`c:${applied.token}`);
        const client = this.byToken.get(applied.token);
        const connection = client === undefined ? undefined : this.connections.get(client);
        if (connection !== undefined && connection.state === 'connecting') {
          this.closeConnection(connection, true, 'session expired', effects);
        }
        return;
      }
      case 'sessionClosed': {
        this.expiry.delete(applied.sessionId);
        this.forwardPending.delete(`w:${applied.sessionId}:${applied.attach}:${applied.writeSeq}`);
        const client = this.bySession.get(applied.sessionId);
        const connection = client === undefined ? undefined : this.connections.get(client);
        if (connection === undefined) return;
        if (!applied.expired && connection.attach === applied.attach) {
          const pending = connection.queue.find((item) => item.writeSeq === applied.writeSeq && item.writeSeq > 0);
          if (pending !== undefined)
            pending.answer = { zxid: this.tree.lastZxid, err: Err.OK, result: { type: 'none' } };
          this.pump(connection, effects);
          this.closeConnection(connection, false, 'session closed', effects);
          return;
        }
        this.closeConnection(connection, true, 'session expired', effects);
        return;
      }
      case 'write': {
        this.forwardPending.delete(`w:${applied.sessionId}:${applied.attach}:${applied.writeSeq}`);
        const client = this.bySession.get(applied.sessionId);
        const connection = client === undefined ? undefined : this.connections.get(client);
        if (connection === undefined || connection.attach !== applied.attach) return;
        const pending = connection.queue.find((item) => item.writeSeq === applied.writeSeq);
        if (pending === undefined) return;
        pending.answer = { zxid: this.tree.lastZxid, err: applied.err, result: applied.result };
        this.pump(connection, effects);
        return;
      }
      case 'none':
        return;
    }
  }

  private openConnection(token: number, sessionId: number, attach: number, effects: CoordEffect[]): void {
    const client = this.byToken.get(token);
    const connection = client === undefined ? undefined : this.connections.get(client);
    if (connection === undefined || connection.state !== 'connecting') return;
    this.byToken.delete(token);
    const session = this.tree.session(sessionId);
    assert(session !== undefined, `openConnection: session ${sessionId} not live`);
    const previous = this.bySession.get(sessionId);
    if (previous !== undefined && previous !== connection.client) {
      const old = this.connections.get(previous);
      if (old !== undefined) this.closeConnection(old, false, 'session moved', effects);
    }
    connection.state = 'open';
    connection.sessionId = sessionId;
    connection.attach = attach;
    connection.timeoutMs = session.timeoutMs;
    connection.lastHeardMs = this.nowMs;
    this.bySession.set(sessionId, connection.client);
    this.send(
      connection,
      {
        type: 'connected',
        sessionId,
        password: session.password,
        timeoutMs: session.timeoutMs,
        zxid: this.tree.lastZxid,
      },
      effects,
    );
    this.admit(connection, effects);
  }

  // ------------------------------------------------------------------------------------------------
  // Time

  private onTick(effects: CoordEffect[]): void {
    if (this.delayedNotifications.length > 0) this.deliver(this.delayedNotifications.splice(0), effects);
    this.noLeaderTicks = this.core.leader === null ? this.noLeaderTicks + 1 : 0;
    this.storage.tick(effects);
    if (this.ticks % this.config.touchEveryTicks === 0) this.reportTouches(effects);
    if (this.isLeader && this.ticks % this.config.expiryCheckTicks === 0) this.expireSessions();
    if (this.isLeader && this.ticks % this.config.reapEveryTicks === 0) this.reap();
    for (const connection of [...this.connections.values()]) this.checkConnection(connection, effects);
  }

  private checkConnection(connection: Connection, effects: CoordEffect[]): void {
    const silentMs = this.nowMs - connection.lastHeardMs;
    if (connection.state === 'connecting') {
      if (this.nowMs - connection.openedMs > connection.timeoutMs) {
        this.closeConnection(connection, false, 'connect timed out', effects);
      }
      return;
    }
    if (silentMs > connection.timeoutMs) {
      this.closeConnection(connection, false, 'client silent', effects);
      return;
    }
    if (this.noLeaderTicks > this.config.noLeaderCloseTicks) {
      this.closeConnection(connection, false, 'no leader', effects);
      return;
    }
    // Syncs whose ReadIndex could not start (no leader then) try again.
    let retried = false;
    for (const pending of connection.queue) {
      if (pending.op.type === 'sync' && pending.readId === 0) {
        this.startSync(connection, pending);
        retried = true;
      }
    }
    if (retried) this.pump(connection, effects);
  }

  private reportTouches(effects: CoordEffect[]): void {
    if (this.touched.size === 0) return;
    const sessions = [...this.touched];
    this.touched = new Set();
    if (this.isLeader) {
      for (const sessionId of sessions) this.touchAtLeader(sessionId);
      return;
    }
    const leader = this.core.leader;
    if (leader === null || leader === this.id) return;
    this.counters.touchesSent++;
    effects.push({ type: 'send', to: leader, message: { type: 'touch', sessions } });
  }

  private touchAtLeader(sessionId: number): void {
    const session = this.view?.session(sessionId);
    if (session === undefined) return;
    this.expiry.set(sessionId, this.nowMs + session.timeoutMs);
  }

  /** The leader closes sessions nobody vouched for within their timeout (ZooKeeper's SessionTracker). */
  private expireSessions(): void {
    for (const [sessionId, deadline] of this.expiry) {
      if (this.nowMs <= deadline) continue;
      if (this.view!.session(sessionId) === undefined) {
        this.expiry.delete(sessionId);
        continue;
      }
      const txn: Txn = {
        type: 'closeSession',
        sessionId,
        attach: 0,
        writeSeq: 0,
        expired: true,
        time: Math.floor(this.nowMs),
      };
      if (!this.proposeTxn(txn)) return;
      this.expiry.delete(sessionId);
    }
  }

  private reap(): void {
    let checked = 0;
    for (const path of [...this.tree.containers, ...this.tree.ttlNodes]) {
      if (++checked > REAP_CHECKS_MAX) return;
      if (!reapable(this.view!, path, this.nowMs)) continue;
      if (!this.proposeTxn({ type: 'reap', path, time: Math.floor(this.nowMs) })) return;
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Leadership

  private noticeRoleChange(): void {
    const role = this.core.role;
    if (role === this.role && (role !== 'leader' || this.view !== null)) return;
    this.role = role;
    this.view = null;
    this.expiry.clear();
    this.followerBatches.clear();
    // Whatever was in flight may be lost with the old role: every pending item goes again, in order,
    // to whichever leader comes next (it recognizes the duplicates).
    this.inFlight = null;
    this.sentTo = null;
    this.forwardUnsent = [...this.forwardPending.keys()];
    if (role !== 'leader') return;
    // A new leader's view: the applied tree plus every entry of its log beyond it (prepared by earlier
    // leaders; this leader will commit them).
    const view = this.tree.overlay();
    const log = this.core.log;
    for (let index = this.appliedIndex + 1; index <= log.lastIndex(); index++) {
      const entry = log.entryAt(index);
      if (entry.type !== 'normal' || entry.data.length === 0) continue;
      const decoded = decode(txnSchema, entry.data);
      assert(decoded.ok, `noticeRoleChange: entry ${index} does not decode`);
      view.apply(decoded.value, zxidOf(entry.term, entry.index), entry.index);
    }
    this.view = view;
    // ZooKeeper gives every session a fresh timeout under a new leader: their touches went to the old one.
    for (const sessionId of view.sessionIds()) this.touchAtLeader(sessionId);
  }

  // ------------------------------------------------------------------------------------------------
  // Core output -> effects (the same shape as raft's KvNode.drain)

  /** Turns every Ready the core has into effects (`ReadyDriver`). */
  private drain(effects: CoordEffect[]): void {
    this.storage.drain(effects, this.readyHooks);
  }

  private handleReady(ready: Ready, effects: CoordEffect[]): void {
    if (ready.snapshot !== null) this.restoreTree(ready.snapshot, effects);
    for (const entry of ready.committedEntries) this.applyEntry(entry, effects);
    for (const failure of ready.readFailures) {
      const client = this.syncs.get(failure.requestId);
      this.syncs.delete(failure.requestId);
      const pending = this.findSync(client, failure.requestId);
      if (pending !== undefined) pending.readId = 0; // retried on a later tick
    }
    for (const state of ready.readStates) {
      const client = this.syncs.get(state.requestId);
      this.syncs.delete(state.requestId);
      const pending = this.findSync(client, state.requestId);
      if (pending === undefined) continue;
      pending.syncIndex = state.index;
    }
    // Syncs waiting for their index, and reads behind them.
    for (const connection of this.connections.values()) {
      const head = connection.queue[0];
      if (head?.op.type === 'sync' && head.syncIndex !== null) this.pump(connection, effects);
    }
  }

  private findSync(client: ClientId | undefined, readId: number): Pending | undefined {
    if (client === undefined) return undefined;
    return this.connections.get(client)?.queue.find((pending) => pending.readId === readId);
  }

  private vetSnapshot(snapshot: Snapshot): boolean {
    const tree = DataTree.restore(snapshot.data);
    if (tree === null) return false;
    this.incomingSnapshot = { index: snapshot.meta.index, tree };
    return true;
  }

  private drawSnapshotDue(): number {
    const half = Math.ceil(this.config.snapshotEntries / 2);
    return half + this.snapshotRng.int(this.config.snapshotEntries - half + 1);
  }

  /** A snapshot from the leader replaces the tree: per-transaction watch triggers are lost, so clients reconnect. */
  private restoreTree(snapshot: Snapshot, effects: CoordEffect[]): void {
    const incoming = this.incomingSnapshot;
    assert(incoming !== null && incoming.index === snapshot.meta.index, 'restoreTree: snapshot was not vetted');
    this.incomingSnapshot = null;
    for (const connection of [...this.connections.values()]) {
      this.closeConnection(connection, false, 'server reloaded a snapshot', effects);
    }
    this.tree = incoming.tree;
    this.appliedIndex = snapshot.meta.index;
    this.forwardPending.clear();
    this.forwardUnsent = [];
    this.inFlight = null;
    this.config.observer?.reset(this.id, this.appliedIndex);
  }

  // ------------------------------------------------------------------------------------------------
  // Introspection

  status(): Extract<CoordResponse, { type: 'status' }> {
    const status: ServerStatus = {
      node: this.id,
      role: this.core.role,
      leader: this.core.leader ?? 0,
      term: this.core.term,
      lastZxid: this.tree.lastZxid,
      appliedIndex: this.appliedIndex,
      commitIndex: this.core.log.committed,
      nodeCount: this.tree.nodeCount,
      ephemeralCount: this.tree
        .sessionIds()
        .reduce((sum, id) => sum + (this.tree.session(id)?.ephemerals.size ?? 0), 0),
      sessionCount: this.tree.sessionCount,
      connections: this.connections.size,
      watchCount: this.watches.count,
      dataBytes: this.tree.dataBytes,
      outstanding: this.forwardPending.size,
      readsServed: this.counters.readsServed,
      writesForwarded: this.counters.writesForwarded,
      forwardBatchesSent: this.counters.forwardBatchesSent,
      forwardItemsReceived: this.counters.forwardItemsReceived,
      peers: [...this.peers],
      minSessionTimeoutMs: this.config.minSessionTimeoutMs,
      maxSessionTimeoutMs: this.config.maxSessionTimeoutMs,
      tickMs: this.config.tickMs,
    };
    return { type: 'status', ...status };
  }

  /** Paths of ephemeral nodes whose owner is not a live session (must be empty: checked by the simulator). */
  orphanEphemerals(): string[] {
    const orphans: string[] = [];
    for (const sessionId of this.tree.sessionIds()) {
      for (const path of this.tree.session(sessionId)!.ephemerals) {
        const node = this.tree.node(path);
        if (node === undefined || node.ephemeralOwner !== sessionId) orphans.push(path);
      }
    }
    return orphans;
  }

  invariants(): void {
    this.core.invariants();
    assert(
      this.appliedIndex === this.core.log.applied,
      `coord: applied ${this.appliedIndex} != core ${this.core.log.applied}`,
    );
    assert(this.view === null || this.core.role === 'leader', 'coord: a non-leader holds a view');
    assert(this.bySession.size <= this.connections.size, 'coord: more sessions than connections');
    assert(this.connections.size <= this.config.connectionsMax, 'coord: connections over the limit');
    for (const [sessionId, client] of this.bySession) {
      const connection = this.connections.get(client);
      assert(
        connection?.state === 'open' && connection.sessionId === sessionId,
        `coord: session ${sessionId} index stale`,
      );
    }
  }

  /** Whether `path` is at or under one of the paths this node treats as special. */
  static isSystemPath(path: string): boolean {
    return isWithin(path, '/zookeeper');
  }
}

type ConnMessage = Exclude<CoordResponse, { type: 'status' }>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function itemBytes(item: ForwardItem): number {
  if (item.kind === 'connect') return 64;
  const op = item.op;
  if (op.type === 'create' || op.type === 'setData') return 64 + op.data.length + op.path.length;
  if (op.type === 'multi') {
    let bytes = 64;
    for (const sub of op.ops)
      bytes += 32 + sub.path.length + (sub.type === 'create' || sub.type === 'setData' ? sub.data.length : 0);
    return bytes;
  }
  return 64;
}

function treeFrom(snapshot: Snapshot | null): DataTree {
  if (snapshot === null) return new DataTree();
  const tree = DataTree.restore(snapshot.data);
  if (tree === null) throw new RaftRecoveryError({ code: 'CORRUPT_SNAPSHOT', reason: 'coord tree does not decode' });
  return tree;
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

export const coordProtocol: Protocol<CoordNode, CoordMessage, CoordRequest, CoordResponse, CoordConfig> = {
  name: 'coord',
  init: (context) => new CoordNode(context),
  step: (node, event) => node.step(event),
  invariants: (node) => node.invariants(),
};
