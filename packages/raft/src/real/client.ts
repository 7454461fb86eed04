/**
 * `KvClient`: the TypeScript client of a real Raft key-value cluster, over `@dsys/rpc`. It is the
 * seed's "smart client" (no lost or duplicate requests across fail-overs), with the same logic as the
 * simulator's client (`src/sim/workload.ts`):
 *
 * - **Sessions and sequence numbers** (dissertation §6.3). Writes go through client sessions: a write
 *   takes a session that has nothing in flight, numbers itself `seq + 1`, and keeps that number on
 *   every retry, so the replicated state machine applies it once however often it arrives. A session
 *   carries one write at a time, so concurrent writes use several sessions (opened on demand, at most
 *   `sessionsMax`, reused afterwards).
 * - **Leader discovery.** Requests go to the node believed to lead. NOT_LEADER answers carry a hint
 *   (the node's idea of the leader), which the client follows; node ids are mapped to endpoints by
 *   asking every endpoint for its `status` once. Without a hint it tries the next endpoint.
 * - **Retries with backoff** on NOT_LEADER without a hint, BUSY, timeouts and lost connections, until
 *   the operation's deadline.
 * - **Typed outcomes.** A failure is `KvClientError`: REJECTED and UNAVAILABLE mean it definitely did
 *   not take effect, INDETERMINATE that it may have (an attempt timed out after it was sent, or a
 *   leader stepped down with it in its log, and no later attempt settled it).
 * - **Linearizable reads** by default: get and scan are served by the leader after a ReadIndex round
 *   (dissertation §6.4), or from its lease if the cluster runs with `--read-mode lease`.
 *
 * Failure detection: an attempt ends at `attemptTimeoutMs`, or earlier when the RPC connection to its
 * node breaks (the RPC client's `onStateChange` reports it: a dead leader is noticed in one round
 * trip instead of one attempt timeout).
 */
import { errorMessage, type NodeId } from '@dsys/kit';
import {
  type CallOptions,
  type ClientOf,
  type ClientStateEvent,
  connect,
  type RpcConnection,
  RpcError,
} from '@dsys/rpc';
import { parseEndpoint } from '@dsys/runtime-node';
import type { KvErrorResponse, KvResponse } from '../kv/schema.js';
import { KvClientError } from './errors.js';
import { type RaftKvInterface, raftKvInterface } from './interface.js';

export interface KvClientOptions {
  /** How long one attempt at one node may take before the client tries again elsewhere (default 2000 ms). */
  readonly attemptTimeoutMs?: number;
  /** Deadline of a whole operation, retries included (default 10,000 ms). */
  readonly timeoutMs?: number;
  /** Backoff before retrying after BUSY or a refusal without a leader hint: doubles from min to max. */
  readonly backoffMsMin?: number;
  readonly backoffMsMax?: number;
  /** Sessions open at once, i.e. writes in flight at once; more writes wait for one (default 256). */
  readonly sessionsMax?: number;
  /**
   * A session unused for this long is dropped and a new one opened: the cluster expires idle sessions
   * (by log time, `--session-timeout-ms`, default 60 s), and a write must not find its session gone.
   */
  readonly sessionIdleMsMax?: number;
}

export type KvStatus = Extract<KvResponse, { type: 'status' }>;
export type ConfChangeRequest = { type: 'addVoter' | 'addLearner' | 'removeNode'; node: number };

export interface ScanResult {
  readonly entries: readonly { readonly key: string; readonly value: string }[];
  /** More keys match the prefix beyond `limit` (or the response size cap). */
  readonly more: boolean;
}

/** What one endpoint answered to `status`. */
export type EndpointStatus =
  | { readonly endpoint: string; readonly ok: true; readonly status: KvStatus }
  | { readonly endpoint: string; readonly ok: false; readonly error: string };

const DEFAULTS = {
  attemptTimeoutMs: 2_000,
  timeoutMs: 10_000,
  backoffMsMin: 5,
  backoffMsMax: 250,
  sessionsMax: 256,
  sessionIdleMsMax: 20_000,
};

/** A node as the client knows it. */
class Target {
  nodeId: NodeId | null = null;
  /** Until then, prefer other nodes: its connection broke or an attempt timed out. */
  suspectUntilMs = 0;
  private connection: RpcConnection<RaftKvInterface> | null = null;
  /** Attempts in flight here, failed early when the connection breaks. */
  private readonly inFlight = new Set<(error: RpcError) => void>();

  constructor(readonly endpoint: string) {}

  stub(): ClientOf<RaftKvInterface> {
    this.connection ??= connect(raftKvInterface, this.endpoint, {
      // The client decides about retries itself (with its session numbers); the RPC layer may still
      // retry where it is safe, within the attempt's deadline.
      reconnectBackoffBaseMs: 20,
      reconnectBackoffMaxMs: 500,
      keepaliveIntervalMs: 1_000,
      keepaliveTimeoutMs: 2_000,
      onStateChange: (event) => this.onStateChange(event),
    });
    return this.connection.stub;
  }

  /**
   * Runs one attempt. If the connection breaks first, the attempt fails at once with UNAVAILABLE
   * (outcome unknown); the RPC call itself runs on to its deadline and its late answer is ignored.
   * (A plain callback per attempt: an AbortController per call cost ~15 µs, measured.)
   */
  attempt<T>(run: (stub: ClientOf<RaftKvInterface>, options: CallOptions) => Promise<T>, timeoutMs: number) {
    return new Promise<T>((resolve, reject) => {
      const fail = (error: RpcError) => reject(error);
      this.inFlight.add(fail);
      run(this.stub(), { timeoutMs }).then(
        (value) => {
          this.inFlight.delete(fail);
          resolve(value);
        },
        (error: unknown) => {
          this.inFlight.delete(fail);
          reject(error);
        },
      );
    });
  }

  /**
   * A broken connection (or a failed dial) fails the attempts in flight at once: UNAVAILABLE, with
   * `executed: 'no'` when nothing was ever sent over it, 'unknown' when it was connected.
   */
  private onStateChange(event: ClientStateEvent): void {
    if (event.state !== 'disconnected') return;
    this.suspectUntilMs = performance.now() + 1_000;
    if (this.inFlight.size === 0) return;
    const error = new RpcError(
      { code: 'UNAVAILABLE', executed: event.wasConnected ? 'unknown' : 'no' },
      `${event.wasConnected ? 'rpc: connection lost' : 'rpc: connect failed'}: ${event.reason}`,
    );
    const failing = [...this.inFlight];
    this.inFlight.clear();
    for (const fail of failing) fail(error);
  }

  async close(): Promise<void> {
    await this.connection?.close();
    this.connection = null;
  }
}

interface Session {
  readonly id: number;
  seq: number;
  lastUsedMs: number;
}

/** What an operation is, for routing and for classifying its failures. */
interface Operation {
  readonly name: string;
  /** Writes and administration change state: their failures may be indeterminate. */
  readonly mutates: boolean;
  run(stub: ClientOf<RaftKvInterface>, options: CallOptions): Promise<KvResponse>;
}

type Outcome =
  | { readonly kind: 'done'; readonly response: Exclude<KvResponse, KvErrorResponse> }
  /** A session-level refusal: the write was not applied in this session (the caller decides what next). */
  | {
      readonly kind: 'session';
      readonly code: 'SESSION_EXPIRED' | 'SEQ_STALE';
      readonly maybeApplied: boolean;
      readonly attempts: number;
    };

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class KvClient {
  private readonly options: typeof DEFAULTS;
  private readonly targets: Target[];
  private leader: Target | null = null;
  private turn: number;
  private discovery: Promise<void> | null = null;
  private discoveredAtMs = Number.NEGATIVE_INFINITY;
  private readonly idleSessions: Session[] = [];
  private sessionsOpen = 0;
  private readonly sessionWaiters: ((session: Session | null) => void)[] = [];
  private closed = false;

  /** `endpoints`: client endpoints (`host:port`) of the cluster's nodes, as printed on the `ready:` line. */
  constructor(endpoints: readonly string[], options: KvClientOptions = {}) {
    if (endpoints.length === 0) throw new RangeError('KvClient: no endpoints');
    for (const endpoint of endpoints) {
      const parsed = parseEndpoint(endpoint);
      if (!parsed.ok) throw new RangeError(`KvClient: bad endpoint "${endpoint}": ${parsed.error}`);
    }
    this.options = { ...DEFAULTS };
    for (const key of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) {
      const value = options[key];
      if (value === undefined) continue;
      if (!Number.isSafeInteger(value) || value < 1)
        throw new RangeError(`KvClient: ${key} must be a positive integer`);
      this.options[key] = value;
    }
    this.targets = [...new Set(endpoints)].map((endpoint) => new Target(endpoint));
    // Clients start at different nodes so that a fleet of them does not all probe the first one.
    this.turn = Math.floor(Math.random() * this.targets.length);
  }

  // ------------------------------------------------------------------------------------------
  // Key-value operations

  /** The value of `key`, or null when absent (linearizable). */
  async get(key: string): Promise<string | null> {
    const response = await this.read('get', (stub, options) => stub.get({ key }, options));
    if (response.type !== 'get') throw badResponse('get', response);
    return response.value;
  }

  /** Keys starting with `prefix` in ascending order, at most `limit` (linearizable). */
  async scan(prefix: string, limit = 100): Promise<ScanResult> {
    const response = await this.read('scan', (stub, options) => stub.scan({ prefix, limit }, options));
    if (response.type !== 'scan') throw badResponse('scan', response);
    return { entries: response.entries, more: response.more };
  }

  async put(key: string, value: string): Promise<void> {
    checkArgs('put', { sessionId: 0, seq: 0, key, value });
    const response = await this.write('put', (sessionId, seq, stub, options) =>
      stub.put({ sessionId, seq, key, value }, options),
    );
    if (response.type !== 'put') throw badResponse('put', response);
  }

  /** Deletes `key`; resolves whether it existed. */
  async delete(key: string): Promise<boolean> {
    checkArgs('delete', { sessionId: 0, seq: 0, key });
    const response = await this.write('delete', (sessionId, seq, stub, options) =>
      stub.delete({ sessionId, seq, key }, options),
    );
    if (response.type !== 'delete') throw badResponse('delete', response);
    return response.existed;
  }

  /**
   * Compare-and-swap: sets `key` to `value` (null deletes it) if its current value is `expected` (null:
   * absent). Resolves true when it swapped, false when the current value differed (nothing changed).
   */
  async cas(key: string, expected: string | null, value: string | null): Promise<boolean> {
    checkArgs('cas', { sessionId: 0, seq: 0, key, expected, value });
    const response = await this.write('cas', (sessionId, seq, stub, options) =>
      stub.cas({ sessionId, seq, key, expected, value }, options),
    );
    if (response.type !== 'cas') throw badResponse('cas', response);
    return response.ok;
  }

  // ------------------------------------------------------------------------------------------
  // Administration

  /** The status of the node at `endpoint` (role, term, commit, applied, configuration). */
  async status(endpoint: string): Promise<KvStatus> {
    const target = this.targetFor(endpoint);
    const response = await target.attempt((stub, options) => stub.status({}, options), this.options.attemptTimeoutMs);
    if (response.type !== 'status') throw badResponse('status', response);
    this.learn(target, response);
    return response;
  }

  /** Every endpoint's status, asked in parallel; unreachable nodes are reported, not thrown. */
  statusAll(): Promise<EndpointStatus[]> {
    return Promise.all(
      this.targets.map(async (target): Promise<EndpointStatus> => {
        try {
          return { endpoint: target.endpoint, ok: true, status: await this.status(target.endpoint) };
        } catch (error) {
          return { endpoint: target.endpoint, ok: false, error: errorMessage(error) };
        }
      }),
    );
  }

  /**
   * A membership change through the leader (joint consensus when voters change). A node joins as a
   * learner (`addLearner`) and becomes a voter (`addVoter`) once caught up. Resolves with the log index
   * of the change.
   */
  async changeMembership(changes: readonly ConfChangeRequest[]): Promise<number> {
    const response = await this.execute({
      name: 'changeMembership',
      mutates: true,
      run: (stub, options) => stub.changeMembership({ changes: [...changes] }, options),
    });
    if (response.kind !== 'done' || response.response.type !== 'changeMembership') {
      throw badResponse('changeMembership', response.kind === 'done' ? response.response : null);
    }
    return response.response.index;
  }

  /** Asks the leader to hand leadership to node `to` (it resolves once the transfer has started). */
  async transferLeader(to: number): Promise<void> {
    const response = await this.execute({
      name: 'transferLeader',
      mutates: false,
      run: (stub, options) => stub.transferLeader({ to }, options),
    });
    if (response.kind !== 'done' || response.response.type !== 'transferLeader') {
      throw badResponse('transferLeader', response.kind === 'done' ? response.response : null);
    }
  }

  /** The endpoint of the node this client believes leads, if any. */
  get leaderEndpoint(): string | null {
    return this.leader?.endpoint ?? null;
  }

  /** Fails operations in flight with CLOSED and closes every connection. */
  async close(): Promise<void> {
    this.closed = true;
    for (const waiter of this.sessionWaiters.splice(0)) waiter(null);
    await Promise.all(this.targets.map((target) => target.close()));
  }

  // ------------------------------------------------------------------------------------------
  // Reads and writes

  private async read(
    name: string,
    run: (stub: ClientOf<RaftKvInterface>, options: CallOptions) => Promise<KvResponse>,
  ): Promise<Exclude<KvResponse, KvErrorResponse>> {
    const outcome = await this.execute({ name, mutates: false, run });
    if (outcome.kind !== 'done') throw badResponse(name, null);
    return outcome.response;
  }

  /**
   * One write in one session, retried with the same sequence number until it is answered or its
   * deadline passes. A session refusal before any attempt could have applied it is retried in a fresh
   * session; after such an attempt the outcome is unknown.
   */
  private async write(
    name: string,
    run: (sessionId: number, seq: number, stub: ClientOf<RaftKvInterface>, options: CallOptions) => Promise<KvResponse>,
  ): Promise<Exclude<KvResponse, KvErrorResponse>> {
    const deadlineMs = performance.now() + this.options.timeoutMs;
    for (;;) {
      const session = await this.acquireSession(name, deadlineMs);
      // The number is used up whatever happens. A session whose write is in doubt stays usable: a later
      // write with a higher number is applied after it, or it arrives late and is refused as stale.
      const seq = ++session.seq;
      let outcome: Outcome;
      try {
        outcome = await this.execute(
          { name, mutates: true, run: (stub, options) => run(session.id, seq, stub, options) },
          deadlineMs,
        );
      } catch (error) {
        this.releaseSession(session, true);
        throw error;
      }
      if (outcome.kind === 'done') {
        this.releaseSession(session, true);
        return outcome.response;
      }
      this.releaseSession(session, false);
      if (outcome.maybeApplied) {
        throw new KvClientError({
          code: 'INDETERMINATE',
          operation: name,
          attempts: outcome.attempts,
          lastProblem: `session ${session.id} lost (${outcome.code}) after an attempt that may have applied`,
        });
      }
      // Definitely not applied: go again in a fresh session.
    }
  }

  /**
   * Sends one operation to the leader until it is answered or `deadlineMs` passes. Follows hints,
   * backs off when no leader is known, and tracks whether any attempt may have taken effect.
   */
  private async execute(
    operation: Operation,
    deadlineMs = performance.now() + this.options.timeoutMs,
  ): Promise<Outcome> {
    let maybeApplied = false;
    let attempts = 0;
    let backoffMs = 0;
    let lastProblem = 'no attempt made';
    for (;;) {
      if (this.closed) throw new KvClientError({ code: 'CLOSED', operation: operation.name, maybeApplied });
      const remainingMs = deadlineMs - performance.now();
      if (remainingMs <= 0) {
        const detail = { operation: operation.name, attempts, lastProblem };
        throw new KvClientError(
          maybeApplied ? { code: 'INDETERMINATE', ...detail } : { code: 'UNAVAILABLE', ...detail },
          `${operation.name}: ${maybeApplied ? 'outcome unknown' : 'not done'} after ${attempts} attempts (${lastProblem})`,
        );
      }
      const target = this.pick();
      attempts++;
      let response: KvResponse;
      try {
        response = await target.attempt(
          operation.run,
          Math.max(1, Math.min(this.options.attemptTimeoutMs, remainingMs)),
        );
      } catch (error) {
        if (!(error instanceof RpcError)) throw error;
        if (operation.mutates && error.executed !== 'no') maybeApplied = true;
        lastProblem = `${target.endpoint}: ${error.detail.code}: ${error.message}`;
        if (error.detail.code === 'INVALID_ARGUMENT' || error.detail.code === 'BIND_MISMATCH') {
          throw new KvClientError({
            code: 'REJECTED',
            operation: operation.name,
            reason: error.detail.code,
            message: error.message,
          });
        }
        this.suspect(target);
        backoffMs = await this.backoff(backoffMs, deadlineMs, this.allSuspect());
        continue;
      }
      if (response.type !== 'error') {
        this.leader = target;
        return { kind: 'done', response };
      }
      lastProblem = `${target.endpoint}: ${response.code}: ${response.message}`;
      switch (response.code) {
        case 'LEADER_CHANGED':
          if (operation.mutates) maybeApplied = true;
          if (this.follow(target, response.leaderHint)) continue;
          backoffMs = await this.backoff(backoffMs, deadlineMs, true);
          continue;
        case 'NOT_LEADER':
          if (this.follow(target, response.leaderHint)) continue;
          backoffMs = await this.backoff(backoffMs, deadlineMs, true);
          continue;
        case 'BUSY':
          backoffMs = await this.backoff(backoffMs, deadlineMs, true);
          continue;
        case 'SESSION_EXPIRED':
        case 'SEQ_STALE':
          return { kind: 'session', code: response.code, maybeApplied, attempts };
        case 'BAD_REQUEST':
        case 'REFUSED':
          if (maybeApplied) {
            // A refusal of a retried change may be caused by the first attempt having succeeded.
            throw new KvClientError({ code: 'INDETERMINATE', operation: operation.name, attempts, lastProblem });
          }
          throw new KvClientError({
            code: 'REJECTED',
            operation: operation.name,
            reason: response.code,
            message: response.message,
          });
      }
    }
  }

  // ------------------------------------------------------------------------------------------
  // Sessions

  private async acquireSession(operation: string, deadlineMs: number): Promise<Session> {
    const nowMs = performance.now();
    for (;;) {
      const session = this.idleSessions.pop();
      if (session === undefined) break;
      if (nowMs - session.lastUsedMs <= this.options.sessionIdleMsMax) return session;
      // Too old: the cluster may have expired it. Forget it (the cluster expires it in turn).
      this.sessionsOpen--;
    }
    if (this.sessionsOpen < this.options.sessionsMax) {
      this.sessionsOpen++;
      try {
        return await this.openSession(operation, deadlineMs);
      } catch (error) {
        this.sessionsOpen--;
        this.wakeSessionWaiter();
        throw error;
      }
    }
    const session = await new Promise<Session | null>((resolve) => this.sessionWaiters.push(resolve));
    if (session === null) throw new KvClientError({ code: 'CLOSED', operation, maybeApplied: false });
    return session;
  }

  private async openSession(operation: string, deadlineMs: number): Promise<Session> {
    const outcome = await this.execute(
      { name: 'openSession', mutates: false, run: (stub, options) => stub.openSession({}, options) },
      deadlineMs,
    ).catch((error: unknown) => {
      // A session that may or may not have opened costs nothing but an idle entry in the session table;
      // the write that wanted it was never sent.
      if (error instanceof KvClientError && error.detail.code !== 'REJECTED' && error.detail.code !== 'CLOSED') {
        throw new KvClientError({
          code: 'UNAVAILABLE',
          operation,
          attempts: 'attempts' in error.detail ? error.detail.attempts : 0,
          lastProblem: `could not open a session: ${error.message}`,
        });
      }
      throw error;
    });
    if (outcome.kind !== 'done' || outcome.response.type !== 'openSession') {
      throw badResponse('openSession', outcome.kind === 'done' ? outcome.response : null);
    }
    return { id: outcome.response.sessionId, seq: 0, lastUsedMs: performance.now() };
  }

  /** Returns a session for the next write, or drops it (`usable` false: the cluster no longer knows it). */
  private releaseSession(session: Session, usable: boolean): void {
    if (!usable) {
      this.sessionsOpen--;
      this.wakeSessionWaiter();
      return;
    }
    session.lastUsedMs = performance.now();
    const waiter = this.sessionWaiters.shift();
    if (waiter !== undefined) waiter(session);
    else this.idleSessions.push(session);
  }

  /** A session slot freed up: let one waiting write open its own. */
  private wakeSessionWaiter(): void {
    const waiter = this.sessionWaiters.shift();
    if (waiter === undefined) return;
    this.sessionsOpen++;
    this.openSession('write', performance.now() + this.options.timeoutMs).then(waiter, () => {
      this.sessionsOpen--;
      waiter(null);
    });
  }

  // ------------------------------------------------------------------------------------------
  // Routing

  private targetFor(endpoint: string): Target {
    let target = this.targets.find((candidate) => candidate.endpoint === endpoint);
    if (target === undefined) {
      const parsed = parseEndpoint(endpoint);
      if (!parsed.ok) throw new RangeError(`bad endpoint "${endpoint}": ${parsed.error}`);
      target = new Target(endpoint);
      this.targets.push(target);
    }
    return target;
  }

  /** The believed leader, else the next endpoint in turn that is not suspect. */
  private pick(): Target {
    const nowMs = performance.now();
    if (this.leader !== null && this.leader.suspectUntilMs <= nowMs) return this.leader;
    for (let i = 0; i < this.targets.length; i++) {
      const target = this.targets[this.turn++ % this.targets.length]!;
      if (target.suspectUntilMs <= nowMs) return target;
    }
    return this.targets[this.turn++ % this.targets.length]!;
  }

  private suspect(target: Target): void {
    target.suspectUntilMs = Math.max(target.suspectUntilMs, performance.now() + 500);
    if (this.leader === target) this.leader = null;
  }

  private allSuspect(): boolean {
    const nowMs = performance.now();
    return this.targets.every((target) => target.suspectUntilMs > nowMs);
  }

  /** Follows a leader hint; false when there is none to follow (the caller backs off). */
  private follow(from: Target, hint: NodeId | null): boolean {
    if (this.leader === from) this.leader = null;
    if (hint === null || hint === from.nodeId) return false;
    const target = this.targets.find((candidate) => candidate.nodeId === hint);
    if (target === undefined) {
      this.discover();
      return false;
    }
    this.leader = target;
    // A hint at a node that just failed us (a leader that died) is stale news: back off meanwhile.
    return target.suspectUntilMs <= performance.now();
  }

  /** Learns which node id answers at which endpoint (ids come only from `status`), at most once a second. */
  private discover(): void {
    const nowMs = performance.now();
    if (this.discovery !== null || nowMs - this.discoveredAtMs < 1_000) return;
    this.discoveredAtMs = nowMs;
    this.discovery = this.statusAll().then(() => {
      this.discovery = null;
    });
  }

  private learn(target: Target, status: KvStatus): void {
    target.nodeId = status.node;
    if (status.role === 'leader') this.leader = target;
  }

  private async backoff(backoffMs: number, deadlineMs: number, wait: boolean): Promise<number> {
    if (!wait) return backoffMs;
    const next = Math.min(this.options.backoffMsMax, Math.max(this.options.backoffMsMin, backoffMs * 2));
    const remainingMs = deadlineMs - performance.now();
    // Full jitter, so that clients refused together do not come back together.
    await sleep(Math.max(0, Math.min(remainingMs, Math.random() * next)));
    return next;
  }
}

/**
 * Refuses a write over a limit (a key over 4 KiB, a value over 1 MiB) before a session is taken for
 * it: REJECTED at once, without a round trip (the node would refuse it the same way).
 */
function checkArgs(operation: 'put' | 'delete' | 'cas', args: unknown): void {
  const problem = raftKvInterface.procedures[operation].args.check(args, operation);
  if (problem !== null)
    throw new KvClientError({ code: 'REJECTED', operation, reason: 'BAD_REQUEST', message: problem });
}

function badResponse(operation: string, response: KvResponse | null): KvClientError {
  return new KvClientError({
    code: 'BAD_RESPONSE',
    operation,
    response: response === null ? 'a session refusal' : JSON.stringify(response).slice(0, 200),
  });
}
