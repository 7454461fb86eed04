/**
 * `raftSim`: the replicated KV service registered with the simulator (`dsys sim raft`, `npm run sim
 * -w @dsys/raft`). A seed draws the cluster (1 to 7 nodes, some of them outside the initial
 * configuration when membership changes are on), the Raft knobs (pre-vote, check-quorum, lease
 * reads, message and window sizes, snapshot frequency and chunk size), the network and disk faults
 * (the simulator's swarm draw) and the workload. After every step the checker verifies Raft's safety
 * properties; at the end the client history must be linearizable; in the liveness phase the healed
 * cluster must elect a leader, catch every member up and serve every client again.
 */
import { checkLinearizable, HistoryRecorder, type KvInput, type KvOutput, kvModel } from '@dsys/check';
import { assert, NodeId, type Rng } from '@dsys/kit';
import {
  CLIENT_COUNT_MAX,
  type ClusterView,
  defineSimSystem,
  type SimOptions,
  type SimOptionsBase,
  type SimSystem,
} from '@dsys/sim';
import type { TestOnlyBugs } from '../config.js';
import { type KvConfig, type KvNode, kvConfig, kvProtocol } from '../kv/protocol.js';
import { type KvRequest, type KvResponse, kvRequestSchema, kvResponseSchema } from '../kv/schema.js';
import { type RaftMessage, raftMessageSchema } from '../messages.js';
import { isJoint } from '../types.js';
import { RaftSafetyChecker } from './checker.js';
import { KvAdmin, KvClient, type KvWorkloadShared } from './workload.js';

export type RaftSim = SimSystem<KvNode, RaftMessage, KvRequest, KvResponse, KvConfig, KvWorkloadShared>;

export interface RaftSimVariant {
  /** Name on the command line (default `raft`). */
  readonly name?: string;
  /** TEST ONLY: a deliberately broken safety rule, to show that the checks catch it. */
  readonly bugs?: TestOnlyBugs;
  /** Forces knobs regardless of the seed (e.g. `{ admin: 0 }`). */
  readonly knobs?: Readonly<Record<string, number>>;
}

function drawKnobs(rng: Rng, drawn: SimOptionsBase): Record<string, number> {
  const nodeCount = drawn.nodeCount;
  const membership = nodeCount >= 2 && rng.chance(1, 2);
  const checkQuorum = rng.chance(2, 3) ? 1 : 0;
  // Raft §5.6 "broadcastTime << electionTimeout": scale the election timeout to the drawn network and
  // disk, or a slow network keeps electing forever and the liveness phase never converges.
  const roundTripMs = 2 * (drawn.latencyMsMax + 2 * drawn.latencyTailMsMean) + drawn.diskLatencyMsMax;
  const electionFloor = Math.ceil((2 * roundTripMs) / drawn.tickMs);
  return {
    initialVoters: membership ? rng.between(1, nodeCount) : nodeCount,
    admin: membership ? 1 : 0,
    adminEveryMs: rng.pick([100, 300, 1000]),
    keyCount: rng.between(1, 5),
    preVote: rng.chance(2, 3) ? 1 : 0,
    checkQuorum,
    lease: checkQuorum === 1 && rng.chance(1, 3) ? 1 : 0,
    electionTicks: Math.min(400, Math.max(rng.between(8, 20), electionFloor)),
    heartbeatTicks: rng.between(1, 3),
    maxSizePerMsgBytes: rng.pick([128, 1024, 65536]),
    maxInflightMsgs: rng.pick([1, 4, 64]),
    snapshotEntries: rng.pick([8, 32, 200, 100_000]),
    snapshotChunkBytes: rng.pick([64, 512, 65536]),
    // Drawn last, so that the draws above (and the runs of earlier seeds without batching) stay as they were.
    batchRequests: rng.chance(1, 2) ? 1 : 0,
    syncNudgeTicks: rng.pick([1, 2, 5]),
  };
}

/**
 * The lease's clock assumption (dissertation §6.4.1), made concrete for the simulator's drift: the
 * margin must cover two tick phases plus the relative rate difference of any two clocks over an
 * election timeout, δ = 2d / (1 - d) for a drift bound d.
 */
export function leaseMarginTicks(electionTicks: number, clockDriftPpmMax: number): number {
  const drift = clockDriftPpmMax / 1e6;
  const relative = (2 * drift) / (1 - drift);
  return Math.ceil(2 + electionTicks * relative);
}

function buildConfig(options: SimOptions, bugs: TestOnlyBugs | undefined): KvConfig {
  const knobs = options.knobs;
  const knob = (name: string): number => {
    const value = knobs[name];
    assert(value !== undefined, `raft sim: knob ${name} missing`);
    return value;
  };
  const electionTicks = knob('electionTicks');
  const heartbeatTicks = Math.min(knob('heartbeatTicks'), Math.max(1, Math.floor(electionTicks / 4)));
  const margin = leaseMarginTicks(electionTicks, options.clockDriftPpmMax);
  const lease = knob('lease') === 1 && margin < electionTicks - heartbeatTicks;
  // Dissertation §4.2.3: a node removed while cut off never learns it and keeps calling elections;
  // only pre-vote or check-quorum's lease stops it disrupting the cluster. Liveness is not promised
  // without either, so runs with membership changes keep at least pre-vote.
  const preVote = knob('preVote') === 1 || (knob('admin') === 1 && knob('checkQuorum') === 0);
  const initialVoters: NodeId[] = [];
  for (let id = 1; id <= Math.min(knob('initialVoters'), options.nodeCount); id++) initialVoters.push(NodeId(id));
  return kvConfig({
    initialVoters,
    snapshotEntries: knob('snapshotEntries'),
    batchRequests: (knobs.batchRequests ?? 0) === 1,
    syncNudgeTicks: knobs.syncNudgeTicks ?? 2,
    sessionTimeoutMs: 600_000,
    observer: new RaftSafetyChecker(),
    raft: {
      electionTicks,
      heartbeatTicks,
      preVote,
      checkQuorum: knob('checkQuorum') === 1,
      readOnly: lease ? 'lease' : 'safe',
      leaseMarginTicks: lease ? margin : 2,
      maxSizePerMsgBytes: knob('maxSizePerMsgBytes'),
      maxInflightMsgs: knob('maxInflightMsgs'),
      snapshotChunkBytes: knob('snapshotChunkBytes'),
      ...(bugs === undefined ? {} : { testOnlyBugs: bugs }),
    },
  });
}

function checkerOf(view: ClusterView<KvNode>): RaftSafetyChecker | null {
  for (const node of view.nodes) {
    const observer = node.state?.config.observer;
    if (observer instanceof RaftSafetyChecker) return observer;
  }
  return null;
}

function checkSafety(view: ClusterView<KvNode>): void {
  const checker = checkerOf(view);
  if (checker === null) return;
  const cores = [];
  for (const node of view.nodes) if (node.up && node.state !== null) cores.push(node.state.core);
  checker.check(cores);
}

/** Liveness: a leader of the highest term, every member caught up under a settled configuration, every client served. */
function converged(view: ClusterView<KvNode>, shared: KvWorkloadShared): boolean {
  for (let client = 1; client <= shared.regularClients; client++) {
    if ((shared.livenessDone.get(client) ?? 0) < shared.livenessOps) return false;
  }
  let leader: KvNode | null = null;
  for (const node of view.nodes) {
    const state = node.state;
    if (state === null || !node.up) continue;
    if (state.core.role === 'leader' && (leader === null || state.core.term > leader.core.term)) leader = state;
  }
  if (leader === null) return false;
  const core = leader.core;
  if (isJoint(core.conf) || core.log.term(core.log.committed) !== core.term) return false;
  const members = new Set<number>([...core.conf.voters, ...core.conf.learners]);
  for (const node of view.nodes) {
    if (!members.has(node.id)) continue;
    const state = node.state;
    if (state === null || !node.up || state.appliedIndex < core.log.committed) return false;
  }
  return true;
}

export function defineRaftSim(variant: RaftSimVariant = {}): RaftSim {
  return defineSimSystem({
    name: variant.name ?? 'raft',
    description: 'Raft KV: elections, replication, snapshots, membership, ReadIndex/lease reads, sessions',
    protocol: kvProtocol,
    codec: { message: raftMessageSchema, request: kvRequestSchema, response: kvResponseSchema },
    swarm(rng, drawn) {
      const knobs = { ...drawKnobs(rng, drawn), ...variant.knobs };
      const clientCount = Math.min(CLIENT_COUNT_MAX, drawn.clientCount + (knobs.admin === 1 ? 1 : 0));
      return { ...drawn, clientCount, knobs };
    },
    config: (options) => buildConfig(options, variant.bugs),
    workload: {
      init({ options }) {
        const regularClients = options.clientCount - (options.knobs.admin === 1 ? 1 : 0);
        return {
          livenessOps: options.livenessOpsPerClient,
          recorder: new HistoryRecorder<KvInput, KvOutput>(),
          invoked: 0,
          completed: 0,
          indeterminate: 0,
          livenessDone: new Map(),
          regularClients,
          membershipChanges: 0,
          transfers: 0,
          scans: 0,
        };
      },
      client(context, shared) {
        const knobs = {
          keyCount: context.options.knobs.keyCount ?? 3,
          admin: context.options.knobs.admin === 1,
          adminEveryMs: context.options.knobs.adminEveryMs ?? 300,
        };
        if (knobs.admin && context.id > shared.regularClients) return new KvAdmin(context, shared, knobs);
        return new KvClient(context, shared, knobs);
      },
      check(shared) {
        const history = shared.recorder.history();
        const result = checkLinearizable(kvModel, history);
        const summary = `${history.length} ops linearizable (${shared.completed} ok, ${shared.indeterminate} unknown, ${shared.membershipChanges} membership changes, ${shared.transfers} transfers)`;
        if (result.ok === true) return { ok: true, summary };
        if (result.ok === 'unknown') return { ok: 'unknown', summary: `${history.length} ops: ${result.reason}` };
        return { ok: false, message: `history not linearizable: ${result.counterexample}` };
      },
      status: (shared) => `ops ${shared.recorder.size} ok ${shared.completed} info ${shared.indeterminate}`,
    },
    invariantsGlobal: checkSafety,
    converged: (view, shared) => converged(view, shared),
  });
}

/** The registration `dsys sim raft` uses. */
export const raftSim: RaftSim = defineRaftSim();
