/**
 * `abdSim`: the ABD register registered with the simulator. Several clients read and write through
 * random nodes with timeouts; a timed-out operation is indeterminate ('info'), and the client goes
 * on under a fresh process number at another node (Jepsen's process model). The history is checked
 * for linearizability against the register model at the end of every run.
 *
 * Swarm: 1..7 nodes, loss, duplication, symmetric and one-way partitions, crashes of a minority
 * (some tearing the last write), restarts, clock drift; all drawn from the seed.
 */
import {
  checkLinearizable,
  HistoryRecorder,
  type RegisterInput,
  type RegisterOutput,
  registerModel,
} from '@dsys/check';
import { assert, type NodeId, type RequestId, type Rng } from '@dsys/kit';
import {
  type CheckOutcome,
  type ClientActor,
  type ClientContext,
  type ClusterView,
  defineSimSystem,
  type SimOptions,
  type SimOptionsBase,
  type SimSystem,
} from '@dsys/sim';
import {
  type AbdMessage,
  type AbdRequest,
  type AbdResponse,
  compareTags,
  formatTag,
  messageSchema,
  requestSchema,
  responseSchema,
} from './messages.js';
import { ABD_CONFIG_DEFAULT, type AbdConfig, type AbdMutation, type AbdState, abdProtocol } from './protocol.js';

/** Search budget of the linearizability check per run (deterministic: steps, not wall time). */
const CHECK_STEPS_MAX = 2_000_000;

export interface AbdShared {
  readonly recorder: HistoryRecorder<RegisterInput, RegisterOutput>;
  readonly options: SimOptions;
  /** Next history process number (a client retired by an 'info' continues under a fresh one). */
  processNext: number;
  ok: number;
  fail: number;
  info: number;
  /** Operations completed in the liveness phase, per client (index = client id - 1). */
  readonly livenessCompleted: number[];
}

interface Pending {
  readonly operation: number;
  readonly requestId: RequestId;
  readonly input: RegisterInput;
  readonly timer: number;
}

/** One client: think, pick read or write, send to its current node, wait for the reply or a timeout. */
class AbdClient implements ClientActor<AbdResponse> {
  private process: number;
  private node: NodeId;
  private pending: Pending | null = null;
  private thinkTimer: number | null = null;
  private writes = 0;
  /** Consecutive timeouts; each doubles the next timeout (up to 32x) so a slow network cannot starve us. */
  private timeouts = 0;

  constructor(
    private readonly context: ClientContext<AbdRequest>,
    private readonly shared: AbdShared,
  ) {
    this.process = shared.processNext++;
    this.node = context.rng.pick(context.nodes);
  }

  onStart(): void {
    this.think();
  }

  onLiveness(): void {
    if (this.pending === null && this.thinkTimer === null) this.think();
  }

  onTimer(timer: number): void {
    if (timer === this.thinkTimer) {
      this.thinkTimer = null;
      this.issue();
      return;
    }
    const pending = this.pending;
    if (pending === null || timer !== pending.timer) return;
    // Timed out: the operation may still take effect at any later time.
    this.shared.recorder.info(pending.operation);
    this.shared.info++;
    this.pending = null;
    this.timeouts++;
    this.process = this.shared.processNext++;
    this.node = this.otherNode();
    this.issue();
  }

  onReply(_node: NodeId, requestId: RequestId, response: AbdResponse): void {
    const pending = this.pending;
    // A late reply to an operation already given up on (recorded 'info'): ignore it.
    if (pending === null || requestId !== pending.requestId) return;
    this.context.cancelTimer(pending.timer);
    this.record(pending, response);
    this.pending = null;
    this.timeouts = 0;
    if (this.context.phase() === 'liveness') this.shared.livenessCompleted[this.context.id - 1]!++;
    this.think();
  }

  private record(pending: Pending, response: AbdResponse): void {
    const { recorder } = this.shared;
    const now = this.context.nowMs();
    switch (response.type) {
      case 'read':
        assert(pending.input.type === 'read', 'abd client: read reply to a write');
        recorder.ok(pending.operation, { type: 'read', value: response.value }, now);
        this.shared.ok++;
        return;
      case 'write':
        assert(pending.input.type === 'write', 'abd client: write reply to a read');
        recorder.ok(pending.operation, { type: 'write' }, now);
        this.shared.ok++;
        return;
      case 'busy':
      case 'invalid':
        recorder.fail(pending.operation, now);
        this.shared.fail++;
        this.node = this.otherNode();
        return;
    }
  }

  private think(): void {
    this.thinkTimer = this.context.setTimer(this.context.rng.int(this.context.options.thinkMsMax + 1));
  }

  private wantsMore(): boolean {
    const phase = this.context.phase();
    if (phase === 'done') return false;
    if (phase === 'liveness') {
      return this.shared.livenessCompleted[this.context.id - 1]! < this.context.options.livenessOpsPerClient;
    }
    return this.shared.recorder.size < this.context.options.opsMax;
  }

  private issue(): void {
    if (!this.wantsMore()) return;
    const { context, shared } = this;
    const readPercent = context.options.knobs.readPercent ?? 50;
    const input: RegisterInput =
      context.rng.int(100) < readPercent
        ? { type: 'read' }
        : { type: 'write', value: `${context.id}:${this.writes++}` };
    const operation = shared.recorder.invoke(this.process, input, context.nowMs());
    const request: AbdRequest = input.type === 'read' ? { type: 'read' } : { type: 'write', value: input.value };
    const requestId = context.send(this.node, request);
    const timeoutMs = context.options.requestTimeoutMs * 2 ** Math.min(this.timeouts, 5);
    this.pending = { operation, requestId, input, timer: context.setTimer(timeoutMs) };
  }

  private otherNode(): NodeId {
    const nodes = this.context.nodes;
    if (nodes.length === 1) return nodes[0]!;
    const index = nodes.indexOf(this.node);
    return nodes[(index + 1 + this.context.rng.int(nodes.length - 1)) % nodes.length]!;
  }
}

function checkHistory(shared: AbdShared): CheckOutcome {
  const history = shared.recorder.history();
  const result = checkLinearizable(registerModel, history, { stepsMax: CHECK_STEPS_MAX });
  if (result.ok === true) return { ok: true, summary: `linearizable (${result.operations} operations)` };
  if (result.ok === false) return { ok: false, message: `not linearizable:\n${result.counterexample}` };
  return { ok: 'unknown', summary: result.reason };
}

/** Global invariant: a tag names one write, so two replicas holding the same tag hold the same value. */
function tagsNameOneValue(view: ClusterView<AbdState>): void {
  const nodes = view.nodes;
  for (let i = 0; i < nodes.length; i++) {
    const a = nodes[i]!.state;
    if (a === null) continue;
    for (let j = i + 1; j < nodes.length; j++) {
      const b = nodes[j]!.state;
      if (b === null || compareTags(a.tag, b.tag) !== 0) continue;
      if (a.value !== b.value) {
        assert(false, `abd: tag ${formatTag(a.tag)} holds ${a.value} on n${a.id} but ${b.value} on n${b.id}`);
      }
    }
  }
}

/**
 * ABD's swarm: the generic draw, with more clients and less think time (bugs in a register show up
 * when reads overlap half-done writes), the coordinator's retransmit period drawn too (a slow
 * retransmit under loss leaves writes half done for longer), and in a third of the runs any number
 * of nodes may be down at once: safety must survive even the whole cluster crashing (every
 * acknowledged write was fsynced on a majority); the liveness phase restarts them all.
 */
function swarm(rng: Rng, drawn: SimOptionsBase): SimOptionsBase {
  return {
    ...drawn,
    clientCount: rng.between(2, 8),
    thinkMsMax: rng.pick([0, 5, 50]),
    crashedMax: rng.chance(1, 3) ? drawn.nodeCount : drawn.crashedMax,
    knobs: { ...drawn.knobs, readPercent: rng.between(10, 90), retransmitTicks: rng.between(2, 20) },
  };
}

/** The simulator registration; `mutation` builds the deliberately broken variants the tests use. */
export function defineAbdSim(
  mutation: AbdMutation = 'none',
): SimSystem<AbdState, AbdMessage, AbdRequest, AbdResponse, AbdConfig, AbdShared> {
  return defineSimSystem({
    name: mutation === 'none' ? 'abd' : `abd-${mutation}`,
    description: 'ABD multi-writer atomic register (majority quorums, no leader), checked for linearizability',
    protocol: abdProtocol,
    codec: { message: messageSchema, request: requestSchema, response: responseSchema },
    swarm,
    config: (options) => ({
      ...ABD_CONFIG_DEFAULT,
      retransmitTicks: options.knobs.retransmitTicks ?? ABD_CONFIG_DEFAULT.retransmitTicks,
      mutation,
    }),
    workload: {
      init: ({ options }) => ({
        recorder: new HistoryRecorder<RegisterInput, RegisterOutput>(),
        options,
        processNext: 0,
        ok: 0,
        fail: 0,
        info: 0,
        livenessCompleted: new Array<number>(options.clientCount).fill(0),
      }),
      client: (context, shared) => new AbdClient(context, shared),
      check: checkHistory,
      status: (shared) => `ops ${shared.recorder.size} ok ${shared.ok} fail ${shared.fail} info ${shared.info}`,
    },
    invariantsGlobal: tagsNameOneValue,
    converged: (_view, shared) =>
      shared.livenessCompleted.every((count) => count >= shared.options.livenessOpsPerClient),
  });
}

export const abdSim = defineAbdSim();
