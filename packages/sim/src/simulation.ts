/**
 * `Simulation`: hosts every node of one system in one process on virtual time, drives each node's
 * protocol honouring kit's effect-order contract, and injects network, disk, clock and crash faults
 * from the seed (or from a script, or from a test calling `crash`, `partition`, `heal`...).
 *
 * Everything happens in one event queue with a total order (time, then insertion), and every random
 * decision comes from a labelled fork of the seed's `Rng`:
 *   `net` (per-packet loss, duplication, latency tail), `net-links` (per-link profiles), `disk` then
 *   `node:<id>` (fsync latency, torn lengths), `node:<id>` (clock, then `boot:<n>` for the protocol),
 *   `faults` (swarm injector), `workload` (shared) and `workload`/`client:<id>` (each client),
 *   `config` (the system's config draw).
 * So the same seed replays the same trace, and adding a node does not shift anyone else's stream.
 *
 * The trace hash folds a few integers per event (kind, target, source, time, effect count and types),
 * never strings, so it costs little; `trace` (the `--trace` lines) is computed only when asked for and
 * never feeds the hash.
 */
import {
  assert,
  ClientId,
  decode,
  describeDecodeError,
  type Effect,
  type Event,
  encode,
  errorMessage,
  NodeId,
  RequestId,
  Rng,
  type Schema,
  TraceHasher,
  toJsonValue,
  Writer,
} from '@dsys/kit';
import { DiskCorruption, type DiskTicket, SimDisk } from './disk.js';
import { EventQueue, type SimEvent } from './event-queue.js';
import { SimFailure, type SimFailureCode } from './failure.js';
import { describeFault, drawFaults, type FaultAction, faultCode, type ScriptedFault } from './faults.js';
import { Network } from './network.js';
import { NEVER, type Ratio, type SimOptions, validateOptions } from './options.js';
import type { ClientActor, ClientContext, ClusterView, NodeView, Phase, SimSystem } from './system.js';

// Event kinds (numbers, folded into the trace hash).
const TICK = 1;
const RECEIVE = 2;
const REQUEST = 3;
const REPLY = 4;
const DISK = 5;
const PERSISTED = 6;
const TIMER = 7;
const CLIENT_START = 8;
const FAULT = 9;
const SCRIPT = 10;

function describePacket(kind: number, source: number, target: number): string {
  if (kind === REQUEST) return `request c${source} -> n${target}`;
  if (kind === REPLY) return `reply n${source} -> c${target}`;
  return `message n${source} -> n${target}`;
}

// Effect codes folded into the hash.
const EFFECT_SEND = 1;
const EFFECT_REPLY = 2;
const EFFECT_PERSIST = 3;
const EFFECT_COMPACT = 4;

/** Client 0 is the simulation's own client, driven by `Simulation.request` in tests. */
const TEST_CLIENT = 0;

export interface SimStats {
  events: number;
  ticks: number;
  messagesSent: number;
  messagesDelivered: number;
  /** Lost to the loss ratio. */
  droppedLoss: number;
  /** Dropped by a partition or one-way cut (at send or at delivery). */
  droppedCut: number;
  /** Arrived at a node that was down. */
  droppedDown: number;
  duplicated: number;
  requests: number;
  replies: number;
  syncs: number;
  crashes: number;
  restarts: number;
  /** Unsynced bytes lost in crashes. */
  bytesLost: number;
  /** Torn-tail bytes that recovery truncated. */
  bytesTruncated: number;
}

export interface SimulationInit {
  /** Receives one line per event (`--trace`); never affects the run or its hash. */
  readonly trace?: (line: string) => void;
  /** Faults to apply at given virtual times, in addition to the swarm injector (if enabled). */
  readonly script?: readonly ScriptedFault[];
}

/** A request sent by a test through `Simulation.request`; `response` is set when its reply arrives. */
export interface SimRequest<Response> {
  readonly node: NodeId;
  readonly requestId: RequestId;
  response: Response | undefined;
}

class SimNode<State> implements NodeView<State> {
  up = false;
  state: State | null = null;
  boots = 0;
  /** Bumped at every crash: events scheduled for an older incarnation are stale. */
  incarnation = 0;
  nextTickLocalUs = 0;
  readonly disk = new SimDisk();
  /** Disk operations (syncs, compactions) issued and completed; the disk completes them in order. */
  diskOpsIssued = 0;
  diskOpsDone = 0;
  /** The disk operation number of the newest barrier (synced persist, barrier compaction) issued. */
  lastBarrier = 0;
  /** Sends and replies waiting for disk operation `after` (a barrier) to be durable, oldest first. */
  held: { readonly after: number; readonly effect: Effect<unknown, unknown> }[] = [];

  constructor(
    readonly id: NodeId,
    /** The node's own stream; boot `n` gives the protocol `rng.fork('boot:n')`. */
    readonly rng: Rng,
    readonly diskRng: Rng,
    /** Local clock = offsetUs + floor(real µs * rate). */
    readonly rate: number,
    readonly offsetUs: number,
  ) {}
}

class SimClient<Request, Response, State, Message, Config, Shared> implements ClientContext<Request> {
  actor: ClientActor<Response> | null = null;
  requestIdNext = 1;
  timerNext = 1;
  readonly cancelled = new Set<number>();

  constructor(
    private readonly sim: Simulation<State, Message, Request, Response, Config, Shared>,
    readonly id: ClientId,
    readonly nodes: readonly NodeId[],
    readonly rng: Rng,
    readonly options: SimOptions,
  ) {}

  nowMs(): number {
    return this.sim.nowMs;
  }

  phase(): Phase {
    return this.sim.phase;
  }

  send(node: NodeId, request: Request): RequestId {
    return this.sim.clientSend(this.id, node, request);
  }

  setTimer(delayMs: number): number {
    return this.sim.clientTimer(this.id, delayMs);
  }

  cancelTimer(timer: number): void {
    this.cancelled.add(timer);
  }
}

export class Simulation<State, Message, Request, Response, Config, Shared> {
  readonly config: Config;
  readonly shared: Shared;
  readonly network: Network;
  readonly stats: SimStats = {
    events: 0,
    ticks: 0,
    messagesSent: 0,
    messagesDelivered: 0,
    droppedLoss: 0,
    droppedCut: 0,
    droppedDown: 0,
    duplicated: 0,
    requests: 0,
    replies: 0,
    syncs: 0,
    crashes: 0,
    restarts: 0,
    bytesLost: 0,
    bytesTruncated: 0,
  };
  /** What global invariants and `converged` see. */
  readonly view: ClusterView<State>;

  private readonly queue = new EventQueue();
  private readonly hasher = new TraceHasher();
  private readonly nodes: SimNode<State>[] = [];
  private readonly peers: readonly NodeId[];
  private readonly clients: SimClient<Request, Response, State, Message, Config, Shared>[] = [];
  private readonly testRequests = new Map<number, SimRequest<Response>>();
  private testRequestIdNext = 1;
  private readonly faultRng: Rng;
  private readonly tickUs: number;
  private readonly trace: ((line: string) => void) | undefined;
  private readonly writer = new Writer();
  private nowUs = 0;
  private phaseValue: Phase = 'safety';
  private failure: SimFailure | null = null;
  /** The node being stepped, for failure reports. */
  private activeNode: number | null = null;

  constructor(
    readonly system: SimSystem<State, Message, Request, Response, Config, Shared>,
    readonly options: SimOptions,
    init: SimulationInit = {},
  ) {
    validateOptions(options);
    if (options.wireCodec && system.codec === undefined)
      throw new RangeError(`sim option wireCodec: system ${system.name} has no codec`);
    this.trace = init.trace;
    this.tickUs = Math.max(1, Math.round(options.tickMs * 1000));
    const root = Rng.fromSeed(options.seed);
    this.faultRng = root.fork('faults');
    this.network = new Network(
      root.fork('net'),
      root.fork('net-links'),
      options.nodeCount,
      options.clientCount,
      Math.round(options.latencyMsMin * 1000),
      Math.round(options.latencyMsMax * 1000),
      options.latencyTailMsMean * 1000,
      options.lossRatio,
      options.duplicateRatio,
    );
    const peers: NodeId[] = [];
    for (let id = 1; id <= options.nodeCount; id++) peers.push(NodeId(id));
    this.peers = Object.freeze(peers);
    this.config = system.config(options, root.fork('config'));
    const view = { nowMs: 0, phase: 'safety' as Phase, nodes: this.nodes as readonly NodeView<State>[] };
    this.view = Object.defineProperties(view, {
      nowMs: { get: () => this.nowUs / 1000 },
      phase: { get: () => this.phaseValue },
    });
    this.createNodes(root);
    this.shared = system.workload.init({ options, rng: root.fork('workload') });
    this.guard(null, 'STEP', () => {
      for (const node of this.nodes) this.boot(node);
    });
    this.createClients(root.fork('workload'));
    if (options.faultIntervalMs > 0) this.schedule(this.msToUs(options.faultIntervalMs), FAULT, 0, 0, 0, 0, null);
    for (const scripted of init.script ?? []) {
      assert(scripted.atMs >= 0, `script: negative time ${scripted.atMs}`);
      this.schedule(this.msToUs(scripted.atMs), SCRIPT, 0, 0, 0, 0, scripted.action);
    }
  }

  private msToUs(ms: number): number {
    return Math.round(ms * 1000);
  }

  private createNodes(root: Rng): void {
    const diskRoot = root.fork('disk');
    const { clockDriftPpmMax, clockOffsetMsMax } = this.options;
    for (let id = 1; id <= this.options.nodeCount; id++) {
      const rng = root.fork(`node:${id}`);
      const clock = rng.fork('clock');
      const driftPpm = clockDriftPpmMax === 0 ? 0 : clock.between(-clockDriftPpmMax, clockDriftPpmMax);
      const offsetUs = clock.int(Math.round(clockOffsetMsMax * 1000) + 1);
      this.nodes.push(new SimNode<State>(NodeId(id), rng, diskRoot.fork(`node:${id}`), 1 + driftPpm / 1e6, offsetUs));
    }
  }

  private createClients(workloadRng: Rng): void {
    for (let id = 1; id <= this.options.clientCount; id++) {
      const rng = workloadRng.fork(`client:${id}`);
      const client = new SimClient(this, ClientId(id), this.peers, rng, this.options);
      this.clients.push(client);
      client.actor = this.system.workload.client(client, this.shared);
      // Clients start within the first millisecond, in a seed-drawn order.
      this.schedule(rng.int(1000), CLIENT_START, id, 0, 0, 0, null);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Public API: time.

  get nowMs(): number {
    return this.nowUs / 1000;
  }

  get phase(): Phase {
    return this.phaseValue;
  }

  get seed(): bigint {
    return this.options.seed;
  }

  /** The running trace hash (hex); equal seeds give equal hashes. */
  traceHash(): string {
    return this.hasher.digest();
  }

  /** Runs every event up to `nowMs + ms`, then sets the clock there. */
  runFor(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`runFor: ms must be >= 0, got ${ms}`);
    const deadlineUs = this.nowUs + this.msToUs(ms);
    while (this.processNext(deadlineUs)) {}
    this.nowUs = Math.max(this.nowUs, deadlineUs);
  }

  /**
   * Runs until `predicate()` holds (checked after every event), within `ticksMax` ticks of virtual
   * time (or `msMax`). Returns false if the budget ran out first.
   */
  tryRunUntil(predicate: () => boolean, limit: { readonly ticksMax?: number; readonly msMax?: number }): boolean {
    const budgetUs =
      limit.msMax !== undefined ? this.msToUs(limit.msMax) : (limit.ticksMax ?? Number.NaN) * this.tickUs;
    if (!(budgetUs >= 0)) throw new RangeError('runUntil: give ticksMax or msMax (non-negative)');
    const deadlineUs = this.nowUs + budgetUs;
    while (!predicate()) {
      if (!this.processNext(deadlineUs)) {
        this.nowUs = Math.max(this.nowUs, deadlineUs);
        return predicate();
      }
    }
    return true;
  }

  /** As `tryRunUntil`, but a budget overrun throws a `SimFailure` (code TIMEOUT) naming the seed. */
  runUntil(
    predicate: () => boolean,
    limit: { readonly ticksMax?: number; readonly msMax?: number; readonly what?: string },
  ): void {
    if (this.tryRunUntil(predicate, limit)) return;
    const budget = limit.msMax !== undefined ? `${limit.msMax} ms` : `${limit.ticksMax} ticks`;
    throw this.fail('TIMEOUT', null, `${limit.what ?? 'condition'} not reached within ${budget}`);
  }

  // ---------------------------------------------------------------------------------------------
  // Public API: inspection.

  node(id: number): NodeView<State> {
    return this.simNode(id);
  }

  /** The state of an up node (throws if it is down). */
  state(id: number): State {
    const node = this.simNode(id);
    if (!node.up || node.state === null) throw new RangeError(`n${id} is down`);
    return node.state;
  }

  /** Durable log bytes of a node (record-log framed), for tests of the disk model. */
  durableLogBytes(id: number): Uint8Array {
    return this.simNode(id).disk.durableBytes();
  }

  get nodeIds(): readonly NodeId[] {
    return this.peers;
  }

  private simNode(id: number): SimNode<State> {
    const node = this.nodes[id - 1];
    if (node === undefined || !Number.isInteger(id))
      throw new RangeError(`no node n${id} (cluster of ${this.nodes.length})`);
    return node;
  }

  // ---------------------------------------------------------------------------------------------
  // Public API: faults (tests and scripts). All go through `applyFault` so they trace and hash alike.

  crash(id: number, options: { readonly torn?: boolean } = {}): void {
    this.applyFault({ type: 'crash', node: id, torn: options.torn === true });
  }

  restart(id: number): void {
    this.applyFault({ type: 'restart', node: id });
  }

  /** Nodes in different groups cannot talk (both ways); nodes in no group form one more group. */
  partition(...groups: readonly (readonly number[])[]): void {
    this.applyFault({ type: 'partition', groups });
  }

  /** One-way cut: packets from `from` to `to` are dropped. */
  cut(from: number, to: number): void {
    this.applyFault({ type: 'cut', from, to });
  }

  heal(): void {
    this.applyFault({ type: 'heal' });
  }

  setLoss(value: Ratio): void {
    this.applyFault({ type: 'loss', ratio: value });
  }

  setDuplicate(value: Ratio): void {
    this.applyFault({ type: 'duplicate', ratio: value });
  }

  applyFault(action: FaultAction): void {
    this.foldFault(action);
    if (this.trace !== undefined) this.trace(`${this.timeText()} fault ${describeFault(action)}`);
    switch (action.type) {
      case 'crash':
        this.crashNode(this.simNode(action.node), action.torn === true);
        return;
      case 'restart':
        this.restartNode(this.simNode(action.node));
        return;
      case 'partition':
        this.partitionGroups(action.groups);
        return;
      case 'cut':
        this.simNode(action.from);
        this.simNode(action.to);
        this.network.setCut(action.from - 1, action.to - 1, true);
        return;
      case 'heal':
        this.network.heal();
        return;
      case 'loss':
        this.network.lossRatio = action.ratio;
        return;
      case 'duplicate':
        this.network.duplicateRatio = action.ratio;
        return;
    }
  }

  private foldFault(action: FaultAction): void {
    const node = action.type === 'crash' || action.type === 'restart' ? action.node : 0;
    this.hasher
      .word(faultCode(action))
      .word(node)
      .word(this.nowUs >>> 0);
  }

  private partitionGroups(groups: readonly (readonly number[])[]): void {
    const groupOf = new Array<number>(this.nodes.length).fill(groups.length);
    groups.forEach((group, index) => {
      for (const id of group) {
        this.simNode(id);
        if (groupOf[id - 1] !== groups.length) throw new RangeError(`partition: n${id} is in two groups`);
        groupOf[id - 1] = index;
      }
    });
    for (let from = 0; from < this.nodes.length; from++) {
      for (let to = 0; to < this.nodes.length; to++) {
        if (groupOf[from] !== groupOf[to]) this.network.setCut(from, to, true);
      }
    }
  }

  private crashNode(node: SimNode<State>, torn: boolean): void {
    if (!node.up) throw new RangeError(`crash: n${node.id} is already down`);
    node.up = false;
    node.state = null;
    node.incarnation++;
    node.held = [];
    node.diskOpsIssued = 0;
    node.diskOpsDone = 0;
    node.lastBarrier = 0;
    const rng = node.diskRng;
    const report = node.disk.crash(torn ? (unsynced) => (unsynced < 2 ? 0 : rng.between(1, unsynced - 1)) : null);
    node.disk.busyUntilUs = this.nowUs;
    this.stats.crashes++;
    this.stats.bytesLost += report.bytesLost;
  }

  private restartNode(node: SimNode<State>): void {
    if (node.up) throw new RangeError(`restart: n${node.id} is up`);
    this.guard(node.id, 'STEP', () => this.boot(node));
    this.stats.restarts++;
  }

  /** Recovers the node's disk with kit's `scanRecords` and starts its protocol from that. */
  private boot(node: SimNode<State>): void {
    let recovery: ReturnType<SimDisk['recover']>;
    try {
      recovery = node.disk.recover();
    } catch (error) {
      if (error instanceof DiskCorruption) throw this.fail('DISK', node.id, error.message);
      throw error;
    }
    this.stats.bytesTruncated += recovery.bytesTruncated;
    node.boots++;
    const localUs = this.localUs(node);
    this.activeNode = node.id;
    const state = this.system.protocol.init({
      id: node.id,
      peers: this.peers,
      config: this.config,
      rng: node.rng.fork(`boot:${node.boots}`),
      durable: recovery.durable,
      nowMs: localUs / 1000,
    });
    node.state = state;
    node.up = true;
    this.checkInvariants(node);
    // The first tick comes at a seed-drawn phase so that nodes do not tick in lockstep.
    node.nextTickLocalUs = localUs + 1 + node.rng.fork(`boot:${node.boots}:phase`).int(this.tickUs);
    this.scheduleTick(node);
  }

  /** Ends the safety phase: heal every link, stop loss, restart every down node, stop injecting faults. */
  enterLiveness(): void {
    assert(this.phaseValue === 'safety', `enterLiveness: phase is ${this.phaseValue}`);
    this.phaseValue = 'liveness';
    if (this.trace !== undefined) this.trace(`${this.timeText()} phase liveness`);
    this.heal();
    this.setLoss(NEVER);
    for (const node of this.nodes) if (!node.up) this.restart(node.id);
    for (const client of this.clients) {
      const actor = client.actor;
      if (actor?.onLiveness !== undefined) this.guard(null, 'WORKLOAD', () => actor.onLiveness!());
    }
  }

  /** Ends the run: clients see phase 'done' and the workload's check may run. */
  finish(): void {
    this.phaseValue = 'done';
  }

  // ---------------------------------------------------------------------------------------------
  // The test client (client 0): requests from tests, across the same network.

  request(node: number, request: Request): SimRequest<Response> {
    this.simNode(node);
    const requestId = RequestId(this.testRequestIdNext++);
    const handle: SimRequest<Response> = { node: NodeId(node), requestId, response: undefined };
    this.testRequests.set(requestId, handle);
    this.transmitRequest(TEST_CLIENT, NodeId(node), requestId, request);
    return handle;
  }

  /** @internal Called by client contexts. */
  clientSend(client: ClientId, node: NodeId, request: Request): RequestId {
    this.simNode(node);
    const state = this.clients[client - 1]!;
    const requestId = RequestId(state.requestIdNext++);
    this.transmitRequest(client, node, requestId, request);
    return requestId;
  }

  /** @internal Called by client contexts. */
  clientTimer(client: ClientId, delayMs: number): number {
    if (!(delayMs >= 0)) throw new RangeError(`setTimer: delayMs must be >= 0, got ${delayMs}`);
    const state = this.clients[client - 1]!;
    const timer = state.timerNext++;
    this.schedule(this.nowUs + Math.max(1, this.msToUs(delayMs)), TIMER, client, timer, 0, 0, null);
    return timer;
  }

  // ---------------------------------------------------------------------------------------------
  // The event loop.

  private schedule(
    timeUs: number,
    kind: number,
    target: number,
    source: number,
    incarnation: number,
    index: number,
    payload: unknown,
  ): SimEvent {
    const event = this.queue.allocate();
    event.timeUs = timeUs;
    event.kind = kind;
    event.target = target;
    event.source = source;
    event.incarnation = incarnation;
    event.index = index;
    event.payload = payload;
    this.queue.push(event);
    return event;
  }

  /** Processes the next event if it is due by `deadlineUs`; false when there is none. */
  private processNext(deadlineUs: number): boolean {
    if (this.failure !== null) throw this.failure;
    const event = this.queue.peek();
    if (event === undefined || event.timeUs > deadlineUs) return false;
    this.queue.pop();
    this.nowUs = event.timeUs;
    this.stats.events++;
    this.hasher
      .word(event.kind)
      .word(event.target)
      .word(event.source)
      .word(event.timeUs >>> 0);
    try {
      this.dispatch(event);
    } catch (error) {
      throw this.failFromError(error);
    }
    this.queue.release(event);
    return true;
  }

  private dispatch(event: SimEvent): void {
    switch (event.kind) {
      case TICK:
        this.onTick(event);
        return;
      case RECEIVE:
        this.onReceive(event);
        return;
      case REQUEST:
        this.onRequest(event);
        return;
      case REPLY:
        this.onReply(event);
        return;
      case DISK:
        this.onDisk(event);
        return;
      case PERSISTED:
        this.onPersisted(event);
        return;
      case TIMER:
        this.onTimer(event);
        return;
      case CLIENT_START:
        this.onClientStart(event);
        return;
      case FAULT:
        this.onFault();
        return;
      case SCRIPT:
        this.guard(null, 'SCRIPT', () => this.applyFault(event.payload as FaultAction));
        return;
    }
    assert(false, `unknown event kind ${event.kind}`);
  }

  private localUs(node: SimNode<State>): number {
    return node.offsetUs + Math.floor(this.nowUs * node.rate);
  }

  private scheduleTick(node: SimNode<State>): void {
    const realUs = Math.ceil((node.nextTickLocalUs - node.offsetUs) / node.rate);
    this.schedule(Math.max(this.nowUs + 1, realUs), TICK, node.id, 0, node.incarnation, 0, null);
  }

  private onTick(event: SimEvent): void {
    const node = this.nodes[event.target - 1]!;
    if (event.incarnation !== node.incarnation || !node.up) return;
    node.nextTickLocalUs += this.tickUs;
    this.scheduleTick(node);
    this.stats.ticks++;
    if (this.trace !== undefined) this.trace(`${this.timeText()} n${node.id} tick`);
    this.step(node, { type: 'tick', nowMs: this.localUs(node) / 1000 });
  }

  private onReceive(event: SimEvent): void {
    const node = this.nodes[event.target - 1]!;
    const from = event.source;
    if (!node.up) {
      this.drop(event, 'down');
      return;
    }
    // A partition cuts the wire: packets in flight when it started are lost too.
    if (this.network.isCut(from - 1, node.id - 1)) {
      this.drop(event, 'cut');
      return;
    }
    const message = this.decodeIfWired(this.system.codec?.message, event.payload, node.id) as Message;
    this.stats.messagesDelivered++;
    if (this.trace !== undefined) this.trace(`${this.timeText()} n${node.id} receive from n${from} ${show(message)}`);
    this.step(node, { type: 'receive', from: NodeId(from), message });
  }

  private onRequest(event: SimEvent): void {
    const node = this.nodes[event.target - 1]!;
    if (!node.up) {
      this.drop(event, 'down');
      return;
    }
    const request = this.decodeIfWired(this.system.codec?.request, event.payload, node.id) as Request;
    this.stats.requests++;
    if (this.trace !== undefined) {
      this.trace(`${this.timeText()} n${node.id} request c${event.source}#${event.index} ${show(request)}`);
    }
    this.step(node, {
      type: 'request',
      client: ClientId(event.source),
      requestId: RequestId(event.index),
      request,
    });
  }

  private onReply(event: SimEvent): void {
    const response = this.decodeIfWired(this.system.codec?.response, event.payload, event.source) as Response;
    this.stats.replies++;
    if (this.trace !== undefined) {
      this.trace(`${this.timeText()} c${event.target} reply #${event.index} from n${event.source} ${show(response)}`);
    }
    if (event.target === TEST_CLIENT) {
      const handle = this.testRequests.get(event.index);
      if (handle !== undefined && handle.response === undefined) handle.response = response;
      return;
    }
    const actor = this.clients[event.target - 1]!.actor!;
    this.guard(null, 'WORKLOAD', () => actor.onReply(NodeId(event.source), RequestId(event.index), response));
  }

  private onDisk(event: SimEvent): void {
    const node = this.nodes[event.target - 1]!;
    if (event.incarnation !== node.incarnation) return;
    this.activeNode = node.id;
    const acks = node.disk.complete(event.payload as DiskTicket);
    this.stats.syncs++;
    if (this.trace !== undefined) this.trace(`${this.timeText()} n${node.id} disk durable (${acks.length} acks)`);
    // The barrier is durable: run the sends and replies that waited for it, then report the acks.
    assert(event.index === node.diskOpsDone + 1, `n${node.id}: disk operations must complete in issue order`);
    node.diskOpsDone = event.index;
    let released = 0;
    while (released < node.held.length && node.held[released]!.after <= node.diskOpsDone) released++;
    const ready = node.held.splice(0, released);
    for (const { effect } of ready) this.runMessageEffect(node, effect as Effect<Message, Response>);
    for (const ack of acks) this.schedule(this.nowUs, PERSISTED, node.id, ack, node.incarnation, 0, null);
  }

  private onPersisted(event: SimEvent): void {
    const node = this.nodes[event.target - 1]!;
    if (event.incarnation !== node.incarnation || !node.up) return;
    if (this.trace !== undefined) this.trace(`${this.timeText()} n${node.id} persisted ack=${event.source}`);
    this.step(node, { type: 'persisted', ack: event.source });
  }

  private onTimer(event: SimEvent): void {
    const client = this.clients[event.target - 1]!;
    if (client.cancelled.delete(event.source)) return;
    if (this.trace !== undefined) this.trace(`${this.timeText()} c${client.id} timer ${event.source}`);
    const actor = client.actor!;
    this.guard(null, 'WORKLOAD', () => actor.onTimer(event.source));
  }

  private onClientStart(event: SimEvent): void {
    const actor = this.clients[event.target - 1]!.actor!;
    if (this.trace !== undefined) this.trace(`${this.timeText()} c${event.target} start`);
    this.guard(null, 'WORKLOAD', () => actor.onStart());
  }

  private onFault(): void {
    if (this.phaseValue !== 'safety') return;
    const up: number[] = [];
    const down: number[] = [];
    for (const node of this.nodes) (node.up ? up : down).push(node.id);
    for (const action of drawFaults(this.faultRng, this.options, up, down, this.network.cuts)) this.applyFault(action);
    this.schedule(this.nowUs + this.msToUs(this.options.faultIntervalMs), FAULT, 0, 0, 0, 0, null);
  }

  private drop(event: SimEvent, why: 'down' | 'cut'): void {
    if (why === 'down') this.stats.droppedDown++;
    else this.stats.droppedCut++;
    if (this.trace !== undefined) {
      const what = event.kind === RECEIVE ? `message from n${event.source}` : `request from c${event.source}`;
      this.trace(`${this.timeText()} n${event.target} drop ${what} (${why})`);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Stepping a node and carrying out its effects (kit/src/protocol.ts, effect-order contract).

  private step(node: SimNode<State>, event: Event<Message, Request>): void {
    this.activeNode = node.id;
    const effects = this.system.protocol.step(node.state as State, event);
    this.checkInvariants(node);
    this.runEffects(node, effects);
    this.activeNode = null;
  }

  private checkInvariants(node: SimNode<State>): void {
    try {
      this.system.protocol.invariants(node.state as State);
    } catch (error) {
      throw this.fail('INVARIANT', node.id, errorMessage(error));
    }
    if (this.system.invariantsGlobal === undefined) return;
    try {
      this.system.invariantsGlobal(this.view);
    } catch (error) {
      throw this.fail('GLOBAL_INVARIANT', node.id, errorMessage(error));
    }
  }

  /**
   * Carries out a step's effects under kit's effect-order contract, the same way runtime-node does:
   * storage effects go to the (FIFO) disk at once, in order, across steps; a synced persist or a
   * barrier compaction is a barrier, and every later send or reply, of this step or a later one, waits until
   * all barriers issued before it are durable (`onDisk` releases them). Effects before a barrier are
   * not delayed.
   */
  private runEffects(node: SimNode<State>, effects: readonly Effect<Message, Response>[]): void {
    const hasher = this.hasher;
    hasher.word(effects.length);
    for (let i = 0; i < effects.length; i++) {
      const effect = effects[i]!;
      switch (effect.type) {
        case 'send':
        case 'reply':
          if (node.diskOpsDone < node.lastBarrier) {
            node.held.push({ after: node.lastBarrier, effect: effect as Effect<unknown, unknown> });
          } else {
            this.runMessageEffect(node, effect);
          }
          break;
        case 'persist':
          hasher.word(EFFECT_PERSIST).word(effect.records.length);
          node.disk.append(effect.records, effect.ack);
          if (effect.sync) this.scheduleDisk(node, node.disk.sync(), true);
          break;
        case 'compact':
          hasher.word(EFFECT_COMPACT).word(effect.records.length);
          this.scheduleDisk(node, node.disk.compact(effect.snapshot, effect.records, effect.ack), effect.barrier);
          break;
        default:
          assert(false, `n${node.id} returned an unknown effect ${JSON.stringify(effect)}`);
      }
    }
  }

  private runMessageEffect(node: SimNode<State>, effect: Effect<Message, Response>): void {
    if (effect.type === 'send') {
      this.hasher.word(EFFECT_SEND).word(effect.to);
      this.sendMessage(node, effect.to, effect.message);
    } else if (effect.type === 'reply') {
      this.hasher.word(EFFECT_REPLY).word(effect.client);
      this.sendReply(node, effect.client, effect.requestId, effect.response);
    }
  }

  private scheduleDisk(node: SimNode<State>, ticket: DiskTicket, barrier: boolean): void {
    const { diskLatencyMsMin, diskLatencyMsMax } = this.options;
    const minUs = this.msToUs(diskLatencyMsMin);
    const latencyUs = minUs + node.diskRng.int(this.msToUs(diskLatencyMsMax) - minUs + 1);
    // The disk is FIFO: this operation completes after every earlier one.
    const doneUs = Math.max(this.nowUs, node.disk.busyUntilUs) + Math.max(1, latencyUs);
    node.disk.busyUntilUs = doneUs;
    node.diskOpsIssued++;
    if (barrier) node.lastBarrier = node.diskOpsIssued;
    this.schedule(doneUs, DISK, node.id, 0, node.incarnation, node.diskOpsIssued, ticket);
  }

  private sendMessage(node: SimNode<State>, to: NodeId, message: Message): void {
    if (!(Number.isInteger(to) && to >= 1 && to <= this.nodes.length))
      assert(false, `n${node.id} sends to unknown node ${to}`);
    this.stats.messagesSent++;
    const from = node.id - 1;
    const target = to - 1;
    if (this.network.isCut(from, target)) {
      this.stats.droppedCut++;
      if (this.trace !== undefined) this.trace(`${this.timeText()} n${node.id} -> n${to} cut ${show(message)}`);
      return;
    }
    const payload = this.encodeIfWired(this.system.codec?.message, message, node.id);
    this.transmit(from, target, RECEIVE, to, node.id, 0, payload, true);
  }

  private sendReply(node: SimNode<State>, client: ClientId, requestId: RequestId, response: Response): void {
    if (!(Number.isInteger(client) && client >= 0 && client <= this.clients.length)) {
      assert(false, `n${node.id} replies to unknown client ${client}`);
    }
    const payload = this.encodeIfWired(this.system.codec?.response, response, node.id);
    this.transmit(
      node.id - 1,
      this.network.endpointOfClient(client),
      REPLY,
      client,
      node.id,
      requestId,
      payload,
      false,
    );
  }

  private transmitRequest(client: number, node: NodeId, requestId: RequestId, request: Request): void {
    const payload = this.encodeIfWired(this.system.codec?.request, request, null);
    const from = this.network.endpointOfClient(client);
    this.transmit(from, node - 1, REQUEST, node, client, requestId, payload, false);
  }

  /**
   * One packet onto a link: maybe lost, delayed by the link's distribution, maybe duplicated
   * (node-to-node only: client links model one TCP connection, which may drop but never duplicates).
   */
  private transmit(
    from: number,
    to: number,
    kind: number,
    target: number,
    source: number,
    index: number,
    payload: unknown,
    mayDuplicate: boolean,
  ): void {
    const delayUs = this.network.delayUs(from, to);
    if (delayUs < 0) {
      this.stats.droppedLoss++;
      if (this.trace !== undefined) this.trace(`${this.timeText()} ${describePacket(kind, source, target)} lost`);
    } else this.schedule(this.nowUs + delayUs, kind, target, source, 0, index, payload);
    if (mayDuplicate && this.network.duplicates()) {
      const againUs = this.network.delayUs(from, to);
      if (againUs >= 0) {
        this.stats.duplicated++;
        this.schedule(this.nowUs + againUs, kind, target, source, 0, index, payload);
      }
    }
  }

  private encodeIfWired<T>(schema: Schema<T> | undefined, value: T, node: number | null): unknown {
    if (!this.options.wireCodec || schema === undefined) return value;
    const problem = schema.check(value, '$');
    if (problem !== null) throw this.fail('CODEC', node, `value does not match its schema: ${problem}`);
    return encode(schema, value, this.writer);
  }

  private decodeIfWired<T>(schema: Schema<T> | undefined, payload: unknown, node: number | null): unknown {
    if (!this.options.wireCodec || schema === undefined) return payload;
    const decoded = decode(schema, payload as Uint8Array);
    if (!decoded.ok) throw this.fail('CODEC', node, `bytes do not decode: ${describeDecodeError(decoded.error)}`);
    return decoded.value;
  }

  // ---------------------------------------------------------------------------------------------
  // Failures.

  /** Runs `body`, turning anything it throws into a SimFailure of `code`. */
  private guard(node: number | null, code: SimFailureCode, body: () => void): void {
    try {
      body();
    } catch (error) {
      if (error instanceof SimFailure) throw error;
      throw this.fail(code, node ?? this.activeNode, errorMessage(error));
    }
  }

  private failFromError(error: unknown): SimFailure {
    if (error instanceof SimFailure) {
      this.failure ??= error;
      return error;
    }
    const stack = error instanceof Error && error.stack !== undefined ? `\n${error.stack}` : '';
    return this.fail('STEP', this.activeNode, `${errorMessage(error)}${stack}`);
  }

  /** Records (the first) failure; the simulation refuses to run further. */
  fail(code: SimFailureCode, node: number | null, message: string): SimFailure {
    const failure = new SimFailure({
      code,
      system: this.system.name,
      seed: this.options.seed,
      timeMs: this.nowUs / 1000,
      node,
      message,
    });
    this.failure ??= failure;
    return failure;
  }

  get failed(): SimFailure | null {
    return this.failure;
  }

  private timeText(): string {
    return (this.nowUs / 1000).toFixed(3);
  }

  /** One status line (VOPR style): time, phase, progress, faults in force, workload words. */
  statusLine(): string {
    const up = this.nodes.filter((node) => node.up).length;
    const workload = this.system.workload.status?.(this.shared);
    const seconds = (this.nowUs / 1e6).toFixed(1).padStart(7);
    return (
      `[${seconds}s] ${this.phaseValue.padEnd(8)} events=${this.stats.events} up=${up}/${this.nodes.length} ` +
      `cuts=${this.network.cuts} crashes=${this.stats.crashes}` +
      (workload === undefined ? '' : ` | ${workload}`)
    );
  }
}

function show(value: unknown): string {
  return JSON.stringify(toJsonValue(value));
}
