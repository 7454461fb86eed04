/**
 * The simulator's key-value workload: concurrent "smart clients" (the seed's term: on fail-over they
 * find the new leader and resync, with no lost or duplicate requests) plus an optional administrator
 * that changes membership and moves leadership while faults are injected.
 *
 * Clients open a session, then issue gets, puts of unique values, compare-and-swaps and occasional
 * deletes over a few keys (so operations collide). A write keeps its session sequence number across
 * every retry: after NOT_LEADER it follows the hint, after a timeout it tries another node, and the
 * session makes the retried write apply once. Every operation is recorded for the linearizability
 * checker (Jepsen's process model: an operation whose outcome is unknown retires its process).
 */
import type { HistoryRecorder, KvInput, KvOutput } from '@dsys/check';
import type { NodeId, RequestId } from '@dsys/kit';
import type { ClientActor, ClientContext } from '@dsys/sim';
import type { KvRequest, KvResponse } from '../kv/schema.js';

export interface KvWorkloadShared {
  readonly recorder: HistoryRecorder<KvInput, KvOutput>;
  /** Operations invoked by all clients in the safety phase. */
  invoked: number;
  completed: number;
  indeterminate: number;
  /** client id -> operations completed in the liveness phase. */
  readonly livenessDone: Map<number, number>;
  readonly regularClients: number;
  /** Operations each client must complete in the liveness phase. */
  readonly livenessOps: number;
  membershipChanges: number;
  transfers: number;
  scans: number;
}

export interface KvWorkloadKnobs {
  /** Keys are k0..k(keyCount-1). */
  readonly keyCount: number;
  /** The last client is an administrator (membership changes, transfers). */
  readonly admin: boolean;
  /** Mean time between administrator actions. */
  readonly adminEveryMs: number;
}

type Pending = {
  readonly requestId: RequestId;
  readonly timer: number;
};

/** Consecutive timeouts double the next timeout, up to 32 times (a slow network must not starve a client). */
function timeoutMs(context: ClientContext<KvRequest>, timeouts: number): number {
  return context.options.requestTimeoutMs * 2 ** Math.min(timeouts, 5);
}

/**
 * Where a client believes the leader is: the last hint, else the next node of a round robin. The
 * round robin advances on its own (not from the node that failed), so stale hints that point back
 * and forth between removed nodes cannot keep a client from ever trying the real leader.
 */
class LeaderGuess {
  private guess: NodeId | null = null;
  private turn: number;

  constructor(private readonly context: ClientContext<KvRequest>) {
    this.turn = context.rng.int(context.nodes.length);
  }

  current(): NodeId {
    return this.guess ?? this.context.nodes[this.turn % this.context.nodes.length]!;
  }

  follow(hint: NodeId | null, failed: NodeId): void {
    if (hint !== null && hint !== failed) {
      this.guess = hint;
      return;
    }
    this.guess = null;
    this.turn++;
    if (this.current() === failed) this.turn++;
  }
}

type Operation =
  | { readonly kind: 'session' }
  | {
      readonly kind: 'op';
      readonly input: KvInput;
      readonly historyId: number;
      readonly seq: number;
      readonly startedMs: number;
    };

/** One client: a session, then operations one at a time, each retried until it resolves or its deadline passes. */
export class KvClient implements ClientActor<KvResponse> {
  private readonly leader: LeaderGuess;
  private sessionId: number | null = null;
  private seq = 0;
  private operation: Operation | null = null;
  private pending: Pending | null = null;
  private pendingNode: NodeId | null = null;
  /** Every request id sent for the current operation: an answer to any attempt settles it. */
  private readonly attempts = new Set<number>();
  private timeouts = 0;
  private process: number;
  private valueNext = 0;
  private thinking: number | null = null;
  private retryBackoffMs = 0;
  private livenessStarted = false;
  /** The last value this client read or wrote per key: what its compare-and-swaps expect. */
  private readonly lastSeen = new Map<string, string | null>();

  constructor(
    private readonly context: ClientContext<KvRequest>,
    private readonly shared: KvWorkloadShared,
    private readonly knobs: KvWorkloadKnobs,
  ) {
    this.leader = new LeaderGuess(context);
    this.process = context.id;
  }

  onStart(): void {
    this.next();
  }

  onLiveness(): void {
    this.livenessStarted = true;
    if (this.operation === null && this.pending === null && this.thinking === null) this.next();
  }

  private deadlineMs(): number {
    return this.context.options.requestTimeoutMs * 6;
  }

  private next(): void {
    if (this.context.phase() === 'done') return;
    if (this.sessionId === null) {
      this.operation = { kind: 'session' };
      this.send({ type: 'openSession' });
      return;
    }
    if (!this.mayInvoke()) return;
    const input = this.chooseInput();
    if (input === null) {
      this.think();
      return;
    }
    const historyId = this.shared.recorder.invoke(this.process, input, this.context.nowMs());
    if (this.context.phase() === 'safety') this.shared.invoked++;
    const seq = input.type === 'get' ? 0 : ++this.seq;
    this.operation = { kind: 'op', input, historyId, seq, startedMs: this.context.nowMs() };
    this.send(this.requestFor(input, seq));
  }

  private mayInvoke(): boolean {
    if (this.context.phase() === 'liveness') {
      return (this.shared.livenessDone.get(this.context.id) ?? 0) < this.context.options.livenessOpsPerClient;
    }
    return this.context.phase() === 'safety' && this.shared.invoked < this.context.options.opsMax;
  }

  private chooseInput(): KvInput | null {
    const rng = this.context.rng;
    const key = `k${rng.int(this.knobs.keyCount)}`;
    const value = `c${this.context.id}v${this.valueNext++}`;
    const roll = rng.int(100);
    if (roll < 40) return { type: 'get', key };
    if (roll < 70) return { type: 'put', key, value };
    if (roll < 92)
      return { type: 'cas', key, expected: rng.chance(1, 4) ? null : (this.lastSeen.get(key) ?? null), value };
    if (roll < 97) return { type: 'delete', key };
    // A scan now and then: not part of the checked history (it spans keys), but it must not fail.
    this.shared.scans++;
    this.send({ type: 'scan', prefix: 'k', limit: 10 });
    this.operation = null;
    return null;
  }

  private requestFor(input: KvInput, seq: number): KvRequest {
    const sessionId = this.sessionId!;
    switch (input.type) {
      case 'get':
        return { type: 'get', key: input.key };
      case 'put':
        return { type: 'put', sessionId, seq, key: input.key, value: input.value };
      case 'delete':
        return { type: 'delete', sessionId, seq, key: input.key };
      case 'cas':
        return { type: 'cas', sessionId, seq, key: input.key, expected: input.expected, value: input.value };
    }
  }

  private send(request: KvRequest): void {
    const node = this.leader.current();
    const requestId = this.context.send(node, request);
    if (this.operation === null) return; // Fire-and-forget (scans).
    if (this.pending !== null) this.context.cancelTimer(this.pending.timer);
    this.attempts.add(requestId);
    this.pendingNode = node;
    this.pending = { requestId, timer: this.context.setTimer(timeoutMs(this.context, this.timeouts)) };
  }

  private resend(): void {
    const operation = this.operation;
    if (operation === null) return;
    if (operation.kind === 'session') {
      this.send({ type: 'openSession' });
      return;
    }
    if (this.context.nowMs() - operation.startedMs > this.deadlineMs() && this.context.phase() !== 'liveness') {
      this.giveUp(operation);
      return;
    }
    this.send(this.requestFor(operation.input, operation.seq));
  }

  onReply(node: NodeId, requestId: RequestId, response: KvResponse): void {
    if (this.operation === null || !this.attempts.has(requestId)) return;
    this.timeouts = 0;
    if (response.type === 'error') {
      // Only the answer to the latest attempt redirects; older attempts' errors are stale news.
      if (this.pending === null || requestId !== this.pending.requestId) return;
      this.context.cancelTimer(this.pending.timer);
      this.pending = null;
      this.onError(node, response);
      return;
    }
    if (this.pending !== null) this.context.cancelTimer(this.pending.timer);
    this.pending = null;
    if (this.thinking !== null) this.context.cancelTimer(this.thinking);
    this.thinking = null;
    this.attempts.clear();
    this.retryBackoffMs = 0;
    const operation = this.operation;
    if (operation.kind === 'session') {
      if (response.type !== 'openSession') throw new Error(`openSession answered ${response.type}`);
      this.sessionId = response.sessionId;
      this.seq = 0;
      this.operation = null;
      this.next();
      return;
    }
    this.complete(operation, outputOf(operation.input, response));
  }

  private onError(node: NodeId, error: Extract<KvResponse, { type: 'error' }>): void {
    const operation = this.operation;
    if (operation === null) return;
    switch (error.code) {
      case 'NOT_LEADER':
      case 'LEADER_CHANGED':
        this.leader.follow(error.leaderHint, node);
        this.retryLater(error.leaderHint === null ? 'backoff' : 'now');
        return;
      case 'BUSY':
        this.retryLater('backoff');
        return;
      case 'SESSION_EXPIRED':
      case 'SEQ_STALE':
        // The write may have applied before the session was lost: its outcome is unknown.
        this.sessionId = null;
        if (operation.kind === 'op') {
          this.giveUp(operation);
          return;
        }
        this.attempts.clear();
        this.operation = null;
        this.next();
        return;
      case 'BAD_REQUEST':
      case 'REFUSED':
        throw new Error(`workload request refused: ${error.code} ${error.message}`);
    }
  }

  private retryLater(mode: 'now' | 'backoff'): void {
    if (mode === 'now') {
      this.resend();
      return;
    }
    this.retryBackoffMs = Math.min(Math.max(1, this.retryBackoffMs * 2), this.context.options.requestTimeoutMs);
    this.thinking = this.context.setTimer(this.retryBackoffMs);
  }

  onTimer(timer: number): void {
    if (this.pending !== null && timer === this.pending.timer) {
      // No answer: the node may be down or cut off; try another one with the same request.
      const failed = this.pendingNode!;
      this.pending = null;
      this.timeouts++;
      this.leader.follow(null, failed);
      this.resend();
      return;
    }
    if (timer !== this.thinking) return;
    this.thinking = null;
    if (this.operation !== null) {
      this.resend();
      return;
    }
    this.next();
  }

  private complete(operation: Extract<Operation, { kind: 'op' }>, output: KvOutput): void {
    const input = operation.input;
    if (output.type === 'get') this.lastSeen.set(input.key, output.value);
    else if (input.type === 'put') this.lastSeen.set(input.key, input.value);
    else if (input.type === 'cas' && output.type === 'cas' && output.ok) this.lastSeen.set(input.key, input.value);
    this.shared.recorder.ok(operation.historyId, output, this.context.nowMs());
    this.shared.completed++;
    if (this.context.phase() === 'liveness' && this.livenessStarted) {
      this.shared.livenessDone.set(this.context.id, (this.shared.livenessDone.get(this.context.id) ?? 0) + 1);
    }
    this.operation = null;
    this.think();
  }

  private giveUp(operation: Extract<Operation, { kind: 'op' }>): void {
    if (operation.input.type === 'get') {
      // A read changes nothing, so abandoning it is a definite "no effect".
      this.shared.recorder.fail(operation.historyId, this.context.nowMs());
    } else {
      this.shared.recorder.info(operation.historyId);
      this.shared.indeterminate++;
      // Jepsen: a process with an unknown outcome is retired; continue as a fresh one.
      this.process += this.shared.regularClients + 1;
    }
    this.attempts.clear();
    this.operation = null;
    this.think();
  }

  private think(): void {
    this.thinking = this.context.setTimer(this.context.rng.int(this.context.options.thinkMsMax + 1));
  }
}

function outputOf(input: KvInput, response: KvResponse): KvOutput {
  switch (input.type) {
    case 'get':
      if (response.type !== 'get') throw new Error(`get answered ${response.type}`);
      return { type: 'get', value: response.value };
    case 'put':
      if (response.type !== 'put') throw new Error(`put answered ${response.type}`);
      return { type: 'put' };
    case 'delete':
      if (response.type !== 'delete') throw new Error(`delete answered ${response.type}`);
      return { type: 'delete' };
    case 'cas':
      if (response.type !== 'cas') throw new Error(`cas answered ${response.type}`);
      return { type: 'cas', ok: response.ok };
  }
}

/**
 * The administrator: every so often, one of add a learner, promote a caught-up learner, remove a
 * voter (possibly the leader itself), or transfer leadership. It asks the leader for the current
 * configuration first (`status`) and follows NOT_LEADER hints like any client.
 */
export class KvAdmin implements ClientActor<KvResponse> {
  private readonly leader: LeaderGuess;
  private pending: (Pending & { node: NodeId; kind: 'status' | 'change' }) | null = null;
  private wake: number | null = null;

  constructor(
    private readonly context: ClientContext<KvRequest>,
    private readonly shared: KvWorkloadShared,
    private readonly knobs: KvWorkloadKnobs,
  ) {
    this.leader = new LeaderGuess(context);
  }

  onStart(): void {
    this.sleep();
  }

  private sleep(): void {
    if (this.context.phase() !== 'safety') return;
    this.wake = this.context.setTimer(1 + this.context.rng.int(2 * this.knobs.adminEveryMs));
  }

  onTimer(timer: number): void {
    if (this.pending !== null && timer === this.pending.timer) {
      this.leader.follow(null, this.pending.node);
      this.pending = null;
      this.sleep();
      return;
    }
    if (timer !== this.wake || this.context.phase() !== 'safety') return;
    this.wake = null;
    this.request({ type: 'status' }, 'status');
  }

  private request(request: KvRequest, kind: 'status' | 'change'): void {
    const node = this.leader.current();
    const requestId = this.context.send(node, request);
    this.pending = { requestId, node, kind, timer: this.context.setTimer(timeoutMs(this.context, 2)) };
  }

  onReply(node: NodeId, requestId: RequestId, response: KvResponse): void {
    const pending = this.pending;
    if (pending === null || requestId !== pending.requestId) return;
    this.context.cancelTimer(pending.timer);
    this.pending = null;
    if (response.type === 'status') {
      if (response.role !== 'leader') {
        this.leader.follow(response.leader, node);
        this.sleep();
        return;
      }
      const change = this.chooseChange(response);
      if (change === null) {
        this.sleep();
        return;
      }
      this.request(change, 'change');
      return;
    }
    if (response.type === 'error' && (response.code === 'NOT_LEADER' || response.code === 'LEADER_CHANGED')) {
      this.leader.follow(response.leaderHint, node);
    }
    if (response.type === 'changeMembership') this.shared.membershipChanges++;
    if (response.type === 'transferLeader') this.shared.transfers++;
    this.sleep();
  }

  private chooseChange(status: Extract<KvResponse, { type: 'status' }>): KvRequest | null {
    if (status.votersOutgoing.length > 0) return null; // Joint: the leader leaves it by itself.
    const rng = this.context.rng;
    const members = new Set<number>([...status.voters, ...status.learners]);
    const outsiders = this.context.nodes.filter((node) => !members.has(node));
    const roll = rng.int(4);
    if (roll === 0 && outsiders.length > 0)
      return { type: 'changeMembership', changes: [{ type: 'addLearner', node: rng.pick(outsiders) }] };
    if (roll === 1 && status.learners.length > 0)
      return { type: 'changeMembership', changes: [{ type: 'addVoter', node: rng.pick(status.learners) }] };
    if (roll === 2 && status.voters.length > 1)
      return { type: 'changeMembership', changes: [{ type: 'removeNode', node: rng.pick(status.voters) }] };
    if (roll === 3 && status.voters.length > 1) return { type: 'transferLeader', to: rng.pick(status.voters) };
    return null;
  }
}
