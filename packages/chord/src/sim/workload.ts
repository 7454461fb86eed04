/**
 * The simulator workload for Chord: clients put, get and look up keys through random nodes; an admin
 * client (client 1, when the run has churn) makes nodes leave gracefully and join again. Every put
 * value is unique, so a read names the write it saw.
 *
 * What is checked:
 * - during the run, a read never returns a value nobody wrote for that key;
 * - in the liveness phase (faults healed, crashed nodes restarted, every put in flight answered) the
 *   ring must converge: successor pointers, predecessors and successor lists exactly right (Theorem
 *   5), and every acknowledged key held at its newest acknowledged version by its first `replicas`
 *   successors (re-replication);
 * - then every client's probe put of a fresh key must be acknowledged (the healed ring takes writes);
 * - then every key (the probes too) is read back: it must be found, at a version no older than its
 *   newest acknowledged put (an acknowledged write is never lost; nodes keep their copies on disk
 *   across crashes, and fewer than `replicas` copies are ever lost at once).
 */
import { assert, type NodeId, type RequestId } from '@dsys/kit';
import type { ClientActor, ClientContext, SimOptions } from '@dsys/sim';
import type { ChordRequest, ChordResponse } from '../messages.js';
import { compareVersions } from '../messages.js';

export interface PutRecord {
  readonly value: string;
  readonly seq: number;
  readonly writer: number;
  readonly replicas: number;
}

export interface KeyHistory {
  /** Every value ever sent in a put (acknowledged or not). */
  readonly attempted: Set<string>;
  readonly acked: PutRecord[];
  /** The final read of the liveness phase. */
  final: { found: boolean; value: string | null; seq: number; writer: number } | null;
}

export interface ChordShared {
  readonly options: SimOptions;
  readonly keys: Map<string, KeyHistory>;
  readonly violations: string[];
  ops: number;
  ok: number;
  errors: number;
  timeouts: number;
  lookups: number;
  lookupHops: number;
  /**
   * Puts sent and not yet answered (or timed out). The read-back waits for them: a put sent in the
   * safety phase may be acknowledged after a read-back of its key (swarm seed 0x53ca9b6e54673a25).
   */
  putsInFlight: number;
  /** Set by `converged` once the ring and the replicas are right; clients then read every key back. */
  ringStable: boolean;
  /** Keys still to read back in the liveness phase. */
  verifyQueue: string[] | null;
  verifyOutstanding: number;
  /**
   * Clients whose liveness probe (one put of a fresh key once the ring is stable) is not yet
   * acknowledged: the healed ring must accept writes, not only keep old ones. The read-back waits
   * for every probe, so it reads the probes back too.
   */
  probesPending: number;
  /** The admin client has rejoined every node it made leave. */
  adminDone: boolean;
  /** Nodes the admin made leave and has not rejoined. */
  readonly left: Set<number>;
}

export function newShared(options: SimOptions): ChordShared {
  return {
    options,
    keys: new Map(),
    violations: [],
    ops: 0,
    ok: 0,
    errors: 0,
    timeouts: 0,
    lookups: 0,
    lookupHops: 0,
    putsInFlight: 0,
    ringStable: false,
    verifyQueue: null,
    verifyOutstanding: 0,
    probesPending: 0,
    adminDone: true,
    left: new Set(),
  };
}

export function historyOf(shared: ChordShared, key: string): KeyHistory {
  let history = shared.keys.get(key);
  if (history === undefined) {
    history = { attempted: new Set(), acked: [], final: null };
    shared.keys.set(key, history);
  }
  return history;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();
const POLL_MS = 20;

interface Pending {
  readonly requestId: RequestId;
  readonly request: ChordRequest;
  readonly timer: number;
  readonly verify: boolean;
}

/** A client: think, pick an operation, send it to a random node, wait for the reply or a timeout. */
export class ChordClient implements ClientActor<ChordResponse> {
  private pending: Pending | null = null;
  private thinkTimer: number | null = null;
  private writes = 0;
  private probed = false;

  constructor(
    private readonly context: ClientContext<ChordRequest>,
    private readonly shared: ChordShared,
  ) {
    shared.probesPending++;
  }

  onStart(): void {
    this.think(this.context.rng.int(this.context.options.thinkMsMax + 1));
  }

  onLiveness(): void {
    if (this.pending === null && this.thinkTimer === null) this.think(POLL_MS);
  }

  onTimer(timer: number): void {
    if (timer === this.thinkTimer) {
      this.thinkTimer = null;
      this.issue();
      return;
    }
    const pending = this.pending;
    if (pending === null || timer !== pending.timer) return;
    this.pending = null;
    this.shared.timeouts++;
    if (pending.request.type === 'put') this.shared.putsInFlight--;
    if (pending.verify) this.requeue(pending.request);
    this.think(POLL_MS);
  }

  onReply(_node: NodeId, requestId: RequestId, response: ChordResponse): void {
    const pending = this.pending;
    if (pending === null || pending.requestId !== requestId) return;
    this.context.cancelTimer(pending.timer);
    this.pending = null;
    this.record(pending, response);
    this.think(this.context.rng.int(this.context.options.thinkMsMax + 1));
  }

  private think(delayMs: number): void {
    this.thinkTimer = this.context.setTimer(delayMs);
  }

  private issue(): void {
    const phase = this.context.phase();
    if (phase === 'done') return;
    if (phase === 'liveness') {
      this.issueVerify();
      return;
    }
    if (this.shared.ops >= this.context.options.opsMax) return;
    this.shared.ops++;
    const knobs = this.context.options.knobs;
    const roll = this.context.rng.int(100);
    const key = `k${this.context.rng.int(knobs.keys ?? 16)}`;
    let request: ChordRequest;
    if (roll < (knobs.putPercent ?? 40)) {
      const value = `c${this.context.id}-${this.writes++}`;
      historyOf(this.shared, key).attempted.add(value);
      request = { type: 'put', key, value: textEncoder.encode(value) };
    } else if (roll < 90) {
      request = { type: 'get', key };
    } else {
      request = { type: 'lookup', key };
    }
    this.send(request, false);
  }

  private issueVerify(): void {
    const shared = this.shared;
    if (!shared.ringStable) {
      this.think(POLL_MS);
      return;
    }
    if (!this.probed) {
      const key = `probe-c${this.context.id}`;
      const value = `c${this.context.id}-probe-${this.writes++}`;
      historyOf(shared, key).attempted.add(value);
      this.send({ type: 'put', key, value: textEncoder.encode(value) }, false);
      return;
    }
    if (shared.probesPending > 0) {
      this.think(POLL_MS);
      return;
    }
    shared.verifyQueue ??= [...shared.keys.keys()].sort();
    const key = shared.verifyQueue.shift();
    if (key === undefined) return;
    shared.verifyOutstanding++;
    this.send({ type: 'get', key }, true);
  }

  private requeue(request: ChordRequest): void {
    assert(request.type === 'get', 'requeue: not a get');
    this.shared.verifyOutstanding--;
    this.shared.verifyQueue?.push(request.key);
  }

  private send(request: ChordRequest, verify: boolean): void {
    if (request.type === 'put') this.shared.putsInFlight++;
    const node = this.context.rng.pick(this.context.nodes);
    const requestId = this.context.send(node, request);
    const timer = this.context.setTimer(this.context.options.requestTimeoutMs);
    this.pending = { requestId, request, timer, verify };
  }

  private record(pending: Pending, response: ChordResponse): void {
    const shared = this.shared;
    const request = pending.request;
    if (request.type === 'put') shared.putsInFlight--;
    if (response.type === 'error') {
      shared.errors++;
      if (pending.verify) this.requeue(request);
      return;
    }
    shared.ok++;
    if (request.type === 'put' && response.type === 'put') {
      const value = textDecoder.decode(request.value);
      if (request.key.startsWith('probe-') && !this.probed) {
        this.probed = true;
        shared.probesPending--;
      }
      historyOf(shared, request.key).acked.push({
        value,
        seq: response.seq,
        writer: response.writer,
        replicas: response.replicas,
      });
    } else if (request.type === 'get' && response.type === 'get') {
      this.recordRead(request.key, response, pending.verify);
    } else if (response.type === 'lookup') {
      shared.lookups++;
      shared.lookupHops += response.hops;
    }
  }

  private recordRead(key: string, response: Extract<ChordResponse, { type: 'get' }>, verify: boolean): void {
    const shared = this.shared;
    const history = historyOf(shared, key);
    const value = response.value === null ? null : textDecoder.decode(response.value);
    if (value !== null && !history.attempted.has(value)) {
      shared.violations.push(`get ${key} returned ${JSON.stringify(value)}, which no client wrote`);
    }
    if (!verify) return;
    shared.verifyOutstanding--;
    history.final = { found: response.found, value, seq: response.seq, writer: response.writer };
  }
}

/**
 * Client 1 of a run with churn: makes random nodes leave gracefully and rejoins them later; in the
 * liveness phase it rejoins every node it made leave.
 */
export class AdminClient implements ClientActor<ChordResponse> {
  private pending: { requestId: RequestId; node: NodeId; kind: 'leave' | 'join'; timer: number } | null = null;
  private timer: number | null = null;

  constructor(
    private readonly context: ClientContext<ChordRequest>,
    private readonly shared: ChordShared,
    private readonly periodMs: number,
  ) {}

  onStart(): void {
    this.timer = this.context.setTimer(this.periodMs);
  }

  onLiveness(): void {
    this.shared.adminDone = this.shared.left.size === 0;
    if (this.pending === null && this.timer === null) this.timer = this.context.setTimer(POLL_MS);
  }

  onTimer(timer: number): void {
    if (timer === this.timer) {
      this.timer = null;
      this.act();
      return;
    }
    if (this.pending !== null && timer === this.pending.timer) {
      this.pending = null;
      this.schedule();
    }
  }

  onReply(_node: NodeId, requestId: RequestId, response: ChordResponse): void {
    const pending = this.pending;
    if (pending === null || pending.requestId !== requestId) return;
    this.context.cancelTimer(pending.timer);
    this.pending = null;
    const done = response.type === 'ok' || (response.type === 'error' && response.code === 'ALREADY_JOINED');
    if (pending.kind === 'join' && done) this.shared.left.delete(pending.node);
    if (this.context.phase() !== 'safety' && this.shared.left.size === 0) this.shared.adminDone = true;
    this.schedule();
  }

  private schedule(): void {
    const liveness = this.context.phase() !== 'safety';
    this.timer = this.context.setTimer(liveness ? POLL_MS : this.periodMs);
  }

  private act(): void {
    const { context, shared } = this;
    const phase = context.phase();
    if (phase === 'done') return;
    const nodes = context.nodes;
    const left = [...shared.left].sort((a, b) => a - b);
    const rejoin = phase === 'liveness' ? left.length > 0 : left.length > 0 && context.rng.boolean();
    if (rejoin) {
      const node = left[0]! as NodeId;
      const members = nodes.filter((candidate) => !shared.left.has(candidate));
      if (members.length === 0) {
        this.schedule();
        return;
      }
      this.request(node, { type: 'join', via: context.rng.pick(members) }, 'join');
      return;
    }
    // Keep at least half of the nodes in the ring.
    if (phase === 'liveness' || left.length + 1 > Math.floor(nodes.length / 2)) {
      this.schedule();
      return;
    }
    const node = context.rng.pick(nodes.filter((candidate) => !shared.left.has(candidate)));
    this.request(node, { type: 'leave' }, 'leave');
  }

  private request(node: NodeId, request: ChordRequest, kind: 'leave' | 'join'): void {
    // A leave whose reply is lost may still happen: count the node as left until a join says otherwise.
    if (kind === 'leave') this.shared.left.add(node);
    const requestId = this.context.send(node, request);
    const timer = this.context.setTimer(this.context.options.requestTimeoutMs);
    this.pending = { requestId, node, kind, timer };
  }
}

/** The end-of-run check: no acknowledged write lost, no phantom read. */
export function checkHistories(shared: ChordShared): { ok: true; summary: string } | { ok: false; message: string } {
  if (shared.violations.length > 0) return { ok: false, message: shared.violations.slice(0, 5).join('\n') };
  let acked = 0;
  for (const [key, history] of [...shared.keys].sort(([a], [b]) => (a < b ? -1 : 1))) {
    acked += history.acked.length;
    const problem = checkKey(key, history);
    if (problem !== null) return { ok: false, message: problem };
  }
  const hops = shared.lookups === 0 ? 0 : shared.lookupHops / shared.lookups;
  return {
    ok: true,
    summary: `${shared.keys.size} keys, ${acked} acknowledged puts all found; ${shared.ok} ok, ${shared.errors} errors, ${shared.timeouts} timeouts; mean lookup hops ${hops.toFixed(2)}`,
  };
}

function checkKey(key: string, history: KeyHistory): string | null {
  const final = history.final;
  if (history.acked.length === 0) return null;
  const newest = history.acked.reduce((a, b) => (compareVersions(a, b) >= 0 ? a : b));
  if (final === null) return `key ${key} was never read back`;
  if (!final.found) return `key ${key}: acknowledged put ${JSON.stringify(newest.value)} lost (read back: not found)`;
  if (compareVersions(final, newest) < 0) {
    return `key ${key}: read back version ${final.seq}/${final.writer}, older than the acknowledged ${newest.seq}/${newest.writer}`;
  }
  const same = history.acked.find((put) => compareVersions(put, final) === 0);
  if (same !== undefined && same.value !== final.value) {
    return `key ${key}: version ${final.seq}/${final.writer} holds ${JSON.stringify(final.value)}, acknowledged as ${JSON.stringify(same.value)}`;
  }
  return null;
}
