/**
 * A Chord node as a real process: the same `chordProtocol` the simulator runs, driven by a timer
 * (ticks), an @dsys/rpc server (peer messages and client calls), and RPC connections to the peers it
 * learns about. A node's address is its TCP endpoint packed into a `NodeId` (address.ts), so a
 * successor list names endpoints and no directory is needed.
 *
 * Sending is fire-and-forget: a `deliver` call that fails (peer down, connection refused, deadline)
 * is counted and dropped; the protocol's own RPC timeouts are the failure detector, as in the
 * simulator. Steps never nest: self-sends and replies go through later turns of the event loop.
 *
 * Durability (`dataDir`): the node keeps its items in a @dsys/runtime-node `DurableLog` (group commit,
 * fsync, snapshots on compaction) and carries out the protocol's effects through its `EffectPipeline`,
 * so the kit effect-order contract holds: a replica acknowledges a copy, and a primary a put, only
 * after the copy is fsynced (store.ts puts a synced barrier before every acknowledgement). A restart
 * on the same directory takes back the same `host:port` (its identity: the ring identifiers are
 * hashes of it), reloads the items and rejoins; the replication rules then reconcile its copies with
 * the ring (copies it is no replica of are handed to their primary, and dropped only once it has
 * them). Without `dataDir` items live in memory only.
 */
import { randomBytes } from 'node:crypto';
import { assert, ClientId, type Durable, EMPTY_DURABLE, errorMessage, type NodeId, RequestId, Rng } from '@dsys/kit';
import { connect, type HandlersOf, type RpcConnection, type RunningServer, serve } from '@dsys/rpc';
import { DurableLog, EffectPipeline, Logger } from '@dsys/runtime-node';
import { addressName, ipv4Address, ipv4Endpoint } from '../address.js';
import { CHORD_CONFIG_DEFAULT, type ChordConfig } from '../config.js';
import type { ChordMessage, ChordRequest, ChordResponse } from '../messages.js';
import { type ChordEvent, chordProtocol } from '../protocol.js';
import type { ChordState, RangeEvent } from '../state.js';
import { recoveredName } from '../store.js';
import { type ChordService, chordService } from './service.js';

export interface ChordNodeOptions {
  readonly host: string;
  /** 0 picks a free port, or the one the data directory's node had. */
  readonly port: number;
  /** `host:port` of ring members to join through (tried in turn); empty creates a new ring. */
  readonly join: readonly string[];
  /** Directory of the durable item store; null keeps items in memory only. */
  readonly dataDir?: string | null;
  /** Called when the node stops on its own (a failed fsync): the process should exit. */
  readonly onFatal?: (error: Error) => void;
  readonly config?: Partial<ChordConfig>;
  readonly tickMs?: number;
  readonly seed?: bigint;
  /** Called (outside any step) when a vnode's key range changes: the "notify higher layer" hook. */
  readonly onRangeChange?: (event: RangeEvent) => void;
  readonly log?: (level: 'info' | 'warn' | 'debug', message: string, fields?: Record<string, unknown>) => void;
}

export interface RunningChordNode {
  readonly address: string;
  /** Items recovered from the data directory at start. */
  readonly recoveredItems: number;
  readonly nodeId: NodeId;
  request(request: ChordRequest, timeoutMs?: number): Promise<ChordResponse>;
  inspect<T>(read: (state: ChordState) => T): T;
  readonly stats: { sent: number; sendFailures: number; steps: number };
  close(): Promise<void>;
}

const CONNECTIONS_MAX = 256;

/** Starts a node: listens, derives its identifiers from the bound address, joins or creates the ring. */
export async function startChordNode(options: ChordNodeOptions): Promise<RunningChordNode> {
  const node = new ChordHost(options);
  await node.start();
  return node;
}

class ChordHost implements RunningChordNode {
  address = '';
  nodeId = 0 as NodeId;
  recoveredItems = 0;
  readonly stats = { sent: 0, sendFailures: 0, steps: 0 };
  private state: ChordState | null = null;
  private server: RunningServer<ChordService> | null = null;
  private ticker: NodeJS.Timeout | null = null;
  private storage: DurableLog | null = null;
  private pipeline: EffectPipeline<ChordMessage, ChordResponse> | null = null;
  private readonly connections = new Map<NodeId, RpcConnection<ChordService>>();
  private readonly calls = new Map<number, (response: ChordResponse) => void>();
  private requestNext = 1;
  private stepping = false;
  private closed = false;
  private rejectedSeen = 0;
  private readonly tickMs: number;
  private readonly log: NonNullable<ChordNodeOptions['log']>;

  constructor(private readonly options: ChordNodeOptions) {
    this.tickMs = options.tickMs ?? 50;
    this.log = options.log ?? (() => {});
  }

  async start(): Promise<void> {
    const durable = await this.openStorage();
    try {
      await this.listen(durable);
      this.init(durable);
    } catch (error) {
      // A port in use, or durable state init refuses (another node's, or corrupt): release everything.
      await this.server?.close();
      await this.storage?.close();
      throw error;
    }
    // A first tick at once carries out what `init` asked for (a founder's synced membership record).
    this.dispatch({ type: 'tick', nowMs: performance.now() });
    this.ticker = setInterval(() => this.dispatch({ type: 'tick', nowMs: performance.now() }), this.tickMs);
  }

  private init(durable: Durable): void {
    const seeds = this.options.join.map(parseAddress).filter((seed) => seed !== this.nodeId);
    const config: ChordConfig = {
      ...CHORD_CONFIG_DEFAULT,
      stabilizeTicks: 4,
      fixFingersTicks: 2,
      checkPredecessorTicks: 4,
      rpcTimeoutTicks: 10,
      operationTimeoutTicks: 100,
      suspectTicks: 40,
      replicateTicks: 10,
      replicaLeaseTicks: 60,
      reconcileTicks: 40,
      ...this.options.config,
      addressing: 'ipv4',
      bootstrap: seeds.length > 0 ? 'join' : 'create',
      seeds,
      persist: this.storage !== null,
    };
    const seed = this.options.seed ?? randomBytes(8).readBigUInt64LE(0);
    this.state = chordProtocol.init({
      id: this.nodeId,
      peers: [],
      config,
      rng: Rng.fromSeed(seed),
      durable,
      nowMs: performance.now(),
    });
    this.recoveredItems = this.state.store.size;
    this.startPipeline();
    this.log('info', 'chord node started', {
      address: this.address,
      join: this.options.join,
      vnodes: config.vnodes,
      dataDir: this.options.dataDir ?? null,
      recoveredItems: this.recoveredItems,
      member: this.state.member,
    });
  }

  /** Opens (and recovers) the data directory, if any: the durable state `init` starts from. */
  private async openStorage(): Promise<Durable> {
    const dir = this.options.dataDir ?? null;
    if (dir === null) return EMPTY_DURABLE;
    const logger = new Logger({ level: 'warn', node: null, fields: { component: 'chord-storage' } });
    const { log, durable } = await DurableLog.open({ dir, logger });
    this.storage = log;
    log.onFailure((error) => this.fail(error));
    return durable;
  }

  /**
   * Listens on the configured endpoint; with port 0 and a data directory that a node has used, on
   * that node's endpoint, so that a restart keeps its identity. Another endpoint is refused by `init`.
   */
  private async listen(durable: Durable): Promise<void> {
    let { host, port } = this.options;
    const name = recoveredName(durable.snapshot, durable.records);
    const previous = name === null ? null : ipv4FromText(name);
    if (previous !== null && port === 0) ({ host, port } = ipv4Endpoint(previous));
    this.server = await serve(chordService, this.handlers(), { host, port });
    const nodeId = ipv4Address(this.server.host, this.server.port);
    if (nodeId === null) throw new RangeError(`chord: ${this.server.address} is not an IPv4 endpoint`);
    this.nodeId = nodeId;
    this.address = addressName('ipv4', nodeId);
  }

  private startPipeline(): void {
    const storage = this.storage;
    if (storage === null) return;
    this.pipeline = new EffectPipeline<ChordMessage, ChordResponse>(storage, {
      send: (to, message) => this.send(to, message),
      reply: (_client, requestId, response) => this.reply(requestId, response),
      persisted: (ack) => setImmediate(() => this.dispatch({ type: 'persisted', ack })),
    });
  }

  /** The disk failed (fsync error): nothing more may be acknowledged; stop and tell the owner. */
  private fail(error: Error): void {
    this.log('warn', 'storage failed, stopping the node', { reason: errorMessage(error) });
    void this.close().finally(() => this.options.onFatal?.(error));
  }

  request(request: ChordRequest, timeoutMs = 10_000): Promise<ChordResponse> {
    if (this.closed) return Promise.resolve({ type: 'error', code: 'NOT_JOINED', reason: 'node is shutting down' });
    const requestId = this.requestNext++;
    return new Promise<ChordResponse>((resolve) => {
      const timer = setTimeout(() => {
        this.calls.delete(requestId);
        resolve({ type: 'error', code: 'TIMEOUT', reason: `no answer within ${timeoutMs} ms` });
      }, timeoutMs);
      this.calls.set(requestId, (response) => {
        clearTimeout(timer);
        resolve(response);
      });
      this.dispatch({ type: 'request', client: ClientId(1), requestId: RequestId(requestId), request });
    });
  }

  inspect<T>(read: (state: ChordState) => T): T {
    assert(!this.stepping && this.state !== null, 'inspect: not between steps');
    return read(this.state);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ticker !== null) clearInterval(this.ticker);
    for (const resolve of this.calls.values()) resolve({ type: 'error', code: 'NOT_JOINED', reason: 'node closed' });
    this.calls.clear();
    await Promise.all([...this.connections.values()].map((connection) => connection.close()));
    this.connections.clear();
    await this.server?.close();
    // Flushes whatever is queued (a clean stop loses nothing) and releases the directory lock.
    await this.storage?.close().catch((error: unknown) => {
      this.log('warn', 'closing the durable log failed', { reason: errorMessage(error) });
    });
  }

  private handlers(): HandlersOf<ChordService> {
    const call = (request: ChordRequest) => this.request(request, 30_000);
    return {
      deliver: (args) => {
        // Delivered from a later turn: the RPC server may be called from inside our own send.
        setImmediate(() => this.dispatch({ type: 'receive', from: args.from as NodeId, message: args.message }));
        return {};
      },
      lookup: (args) =>
        call(
          args.mode === undefined
            ? { type: 'lookup', key: args.key }
            : { type: 'lookup', key: args.key, mode: args.mode },
        ),
      put: (args) => call({ type: 'put', key: args.key, value: args.value }),
      get: (args) => call({ type: 'get', key: args.key }),
      status: () => call({ type: 'status' }),
      join: (args) => {
        const via = ipv4FromText(args.via);
        if (via === null) return { type: 'error', code: 'INVALID', reason: `not an IPv4 endpoint: ${args.via}` };
        return call({ type: 'join', via });
      },
      leave: () => call({ type: 'leave' }),
    };
  }

  private dispatch(event: ChordEvent): void {
    if (this.closed || this.state === null) return;
    assert(!this.stepping, 'chord host: steps must not nest');
    this.stepping = true;
    let effects: ReturnType<typeof chordProtocol.step>;
    try {
      effects = chordProtocol.step(this.state, event);
      chordProtocol.invariants(this.state);
    } finally {
      this.stepping = false;
    }
    this.stats.steps++;
    this.afterStep(this.state);
    if (this.pipeline !== null) {
      this.pipeline.submit(effects);
      return;
    }
    for (const effect of effects) {
      if (effect.type === 'send') this.send(effect.to, effect.message);
      else if (effect.type === 'reply') this.reply(effect.requestId, effect.response);
      else assert(false, `chord host: ${effect.type} effect without a data directory`);
    }
  }

  private afterStep(state: ChordState): void {
    if (state.stats.rejected !== this.rejectedSeen) {
      const fresh = Math.min(state.stats.rejected - this.rejectedSeen, state.rejections.length);
      for (const reason of state.rejections.slice(-fresh)) this.log('warn', 'rejected a message', { reason });
      this.rejectedSeen = state.stats.rejected;
    }
    while (state.rangeEvents.length > 0) {
      const event = state.rangeEvents.shift()!;
      this.options.onRangeChange?.(event);
    }
  }

  private reply(requestId: number, response: ChordResponse): void {
    const resolve = this.calls.get(requestId);
    if (resolve === undefined) return;
    this.calls.delete(requestId);
    resolve(response);
  }

  private send(to: NodeId, message: ChordMessage): void {
    if (this.closed) return;
    this.stats.sent++;
    if (to === this.nodeId) {
      setImmediate(() => this.dispatch({ type: 'receive', from: this.nodeId, message }));
      return;
    }
    const connection = this.connectionTo(to);
    const timeoutMs = this.tickMs * (this.state?.config.rpcTimeoutTicks ?? 10);
    connection.stub.deliver({ from: this.nodeId, message }, { timeoutMs }).catch((error: unknown) => {
      // Unreliable by contract: the protocol times the RPC out and suspects the peer. Count it, and
      // drop a connection that failed so that the next send dials afresh.
      this.stats.sendFailures++;
      this.log('debug', 'deliver failed', { to: ipv4Endpoint(to), reason: errorMessage(error) });
      if (this.connections.get(to) === connection) {
        this.connections.delete(to);
        void connection.close();
      }
    });
  }

  private connectionTo(to: NodeId): RpcConnection<ChordService> {
    const known = this.connections.get(to);
    if (known !== undefined) {
      // Most recently used last (Map order), so the first entry is the one to evict.
      this.connections.delete(to);
      this.connections.set(to, known);
      return known;
    }
    if (this.connections.size >= CONNECTIONS_MAX) {
      const [oldest, connection] = this.connections.entries().next().value as [NodeId, RpcConnection<ChordService>];
      this.connections.delete(oldest);
      void connection.close();
    }
    const connection = connect(chordService, ipv4Endpoint(to), {
      tickMs: 20,
      timeoutMs: 2_000,
      retriesMax: 0,
      bindTimeoutMs: 1_000,
    });
    this.connections.set(to, connection);
    return connection;
  }
}

/** `host:port` (dotted IPv4) to an address; throws a RangeError naming the input. */
export function parseAddress(text: string): NodeId {
  const address = ipv4FromText(text);
  if (address === null) throw new RangeError(`not an IPv4 host:port: "${text}"`);
  return address;
}

function ipv4FromText(text: string): NodeId | null {
  const colon = text.lastIndexOf(':');
  if (colon < 0) return null;
  const host = text.slice(0, colon) === 'localhost' ? '127.0.0.1' : text.slice(0, colon);
  const portText = text.slice(colon + 1);
  if (!/^[0-9]{1,5}$/.test(portText)) return null;
  return ipv4Address(host, Number(portText));
}
