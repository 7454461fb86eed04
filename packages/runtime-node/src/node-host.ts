/**
 * `startNode` runs a kit `Protocol` for real: the same deterministic core the simulator drives, here
 * fed by a timer (ticks), TCP (peer messages, client requests) and the durable log (`persisted`).
 *
 * One event at a time: every event source calls `dispatch`, which runs `step` synchronously (and the
 * protocol's `invariants`, kept on in production as TigerBeetle does), then hands the effects to the
 * `EffectPipeline`, which enforces the effect-order contract. Steps never nest: storage callbacks,
 * `persisted` acks and self-sends are delivered from their own turns of the event loop.
 *
 * Backpressure: if more than `storageQueueBytesMax` bytes are waiting for the disk, the node stops
 * reading from peer and client sockets (TCP pushes back on senders) until the log catches up. Ticks
 * keep running.
 *
 * Failure: a step that throws (a broken assertion: our bug) or a failed write/fsync stops the node
 * (`stopped` rejects). Nothing is retried: after a failed fsync the page cache state is unknown.
 */
import { getRandomValues } from 'node:crypto';
import {
  assert,
  type ClientId,
  type Effect,
  type Event,
  errorMessage,
  type NodeId,
  type Protocol,
  type RequestId,
  Rng,
  type Schema,
  ClientId as toClientId,
  RequestId as toRequestId,
} from '@dsys/kit';
import { ClientPort } from './client-port.js';
import { clientWire } from './client-wire.js';
import { DurableLog, type StorageHooks } from './durable-log.js';
import { EffectPipeline } from './effect-pipeline.js';
import { type Endpoint, formatEndpoint } from './endpoint.js';
import { NodeError } from './errors.js';
import { Logger } from './logger.js';
import {
  type Counter,
  exponentialBuckets,
  type MetricsRegistry,
  type MetricsServer,
  MetricsRegistry as Registry,
  startMetricsServer,
} from './metrics.js';
import { PeerTransport } from './peer-transport.js';
import { TransportMetrics } from './transport-metrics.js';

export interface NodeLimits {
  readonly frameBytesMax: number;
  readonly frameTimeoutMs: number;
  readonly writeBufferBytesMax: number;
  readonly handshakeTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly reconnectDelayMsMin: number;
  readonly reconnectDelayMsMax: number;
  readonly sendQueueMessagesMax: number;
  readonly sendQueueBytesMax: number;
  readonly peerConnectionsMax: number;
  readonly clientConnectionsMax: number;
  readonly clientRequestsInFlightMax: number;
  readonly localRequestsInFlightMax: number;
  readonly requestTimeoutMs: number;
  readonly storageQueueBytesMax: number;
}

export const DEFAULT_LIMITS: NodeLimits = Object.freeze({
  frameBytesMax: 16 * 1024 * 1024,
  frameTimeoutMs: 10_000,
  writeBufferBytesMax: 8 * 1024 * 1024,
  handshakeTimeoutMs: 5_000,
  connectTimeoutMs: 3_000,
  reconnectDelayMsMin: 50,
  reconnectDelayMsMax: 2_000,
  sendQueueMessagesMax: 4_096,
  sendQueueBytesMax: 16 * 1024 * 1024,
  peerConnectionsMax: 256,
  clientConnectionsMax: 1_024,
  clientRequestsInFlightMax: 1_024,
  localRequestsInFlightMax: 10_000,
  requestTimeoutMs: 10_000,
  storageQueueBytesMax: 64 * 1024 * 1024,
});

function validateLimits(limits: NodeLimits): void {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`limits.${name} must be a positive integer`);
  }
  if (limits.reconnectDelayMsMin > limits.reconnectDelayMsMax) {
    throw new RangeError('limits.reconnectDelayMsMin must not exceed reconnectDelayMsMax');
  }
}

export interface NodeSchemas<Message, Request, Response> {
  readonly message: Schema<Message>;
  readonly request: Schema<Request>;
  readonly response: Schema<Response>;
}

export interface NodeOptions<State, Message, Request, Response, Config> {
  readonly protocol: Protocol<State, Message, Request, Response, Config>;
  readonly schemas: NodeSchemas<Message, Request, Response>;
  readonly config: Config;
  readonly id: NodeId;
  /** Every node of the cluster and where to dial it (may be a proxy); this node's entry is not dialled. */
  readonly peers: ReadonlyMap<NodeId, Endpoint>;
  readonly clusterId: string;
  readonly dataDir: string;
  readonly listenPeer: Endpoint;
  /** null: no client listener (requests only through `node.request`). */
  readonly listenClient: Endpoint | null;
  /** null: no `/metrics` server. */
  readonly listenMetrics: Endpoint | null;
  readonly tickMs: number;
  /** Seed of the protocol's `Rng`; random (and logged) when absent. */
  readonly seed?: bigint | number | string;
  readonly logger?: Logger;
  readonly limits?: Partial<NodeLimits>;
  /** Off only for measurements; on by default as in production. */
  readonly checkInvariants?: boolean;
  readonly storageHooks?: StorageHooks;
  /** Observes every step (after it ran): tracing and tests. Must not call back into the node. */
  readonly onStep?: (event: Event<Message, Request>, effects: readonly Effect<Message, Response>[]) => void;
}

export interface NodeEndpoints {
  readonly peer: Endpoint;
  readonly client: Endpoint | null;
  readonly metrics: Endpoint | null;
}

export interface RunningNode<State, Request, Response> {
  readonly id: NodeId;
  readonly endpoints: NodeEndpoints;
  readonly metrics: MetricsRegistry;
  readonly logger: Logger;
  /** Injects a `request` event as a local client and resolves with the protocol's reply. */
  request(request: Request, options?: { timeoutMs?: number }): Promise<Response>;
  /** Reads the protocol state between steps (never during one). Do not mutate it. */
  inspect<T>(read: (state: State) => T): T;
  /**
   * Opens an in-process client with its own `ClientId`, for a system that serves its own wire protocol
   * in front of the node (the coordination service's ZooKeeper port). Every reply the protocol
   * addresses to that client (any request id, including ones it never sent: server-pushed
   * notifications) goes to `onReply`, after the effect-order contract released it.
   */
  openLocalClient(onReply: (requestId: RequestId, response: Response) => void): LocalClient<Request>;
  isPeerConnected(peer: NodeId): boolean;
  /** Graceful stop: no new input, flush and fsync the log, deliver held effects, close sockets and files. */
  close(): Promise<void>;
  /** Settles when the node has stopped: resolves after `close`, rejects with the error that stopped it. */
  readonly stopped: Promise<void>;
}

/** A client inside the node's process (`RunningNode.openLocalClient`). */
export interface LocalClient<Request> {
  readonly id: ClientId;
  /** Hands `request` to the protocol as a `request` event from this client (dropped once closed or stopped). */
  request(requestId: RequestId, request: Request): void;
  /** Replies to this client are dropped from now on. */
  close(): void;
}

/** The node's own monotonic clock in ms: monotonic within the process, close to epoch time. */
export function monotonicNowMs(): number {
  return Math.floor(performance.timeOrigin + performance.now());
}

function randomSeed(): bigint {
  const words = getRandomValues(new Uint32Array(2));
  return (BigInt(words[0]!) << 32n) | BigInt(words[1]!);
}

interface LocalCall<Response> {
  resolve(response: Response): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

interface HostMetrics {
  steps: { inc(): void };
  stepSeconds: { observe(value: number): void };
  events: Counter;
  effects: Counter;
  repliesDropped: { inc(): void };
  requests: { inc(): void };
  backpressure: { set(value: number): void };
}

function hostMetrics(registry: MetricsRegistry, id: NodeId): HostMetrics {
  registry.gauge('dsys_node_info', 'Constant 1, labelled with the node id', ['node']).set(1, { node: String(id) });
  const rss = registry.gauge('dsys_process_resident_memory_bytes', 'Resident set size');
  registry.onCollect(() => rss.set(process.memoryUsage.rss()));
  return {
    steps: registry.counter('dsys_steps_total', 'Protocol steps run').child(),
    stepSeconds: registry
      .histogram('dsys_step_seconds', 'Wall time of one protocol step', exponentialBuckets(0.000_001, 4, 12))
      .child(),
    events: registry.counter('dsys_events_total', 'Events stepped, by type', ['type']),
    effects: registry.counter('dsys_effects_total', 'Effects returned, by type', ['type']),
    repliesDropped: registry
      .counter('dsys_replies_dropped_total', 'Replies whose client was gone or had not asked')
      .child(),
    requests: registry.counter('dsys_client_requests_total', 'Requests handed to the protocol').child(),
    backpressure: registry
      .gauge('dsys_storage_backpressure', '1 while socket reads are paused for the disk to catch up')
      .child(),
  };
}

class NodeHost<State, Message, Request, Response, Config> implements RunningNode<State, Request, Response> {
  readonly id: NodeId;
  readonly metrics: MetricsRegistry;
  readonly logger: Logger;
  readonly stopped: Promise<void>;
  endpoints: NodeEndpoints = { peer: { host: '', port: 0 }, client: null, metrics: null };

  private readonly options: NodeOptions<State, Message, Request, Response, Config>;
  private readonly limits: NodeLimits;
  private readonly log: DurableLog;
  private readonly pipeline: EffectPipeline<Message, Response>;
  private readonly hostMetrics: HostMetrics;
  private readonly transportMetrics: TransportMetrics;
  private state!: State;
  private peers: PeerTransport<Message> | null = null;
  private clients: ClientPort<Request, Response> | null = null;
  private metricsServer: MetricsServer | null = null;
  private ticker: NodeJS.Timeout | null = null;
  private stepping = false;
  /** Set once shutdown starts: from then on no event is stepped. */
  private halted = false;
  /** Settles with the error that stopped the node, or null after a clean stop; never rejects. */
  private closing: Promise<Error | null> | null = null;
  private backpressured = false;
  private nextClientId = 1;
  private readonly localClient: ClientId;
  private nextLocalRequestId = 1;
  private readonly localCalls = new Map<RequestId, LocalCall<Response>>();
  private readonly openClients = new Map<ClientId, (requestId: RequestId, response: Response) => void>();
  private lastStorageTicket = 0;
  private settleStopped!: { resolve(): void; reject(error: Error): void };

  constructor(
    options: NodeOptions<State, Message, Request, Response, Config>,
    limits: NodeLimits,
    log: DurableLog,
    registry: MetricsRegistry,
    logger: Logger,
  ) {
    this.options = options;
    this.id = options.id;
    this.limits = limits;
    this.log = log;
    this.metrics = registry;
    this.logger = logger;
    this.hostMetrics = hostMetrics(registry, options.id);
    this.transportMetrics = new TransportMetrics(registry);
    this.localClient = this.allocateClientId();
    this.stopped = new Promise((resolve, reject) => {
      this.settleStopped = { resolve, reject };
    });
    // Callers that never await `stopped` must not see an unhandled rejection; the error is logged.
    this.stopped.catch(() => undefined);
    const storage = {
      append: (records: readonly Uint8Array[], sync: boolean) => this.trackTicket(log.append(records, sync)),
      compact: (snapshot: Uint8Array, records: readonly Uint8Array[]) =>
        this.trackTicket(log.compact(snapshot, records)),
      get syncedTicket() {
        return log.syncedTicket;
      },
      whenSynced: (ticket: number, callback: () => void) => log.whenSynced(ticket, callback),
    };
    this.pipeline = new EffectPipeline<Message, Response>(storage, {
      send: (to, message) => this.send(to, message),
      reply: (client, requestId, response) => this.reply(client, requestId, response),
      persisted: (ack) => queueMicrotask(() => this.dispatch({ type: 'persisted', ack })),
    });
    log.onFailure((error) => this.fatal(error));
  }

  init(state: State): void {
    this.state = state;
  }

  async listen(): Promise<void> {
    const { options, limits, logger } = this;
    const connectionLimits = {
      frameBytesMax: limits.frameBytesMax,
      frameTimeoutMs: limits.frameTimeoutMs,
      writeBufferBytesMax: limits.writeBufferBytesMax,
    };
    this.peers = await this.listenOrFail(options.listenPeer, () =>
      PeerTransport.start<Message>({
        self: options.id,
        clusterId: options.clusterId,
        peers: options.peers,
        listen: options.listenPeer,
        schema: options.schemas.message,
        limits: {
          ...connectionLimits,
          handshakeTimeoutMs: limits.handshakeTimeoutMs,
          connectTimeoutMs: limits.connectTimeoutMs,
          reconnectDelayMsMin: limits.reconnectDelayMsMin,
          reconnectDelayMsMax: limits.reconnectDelayMsMax,
          sendQueueMessagesMax: limits.sendQueueMessagesMax,
          sendQueueBytesMax: limits.sendQueueBytesMax,
          inboundConnectionsMax: limits.peerConnectionsMax,
        },
        logger: logger.child({ component: 'peers' }),
        metrics: this.transportMetrics,
        onMessage: (from, message) => this.dispatch({ type: 'receive', from, message }),
      }),
    );
    const listenClient = options.listenClient;
    if (listenClient !== null) {
      this.clients = await this.listenOrFail(listenClient, () =>
        ClientPort.start<Request, Response>({
          listen: listenClient,
          wire: clientWire(options.schemas),
          limits: {
            ...connectionLimits,
            connectionsMax: limits.clientConnectionsMax,
            requestsInFlightMax: limits.clientRequestsInFlightMax,
          },
          logger: logger.child({ component: 'clients' }),
          metrics: this.transportMetrics,
          allocateClientId: () => this.allocateClientId(),
          onRequest: (client, requestId, request) => this.dispatchRequest(client, requestId, request),
        }),
      );
    }
    const listenMetrics = options.listenMetrics;
    if (listenMetrics !== null) {
      this.metricsServer = await this.listenOrFail(listenMetrics, () =>
        startMetricsServer(this.metrics, listenMetrics, (error) => logger.error('metrics server error', { error })),
      );
    }
    this.endpoints = {
      peer: this.peers.endpoint,
      client: this.clients?.endpoint ?? null,
      metrics: this.metricsServer?.endpoint ?? null,
    };
  }

  startTicking(): void {
    this.ticker = setInterval(() => this.dispatch({ type: 'tick', nowMs: monotonicNowMs() }), this.options.tickMs);
  }

  request(request: Request, options: { timeoutMs?: number } = {}): Promise<Response> {
    if (this.halted) return Promise.reject(new NodeError({ code: 'NODE_STOPPED' }));
    if (this.localCalls.size >= this.limits.localRequestsInFlightMax) {
      const reason = `more than ${this.limits.localRequestsInFlightMax} local requests in flight`;
      return Promise.reject(new NodeError({ code: 'REJECTED', reason }));
    }
    const requestId = toRequestId(this.nextLocalRequestId++);
    const timeoutMs = options.timeoutMs ?? this.limits.requestTimeoutMs;
    return new Promise<Response>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.localCalls.delete(requestId);
        reject(new NodeError({ code: 'TIMEOUT', timeoutMs }));
      }, timeoutMs);
      this.localCalls.set(requestId, { resolve, reject, timer });
      this.dispatchRequest(this.localClient, requestId, request);
    });
  }

  inspect<T>(read: (state: State) => T): T {
    assert(!this.stepping, 'inspect called from inside a step');
    return read(this.state);
  }

  openLocalClient(onReply: (requestId: RequestId, response: Response) => void): LocalClient<Request> {
    const id = this.allocateClientId();
    this.openClients.set(id, onReply);
    return {
      id,
      request: (requestId, request) => {
        if (this.halted || !this.openClients.has(id)) return;
        this.dispatchRequest(id, requestId, request);
      },
      close: () => {
        this.openClients.delete(id);
      },
    };
  }

  isPeerConnected(peer: NodeId): boolean {
    return this.peers?.isConnected(peer) ?? false;
  }

  async close(): Promise<void> {
    this.closing ??= this.shutdown(null);
    const failure = await this.closing;
    if (failure !== null) throw failure;
  }

  private allocateClientId(): ClientId {
    return toClientId(this.nextClientId++);
  }

  private trackTicket(ticket: number): number {
    this.lastStorageTicket = ticket;
    return ticket;
  }

  private async listenOrFail<T>(endpoint: Endpoint, start: () => Promise<T>): Promise<T> {
    try {
      return await start();
    } catch (error) {
      throw new NodeError(
        { code: 'LISTEN_FAILED', endpoint: formatEndpoint(endpoint), reason: errorMessage(error) },
        { cause: error },
      );
    }
  }

  private dispatchRequest(client: ClientId, requestId: RequestId, request: Request): void {
    this.hostMetrics.requests.inc();
    this.dispatch({ type: 'request', client, requestId, request });
  }

  private dispatch(event: Event<Message, Request>): void {
    if (this.halted) return;
    assert(!this.stepping, 'dispatch: steps must not nest');
    this.stepping = true;
    const started = performance.now();
    let effects: Effect<Message, Response>[];
    try {
      effects = this.options.protocol.step(this.state, event);
      if (this.options.checkInvariants !== false) this.options.protocol.invariants(this.state);
    } catch (error) {
      this.stepping = false;
      const failure = new NodeError(
        { code: 'STEP_FAILED', event: event.type, reason: errorMessage(error) },
        { cause: error },
      );
      this.fatal(failure);
      return;
    }
    this.stepping = false;
    this.hostMetrics.stepSeconds.observe((performance.now() - started) / 1000);
    this.hostMetrics.steps.inc();
    this.hostMetrics.events.childOf(event.type).inc();
    for (const effect of effects) this.hostMetrics.effects.childOf(effect.type).inc();
    this.options.onStep?.(event, effects);
    this.pipeline.submit(effects);
    this.applyBackpressure();
  }

  private send(to: NodeId, message: Message): void {
    if (to === this.id) {
      // Delivered from a later turn, like any message, so that steps never nest.
      setImmediate(() => this.dispatch({ type: 'receive', from: this.id, message }));
      return;
    }
    this.peers?.send(to, message);
  }

  private reply(client: ClientId, requestId: RequestId, response: Response): void {
    if (client === this.localClient) {
      const call = this.localCalls.get(requestId);
      if (call === undefined) {
        this.hostMetrics.repliesDropped.inc();
        return;
      }
      this.localCalls.delete(requestId);
      clearTimeout(call.timer);
      call.resolve(response);
      return;
    }
    const local = this.openClients.get(client);
    if (local !== undefined) {
      local(requestId, response);
      return;
    }
    if (this.clients?.reply(client, requestId, response) !== true) this.hostMetrics.repliesDropped.inc();
  }

  private applyBackpressure(): void {
    if (this.backpressured || this.log.queuedBytes <= this.limits.storageQueueBytesMax) return;
    this.backpressured = true;
    this.hostMetrics.backpressure.set(1);
    this.logger.warn('pausing socket reads until the disk catches up', { queuedBytes: this.log.queuedBytes });
    this.peers?.setPaused(true);
    this.clients?.setPaused(true);
    this.log.whenSynced(this.lastStorageTicket, () => {
      this.backpressured = false;
      this.hostMetrics.backpressure.set(0);
      if (this.halted) return;
      this.peers?.setPaused(false);
      this.clients?.setPaused(false);
    });
  }

  private fatal(error: Error): void {
    if (this.closing !== null && this.halted) {
      this.logger.error('error during shutdown', { error });
      return;
    }
    this.logger.error('node stopping on a fatal error', { error, cause: (error as { cause?: unknown }).cause });
    this.closing = this.shutdown(error);
  }

  private async shutdown(cause: Error | null): Promise<Error | null> {
    this.halted = true;
    if (this.ticker !== null) clearInterval(this.ticker);
    this.logger.info('shutting down', { reason: cause === null ? 'requested' : cause.message });
    let failure: Error | null = cause;
    try {
      // 1. Stop accepting new connections; existing ones stay so that held replies can still go out.
      this.clients?.stopAccepting();
      await this.metricsServer?.close();
      // 2. Finish the log: everything queued becomes durable, which releases the held sends/replies.
      if (this.log.failed === null) await this.log.flush();
    } catch (error) {
      failure ??= error instanceof Error ? error : new Error(String(error));
    }
    // 3. Close sockets (written frames go out first), then the files and the lock.
    await Promise.all([this.peers?.close(), this.clients?.close()]);
    try {
      await this.log.close();
    } catch (error) {
      failure ??= error instanceof Error ? error : new Error(String(error));
    }
    for (const call of this.localCalls.values()) {
      clearTimeout(call.timer);
      call.reject(new NodeError({ code: 'NODE_STOPPED' }));
    }
    this.localCalls.clear();
    if (failure === null) {
      this.logger.info('stopped', {});
      this.settleStopped.resolve();
    } else {
      this.settleStopped.reject(failure);
    }
    return failure;
  }
}

/**
 * Recovers the node's durable state from `dataDir`, builds its protocol state, listens on its ports,
 * and starts ticking. Rejects (with everything it opened closed again) if the log is corrupt, the data
 * directory is locked, or a port cannot be bound.
 */
export async function startNode<State, Message, Request, Response, Config>(
  options: NodeOptions<State, Message, Request, Response, Config>,
): Promise<RunningNode<State, Request, Response>> {
  const limits: NodeLimits = { ...DEFAULT_LIMITS, ...options.limits };
  validateLimits(limits);
  if (!Number.isSafeInteger(options.tickMs) || options.tickMs < 1) throw new RangeError('tickMs must be >= 1');
  const peerIds = new Set(options.peers.keys());
  peerIds.add(options.id);
  const logger = options.logger ?? new Logger({ level: 'info', node: options.id });
  const registry = new Registry();
  const { log, durable } = await DurableLog.open({
    dir: options.dataDir,
    logger: logger.child({ component: 'storage' }),
    metrics: registry,
    ...(options.storageHooks === undefined ? {} : { hooks: options.storageHooks }),
  });
  const host = new NodeHost(options, limits, log, registry, logger);
  try {
    const seed = options.seed ?? randomSeed();
    const rng = Rng.fromSeed(seed);
    const peers = [...peerIds].sort((a, b) => a - b);
    host.init(
      options.protocol.init({ id: options.id, peers, config: options.config, rng, durable, nowMs: monotonicNowMs() }),
    );
    if (options.checkInvariants !== false) host.inspect((state) => options.protocol.invariants(state));
    await host.listen();
    logger.info('node started', {
      protocol: options.protocol.name,
      clusterId: options.clusterId,
      seed: typeof seed === 'bigint' ? `0x${seed.toString(16)}` : String(seed),
      peer: formatEndpoint(host.endpoints.peer),
      client: host.endpoints.client === null ? null : formatEndpoint(host.endpoints.client),
      metrics: host.endpoints.metrics === null ? null : formatEndpoint(host.endpoints.metrics),
      recoveredRecords: durable.records.length,
      recoveredSnapshotBytes: durable.snapshot?.length ?? null,
    });
  } catch (error) {
    await host.close().catch((closeError: unknown) => {
      logger.error('cleanup after a failed start failed', { error: closeError });
    });
    throw error;
  }
  host.startTicking();
  return host;
}
