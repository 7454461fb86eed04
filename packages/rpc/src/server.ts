/**
 * The server endpoint: binding, dispatch to handlers, the reply cache, deadlines, cancellation, streams
 * with flow control, and the checks that keep bad input from hurting anyone but its sender. It does no
 * I/O: a driver (src/real/tcp.ts for TCP, src/sim.ts for the simulator) feeds it bytes and ticks.
 *
 * Handlers may return a value or a promise. A plain value is answered in the same turn (no promise is
 * made), which is also what makes a service runnable inside the deterministic simulator.
 */
import { assert, DecodeFailure, describeDecodeError, type Schema, Writer } from '@dsys/kit';
import type { Clock, RpcLogger, Transport } from './endpoint.js';
import { silentLogger } from './endpoint.js';
import { AppError, RpcError } from './errors.js';
import type { AnyProcedure, CallContext, HandlersOf, Interface, StreamSink } from './interface.js';
import { type CachedCall, cachedPayload, type Session, SessionTable, type Slab } from './sessions.js';
import {
  beginFrame,
  CONTROL_BYTES_MAX,
  ExecutedByte,
  endFrame,
  FRAME_BYTES_MAX_DEFAULT,
  FrameCursor,
  FrameParser,
  type FrameProblem,
  Hello,
  Kind,
  newOutput,
  PROTOCOL_VERSION,
  readVarUint,
  Status,
  swapOutput,
  takeOutputView,
  Welcome,
  writeControl,
  writeError as writeErrorPayload,
} from './wire.js';

export interface ServerOptions {
  /** Largest frame body accepted from a client (and the default for what we send). */
  readonly frameBytesMax?: number;
  /** Handlers running at once per connection; more calls are answered RESOURCE_EXHAUSTED (not run). */
  readonly callsInFlightMax?: number;
  readonly sessionsMax?: number;
  readonly replyCacheBytesMax?: number;
  readonly repliesPerSessionMax?: number;
  /** A connection must bind within this time. */
  readonly bindTimeoutMs?: number;
  /** A frame that has started must finish within this time (slow senders are cut off). */
  readonly frameReadTimeoutMs?: number;
  /** A connection with nothing received and nothing running for this long is closed (0: never). */
  readonly idleTimeoutMs?: number;
  /** HELLOs accepted per connection (a client rebinds after a lost session; more is abuse). */
  readonly bindsPerConnectionMax?: number;
  readonly logger?: RpcLogger;
}

export interface ServerEnvironment {
  readonly clock: Clock;
  /** Differs on every start of the server process: clients learn from it that the reply cache is gone. */
  readonly incarnation: bigint;
  /** First session id of this incarnation (random, so ids of two incarnations do not collide). */
  readonly sessionIdStart: number;
}

export interface ServerStats {
  connections: number;
  callsStarted: number;
  callsAnsweredFromCache: number;
  callsRejected: number;
  deadlinesExceeded: number;
  streamsCancelled: number;
  connectionsClosedForBadInput: number;
  sessions: number;
  replyCacheBytes: number;
  sessionsEvicted: number;
}

const DEFAULTS = {
  frameBytesMax: FRAME_BYTES_MAX_DEFAULT,
  callsInFlightMax: 1024,
  sessionsMax: 10_000,
  replyCacheBytesMax: 64 * 1024 * 1024,
  repliesPerSessionMax: 4096,
  bindTimeoutMs: 10_000,
  frameReadTimeoutMs: 10_000,
  idleTimeoutMs: 300_000,
  bindsPerConnectionMax: 16,
};

type Limits = typeof DEFAULTS;

interface ServerProcedure {
  readonly name: string;
  readonly index: number;
  readonly spec: AnyProcedure;
  readonly stream: boolean;
  readonly idempotent: boolean;
  readonly args: Schema<unknown>;
  /** Result schema (unary) or item schema (stream). */
  readonly output: Schema<unknown>;
  // biome-ignore lint/suspicious/noExplicitAny: handlers are typed by HandlersOf<I> at the API boundary.
  readonly handler: (...args: any[]) => unknown;
  readonly description: string;
  readonly fingerprint: Uint8Array;
}

function validateLimits(options: ServerOptions): Limits {
  const limits = { ...DEFAULTS };
  for (const key of Object.keys(DEFAULTS) as (keyof Limits)[]) {
    const value = options[key];
    if (value === undefined) continue;
    const minimum = key === 'idleTimeoutMs' ? 0 : 1;
    if (!Number.isSafeInteger(value) || value < minimum) {
      throw new RangeError(`server option ${key} must be an integer >= ${minimum}, got ${value}`);
    }
    limits[key] = value;
  }
  return limits;
}

const RESOLVED: Promise<void> = Promise.resolve();

export class RpcServer<I extends Interface = Interface> {
  readonly iface: I;
  readonly incarnation: bigint;
  readonly limits: Limits;
  readonly logger: RpcLogger;
  readonly clock: Clock;
  readonly sessions: SessionTable;
  readonly procedures: readonly ServerProcedure[];
  private readonly byName = new Map<string, ServerProcedure>();
  private readonly connections = new Set<ServerConnection>();
  private connectionIdNext = 1;
  private readonly counters = {
    callsStarted: 0,
    callsAnsweredFromCache: 0,
    callsRejected: 0,
    deadlinesExceeded: 0,
    streamsCancelled: 0,
    connectionsClosedForBadInput: 0,
  };

  constructor(iface: I, handlers: HandlersOf<I>, options: ServerOptions, environment: ServerEnvironment) {
    this.iface = iface;
    this.limits = validateLimits(options);
    this.logger = options.logger ?? silentLogger;
    this.clock = environment.clock;
    this.incarnation = environment.incarnation;
    this.sessions = new SessionTable(this.limits, environment.sessionIdStart);
    const procedures: ServerProcedure[] = [];
    iface.names.forEach((name, index) => {
      const spec = iface.procedures[name]!;
      const handler = (handlers as Record<string, unknown>)[name];
      if (typeof handler !== 'function') throw new TypeError(`no handler for procedure '${name}' of ${iface.name}`);
      const procedure: ServerProcedure = {
        name,
        index,
        spec,
        stream: spec.kind === 'stream',
        idempotent: spec.kind === 'unary' ? spec.idempotent : true,
        args: spec.args,
        output: spec.kind === 'unary' ? spec.result : spec.item,
        handler: handler as ServerProcedure['handler'],
        description: iface.descriptions[index]!,
        fingerprint: iface.fingerprints[index]!,
      };
      procedures.push(procedure);
      this.byName.set(name, procedure);
    });
    for (const name of Object.keys(handlers)) {
      if (!this.byName.has(name)) throw new TypeError(`handler '${name}' is not a procedure of ${iface.name}`);
    }
    this.procedures = procedures;
  }

  /** A new transport connection (an accepted socket, or a peer in the simulator). */
  connect(transport: Transport, peer: string): ServerConnection {
    const connection = new ServerConnection(this, transport, peer, this.connectionIdNext++);
    this.connections.add(connection);
    return connection;
  }

  /** Checks deadlines and connection timeouts; the driver calls it every few ms. */
  tick(): void {
    const nowMs = this.clock.nowMs();
    for (const connection of this.connections) connection.tick(nowMs);
  }

  /** Tells every client the server is going away (they fail over or reconnect). */
  goAway(reason: string): void {
    for (const connection of this.connections) connection.goAway(reason);
  }

  stats(): ServerStats {
    return {
      ...this.counters,
      connections: this.connections.size,
      sessions: this.sessions.size,
      replyCacheBytes: this.sessions.bytes,
      sessionsEvicted: this.sessions.evictions,
    };
  }

  /** Our bugs only: cross-field checks (the simulator calls them after every step). */
  invariants(): void {
    assert(this.sessions.bytes >= 0, 'RpcServer: negative reply cache bytes');
    assert(this.sessions.size <= this.limits.sessionsMax, 'RpcServer: more sessions than sessionsMax');
    for (const connection of this.connections) {
      assert(connection.pendingCount >= 0, 'RpcServer: negative pending count');
      assert(connection.pendingCount <= this.limits.callsInFlightMax, 'RpcServer: more pending calls than allowed');
    }
  }

  /** @internal */
  forget(connection: ServerConnection): void {
    this.connections.delete(connection);
  }

  /** @internal */
  count(counter: keyof RpcServer['counters']): void {
    this.counters[counter]++;
  }

  /** @internal */
  procedureByName(name: string): ServerProcedure | undefined {
    return this.byName.get(name);
  }
}

/** The context handed to a handler; its AbortSignal is made only if the handler asks for it. */
class Context implements CallContext {
  readonly deadlineMs: number;
  readonly session: number;
  private controller: AbortController | null = null;
  private abortReason: RpcError | null = null;

  constructor(deadlineMs: number, session: number) {
    this.deadlineMs = deadlineMs;
    this.session = session;
  }

  get signal(): AbortSignal {
    if (this.controller === null) {
      this.controller = new AbortController();
      if (this.abortReason !== null) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  abort(reason: RpcError): void {
    if (this.abortReason !== null) return;
    this.abortReason = reason;
    this.controller?.abort(reason);
  }
}

/**
 * A running or finished unary call. With a seq (non-idempotent) it is also the reply-cache entry. It is
 * its own handler context (one allocation per call instead of two).
 */
class UnaryCall extends Context implements CachedCall {
  readonly seq: number;
  readonly procedure: ServerProcedure;
  /**
   * The connection the call arrived on, which accounts for it while its handler runs; null once done, so
   * that a reply held in the cache does not keep a closed connection (its socket, its buffers) alive.
   */
  origin: ServerConnection | null;
  owner: Session;
  done = false;
  cachedBytes = 0;
  slab: Slab | null = null;
  payloadAt = 0;
  payloadBytes = 0;
  ownPayload: Uint8Array | null = null;
  /** The reply is cached (else it was dropped, or the call has no seq). */
  cached = false;
  /** The handler returned a promise: the call counts against its origin's `callsInFlightMax`. */
  pending = false;
  /** Where the reply goes: the latest attempt (a retry may arrive on another connection). */
  connection: ServerConnection | null;
  wireId: number;
  /** The latest attempt was already answered (deadline passed or cancelled): only the cache gets the result. */
  answered = false;
  status: Status = Status.OK;

  constructor(
    origin: ServerConnection,
    wireId: number,
    seq: number,
    procedure: ServerProcedure,
    owner: Session,
    deadlineMs: number,
  ) {
    super(deadlineMs, owner.id);
    this.origin = origin;
    this.connection = origin;
    this.wireId = wireId;
    this.seq = seq;
    this.procedure = procedure;
    this.owner = owner;
  }

  get context(): Context {
    return this;
  }

  onFulfilled(value: unknown): void {
    this.home().completeUnary(this, value, null);
  }

  onRejected(error: unknown): void {
    this.home().completeUnary(this, undefined, error ?? new Error('handler rejected with nothing'));
  }

  private home(): ServerConnection {
    assert(this.origin !== null, 'UnaryCall: completed after it was done');
    return this.origin;
  }
}

/** The server side of one stream call: the handler's sink, with credit-based flow control. */
class ServerStream implements StreamSink<unknown> {
  readonly connection: ServerConnection;
  readonly wireId: number;
  readonly procedure: ServerProcedure;
  readonly context: Context;
  creditBytes: number;
  ended: RpcError | null = null;
  private waiter: { resolve: () => void; reject: (error: RpcError) => void } | null = null;

  constructor(
    connection: ServerConnection,
    wireId: number,
    procedure: ServerProcedure,
    context: Context,
    windowBytes: number,
  ) {
    this.connection = connection;
    this.wireId = wireId;
    this.procedure = procedure;
    this.context = context;
    this.creditBytes = windowBytes;
  }

  get closed(): boolean {
    return this.ended !== null;
  }

  send(item: unknown): Promise<void> {
    if (this.ended !== null) return Promise.reject(this.ended);
    if (this.waiter !== null) {
      return Promise.reject(
        new RpcError(
          { code: 'INTERNAL', executed: 'unknown', procedure: this.procedure.name },
          'StreamSink.send called before the previous send resolved (await each send)',
        ),
      );
    }
    const problem = this.procedure.output.check(item, '$');
    if (problem !== null) {
      return Promise.reject(
        new RpcError(
          { code: 'INTERNAL', executed: 'unknown', procedure: this.procedure.name },
          `stream item rejected by its schema: ${problem}`,
        ),
      );
    }
    const bytes = this.connection.writeItem(this, item);
    if (bytes < 0) return Promise.reject(this.ended);
    this.creditBytes -= bytes;
    if (this.writable()) return RESOLVED;
    return new Promise<void>((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  writable(): boolean {
    return this.creditBytes > 0 && !this.connection.transport.congested();
  }

  /** Credit arrived or the transport drained: release a waiting sender. */
  poke(): void {
    if (this.waiter !== null && this.writable()) {
      const waiter = this.waiter;
      this.waiter = null;
      waiter.resolve();
    }
  }

  /** The stream is over for the client (cancel, deadline, connection closed, or the handler ended). */
  end(error: RpcError): void {
    if (this.ended !== null) return;
    this.ended = error;
    this.context.abort(error);
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.reject(error);
  }

  onReturned(): void {
    this.connection.endStream(this, null);
  }

  onThrown(error: unknown): void {
    this.connection.endStream(this, error ?? new Error('handler rejected with nothing'));
  }
}

type Running = UnaryCall | ServerStream;

/** Header fields of the CALL being parsed (module scope: parsing allocates nothing). */
const header = { wireId: 0, procedure: 0, session: 0, seq: 0, floor: 0, timeoutMs: 0, windowBytes: 0 };
/** Where replies are encoded when no connection waits for them (the cache still needs the bytes). */
const scratch = new Writer(4096);

function describeProblem(problem: FrameProblem): string {
  return problem.code === 'FRAME_TOO_LARGE'
    ? `frame of ${problem.bytes} bytes exceeds the maximum of ${problem.bytesMax}`
    : `stream ended inside a frame (${problem.bytesHave} bytes)`;
}

/** Maps what a handler threw to a wire status. */
function classifyThrown(
  error: unknown,
  procedure: string,
): { status: Status; executed: ExecutedByte; message: string; appCode: string } {
  if (error instanceof AppError) {
    return { status: Status.APPLICATION, executed: ExecutedByte.YES, message: error.message, appCode: error.appCode };
  }
  if (error instanceof RpcError && error.detail.code === 'APPLICATION') {
    return {
      status: Status.APPLICATION,
      executed: ExecutedByte.YES,
      message: error.message,
      appCode: error.detail.appCode ?? 'APPLICATION',
    };
  }
  if (error instanceof RpcError && error.detail.code === 'CANCELLED') {
    return { status: Status.CANCELLED, executed: ExecutedByte.UNKNOWN, message: error.message, appCode: '' };
  }
  if (error instanceof RpcError && error.detail.code === 'DEADLINE_EXCEEDED') {
    return { status: Status.DEADLINE_EXCEEDED, executed: ExecutedByte.UNKNOWN, message: error.message, appCode: '' };
  }
  const message = error instanceof Error ? error.message : String(error);
  return {
    status: Status.INTERNAL,
    executed: ExecutedByte.UNKNOWN,
    message: `${procedure} failed: ${message}`,
    appCode: '',
  };
}

export class ServerConnection {
  readonly server: RpcServer;
  readonly transport: Transport;
  readonly peer: string;
  readonly id: number;
  /** @internal */ readonly out: Writer = newOutput();
  /** @internal */ readonly running = new Map<number, Running>();
  /** @internal */ pendingCount = 0;
  /** @internal */ isClosed = false;
  private readonly parser: FrameParser;
  private readonly onFrameBound: (cursor: FrameCursor) => void;
  private session: Session | null = null;
  private binds = 0;
  private lastHello: { nonce: number; welcome: Uint8Array } | null = null;
  /** The largest frame body the client accepts (its HELLO says; our own limit until then). */
  private peerFrameBytesMax: number;
  private readonly openedMs: number;
  private receivedMs: number;
  private partialSinceMs = -1;

  constructor(server: RpcServer, transport: Transport, peer: string, id: number) {
    this.server = server;
    this.transport = transport;
    this.peer = peer;
    this.id = id;
    this.parser = new FrameParser(server.limits.frameBytesMax);
    this.peerFrameBytesMax = server.limits.frameBytesMax;
    this.onFrameBound = (cursor) => this.onFrame(cursor);
    this.openedMs = server.clock.nowMs();
    this.receivedMs = this.openedMs;
  }

  /** Bytes from a byte-stream transport (any chunking). */
  receive(chunk: Uint8Array): void {
    if (this.isClosed) return;
    const nowMs = this.server.clock.nowMs();
    this.receivedMs = nowMs;
    const problem = this.parser.push(chunk, this.onFrameBound);
    if (problem !== null) {
      this.reject(`bad frame: ${describeProblem(problem)}`);
      return;
    }
    if (this.parser.partialBytes === 0) this.partialSinceMs = -1;
    else if (this.partialSinceMs < 0) this.partialSinceMs = nowMs;
    if (this.out.length > 0) this.transport.wake();
  }

  /** One whole frame body (kind byte first) from a message transport such as the simulator. */
  receiveFrame(body: Uint8Array): void {
    if (this.isClosed) return;
    this.receivedMs = this.server.clock.nowMs();
    if (body.length > this.server.limits.frameBytesMax) {
      this.server.count('connectionsClosedForBadInput');
      this.server.logger.warn('rpc: dropped an oversized message', { peer: this.peer, bytes: body.length });
      return;
    }
    const cursor = new FrameCursor(body);
    this.onFrame(cursor);
    if (this.out.length > 0) this.transport.wake();
  }

  /** Everything written since the last call, as one buffer of length-prefixed frames (or null). */
  takeOutput(): Uint8Array | null {
    if (this.out.length === 0) return null;
    const bytes = this.out.bytes.slice(0, this.out.length);
    this.out.length = 0;
    return bytes;
  }

  /** @internal `takeOutput` without the copy: see `takeOutputView` in wire.ts for the contract. */
  takeOutputView(): Uint8Array | null {
    return takeOutputView(this.out);
  }

  /** @internal The last view is still queued in the transport: write the next frames elsewhere. */
  swapOutput(next: Uint8Array | null): Uint8Array {
    return swapOutput(this.out, next);
  }

  /** The transport can take more output again: resume streams that wait on it. */
  drained(): void {
    for (const running of this.running.values()) if (running instanceof ServerStream) running.poke();
    if (this.out.length > 0) this.transport.wake();
  }

  /** The transport is gone. Unary calls keep running (their replies stay cached for a retry); streams stop. */
  closed(reason: string): void {
    const wasClosed = this.isClosed;
    this.isClosed = true;
    const error = new RpcError({ code: 'UNAVAILABLE', executed: 'unknown' }, `connection closed: ${reason}`);
    for (const running of this.running.values()) {
      if (running instanceof ServerStream) {
        running.end(error);
        continue;
      }
      if (running.connection === this) running.connection = null;
      // No one can ask for an idempotent call's reply again: let its handler stop early.
      if (running.seq === 0) running.context.abort(error);
    }
    this.running.clear();
    if (this.session !== null && this.session.connection === this) this.session.connection = null;
    // Cached replies keep their origin connection reachable until the client acknowledges them (or the
    // session is evicted): they must not also pin its output buffer, 64 KiB or more, that the reply cache
    // budget does not count. Nothing is sent on a closed connection; a tiny buffer stays in case.
    this.out.length = 0;
    swapOutput(this.out, new Uint8Array(64));
    this.server.forget(this);
    if (!wasClosed) this.server.logger.debug('rpc: connection closed', { peer: this.peer, reason });
  }

  tick(nowMs: number): void {
    if (this.isClosed) return;
    const limits = this.server.limits;
    if (this.binds === 0 && nowMs - this.openedMs > limits.bindTimeoutMs) {
      this.reject(`not bound within ${limits.bindTimeoutMs} ms`);
      return;
    }
    if (this.partialSinceMs >= 0 && nowMs - this.partialSinceMs > limits.frameReadTimeoutMs) {
      this.reject(
        `frame not completed within ${limits.frameReadTimeoutMs} ms (${this.parser.partialBytes} bytes arrived)`,
      );
      return;
    }
    if (limits.idleTimeoutMs > 0 && this.running.size === 0 && nowMs - this.receivedMs > limits.idleTimeoutMs) {
      this.server.logger.info('rpc: closing an idle connection', { peer: this.peer, idleMs: nowMs - this.receivedMs });
      this.goAway('idle');
      return;
    }
    for (const running of this.running.values()) {
      if (running.context.deadlineMs <= nowMs) this.deadlineExceeded(running);
    }
    if (this.out.length > 0) this.transport.wake();
  }

  /** Says goodbye with a reason, then closes. */
  goAway(reason: string): void {
    if (this.isClosed) return;
    const start = beginFrame(this.out, Kind.GOAWAY);
    this.out.string(reason.length > 1000 ? reason.slice(0, 1000) : reason);
    endFrame(this.out, start);
    this.transport.wake();
    this.isClosed = true;
    this.transport.close(reason);
  }

  /** Bad input: log the reason, count it, tell the peer, close. Everyone else keeps being served. */
  private reject(reason: string): void {
    if (this.isClosed) return;
    this.server.count('connectionsClosedForBadInput');
    this.server.logger.warn('rpc: closing connection', { peer: this.peer, reason });
    this.parser.abandon({ code: 'FRAME_TRUNCATED', bytesHave: 0 });
    this.goAway(reason);
  }

  // -------------------------------------------------------------------------------------------
  // Frames in

  private onFrame(cursor: FrameCursor): void {
    if (this.isClosed) return;
    try {
      const kind = cursor.u8('kind');
      switch (kind) {
        case Kind.CALL:
          this.onCall(cursor);
          return;
        case Kind.HELLO:
          this.onHello(cursor);
          return;
        case Kind.CANCEL:
          this.onCancel(readVarUint(cursor, 'callId'));
          return;
        case Kind.CREDIT:
          this.onCredit(readVarUint(cursor, 'callId'), readVarUint(cursor, 'bytes'));
          return;
        case Kind.PING: {
          const nonce = readVarUint(cursor, 'nonce');
          const start = beginFrame(this.out, Kind.PONG);
          this.out.varuint(nonce);
          endFrame(this.out, start);
          return;
        }
        case Kind.PONG:
          return;
        case Kind.GOAWAY:
          // A client says goodbye only when it closes for good: its session's replies are never asked for again.
          if (this.session !== null) this.server.sessions.end(this.session);
          this.isClosed = true;
          this.transport.close('the client said goodbye');
          return;
        default:
          this.reject(`unexpected frame kind ${kind}`);
      }
    } catch (error) {
      if (!(error instanceof DecodeFailure)) throw error;
      this.reject(`malformed frame: ${describeDecodeError(error.error)}`);
    }
  }

  private onHello(cursor: FrameCursor): void {
    if (cursor.end - cursor.offset > CONTROL_BYTES_MAX) {
      this.reject('HELLO too large');
      return;
    }
    const hello = Hello.read(cursor, 'hello');
    if (cursor.offset !== cursor.end) {
      throw new DecodeFailure({ code: 'TRAILING_BYTES', bytes: cursor.end - cursor.offset });
    }
    if (this.lastHello !== null && this.lastHello.nonce === hello.nonce) {
      this.out.raw(this.lastHello.welcome); // a duplicated HELLO gets the same answer, not a second session
      return;
    }
    const limits = this.server.limits;
    if (++this.binds > limits.bindsPerConnectionMax) {
      this.reject(`more than ${limits.bindsPerConnectionMax} binds on one connection`);
      return;
    }
    this.peerFrameBytesMax = Math.max(1024, hello.frameBytesMax);
    const welcome = this.bind(hello);
    const start = this.out.length;
    writeControl(this.out, Kind.WELCOME, Welcome, welcome);
    this.lastHello = { nonce: hello.nonce, welcome: this.out.bytes.slice(start, this.out.length) };
    if (welcome.result === 'bound') {
      this.server.logger.debug('rpc: bound', { peer: this.peer, session: welcome.session, resumed: welcome.resumed });
      return;
    }
    this.server.logger.info('rpc: bind refused', {
      peer: this.peer,
      service: hello.service,
      result: welcome.result,
      ...(welcome.result === 'mismatch' ? { procedures: welcome.problems.map((p) => p.procedure) } : {}),
      ...(welcome.result === 'refused' ? { reason: welcome.reason } : {}),
    });
  }

  private bind(hello: Hello): Welcome {
    const server = this.server;
    const iface = server.iface;
    const nonce = hello.nonce;
    if (hello.protocol !== PROTOCOL_VERSION) {
      const reason = `protocol version ${hello.protocol} is not supported (this server speaks ${PROTOCOL_VERSION})`;
      return { result: 'refused', nonce, reason };
    }
    if (hello.service !== '' && hello.service !== iface.name) {
      return { result: 'refused', nonce, reason: `this server serves '${iface.name}', not '${hello.service}'` };
    }
    const problems: { procedure: string; server?: string }[] = [];
    const procedureIds: number[] = [];
    for (const { name, fingerprint } of hello.procedures) {
      const procedure = server.procedureByName(name);
      if (procedure === undefined) problems.push({ procedure: name });
      else if (!sameBytes(procedure.fingerprint, fingerprint))
        problems.push({ procedure: name, server: procedure.description });
      else procedureIds.push(procedure.index);
    }
    if (problems.length > 0)
      return { result: 'mismatch', nonce, service: iface.name, version: iface.version, problems };
    let session: Session | undefined;
    const resume = hello.resume;
    if (resume !== undefined && resume.incarnation === server.incarnation)
      session = server.sessions.get(resume.session);
    const resumed = session !== undefined;
    session ??= server.sessions.open();
    server.sessions.touch(session);
    session.connection = this;
    this.session = session;
    const reflection = hello.reflect
      ? server.procedures.map((p) => ({ name: p.name, description: p.description }))
      : undefined;
    return {
      result: 'bound',
      nonce,
      incarnation: server.incarnation,
      session: session.id,
      resumed,
      service: iface.name,
      version: iface.version,
      fingerprint: iface.fingerprint,
      procedureIds,
      ...(reflection === undefined ? {} : { reflection }),
      frameBytesMax: server.limits.frameBytesMax,
    };
  }

  private onCall(cursor: FrameCursor): void {
    header.wireId = readVarUint(cursor, 'callId');
    header.procedure = readVarUint(cursor, 'procedure');
    header.session = readVarUint(cursor, 'session');
    header.seq = readVarUint(cursor, 'seq');
    header.floor = readVarUint(cursor, 'floor');
    header.timeoutMs = readVarUint(cursor, 'timeoutMs');
    header.windowBytes = readVarUint(cursor, 'windowBytes');
    const server = this.server;
    const wireId = header.wireId;
    let session = this.session;
    if (session === null || session.id !== header.session) {
      session = server.sessions.get(header.session) ?? null;
      if (session === null) {
        const expired = server.sessions.issued(header.session);
        const status = expired ? Status.SESSION_EXPIRED : Status.NOT_BOUND;
        this.writeError(wireId, status, ExecutedByte.NO, expired ? 'session expired' : 'not bound', '');
        return;
      }
    }
    server.sessions.touch(session);
    if (header.floor > session.floor) server.sessions.advanceFloor(session, header.floor);
    const procedure = server.procedures[header.procedure];
    if (procedure === undefined) {
      server.count('callsRejected');
      this.writeError(wireId, Status.UNKNOWN_PROCEDURE, ExecutedByte.NO, `no procedure #${header.procedure}`, '');
      return;
    }
    const seq = procedure.idempotent ? 0 : header.seq;
    if (seq > 0) {
      const cached = session.call(seq) as UnaryCall | undefined;
      if (cached !== undefined) {
        this.retryOf(cached, wireId);
        return;
      }
      if (seq < session.floor) {
        server.count('callsRejected');
        this.writeError(
          wireId,
          Status.REPLY_EVICTED,
          ExecutedByte.UNKNOWN,
          `the reply to seq ${seq} is no longer cached`,
          '',
        );
        return;
      }
    }
    // The deadline counts from the arrival of the chunk (or message) that carried the CALL: one clock
    // read per chunk instead of one per call.
    const deadlineMs = header.timeoutMs > 0 ? this.receivedMs + header.timeoutMs : Number.POSITIVE_INFINITY;
    if (procedure.stream) {
      this.startStream(cursor, procedure, wireId, new Context(deadlineMs, session.id), header.windowBytes);
      return;
    }
    const unary = new UnaryCall(this, wireId, seq, procedure, session, deadlineMs);
    if (seq > 0) server.sessions.begin(session, unary);
    if (this.pendingCount >= server.limits.callsInFlightMax) {
      server.count('callsRejected');
      this.completeWith(
        unary,
        Status.RESOURCE_EXHAUSTED,
        ExecutedByte.NO,
        'too many calls in flight on this connection',
        '',
      );
      return;
    }
    const args = this.readArgs(cursor, procedure);
    if (args === INVALID) {
      this.completeWith(unary, Status.INVALID_ARGUMENT, ExecutedByte.NO, this.invalidReason, '');
      return;
    }
    server.count('callsStarted');
    this.runUnary(unary, args);
  }

  private invalidReason = '';

  /** Decodes the arguments; `INVALID` (with `invalidReason`) if they do not match the schema. */
  private readArgs(cursor: FrameCursor, procedure: ServerProcedure): unknown {
    try {
      const args = procedure.args.read(cursor, '$');
      if (cursor.offset === cursor.end) return args;
      this.invalidReason = `arguments of ${procedure.name}: ${cursor.end - cursor.offset} trailing bytes`;
    } catch (error) {
      if (!(error instanceof DecodeFailure)) throw error;
      this.invalidReason = `arguments of ${procedure.name}: ${describeDecodeError(error.error)}`;
    }
    this.server.count('callsRejected');
    return INVALID;
  }

  /** A CALL whose seq is known: answer from the cache, or send the running call's reply here. */
  private retryOf(cached: UnaryCall, wireId: number): void {
    if (cached.done) {
      const payload = cached.cached ? cachedPayload(cached) : null;
      if (payload === null) {
        this.writeError(wireId, Status.REPLY_EVICTED, ExecutedByte.UNKNOWN, 'the reply is no longer cached', '');
        return;
      }
      this.server.count('callsAnsweredFromCache');
      this.writeCached(wireId, cached.status, payload);
      return;
    }
    // Handlers that return a value finish inside `onCall`: a call still running awaits a promise, and
    // only such calls are in `running` tables (completeUnary relies on it).
    assert(cached.pending, 'retryOf: a running call that is not pending');
    const previous = cached.connection;
    if (previous !== null && previous.running.get(cached.wireId) === cached) previous.running.delete(cached.wireId);
    cached.connection = this;
    cached.wireId = wireId;
    cached.answered = false;
    this.running.set(wireId, cached);
  }

  private runUnary(unary: UnaryCall, args: unknown): void {
    let result: unknown;
    try {
      result = unary.procedure.handler(args, unary);
    } catch (error) {
      this.completeUnary(unary, undefined, error);
      return;
    }
    if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
      unary.pending = true;
      this.pendingCount++;
      this.running.set(unary.wireId, unary);
      (result as PromiseLike<unknown>).then(
        (value) => unary.onFulfilled(value),
        (error: unknown) => unary.onRejected(error),
      );
      return;
    }
    this.completeUnary(unary, result, null);
  }

  /** @internal A handler finished; `error` is null on success. Runs on the call's origin connection. */
  completeUnary(unary: UnaryCall, value: unknown, error: unknown): void {
    // A synchronous completion happens inside `receive`, whose driver flushes right after; an
    // asynchronous one must ask for a flush.
    const wasPending = unary.pending;
    const holder = unary.connection;
    // Only a call whose handler returned a promise was ever put in a `running` table.
    if (wasPending) {
      unary.pending = false;
      this.pendingCount--;
      if (holder !== null && holder.running.get(unary.wireId) === unary) holder.running.delete(unary.wireId);
    }
    if (error !== null) {
      const thrown = classifyThrown(error, unary.procedure.name);
      if (thrown.status === Status.INTERNAL) {
        this.server.logger.error('rpc: handler failed', { procedure: unary.procedure.name, error });
      }
      this.completeWith(unary, thrown.status, thrown.executed, thrown.message, thrown.appCode);
      return;
    }
    const problem = unary.procedure.output.check(value, '$');
    if (problem !== null) {
      this.server.logger.error('rpc: handler returned a value its schema rejects', {
        procedure: unary.procedure.name,
        problem,
      });
      this.completeWith(unary, Status.INTERNAL, ExecutedByte.UNKNOWN, `result rejected by its schema: ${problem}`, '');
      return;
    }
    const target = unary.answered || holder === null || holder.isClosed ? null : holder;
    const writer = target === null ? scratch : target.out;
    let frameStart = -1;
    if (target === null) scratch.reset();
    else {
      frameStart = beginFrame(writer, Kind.REPLY);
      writer.varuint(unary.wireId);
      writer.u8(Status.OK);
    }
    const payloadStart = writer.length;
    unary.procedure.output.encode(writer, value);
    if (target !== null) {
      const bodyBytes = endFrame(writer, frameStart);
      if (bodyBytes > target.peerFrameBytesMax) {
        writer.length = frameStart;
        const reason = `result of ${bodyBytes} bytes exceeds the client's frame limit of ${target.peerFrameBytesMax}`;
        this.completeWith(unary, Status.INTERNAL, ExecutedByte.YES, reason, '');
        return;
      }
      if (wasPending || target !== this) target.transport.wake();
    }
    if (unary.seq > 0) this.cache(unary, Status.OK, writer.bytes, payloadStart, writer.length);
    else unary.done = true;
  }

  /** Finishes a call with an error status: answers the current attempt and caches the error. */
  private completeWith(
    unary: UnaryCall,
    status: Status,
    executed: ExecutedByte,
    message: string,
    appCode: string,
  ): void {
    const holder = unary.connection;
    if (holder !== null && holder.running.get(unary.wireId) === unary) holder.running.delete(unary.wireId);
    scratch.reset();
    writeErrorPayload(scratch, executed, message, appCode);
    const payload = scratch.bytes.slice(0, scratch.length);
    if (!unary.answered && holder !== null && !holder.isClosed) {
      holder.writeCached(unary.wireId, status, payload);
      holder.transport.wake();
    }
    if (unary.seq > 0) this.cache(unary, status, payload, 0, payload.length);
    else unary.done = true;
  }

  /** The final reply of a call with a seq: into the reply cache (copied: `source` may be reused). */
  private cache(unary: UnaryCall, status: Status, source: Uint8Array, start: number, end: number): void {
    unary.done = true;
    unary.status = status;
    unary.connection = null;
    unary.origin = null;
    unary.cached = this.server.sessions.finish(unary.owner, unary, source, start, end);
  }

  private deadlineExceeded(running: Running): void {
    this.server.count('deadlinesExceeded');
    const error = new RpcError({ code: 'DEADLINE_EXCEEDED', executed: 'unknown' }, 'deadline exceeded on the server');
    this.running.delete(running.wireId);
    if (running instanceof ServerStream) {
      this.writeEnd(running.wireId, Status.DEADLINE_EXCEEDED, ExecutedByte.UNKNOWN, error.message);
      running.end(error);
      return;
    }
    // The handler keeps its result for the cache; this attempt is answered now.
    running.answered = true;
    running.context.abort(error);
    const message = `deadline exceeded on the server while ${running.procedure.name} ran`;
    this.writeError(running.wireId, Status.DEADLINE_EXCEEDED, ExecutedByte.UNKNOWN, message, '');
  }

  private onCancel(wireId: number): void {
    const running = this.running.get(wireId);
    if (running === undefined) return;
    this.running.delete(wireId);
    const error = new RpcError({ code: 'CANCELLED', executed: 'unknown' }, 'cancelled by the client');
    if (running instanceof ServerStream) {
      this.server.count('streamsCancelled');
      running.end(error);
      return;
    }
    running.answered = true;
    running.context.abort(error);
  }

  private onCredit(wireId: number, bytes: number): void {
    const running = this.running.get(wireId);
    if (!(running instanceof ServerStream)) return;
    running.creditBytes = Math.min(running.creditBytes + bytes, Number.MAX_SAFE_INTEGER);
    running.poke();
  }

  // -------------------------------------------------------------------------------------------
  // Streams

  private startStream(
    cursor: FrameCursor,
    procedure: ServerProcedure,
    wireId: number,
    context: Context,
    windowBytes: number,
  ): void {
    const server = this.server;
    if (this.pendingCount >= server.limits.callsInFlightMax) {
      server.count('callsRejected');
      this.writeEnd(wireId, Status.RESOURCE_EXHAUSTED, ExecutedByte.NO, 'too many calls in flight on this connection');
      return;
    }
    if (this.running.has(wireId)) {
      this.reject(`stream call id ${wireId} reused while running`);
      return;
    }
    const args = this.readArgs(cursor, procedure);
    if (args === INVALID) {
      this.writeEnd(wireId, Status.INVALID_ARGUMENT, ExecutedByte.NO, this.invalidReason);
      return;
    }
    server.count('callsStarted');
    const stream = new ServerStream(this, wireId, procedure, context, Math.max(1, windowBytes));
    this.running.set(wireId, stream);
    this.pendingCount++;
    let result: unknown;
    try {
      result = procedure.handler(args, stream, context);
    } catch (error) {
      this.endStream(stream, error);
      return;
    }
    if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
      (result as PromiseLike<unknown>).then(
        () => stream.onReturned(),
        (error: unknown) => stream.onThrown(error),
      );
      return;
    }
    this.endStream(stream, null);
  }

  /** @internal Writes one ITEM; returns its body bytes, or -1 if the stream is already over. */
  writeItem(stream: ServerStream, item: unknown): number {
    if (this.isClosed || stream.ended !== null) return -1;
    const start = beginFrame(this.out, Kind.ITEM);
    this.out.varuint(stream.wireId);
    stream.procedure.output.encode(this.out, item);
    const bodyBytes = endFrame(this.out, start);
    if (bodyBytes > this.peerFrameBytesMax) {
      this.out.length = start;
      const error = new RpcError(
        { code: 'INTERNAL', executed: 'unknown', procedure: stream.procedure.name },
        `stream item of ${bodyBytes} bytes exceeds the client's frame limit of ${this.peerFrameBytesMax}`,
      );
      this.endStream(stream, error);
      return -1;
    }
    this.transport.wake();
    return bodyBytes;
  }

  /** @internal The handler returned (error null) or threw. */
  endStream(stream: ServerStream, error: unknown): void {
    this.pendingCount--;
    if (stream.ended !== null) return; // cancelled, timed out or disconnected: the client knows already
    this.running.delete(stream.wireId);
    if (error === null) {
      this.writeEnd(stream.wireId, Status.OK, ExecutedByte.YES, '');
      stream.end(new RpcError({ code: 'CANCELLED', executed: 'yes' }, 'stream ended'));
    } else {
      const thrown = classifyThrown(error, stream.procedure.name);
      if (thrown.status === Status.INTERNAL) {
        this.server.logger.error('rpc: stream handler failed', { procedure: stream.procedure.name, error });
      }
      this.writeEnd(stream.wireId, thrown.status, thrown.executed, thrown.message, thrown.appCode);
      stream.end(new RpcError({ code: 'CANCELLED', executed: 'yes' }, 'stream ended'));
    }
    if (!this.isClosed) this.transport.wake();
  }

  // -------------------------------------------------------------------------------------------
  // Frames out

  /** @internal A cached (or precomputed) reply to the attempt `wireId`. */
  writeCached(wireId: number, status: Status, payload: Uint8Array): void {
    const start = beginFrame(this.out, Kind.REPLY);
    this.out.varuint(wireId);
    this.out.u8(status);
    this.out.raw(payload);
    endFrame(this.out, start);
  }

  private writeError(wireId: number, status: Status, executed: ExecutedByte, message: string, appCode: string): void {
    const start = beginFrame(this.out, Kind.REPLY);
    this.out.varuint(wireId);
    this.out.u8(status);
    writeErrorPayload(this.out, executed, message, appCode);
    endFrame(this.out, start);
  }

  private writeEnd(wireId: number, status: Status, executed: ExecutedByte, message: string, appCode = ''): void {
    if (this.isClosed) return;
    const start = beginFrame(this.out, Kind.END);
    this.out.varuint(wireId);
    this.out.u8(status);
    if (status !== Status.OK) writeErrorPayload(this.out, executed, message, appCode);
    endFrame(this.out, start);
  }
}

const INVALID = Symbol('invalid');

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
