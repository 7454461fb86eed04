/**
 * The simulator's clients: each behaves like a ZooKeeper client library (one connection at a time,
 * pings every third of the session timeout, a move to another server when the connection goes quiet,
 * SetWatches with its last seen zxid after a reconnect, a new session after expiry) and drives a
 * random mix of writes, reads with watches, multis, syncs and ephemeral nodes over a few znodes.
 *
 * What each client checks as it goes (violations are collected and fail the run):
 * - reply zxids never go backwards (monotonic reads, across server moves);
 * - every read shows exactly the committed state at the zxid its reply carries (`CoordOracle`), so a
 *   read after the client's own write sees it;
 * - a watch fires once: no notification without a registered watch, and no reply at or past the
 *   change a watch announces before the notification itself;
 * - after being told its session expired, the client's ephemeral node is gone (checked through a new
 *   session after sync());
 * - some clients abandon their session without closing it: the liveness phase waits until the leader
 *   has expired it and its ephemeral nodes are gone.
 * Writes are recorded for the linearizability check (`znodeModel`).
 */
import type { HistoryRecorder } from '@dsys/check';
import type { NodeId, RequestId } from '@dsys/kit';
import type { ClientActor, ClientContext } from '@dsys/sim';
import type { CoordRequest, CoordResponse, MultiOp, Op, Result } from '../schema.js';
import { CreateMode, Err, EventType, formatZxid } from '../types.js';
import type { ZnodeInput, ZnodeOutput } from './model.js';
import type { CoordOracle } from './oracle.js';

export interface CoordWorkloadShared {
  readonly recorder: HistoryRecorder<ZnodeInput, ZnodeOutput>;
  readonly oracle: CoordOracle;
  readonly violations: string[];
  readonly keyCount: number;
  readonly livenessOps: number;
  readonly livenessDone: Map<number, number>;
  /** Sessions their clients walked away from, and when (virtual ms). */
  readonly abandoned: Map<number, number>;
  nextProcess: number;
  /** Every client actor, for status lines and debugging. */
  readonly clients: CoordSimClient[];
  stats: {
    writes: number;
    reads: number;
    notifications: number;
    expirations: number;
    moves: number;
    syncs: number;
    indeterminate: number;
    ephemeralChecks: number;
  };
}

type ConnResponse = Exclude<CoordResponse, { type: 'status' }>;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const PIPELINE_MAX = 3;

interface InFlight {
  readonly xid: number;
  readonly op: Op;
  /** History operation id for writes of the checked keys. */
  readonly historyId: number | null;
  readonly input: ZnodeInput | null;
  readonly watchKey: string | null;
  readonly purpose: 'work' | 'ephemeral' | 'ephemeralCheckSync' | 'ephemeralCheck';
}

interface Watch {
  readonly path: string;
  readonly kind: 'data' | 'child';
  /** The zxid of the reply that registered it. */
  readonly setAt: number;
  /** Registered by exists() on an absent node (SetWatches lists it as an exist watch). */
  readonly exist: boolean;
}

export class CoordSimClient implements ClientActor<CoordResponse> {
  private readonly context: ClientContext<CoordRequest>;
  private readonly shared: CoordWorkloadShared;
  private node: NodeId;
  private conn = 0;
  private state: 'idle' | 'connecting' | 'connected' = 'idle';
  private sessionId = 0;
  private password: Uint8Array = new Uint8Array(0);
  private timeoutMs: number;
  private lastZxidSeen = 0;
  private inExpected = 1;
  private readonly early = new Map<number, ConnResponse>();
  private outSeq = 0;
  private xidNext = 1;
  private inFlight: InFlight[] = [];
  private readonly watches = new Map<string, Watch>();
  private lastHeardMs = 0;
  private lastSentMs = 0;
  private timer: number | null = null;
  private gapSinceMs: number | null = null;
  private valueNext = 0;
  private liveness = false;
  private abandoned = false;
  private readonly abandons: boolean;
  /** An expired session whose ephemeral node must be seen gone (after sync, through the next session). */
  private pendingEphemeralCheck: { sessionId: number; path: string } | null = null;
  private ephemeralPath: string | null = null;
  private readonly versions = new Map<string, number>();

  constructor(context: ClientContext<CoordRequest>, shared: CoordWorkloadShared) {
    this.context = context;
    this.shared = shared;
    this.node = context.rng.pick(context.nodes);
    this.timeoutMs = context.rng.pick([600, 1000, 2000]);
    // A few clients walk away from their session mid-run (a crashed application).
    this.abandons = context.rng.chance(1, 5);
  }

  /** One line of the client's state (debugging). */
  describe(): string {
    const pending = this.inFlight.map((item) => `${item.op.type}#${item.xid}/${item.purpose}`).join(',');
    return `c${this.id} n${this.node} conn=${this.conn} ${this.state} session=${formatZxid(this.sessionId)} lastZxid=${formatZxid(this.lastZxidSeen)} in=${this.inExpected} early=${this.early.size} out=${this.outSeq} pending=[${pending}] watches=${this.watches.size} check=${this.pendingEphemeralCheck?.path ?? '-'} eph=${this.ephemeralPath ?? '-'} abandoned=${this.abandoned}`;
  }

  get hasAbandoned(): boolean {
    return this.abandoned;
  }

  private get id(): number {
    return this.context.id;
  }

  onStart(): void {
    this.connect();
    this.schedule(10);
  }

  onLiveness(): void {
    this.liveness = true;
  }

  private violate(message: string): void {
    this.shared.violations.push(`c${this.id} @${this.context.nowMs().toFixed(1)}ms: ${message}`);
  }

  private schedule(delayMs: number): void {
    if (this.timer !== null) this.context.cancelTimer(this.timer);
    this.timer = this.context.setTimer(delayMs);
  }

  // ----------------------------------------------------------------------------------------------
  // Connection management

  private connect(moveAway = false): void {
    if (this.abandoned) return;
    if (moveAway && this.context.nodes.length > 1) {
      const others = this.context.nodes.filter((node) => node !== this.node);
      this.node = this.context.rng.pick(others);
      if (this.sessionId !== 0) this.shared.stats.moves++;
    }
    this.conn++;
    this.state = 'connecting';
    this.inExpected = 1;
    this.early.clear();
    this.outSeq = 0;
    this.gapSinceMs = null;
    this.lastHeardMs = this.context.nowMs();
    this.context.send(this.node, {
      type: 'connect',
      conn: this.conn,
      sessionId: this.sessionId,
      password: this.password,
      timeoutMs: this.timeoutMs,
      lastZxidSeen: this.lastZxidSeen,
    });
  }

  /** The connection broke (silence, a gap, or the server closed it): pending requests have unknown fate. */
  private connectionLost(moveAway: boolean): void {
    if (this.state === 'connected' || this.state === 'connecting') {
      this.context.send(this.node, { type: 'disconnect', conn: this.conn });
    }
    for (const pending of this.inFlight) this.abandonOp(pending);
    this.inFlight = [];
    this.state = 'idle';
    this.connect(moveAway);
  }

  private abandonOp(pending: InFlight): void {
    if (pending.historyId !== null) {
      this.shared.recorder.info(pending.historyId);
      this.shared.stats.indeterminate++;
    }
  }

  private sessionExpired(): void {
    this.shared.stats.expirations++;
    const expired = this.sessionId;
    if (expired !== 0 && this.ephemeralPath !== null)
      this.pendingEphemeralCheck = { sessionId: expired, path: this.ephemeralPath };
    if (expired !== 0 && this.shared.oracle.ephemeralsOf(expired).length > 0) {
      this.violate(
        `told session ${formatZxid(expired)} expired while it still owns ${this.shared.oracle.ephemeralsOf(expired).join(' ')}`,
      );
    }
    if (expired !== 0 && !this.shared.oracle.closedAt.has(expired)) {
      this.violate(`told session ${formatZxid(expired)} expired, but no close was committed`);
    }
    this.sessionId = 0;
    this.password = new Uint8Array(0);
    this.ephemeralPath = null;
    this.watches.clear();
    for (const pending of this.inFlight) this.abandonOp(pending);
    this.inFlight = [];
    this.state = 'idle';
    this.connect(true);
  }

  onTimer(timer: number): void {
    if (timer !== this.timer) return;
    this.timer = null;
    const now = this.context.nowMs();
    if (this.abandoned) return;
    if (
      this.abandons &&
      !this.liveness &&
      this.state === 'connected' &&
      this.ephemeralPath !== null &&
      this.context.rng.chance(1, 200)
    ) {
      // Walk away: no close, no pings. The leader must expire the session.
      this.abandoned = true;
      this.shared.abandoned.set(this.sessionId, now);
      for (const pending of this.inFlight) this.abandonOp(pending);
      this.inFlight = [];
      return;
    }
    const silentMs = now - this.lastHeardMs;
    if (this.gapSinceMs !== null && now - this.gapSinceMs > 300) {
      this.connectionLost(true);
    } else if (this.state !== 'idle' && silentMs > (this.timeoutMs * 2) / 3) {
      this.connectionLost(true);
    } else if (this.state === 'connected') {
      if (now - this.lastSentMs > this.timeoutMs / 3) this.sendOp({ type: 'ping' }, -2);
      this.issueWork();
    }
    this.schedule(this.context.rng.between(5, 40));
  }

  // ----------------------------------------------------------------------------------------------
  // Requests

  private sendOp(op: Op, xid: number): void {
    this.outSeq++;
    this.lastSentMs = this.context.nowMs();
    this.context.send(this.node, { type: 'op', conn: this.conn, seq: this.outSeq, xid, op });
  }

  private request(
    op: Op,
    purpose: InFlight['purpose'],
    input: ZnodeInput | null = null,
    watchKey: string | null = null,
  ): void {
    const xid = this.xidNext++;
    let historyId: number | null = null;
    if (input !== null) {
      historyId = this.shared.recorder.invoke(this.shared.nextProcess++, input, this.context.nowMs());
      this.shared.stats.writes++;
    }
    this.inFlight.push({ xid, op, historyId, input, watchKey, purpose });
    this.sendOp(op, xid);
  }

  private key(): string {
    return `/k${this.context.rng.int(this.shared.keyCount)}`;
  }

  private value(): string {
    return `c${this.id}-${this.valueNext++}`;
  }

  private issueWork(): void {
    if (this.pendingEphemeralCheck !== null) {
      if (this.inFlight.length === 0) this.request({ type: 'sync', path: '/' }, 'ephemeralCheckSync');
      return;
    }
    if (this.ephemeralPath === null && this.inFlight.every((pending) => pending.purpose !== 'ephemeral')) {
      const mode = this.context.rng.boolean() ? CreateMode.EPHEMERAL : CreateMode.EPHEMERAL_SEQUENTIAL;
      this.request(
        { type: 'create', path: `/e${this.id}-`, data: encoder.encode('e'), mode, ttlMs: 0, withStat: false },
        'ephemeral',
      );
      return;
    }
    const depth = this.context.rng.between(1, PIPELINE_MAX);
    while (this.inFlight.length < depth) this.issueOne();
  }

  private issueOne(): void {
    const rng = this.context.rng;
    const key = this.key();
    const known = this.versions.get(key) ?? 0;
    const version = rng.chance(1, 2) ? -1 : rng.chance(3, 4) ? known : known + 1;
    switch (rng.int(10)) {
      case 0: {
        const value = this.value();
        const op: Op = {
          type: 'create',
          path: key,
          data: encoder.encode(value),
          mode: CreateMode.PERSISTENT,
          ttlMs: 0,
          withStat: false,
        };
        this.request(op, 'work', { type: 'create', key, value });
        return;
      }
      case 1:
        this.request({ type: 'delete', path: key, version }, 'work', { type: 'delete', key, version });
        return;
      case 2:
      case 3: {
        const value = this.value();
        this.request({ type: 'setData', path: key, data: encoder.encode(value), version }, 'work', {
          type: 'set',
          key,
          value,
          version,
          multi: false,
        });
        return;
      }
      case 4: {
        const value = this.value();
        const ops: MultiOp[] = [
          { type: 'check', path: key, version },
          { type: 'setData', path: key, data: encoder.encode(value), version: -1 },
        ];
        this.request({ type: 'multi', ops }, 'work', { type: 'set', key, value, version, multi: true });
        return;
      }
      case 5:
      case 6: {
        const watch = rng.chance(1, 2);
        this.request({ type: 'getData', path: key, watch }, 'work', null, watch ? `data:${key}` : null);
        return;
      }
      case 7: {
        const watch = rng.chance(1, 2);
        this.request({ type: 'exists', path: key, watch }, 'work', null, watch ? `data:${key}` : null);
        return;
      }
      case 8: {
        const watch = rng.chance(1, 2);
        this.request({ type: 'getChildren', path: '/', watch, withStat: true }, 'work', null, watch ? 'child:/' : null);
        return;
      }
      default:
        this.shared.stats.syncs++;
        this.request({ type: 'sync', path: '/' }, 'work');
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Responses

  onReply(node: NodeId, _requestId: RequestId, response: CoordResponse): void {
    if (response.type === 'status' || node !== this.node || response.conn !== this.conn || this.abandoned) return;
    if (response.seq < this.inExpected) return;
    this.early.set(response.seq, response);
    for (;;) {
      const next = this.early.get(this.inExpected);
      if (next === undefined) break;
      this.early.delete(this.inExpected);
      this.inExpected++;
      this.lastHeardMs = this.context.nowMs();
      const conn = this.conn;
      this.handle(next);
      if (next.type === 'closed' || this.state === 'idle' || conn !== this.conn) return;
    }
    this.gapSinceMs = this.early.size > 0 ? (this.gapSinceMs ?? this.context.nowMs()) : null;
  }

  private handle(response: ConnResponse): void {
    switch (response.type) {
      case 'connected':
        this.onConnected(response);
        return;
      case 'closed':
        if (response.expired) this.sessionExpired();
        else this.connectionLost(true);
        return;
      case 'event':
        this.onEvent(response);
        return;
      case 'reply':
        if (response.xid === -2) return;
        this.onOpReply(response);
        return;
    }
  }

  private onConnected(response: Extract<CoordResponse, { type: 'connected' }>): void {
    if (this.sessionId !== 0 && response.sessionId !== this.sessionId) {
      this.violate(`reconnected to session ${formatZxid(response.sessionId)} instead of ${formatZxid(this.sessionId)}`);
    }
    if (response.zxid < this.lastZxidSeen) {
      this.violate(
        `server n${this.node} accepted the session at zxid ${formatZxid(response.zxid)} behind the client's ${formatZxid(this.lastZxidSeen)}`,
      );
    }
    this.sessionId = response.sessionId;
    this.password = response.password;
    this.state = 'connected';

    if (this.watches.size > 0) {
      const data: string[] = [];
      const exist: string[] = [];
      const child: string[] = [];
      for (const watch of this.watches.values()) {
        if (watch.kind === 'child') child.push(watch.path);
        else if (watch.exist) exist.push(watch.path);
        else data.push(watch.path);
      }
      this.sendOp(
        {
          type: 'setWatches',
          relativeZxid: this.lastZxidSeen,
          data,
          exist,
          child,
          persistent: [],
          persistentRecursive: [],
        },
        -8,
      );
    }
  }

  private onEvent(event: Extract<CoordResponse, { type: 'event' }>): void {
    if (event.eventType === EventType.NONE) return;
    this.shared.stats.notifications++;
    const kind = event.eventType === EventType.NODE_CHILDREN_CHANGED ? 'child' : 'data';
    let key = `${kind}:${event.path}`;
    // A deletion fires both the data and the child watches of the path (one notification per session).
    if (event.eventType === EventType.NODE_DELETED && !this.watches.has(key)) key = `child:${event.path}`;
    const watch = this.watches.get(key);
    if (watch === undefined) {
      this.violate(`notification ${event.eventType} for ${event.path} without a watch (fired twice?)`);
      return;
    }
    this.watches.delete(key);
    if (event.eventType === EventType.NODE_DELETED) this.watches.delete(`data:${event.path}`);
    if (event.eventType === EventType.NODE_DELETED) this.watches.delete(`child:${event.path}`);
    const oracle = this.shared.oracle;
    const due =
      watch.kind === 'data'
        ? oracle.firstDataChangeAfter(watch.path, watch.setAt)
        : oracle.firstChildEventAfter(watch.path, watch.setAt);
    if (due === null)
      this.violate(
        `watch on ${watch.path} (set at ${formatZxid(watch.setAt)}) fired with no change committed after it`,
      );
  }

  private observeZxid(zxid: number, what: string): void {
    if (zxid < this.lastZxidSeen) {
      this.violate(`${what}: zxid ${formatZxid(zxid)} after ${formatZxid(this.lastZxidSeen)} (time went backwards)`);
    }
    this.lastZxidSeen = Math.max(this.lastZxidSeen, zxid);
    // A watch must fire before the client sees the change it announces.
    const oracle = this.shared.oracle;
    for (const watch of this.watches.values()) {
      const due =
        watch.kind === 'data'
          ? oracle.firstDataChangeAfter(watch.path, watch.setAt)
          : oracle.firstChildEventAfter(watch.path, watch.setAt);
      if (due !== null && due <= zxid) {
        this.violate(
          `${what} at ${formatZxid(zxid)} arrived before the ${watch.kind} watch on ${watch.path} fired (change at ${formatZxid(due)})`,
        );
        this.watches.delete(`${watch.kind}:${watch.path}`);
      }
    }
  }

  private onOpReply(reply: Extract<CoordResponse, { type: 'reply' }>): void {
    if (reply.xid === -8) {
      // ZooKeeper's SetWatches cannot tell that an absent node was created and deleted while the client
      // was away (no tombstones): such an exist watch starts over from the state SetWatches saw.
      for (const [key, watch] of this.watches) {
        if (watch.exist && !this.shared.oracle.stateAt(watch.path, reply.zxid).exists) {
          this.watches.set(key, { ...watch, setAt: Math.max(watch.setAt, reply.zxid) });
        }
      }
      return;
    }
    const pending = this.inFlight[0];
    if (pending === undefined || pending.xid !== reply.xid) {
      this.violate(`reply xid ${reply.xid} out of order (expected ${pending?.xid ?? 'none'})`);
      return;
    }
    this.inFlight.shift();
    this.observeZxid(reply.zxid, `reply to ${pending.op.type}`);
    if (this.liveness && pending.purpose === 'work')
      this.shared.livenessDone.set(this.id, (this.shared.livenessDone.get(this.id) ?? 0) + 1);
    switch (pending.purpose) {
      case 'ephemeral':
        if (reply.err === Err.OK && reply.result.type === 'created') this.ephemeralPath = reply.result.path;
        return;
      case 'ephemeralCheckSync':
        this.request({ type: 'getChildren', path: '/', watch: false, withStat: false }, 'ephemeralCheck');
        return;
      case 'ephemeralCheck': {
        const expired = this.pendingEphemeralCheck;
        this.pendingEphemeralCheck = null;
        this.shared.stats.ephemeralChecks++;
        if (reply.result.type !== 'children' || expired === null) return;
        const closedAt = this.shared.oracle.closedAt.get(expired.sessionId) ?? Number.POSITIVE_INFINITY;
        if (reply.zxid < closedAt)
          this.violate(
            `sync after expiry answered at ${formatZxid(reply.zxid)}, before the close at ${formatZxid(closedAt)}`,
          );
        if (reply.result.children.includes(expired.path.slice(1))) {
          this.violate(
            `ephemeral ${expired.path} of expired session ${formatZxid(expired.sessionId)} still listed after sync`,
          );
        }
        return;
      }
      case 'work':
        this.checkWork(pending, reply);
        return;
    }
  }

  private checkWork(pending: InFlight, reply: Extract<CoordResponse, { type: 'reply' }>): void {
    const op = pending.op;
    if (pending.input !== null && pending.historyId !== null) {
      this.shared.recorder.ok(pending.historyId, this.writeOutput(pending.input, reply), this.context.nowMs());
      return;
    }
    this.shared.stats.reads++;
    if (op.type === 'getData' || op.type === 'exists')
      this.checkRead(op.path, reply, op.type === 'exists' && op.watch, pending.watchKey);
    if (
      op.type === 'getChildren' &&
      reply.err === Err.OK &&
      pending.watchKey !== null &&
      !this.watches.has(pending.watchKey)
    ) {
      this.watches.set(pending.watchKey, { path: op.path, kind: 'child', setAt: reply.zxid, exist: false });
    }
  }

  private writeOutput(input: ZnodeInput, reply: Extract<CoordResponse, { type: 'reply' }>): ZnodeOutput {
    const result: Result = reply.result;
    if (result.type === 'multi') {
      const failed = result.results.find((item) => item.type === 'error' && item.err !== Err.OK);
      if (failed !== undefined && failed.type === 'error') return { type: 'err', code: failed.err };
      const set = result.results.find((item) => item.type === 'setData');
      if (set?.type === 'setData') {
        this.versions.set(input.key, set.stat.version);
        return { type: 'ok', version: set.stat.version };
      }
    }
    if (reply.err !== Err.OK) return { type: 'err', code: reply.err };
    if (result.type === 'stat') {
      this.versions.set(input.key, result.stat.version);
      return { type: 'ok', version: result.stat.version };
    }
    return { type: 'ok', version: input.type === 'create' ? 0 : -1 };
  }

  private checkRead(
    path: string,
    reply: Extract<CoordResponse, { type: 'reply' }>,
    existWatch: boolean,
    watchKey: string | null,
  ): void {
    const expected = this.shared.oracle.stateAt(path, reply.zxid);
    const present = reply.err === Err.OK;
    if (present !== expected.exists) {
      this.violate(
        `read of ${path} at ${formatZxid(reply.zxid)}: ${present ? 'present' : 'absent'}, committed state says ${expected.exists ? 'present' : 'absent'}`,
      );
    } else if (reply.result.type === 'data' || reply.result.type === 'stat') {
      const stat = reply.result.stat;
      const data = reply.result.type === 'data' ? decoder.decode(reply.result.data) : expected.data;
      if (stat.version !== expected.version || data !== expected.data) {
        this.violate(
          `read of ${path} at ${formatZxid(reply.zxid)}: ${JSON.stringify(data)} v${stat.version}, committed ${JSON.stringify(expected.data)} v${expected.version}`,
        );
      }
      this.versions.set(path, stat.version);
    }
    // getData on an absent node leaves no watch; exists leaves one either way.
    if (watchKey !== null && (present || existWatch) && !this.watches.has(watchKey)) {
      this.watches.set(watchKey, { path, kind: 'data', setAt: reply.zxid, exist: !present });
    }
  }
}

export function coordClient(context: ClientContext<CoordRequest>, shared: CoordWorkloadShared): CoordSimClient {
  const client = new CoordSimClient(context, shared);
  shared.clients.push(client);
  return client;
}
