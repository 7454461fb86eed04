/**
 * The client endpoint: binding, the derived stub, deadlines, cancellation, retries, streams with flow
 * control, keepalive. It does no I/O: a driver (src/real/tcp.ts, src/sim.ts) dials, feeds bytes and ticks.
 *
 * At-most-once: each non-idempotent call gets a seq in the current session when first sent. After a
 * lost connection the client rebinds asking to resume its session; if the server is the same incarnation
 * it resends the calls with the same seqs and the server answers from its reply cache. If the server
 * restarted (or evicted the session), a call that may have run is settled INDETERMINATE (never re-sent);
 * calls that never left, and idempotent ones, are sent again in the new session.
 *
 * Every reply is matched by a wire id that changes whenever the call's seq changes, so a late reply to an
 * earlier attempt (a delayed or duplicated message) can never be mistaken for the current attempt's.
 */
import { assert, DecodeFailure, describeDecodeError, type Rng, type Schema, Writer } from '@dsys/kit';
import { CallTable } from './call-table.js';
import type { Clock, RpcLogger, Transport } from './endpoint.js';
import { silentLogger } from './endpoint.js';
import { describeProblems, type Executed, type ProcedureProblem, RpcError, type RpcErrorCode } from './errors.js';
import type { ClientOf, Interface, RpcStream, StreamOptions } from './interface.js';
import { SeqWindow } from './seq-window.js';
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
  readError,
  readVarUint,
  STATUS_MAX,
  Status,
  swapOutput,
  takeOutputView,
  Welcome,
  writeControl,
} from './wire.js';

export interface ClientOptions {
  /** Default deadline of a unary call, retries included (ms); 0 means none. Streams default to none. */
  readonly timeoutMs?: number;
  /** Calls sent and not yet answered; more wait in the queue. */
  readonly callsInFlightMax?: number;
  /** Calls waiting to be sent; beyond this a call fails at once with RESOURCE_EXHAUSTED. */
  readonly callsQueuedMax?: number;
  /** Automatic retries of one call (only where safe: see the README). */
  readonly retriesMax?: number;
  readonly retryBackoffBaseMs?: number;
  readonly retryBackoffMaxMs?: number;
  readonly reconnectBackoffBaseMs?: number;
  readonly reconnectBackoffMaxMs?: number;
  /** Ping after this long without hearing from the server (0: never). */
  readonly keepaliveIntervalMs?: number;
  /** Close the connection if a ping gets no answer within this time. */
  readonly keepaliveTimeoutMs?: number;
  /** A HELLO must be answered within this time (else reconnect, or re-send on message transports). */
  readonly bindTimeoutMs?: number;
  /** After the deadline, how long to wait for the server's own DEADLINE_EXCEEDED before giving up locally. */
  readonly deadlineGraceMs?: number;
  /** Message transports only: re-send an unanswered frame after this long. */
  readonly retransmitMs?: number;
  readonly frameBytesMax?: number;
  /** Default stream window: item bytes the server may send ahead of consumption. */
  readonly streamWindowBytes?: number;
  /** Ask the server for its procedure texts (the CLI does). */
  readonly reflect?: boolean;
  readonly logger?: RpcLogger;
  /**
   * Called synchronously on every change of the connection (see `ClientStateEvent`), after the client
   * has updated its own state. A listener that throws is logged, never breaks the client.
   */
  readonly onStateChange?: (event: ClientStateEvent) => void;
}

/** Where a client's connection is (`RpcClient.state`, `RpcConnection.state`). */
export type ClientState = 'disconnected' | 'binding' | 'bound' | 'failed' | 'closed';

/** A change of a client's connection, as `ClientOptions.onStateChange` reports it. */
export type ClientStateEvent =
  /** A transport is up and binding starts (a HELLO was sent). */
  | { readonly state: 'connected' }
  /** Bound, first or again: `info.resumed` says whether the server kept our session (and its reply cache). */
  | { readonly state: 'bound'; readonly info: BindInfo }
  /**
   * The transport broke (`wasConnected`: calls in flight may have run, they wait for the next bind) or a
   * dial failed before any connection existed (`!wasConnected`: nothing was sent over it).
   */
  | { readonly state: 'disconnected'; readonly reason: string; readonly wasConnected: boolean }
  /** The next dial is due in `delayMs` (`attempt` counts from 1 since the last successful bind). */
  | { readonly state: 'reconnecting'; readonly attempt: number; readonly delayMs: number }
  /** The server refused the bind (`error.detail.code` is BIND_MISMATCH): the client gave up. */
  | { readonly state: 'failed'; readonly error: RpcError }
  /** `close()` was called. */
  | { readonly state: 'closed' };

export interface ClientEnvironment {
  readonly clock: Clock;
  /** Jitter for backoff. */
  readonly rng: Rng;
  /** 'stream': ordered and reliable until it breaks (TCP). 'message': may lose, duplicate, reorder (simulator). */
  readonly transport: 'stream' | 'message';
}

/** What the client learned when it bound. */
export interface BindInfo {
  readonly service: string;
  readonly version: number;
  readonly incarnation: bigint;
  readonly session: number;
  readonly resumed: boolean;
  readonly fingerprint: Uint8Array;
  /** The server's procedures with their canonical texts, when `reflect` was asked. */
  readonly reflection: readonly { name: string; description: string }[] | null;
}

export interface ClientStats {
  calls: number;
  retries: number;
  retransmissions: number;
  binds: number;
  indeterminate: number;
}

const DEFAULTS = {
  timeoutMs: 30_000,
  callsInFlightMax: 1024,
  callsQueuedMax: 10_000,
  retriesMax: 6,
  retryBackoffBaseMs: 20,
  retryBackoffMaxMs: 2_000,
  reconnectBackoffBaseMs: 50,
  reconnectBackoffMaxMs: 5_000,
  keepaliveIntervalMs: 10_000,
  keepaliveTimeoutMs: 5_000,
  bindTimeoutMs: 10_000,
  deadlineGraceMs: 50,
  retransmitMs: 200,
  frameBytesMax: FRAME_BYTES_MAX_DEFAULT,
  streamWindowBytes: 256 * 1024,
};
type Limits = typeof DEFAULTS;
const ZERO_ALLOWED = new Set<keyof Limits>(['timeoutMs', 'retriesMax', 'keepaliveIntervalMs', 'deadlineGraceMs']);

function validateLimits(options: ClientOptions): Limits {
  const limits = { ...DEFAULTS };
  for (const key of Object.keys(DEFAULTS) as (keyof Limits)[]) {
    const value = options[key];
    if (value === undefined) continue;
    const minimum = ZERO_ALLOWED.has(key) ? 0 : 1;
    if (!Number.isSafeInteger(value) || value < minimum) {
      throw new RangeError(`client option ${key} must be an integer >= ${minimum}, got ${value}`);
    }
    limits[key] = value;
  }
  return limits;
}

interface ClientProcedure {
  readonly name: string;
  readonly stream: boolean;
  readonly idempotent: boolean;
  readonly args: Schema<unknown>;
  readonly output: Schema<unknown>;
  /** The server's index, learned at bind. */
  serverIndex: number;
}

enum CallState {
  /** Not sent in the current session (new, waiting for a slot, a bind, or a retry time). */
  QUEUED = 0,
  /** Sent in the current session, unanswered. */
  SENT = 1,
}

class PendingCall {
  id: number;
  readonly procedure: ClientProcedure;
  readonly args: unknown;
  readonly deadlineMs: number;
  state = CallState.QUEUED;
  /** Seq in the current session (0: none yet, or idempotent). */
  seq = 0;
  /** May have run on the server: sent at least once without a definite "not run" answer. */
  maybeExecuted = false;
  retries = 0;
  /** Transmissions with the current seq in the current session. */
  sends = 0;
  /** Not before this time (retry backoff). */
  notBeforeMs = 0;
  sentMs = 0;
  resolve: (value: unknown) => void = noop;
  reject: (error: RpcError) => void = noop;
  signal: AbortSignal | null = null;
  onAbort: (() => void) | null = null;
  stream: ClientStream | null = null;

  constructor(id: number, procedure: ClientProcedure, args: unknown, deadlineMs: number) {
    this.id = id;
    this.procedure = procedure;
    this.args = args;
    this.deadlineMs = deadlineMs;
  }
}

function noop(): void {}

let capturedResolve: (value: unknown) => void = noop;
let capturedReject: (error: RpcError) => void = noop;
/** A promise executor that allocates no closure per call: it leaves the resolvers in module slots. */
function captureResolvers(resolve: (value: unknown) => void, reject: (error: RpcError) => void): void {
  capturedResolve = resolve;
  capturedReject = reject;
}

/** Unsigned LEB128 bytes of `value` (what `Writer.varuint` would write). */
function varUintBytes(value: number): Uint8Array {
  const writer = new Writer(8);
  writer.varuint(value);
  return writer.finish().slice();
}

enum ConnectionState {
  DISCONNECTED = 0,
  BINDING = 1,
  READY = 2,
  FAILED = 3,
  CLOSED = 4,
}

const STATUS_CODES: readonly RpcErrorCode[] = [
  'INTERNAL', // OK is never an error
  'APPLICATION',
  'INVALID_ARGUMENT',
  'UNKNOWN_PROCEDURE',
  'DEADLINE_EXCEEDED',
  'CANCELLED',
  'RESOURCE_EXHAUSTED',
  'INTERNAL',
  'UNAVAILABLE',
  'UNAVAILABLE',
  'INDETERMINATE',
  'INDETERMINATE',
];
const EXECUTED: readonly Executed[] = ['no', 'yes', 'unknown'];
const STATE_NAMES: Record<ConnectionState, ClientState> = {
  [ConnectionState.DISCONNECTED]: 'disconnected',
  [ConnectionState.BINDING]: 'binding',
  [ConnectionState.READY]: 'bound',
  [ConnectionState.FAILED]: 'failed',
  [ConnectionState.CLOSED]: 'closed',
};

export class RpcClient<I extends Interface = Interface> {
  readonly iface: I;
  /** The generated stub: one typed async method per procedure. */
  readonly stub: ClientOf<I>;
  readonly limits: Limits;
  readonly transportKind: 'stream' | 'message';
  private readonly clock: Clock;
  private readonly rng: Rng;
  private readonly logger: RpcLogger;
  private readonly reflect: boolean;
  private readonly procedures: ClientProcedure[];
  private readonly out: Writer = newOutput();
  private parser: FrameParser;
  private readonly onFrameBound: (cursor: FrameCursor) => void;
  private transport: Transport | null = null;
  private state_ = ConnectionState.DISCONNECTED;
  private failure: RpcError | null = null;
  private bindInfo_: BindInfo | null = null;
  private readonly readyWaiters: { resolve: (info: BindInfo) => void; reject: (error: RpcError) => void }[] = [];
  /** Unsettled calls by current wire id, in creation order. */
  private readonly calls = new CallTable<PendingCall>();
  private readonly queue: PendingCall[] = [];
  private queueHead = 0;
  private inFlight = 0;
  private wireIdNext = 1;
  private window = new SeqWindow();
  private session = 0;
  /** `session` as a varuint, encoded once per bind (ids start at a random 52-bit value: 8 bytes each call). */
  private sessionVarUint = varUintBytes(0);
  private incarnation = -1n;
  private helloNonce = 0;
  private helloSentMs = 0;
  private serverFrameBytesMax = FRAME_BYTES_MAX_DEFAULT;
  private receivedMs = 0;
  private pingSentMs = -1;
  private reconnectAttempts = 0;
  private dialAtMs = 0;
  private frameStart = 0;
  private lastConnectError = '';
  /** The reason of the server's GOAWAY on the current connection, if it sent one. */
  private goAwayReason: string | null = null;
  private readonly onStateChange: ((event: ClientStateEvent) => void) | null;
  /**
   * @internal Called when the client goes from idle to busy (see `busy`), so that a driver can keep the
   * process alive only while someone waits for the client.
   */
  busyListener: (() => void) | null = null;
  private readonly counters: ClientStats = { calls: 0, retries: 0, retransmissions: 0, binds: 0, indeterminate: 0 };

  constructor(iface: I, options: ClientOptions, environment: ClientEnvironment) {
    this.iface = iface;
    this.limits = validateLimits(options);
    this.clock = environment.clock;
    this.rng = environment.rng;
    this.transportKind = environment.transport;
    this.logger = options.logger ?? silentLogger;
    this.reflect = options.reflect ?? false;
    this.onStateChange = options.onStateChange ?? null;
    this.parser = new FrameParser(this.limits.frameBytesMax);
    this.onFrameBound = (cursor) => this.onFrame(cursor);
    this.procedures = iface.names.map((name) => {
      const spec = iface.procedures[name]!;
      return {
        name,
        stream: spec.kind === 'stream',
        idempotent: spec.kind === 'unary' ? spec.idempotent : true,
        args: spec.args,
        output: spec.kind === 'unary' ? spec.result : spec.item,
        serverIndex: -1,
      };
    });
    const stub: Record<string, unknown> = {};
    for (const procedure of this.procedures) {
      stub[procedure.name] = procedure.stream
        ? (args: unknown, options?: StreamOptions) => this.openStream(procedure, args, options)
        : (args: unknown, options?: StreamOptions) => this.callUnary(procedure, args, options);
    }
    this.stub = Object.freeze(stub) as ClientOf<I>;
  }

  /** Resolves once bound (immediately if bound now); rejects with BIND_MISMATCH or CLOSED. */
  ready(): Promise<BindInfo> {
    if (this.state_ === ConnectionState.READY && this.bindInfo_ !== null) return Promise.resolve(this.bindInfo_);
    if (this.failure !== null) return Promise.reject(this.failure);
    if (!this.busy) this.busyListener?.();
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  get bindInfo(): BindInfo | null {
    return this.bindInfo_;
  }

  get state(): ClientState {
    return STATE_NAMES[this.state_];
  }

  /** True while a call or stream is unsettled or a `ready()` waits. */
  get busy(): boolean {
    return this.calls.size > 0 || this.readyWaiters.length > 0;
  }

  stats(): ClientStats {
    return { ...this.counters };
  }

  /** Settles every call with CLOSED and says goodbye. */
  close(): void {
    if (this.state_ === ConnectionState.CLOSED) return;
    const error = new RpcError({ code: 'CLOSED', executed: 'unknown' }, 'the client was closed');
    this.fail(error, ConnectionState.CLOSED);
  }

  // -------------------------------------------------------------------------------------------
  // Driver interface

  /** True when the driver should dial now (stream transports). */
  wantsConnection(): boolean {
    return this.state_ === ConnectionState.DISCONNECTED && this.clock.nowMs() >= this.dialAtMs;
  }

  /** A transport is up (a socket connected; on message transports, at start): bind over it. */
  connected(transport: Transport): void {
    if (this.state_ === ConnectionState.CLOSED || this.state_ === ConnectionState.FAILED) {
      transport.close('client closed');
      return;
    }
    this.transport = transport;
    this.parser = new FrameParser(this.limits.frameBytesMax);
    this.receivedMs = this.clock.nowMs();
    this.pingSentMs = -1;
    this.goAwayReason = null;
    this.sendHello();
    this.emit({ state: 'connected' });
  }

  /** The transport broke (stream transports). Calls wait for the next bind; streams fail. */
  disconnected(reason: string): void {
    if (this.transport === null) return;
    this.transport = null;
    this.out.length = 0;
    if (this.state_ === ConnectionState.CLOSED || this.state_ === ConnectionState.FAILED) return;
    const why = this.goAwayReason === null ? reason : `the server went away: ${this.goAwayReason}`;
    this.logger.info('rpc: connection lost', { service: this.iface.name, reason: why });
    this.state_ = ConnectionState.DISCONNECTED;
    const backoff = this.backoffMs(
      this.reconnectAttempts++,
      this.limits.reconnectBackoffBaseMs,
      this.limits.reconnectBackoffMaxMs,
    );
    this.dialAtMs = this.clock.nowMs() + backoff;
    const error = new RpcError({ code: 'UNAVAILABLE', executed: 'unknown' }, `connection lost: ${reason}`);
    for (const call of this.calls.values()) {
      if (call.stream !== null) {
        if (call.state === CallState.SENT || call.maybeExecuted) this.settleError(call, error);
        continue;
      }
      if (call.state === CallState.SENT) {
        call.state = CallState.QUEUED;
        this.inFlight--;
      }
    }
    this.emit({ state: 'disconnected', reason: why, wasConnected: true });
    this.emitReconnecting(backoff);
  }

  /** A dial failed before any connection existed: try again after a backoff. */
  connectFailed(reason: string): void {
    if (this.state_ !== ConnectionState.DISCONNECTED) return;
    this.lastConnectError = reason;
    const backoff = this.backoffMs(
      this.reconnectAttempts++,
      this.limits.reconnectBackoffBaseMs,
      this.limits.reconnectBackoffMaxMs,
    );
    this.dialAtMs = this.clock.nowMs() + backoff;
    this.logger.debug('rpc: connect failed', { service: this.iface.name, reason, retryInMs: backoff });
    this.emit({ state: 'disconnected', reason, wasConnected: false });
    this.emitReconnecting(backoff);
  }

  /** True once closed or failed to bind: nothing more will happen. */
  get finished(): boolean {
    return this.state_ === ConnectionState.CLOSED || this.state_ === ConnectionState.FAILED;
  }

  /** Bytes from a stream transport. */
  receive(chunk: Uint8Array): void {
    this.receivedMs = this.clock.nowMs();
    this.pingSentMs = -1;
    const problem = this.parser.push(chunk, this.onFrameBound);
    if (problem !== null) this.protocolError(`bad frame from the server: ${describeProblem(problem)}`);
    if (this.out.length > 0) this.transport?.wake();
  }

  /** One frame body from a message transport. */
  receiveFrame(body: Uint8Array): void {
    this.receivedMs = this.clock.nowMs();
    if (body.length > this.limits.frameBytesMax) return;
    this.onFrame(new FrameCursor(body));
    if (this.out.length > 0) this.transport?.wake();
  }

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

  /** Deadlines, retries, keepalive and (message transports) retransmission. */
  tick(): void {
    const nowMs = this.clock.nowMs();
    if (this.state_ === ConnectionState.CLOSED || this.state_ === ConnectionState.FAILED) return;
    this.expireCalls(nowMs);
    if (this.state_ === ConnectionState.BINDING && nowMs - this.helloSentMs > this.bindTimeoutFor()) {
      if (this.transportKind === 'message') this.sendHello();
      else this.transport?.close(`no answer to HELLO within ${this.limits.bindTimeoutMs} ms`);
    }
    if (this.state_ === ConnectionState.READY) {
      this.keepalive(nowMs);
      if (this.transportKind === 'message') this.retransmit(nowMs);
      this.pump(nowMs);
    }
    if (this.out.length > 0) this.transport?.wake();
  }

  /**
   * Calls a unary procedure by name and reports through `done`, synchronously from inside the frame
   * that settles it (no promise): the form for the deterministic simulator, where nothing may wait for
   * a later turn of the event loop. Argument errors are reported through `done` as well.
   */
  invoke<K extends keyof I['procedures'] & string>(
    name: K,
    args: unknown,
    done: (error: RpcError | null, value: unknown) => void,
    options?: { timeoutMs?: number },
  ): void {
    const procedure = this.procedures[this.iface.names.indexOf(name)];
    if (procedure === undefined || procedure.stream) throw new TypeError(`${String(name)} is not a unary procedure`);
    if (this.failure !== null) {
      done(this.failure, undefined);
      return;
    }
    const problem = procedure.args.check(args, '$');
    if (problem !== null) {
      const error = new RpcError(
        { code: 'INVALID_ARGUMENT', executed: 'no', procedure: name },
        `invalid arguments: ${problem}`,
      );
      done(error, undefined);
      return;
    }
    const timeoutMs = options?.timeoutMs ?? this.limits.timeoutMs;
    const nowMs = this.clock.nowMs();
    const call = new PendingCall(
      this.wireIdNext++,
      procedure,
      args,
      timeoutMs > 0 ? nowMs + timeoutMs : Number.POSITIVE_INFINITY,
    );
    call.resolve = (value) => done(null, value);
    call.reject = (error) => done(error, undefined);
    this.admit(call, nowMs);
  }

  /** Our bugs only: cross-field checks (the simulator calls them after every step). */
  invariants(): void {
    let sent = 0;
    for (const call of this.calls.values()) if (call.state === CallState.SENT) sent++;
    assert(sent === this.inFlight, `RpcClient: inFlight ${this.inFlight} but ${sent} calls are sent`);
    assert(this.inFlight <= this.limits.callsInFlightMax, 'RpcClient: more in flight than allowed');
    assert(this.window.floor <= this.window.next, 'RpcClient: seq floor above next');
  }

  // -------------------------------------------------------------------------------------------
  // Calls

  private callUnary(procedure: ClientProcedure, args: unknown, options: StreamOptions | undefined): Promise<unknown> {
    if (this.failure !== null) return Promise.reject(this.failure);
    const problem = procedure.args.check(args, '$');
    if (problem !== null) {
      return Promise.reject(
        new RpcError(
          { code: 'INVALID_ARGUMENT', executed: 'no', procedure: procedure.name },
          `invalid arguments: ${problem}`,
        ),
      );
    }
    const timeoutMs = options?.timeoutMs ?? this.limits.timeoutMs;
    const nowMs = this.clock.nowMs();
    const call = new PendingCall(
      this.wireIdNext++,
      procedure,
      args,
      timeoutMs > 0 ? nowMs + timeoutMs : Number.POSITIVE_INFINITY,
    );
    const promise = new Promise<unknown>(captureResolvers);
    call.resolve = capturedResolve;
    call.reject = capturedReject;
    if (options?.signal !== undefined) this.watchSignal(call, options.signal);
    this.admit(call, nowMs);
    return promise;
  }

  private openStream(
    procedure: ClientProcedure,
    args: unknown,
    options: StreamOptions | undefined,
  ): RpcStream<unknown> {
    const windowBytes = options?.windowBytes ?? this.limits.streamWindowBytes;
    const timeoutMs = options?.timeoutMs ?? 0;
    const nowMs = this.clock.nowMs();
    const call = new PendingCall(
      this.wireIdNext++,
      procedure,
      args,
      timeoutMs > 0 ? nowMs + timeoutMs : Number.POSITIVE_INFINITY,
    );
    const stream = new ClientStream(this, call, Math.max(1, windowBytes));
    call.stream = stream;
    call.resolve = noop;
    call.reject = (error) => stream.fail(error);
    if (this.failure !== null) {
      stream.fail(this.failure);
      return stream;
    }
    if (this.transportKind === 'message') {
      // Items would need their own acknowledgements on a lossy transport; streams need TCP (or TLS).
      const message = `${procedure.name}: server streams need an ordered transport`;
      stream.fail(new RpcError({ code: 'UNAVAILABLE', executed: 'no', procedure: procedure.name }, message));
      return stream;
    }
    const problem = procedure.args.check(args, '$');
    if (problem !== null) {
      stream.fail(
        new RpcError(
          { code: 'INVALID_ARGUMENT', executed: 'no', procedure: procedure.name },
          `invalid arguments: ${problem}`,
        ),
      );
      return stream;
    }
    if (options?.signal !== undefined) this.watchSignal(call, options.signal);
    this.admit(call, nowMs);
    return stream;
  }

  private admit(call: PendingCall, nowMs: number): void {
    this.counters.calls++;
    if (this.calls.size === 0 && this.readyWaiters.length === 0) this.busyListener?.();
    this.calls.set(call);
    if (
      this.state_ === ConnectionState.READY &&
      this.inFlight < this.limits.callsInFlightMax &&
      this.queueHead === this.queue.length
    ) {
      this.transmit(call, nowMs);
      return;
    }
    if (this.queue.length - this.queueHead >= this.limits.callsQueuedMax) {
      this.settleError(
        call,
        this.error('RESOURCE_EXHAUSTED', 'no', call, `more than ${this.limits.callsQueuedMax} calls queued`),
      );
      return;
    }
    this.queue.push(call);
  }

  private watchSignal(call: PendingCall, signal: AbortSignal): void {
    if (signal.aborted) {
      queueMicrotask(() => this.cancel(call, 'cancelled before it started'));
      return;
    }
    call.signal = signal;
    call.onAbort = () => this.cancel(call, 'cancelled by the caller');
    signal.addEventListener('abort', call.onAbort, { once: true });
  }

  /** @internal Cancels a pending call or stream: tells the server, settles CANCELLED. */
  cancel(call: PendingCall, why: string): void {
    if (!this.calls.has(call)) return;
    if (call.state === CallState.SENT && this.transport !== null) {
      const start = beginFrame(this.out, Kind.CANCEL);
      this.out.varuint(call.id);
      endFrame(this.out, start);
      this.transport.wake();
    }
    const executed: Executed = call.maybeExecuted ? 'unknown' : 'no';
    this.settleError(call, this.error('CANCELLED', executed, call, why));
  }

  /** Sends a call in the current session. */
  private transmit(call: PendingCall, nowMs: number): void {
    const procedure = call.procedure;
    if (!procedure.idempotent && call.seq === 0) call.seq = this.window.open();
    const remainingMs = call.deadlineMs - nowMs;
    const out = this.out;
    const start = beginFrame(out, Kind.CALL);
    out.varuint(call.id);
    out.varuint(procedure.serverIndex);
    const session = this.sessionVarUint;
    out.reserve(session.length);
    for (let i = 0; i < session.length; i++) out.bytes[out.length++] = session[i]!;
    out.varuint(call.seq);
    out.varuint(this.window.floor);
    out.varuint(remainingMs === Number.POSITIVE_INFINITY ? 0 : Math.max(1, Math.ceil(remainingMs)));
    out.varuint(call.stream === null ? 0 : call.stream.windowBytes);
    procedure.args.encode(out, call.args);
    const bodyBytes = endFrame(out, start);
    if (bodyBytes > this.serverFrameBytesMax) {
      out.length = start;
      const message = `arguments of ${bodyBytes} bytes exceed the server's frame limit of ${this.serverFrameBytesMax}`;
      this.settleError(call, this.error('INVALID_ARGUMENT', call.maybeExecuted ? 'unknown' : 'no', call, message));
      return;
    }
    call.state = CallState.SENT;
    call.sentMs = nowMs;
    call.sends++;
    call.maybeExecuted = true;
    this.inFlight++;
    this.transport!.wake();
  }

  /** Sends queued calls while there is room. */
  private pump(nowMs: number): void {
    const queue = this.queue;
    while (this.queueHead < queue.length && this.inFlight < this.limits.callsInFlightMax) {
      const call = queue[this.queueHead]!;
      if (!this.calls.has(call) || call.state !== CallState.QUEUED) {
        this.queueHead++;
        continue;
      }
      if (call.notBeforeMs > nowMs) break;
      this.queueHead++;
      this.transmit(call, nowMs);
    }
    if (this.queueHead === queue.length) {
      queue.length = 0;
      this.queueHead = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > queue.length) {
      queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
  }

  private settleOk(call: PendingCall, value: unknown): void {
    this.release(call);
    call.resolve(value);
  }

  private settleError(call: PendingCall, error: RpcError): void {
    this.release(call);
    if (error.detail.code === 'INDETERMINATE') this.counters.indeterminate++;
    call.reject(error);
  }

  private release(call: PendingCall): void {
    this.calls.delete(call);
    if (call.state === CallState.SENT) {
      call.state = CallState.QUEUED;
      this.inFlight--;
    }
    if (call.seq > 0) {
      this.window.close(call.seq);
      call.seq = 0;
    }
    call.sends = 0;
    if (call.signal !== null && call.onAbort !== null) call.signal.removeEventListener('abort', call.onAbort);
    call.signal = null;
    if (this.queueHead < this.queue.length && this.state_ === ConnectionState.READY) this.pump(this.clock.nowMs());
  }

  private error(code: RpcErrorCode, executed: Executed, call: PendingCall, message: string): RpcError {
    return new RpcError({ code, executed, procedure: call.procedure.name }, `${call.procedure.name}: ${message}`);
  }

  /** The call's seq is definitely answered "not run": retry it with a new seq (and wire id) after a backoff. */
  private retryLater(call: PendingCall, error: RpcError, nowMs: number): void {
    if (call.stream !== null || call.retries >= this.limits.retriesMax) {
      this.settleError(call, error);
      return;
    }
    const delay = this.backoffMs(call.retries++, this.limits.retryBackoffBaseMs, this.limits.retryBackoffMaxMs);
    if (nowMs + delay >= call.deadlineMs) {
      this.settleError(call, error);
      return;
    }
    this.counters.retries++;
    this.release(call);
    call.maybeExecuted = false;
    call.notBeforeMs = nowMs + delay;
    call.id = this.wireIdNext++;
    this.calls.set(call);
    this.queue.push(call);
  }

  /** Full jitter (AWS architecture blog, "Exponential Backoff and Jitter"): uniform in [0, min(max, base*2^n)]. */
  private backoffMs(attempt: number, baseMs: number, maxMs: number): number {
    const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
    return Math.floor(this.rng.float() * (ceiling + 1));
  }

  private expireCalls(nowMs: number): void {
    for (const call of this.calls.values()) {
      if (call.deadlineMs === Number.POSITIVE_INFINITY) continue;
      // A sent call gets a grace period for the server's own DEADLINE_EXCEEDED, which says more.
      const limit = call.maybeExecuted ? call.deadlineMs + this.limits.deadlineGraceMs : call.deadlineMs;
      if (nowMs < limit) continue;
      if (call.state === CallState.SENT && this.transport !== null) {
        const start = beginFrame(this.out, Kind.CANCEL);
        this.out.varuint(call.id);
        endFrame(this.out, start);
      }
      const executed: Executed = call.maybeExecuted ? 'unknown' : 'no';
      let where = 'no answer from the server';
      if (this.state_ !== ConnectionState.READY) {
        where = `not bound to the server${this.lastConnectError === '' ? '' : `; last error: ${this.lastConnectError}`}`;
      }
      this.settleError(call, this.error('DEADLINE_EXCEEDED', executed, call, `deadline exceeded (${where})`));
    }
  }

  private keepalive(nowMs: number): void {
    const interval = this.limits.keepaliveIntervalMs;
    if (interval === 0 || this.transportKind === 'message') return;
    if (this.pingSentMs >= 0) {
      if (nowMs - this.pingSentMs > this.limits.keepaliveTimeoutMs) {
        this.transport?.close(`no answer to keepalive ping within ${this.limits.keepaliveTimeoutMs} ms`);
      }
      return;
    }
    if (nowMs - this.receivedMs < interval) return;
    this.pingSentMs = nowMs;
    const start = beginFrame(this.out, Kind.PING);
    this.out.varuint(nowMs % 0x7fff_ffff);
    endFrame(this.out, start);
  }

  private retransmit(nowMs: number): void {
    for (const call of this.calls.values()) {
      if (call.state !== CallState.SENT || nowMs - call.sentMs < this.limits.retransmitMs) continue;
      this.counters.retransmissions++;
      this.inFlight--;
      call.state = CallState.QUEUED;
      this.transmit(call, nowMs);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Binding

  private bindTimeoutFor(): number {
    return this.transportKind === 'message' ? this.limits.retransmitMs : this.limits.bindTimeoutMs;
  }

  private sendHello(): void {
    if (this.transport === null) return;
    this.state_ = ConnectionState.BINDING;
    this.helloNonce++;
    this.helloSentMs = this.clock.nowMs();
    const hello: Hello = {
      protocol: PROTOCOL_VERSION,
      nonce: this.helloNonce,
      service: this.iface.name,
      version: this.iface.version,
      procedures: this.iface.names.map((name, i) => ({ name, fingerprint: this.iface.fingerprints[i]! })),
      ...(this.session > 0 ? { resume: { incarnation: this.incarnation, session: this.session } } : {}),
      reflect: this.reflect,
      frameBytesMax: this.limits.frameBytesMax,
    };
    writeControl(this.out, Kind.HELLO, Hello, hello);
    this.transport.wake();
  }

  /** The server lost our session (restart, eviction): bind again. */
  private rebind(): void {
    if (this.state_ !== ConnectionState.READY) return;
    this.sendHello();
  }

  private onWelcome(cursor: FrameCursor): void {
    if (cursor.end - cursor.offset > CONTROL_BYTES_MAX)
      throw new DecodeFailure({
        code: 'TOO_LARGE',
        bytes: cursor.end - cursor.offset,
        bytesMax: CONTROL_BYTES_MAX,
        at: 'welcome',
      });
    const welcome = Welcome.read(cursor, 'welcome');
    if (welcome.nonce !== this.helloNonce || this.state_ !== ConnectionState.BINDING) return; // a stale or duplicated answer
    if (welcome.result === 'refused') {
      this.fail(
        new RpcError({ code: 'BIND_MISMATCH', executed: 'no' }, `bind refused by the server: ${welcome.reason}`),
        ConnectionState.FAILED,
      );
      return;
    }
    if (welcome.result === 'mismatch') {
      const problems = this.describeMismatch(welcome.problems);
      const error = new RpcError(
        { code: 'BIND_MISMATCH', executed: 'no', problems },
        describeProblems(this.iface.name, problems),
      );
      this.fail(error, ConnectionState.FAILED);
      return;
    }
    if (welcome.procedureIds.length !== this.procedures.length) {
      this.protocolError(`WELCOME maps ${welcome.procedureIds.length} procedures, we have ${this.procedures.length}`);
      return;
    }
    welcome.procedureIds.forEach((index, i) => {
      this.procedures[i]!.serverIndex = index;
    });
    this.counters.binds++;
    this.reconnectAttempts = 0;
    this.serverFrameBytesMax = welcome.frameBytesMax;
    const restarted = this.session > 0 && !welcome.resumed;
    if (restarted)
      this.loseSession(
        welcome.incarnation !== this.incarnation ? 'the server restarted' : 'the server forgot our session',
      );
    this.session = welcome.session;
    this.sessionVarUint = varUintBytes(welcome.session);
    this.incarnation = welcome.incarnation;
    this.state_ = ConnectionState.READY;
    this.bindInfo_ = {
      service: welcome.service,
      version: welcome.version,
      incarnation: welcome.incarnation,
      session: welcome.session,
      resumed: welcome.resumed,
      fingerprint: welcome.fingerprint,
      reflection: welcome.reflection ?? null,
    };
    this.logger.debug('rpc: bound', { service: welcome.service, session: welcome.session, resumed: welcome.resumed });
    // Resend what was in flight (resumed: the reply cache answers repeats) and what was queued, in call order.
    const nowMs = this.clock.nowMs();
    const waiting = this.calls.values().filter((call) => call.state === CallState.QUEUED);
    this.queue.length = 0;
    this.queueHead = 0;
    for (const call of waiting) this.queue.push(call);
    this.pump(nowMs);
    for (const waiter of this.readyWaiters.splice(0)) waiter.resolve(this.bindInfo_);
    this.emit({ state: 'bound', info: this.bindInfo_ });
  }

  /**
   * The old session is gone with its reply cache. A non-idempotent call that may have run there can
   * never be known: settle it INDETERMINATE. Everything else starts over in the new session.
   */
  private loseSession(why: string): void {
    for (const call of this.calls.values()) {
      if (call.maybeExecuted && !call.procedure.idempotent) {
        this.settleError(
          call,
          this.error('INDETERMINATE', 'unknown', call, `outcome unknown: ${why} before answering`),
        );
        continue;
      }
      if (call.state === CallState.SENT) this.inFlight--;
      call.state = CallState.QUEUED;
      call.seq = 0;
      call.sends = 0;
      this.calls.delete(call);
      call.id = this.wireIdNext++;
      this.calls.set(call);
    }
    // Seqs start over in the new session (the old session's seqs mean nothing to it).
    this.window = new SeqWindow();
  }

  private describeMismatch(
    problems: readonly { procedure: string; server?: string | undefined }[],
  ): ProcedureProblem[] {
    return problems.map(({ procedure, server }) => {
      const index = this.iface.names.indexOf(procedure);
      const client = index >= 0 ? this.iface.descriptions[index]! : '(unknown to this client)';
      return server === undefined
        ? { procedure, problem: 'missing', client, server: null }
        : { procedure, problem: 'different', client, server };
    });
  }

  /** Ends everything with `error` (bind failure, close). */
  private fail(error: RpcError, state: ConnectionState): void {
    this.failure = error;
    this.state_ = state;
    for (const call of this.calls.values())
      this.settleError(
        call,
        new RpcError({ ...error.detail, executed: call.maybeExecuted ? 'unknown' : 'no' }, error.message),
      );
    this.queue.length = 0;
    this.queueHead = 0;
    for (const waiter of this.readyWaiters.splice(0)) waiter.reject(error);
    if (this.transport !== null) {
      const start = beginFrame(this.out, Kind.GOAWAY);
      this.out.string(error.detail.code);
      endFrame(this.out, start);
      this.transport.wake();
      this.transport.close(error.message);
    }
    this.emit(state === ConnectionState.FAILED ? { state: 'failed', error } : { state: 'closed' });
  }

  private emit(event: ClientStateEvent): void {
    if (this.onStateChange === null) return;
    try {
      this.onStateChange(event);
    } catch (error) {
      this.logger.error('rpc: an onStateChange listener threw', {
        service: this.iface.name,
        event: event.state,
        error,
      });
    }
  }

  /** Reports the scheduled dial, unless a listener already closed the client. */
  private emitReconnecting(delayMs: number): void {
    if (this.state_ !== ConnectionState.DISCONNECTED) return;
    this.emit({ state: 'reconnecting', attempt: this.reconnectAttempts, delayMs });
  }

  private protocolError(reason: string): void {
    this.logger.warn('rpc: protocol error from the server', { service: this.iface.name, reason });
    this.parser.abandon({ code: 'FRAME_TRUNCATED', bytesHave: 0 });
    this.transport?.close(reason);
  }

  // -------------------------------------------------------------------------------------------
  // Frames in

  private onFrame(cursor: FrameCursor): void {
    this.frameStart = cursor.offset;
    try {
      const kind = cursor.u8('kind');
      switch (kind) {
        case Kind.REPLY:
          this.onReply(cursor);
          return;
        case Kind.ITEM:
          this.onItem(cursor);
          return;
        case Kind.END:
          this.onEnd(cursor);
          return;
        case Kind.WELCOME:
          this.onWelcome(cursor);
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
        case Kind.GOAWAY: {
          const reason = cursor.string(4096, 'reason');
          this.goAwayReason = reason;
          this.logger.info('rpc: the server is going away', { service: this.iface.name, reason });
          return;
        }
        default:
          this.protocolError(`unexpected frame kind ${kind}`);
      }
    } catch (error) {
      if (!(error instanceof DecodeFailure)) throw error;
      this.protocolError(`malformed frame: ${describeDecodeError(error.error)}`);
    }
  }

  private onReply(cursor: FrameCursor): void {
    const wireId = readVarUint(cursor, 'callId');
    const status = cursor.u8('status');
    const call = this.calls.get(wireId);
    if (call === undefined || call.stream !== null) return; // late reply to a settled or re-numbered attempt
    if (status === Status.OK) {
      const value = call.procedure.output.read(cursor, '$');
      if (cursor.offset !== cursor.end)
        throw new DecodeFailure({ code: 'TRAILING_BYTES', bytes: cursor.end - cursor.offset });
      this.settleOk(call, value);
      return;
    }
    this.onFailure(call, status, cursor);
  }

  private onFailure(call: PendingCall, status: number, cursor: FrameCursor): void {
    if (status > STATUS_MAX) throw new DecodeFailure({ code: 'UNKNOWN_TAG', tag: status, at: 'status' });
    const wire = readError(cursor);
    const nowMs = this.clock.nowMs();
    switch (status) {
      case Status.NOT_BOUND:
      case Status.SESSION_EXPIRED:
        // Settled (or re-sent) when the new WELCOME tells whether the session survived. On an ordered
        // transport a call sent once and refused this way never ran (duplicates cannot exist there).
        if (call.state === CallState.SENT) {
          call.state = CallState.QUEUED;
          this.inFlight--;
        }
        if (this.transportKind === 'stream' && call.sends === 1) call.maybeExecuted = false;
        this.rebind();
        return;
      case Status.RESOURCE_EXHAUSTED:
      case Status.UNAVAILABLE:
        if (wire.executed === ExecutedByte.NO) {
          this.retryLater(call, this.error(STATUS_CODES[status]!, 'no', call, wire.message), nowMs);
          return;
        }
        break;
      default:
        break;
    }
    const code = STATUS_CODES[status]!;
    const detail = {
      code,
      executed: EXECUTED[wire.executed]!,
      procedure: call.procedure.name,
      ...(status === Status.APPLICATION ? { appCode: wire.appCode } : {}),
    };
    this.settleError(call, new RpcError(detail, `${call.procedure.name}: ${wire.message}`));
  }

  private onItem(cursor: FrameCursor): void {
    const wireId = readVarUint(cursor, 'callId');
    const call = this.calls.get(wireId);
    if (call === undefined || call.stream === null) return;
    const item = call.procedure.output.read(cursor, '$');
    if (cursor.offset !== cursor.end)
      throw new DecodeFailure({ code: 'TRAILING_BYTES', bytes: cursor.end - cursor.offset });
    // Credit counts whole ITEM bodies, as the server charges them.
    call.stream.push(item, cursor.end - this.frameStart);
  }

  private onEnd(cursor: FrameCursor): void {
    const wireId = readVarUint(cursor, 'callId');
    const status = cursor.u8('status');
    const call = this.calls.get(wireId);
    if (call === undefined || call.stream === null) return;
    if (status === Status.OK) {
      const stream = call.stream;
      this.release(call);
      stream.finish();
      return;
    }
    this.onFailure(call, status, cursor);
  }

  /** @internal The consumer of a stream made room: grant the server more credit. */
  credit(call: PendingCall, bytes: number): void {
    if (!this.calls.has(call) || call.state !== CallState.SENT || this.transport === null) return;
    const start = beginFrame(this.out, Kind.CREDIT);
    this.out.varuint(call.id);
    this.out.varuint(bytes);
    endFrame(this.out, start);
    this.transport.wake();
  }
}

/** A server stream on the client: a bounded queue of items, credit returned as they are consumed. */
class ClientStream implements RpcStream<unknown> {
  readonly windowBytes: number;
  private readonly client: RpcClient;
  private readonly call: PendingCall;
  private readonly items: unknown[] = [];
  private readonly sizes: number[] = [];
  private head = 0;
  private done = false;
  private error: RpcError | null = null;
  private waiter: { resolve: (result: IteratorResult<unknown>) => void; reject: (error: RpcError) => void } | null =
    null;
  private consumedBytes = 0;

  constructor(client: RpcClient, call: PendingCall, windowBytes: number) {
    this.client = client;
    this.call = call;
    this.windowBytes = windowBytes;
  }

  [Symbol.asyncIterator](): AsyncIterator<unknown> {
    return {
      next: () => this.next(),
      return: () => {
        this.cancel();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  cancel(): void {
    if (this.done) return;
    this.done = true; // first, so the CANCELLED settlement below ends the iteration quietly
    this.client.cancel(this.call, 'stream cancelled by the caller');
    this.flushWaiter();
  }

  /** @internal */
  push(item: unknown, bytes: number): void {
    if (this.done) return;
    if (this.waiter !== null) {
      const waiter = this.waiter;
      this.waiter = null;
      this.consumed(bytes);
      waiter.resolve({ value: item, done: false });
      return;
    }
    this.items.push(item);
    this.sizes.push(bytes);
  }

  /** @internal The server ended the stream (or it was cancelled): items already queued are still delivered. */
  finish(): void {
    this.done = true;
    this.flushWaiter();
  }

  /** @internal */
  fail(error: RpcError): void {
    if (this.done) return;
    this.error = error;
    this.done = true;
    this.flushWaiter();
  }

  private flushWaiter(): void {
    if (this.waiter === null || this.head < this.items.length) return;
    const waiter = this.waiter;
    this.waiter = null;
    if (this.error !== null) waiter.reject(this.error);
    else waiter.resolve({ value: undefined, done: true });
  }

  private next(): Promise<IteratorResult<unknown>> {
    if (this.head < this.items.length) {
      const item = this.items[this.head]!;
      this.consumed(this.sizes[this.head]!);
      this.items[this.head] = undefined;
      this.head++;
      if (this.head === this.items.length) {
        this.items.length = 0;
        this.sizes.length = 0;
        this.head = 0;
      }
      return Promise.resolve({ value: item, done: false });
    }
    if (this.error !== null) return Promise.reject(this.error);
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    if (this.waiter !== null)
      return Promise.reject(new TypeError('RpcStream: next() called while another next() is pending'));
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  private consumed(bytes: number): void {
    this.consumedBytes += bytes;
    if (this.consumedBytes * 2 >= this.windowBytes) {
      this.client.credit(this.call, this.consumedBytes);
      this.consumedBytes = 0;
    }
  }
}

function describeProblem(problem: FrameProblem): string {
  return problem.code === 'FRAME_TOO_LARGE'
    ? `frame of ${problem.bytes} bytes exceeds the maximum of ${problem.bytesMax}`
    : `stream ended inside a frame (${problem.bytesHave} bytes)`;
}
