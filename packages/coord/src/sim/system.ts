/**
 * `coordSim`: the coordination service registered with the simulator (`dsys sim coord --seed N`,
 * `npm run sim -w @dsys/coord`). A seed draws the ensemble (1 to 7 servers), the Raft knobs, the
 * network, disk and crash faults, and the clients (`workload.ts`), which move between servers,
 * lose connections, see sessions expire and walk away from some.
 *
 * Checked: Raft's safety after every step (`RaftSafetyChecker`, through the oracle); on every server,
 * after every step, that no ephemeral node belongs to a closed session; by every client, as it goes,
 * monotonic zxids, reads equal to the committed state at their zxid, FIFO writes, watches fired once
 * and before the change, ephemeral nodes gone after expiry; at the end, that the writes are
 * linearizable. The liveness phase heals everything and requires every client served again, every
 * abandoned session expired by the leader, and every server caught up.
 */
import { checkLinearizable, HistoryRecorder } from '@dsys/check';
import { assert, NodeId, type Rng } from '@dsys/kit';
import { leaseMarginTicks } from '@dsys/raft';
import { type ClusterView, defineSimSystem, type SimOptions, type SimOptionsBase, type SimSystem } from '@dsys/sim';
import { type CoordConfig, type CoordTestOnlyBugs, coordConfig } from '../config.js';
import { type CoordNode, coordProtocol } from '../node.js';
import { type CoordMessage, type CoordRequest, type CoordResponse, schemas } from '../schema.js';
import { formatZxid } from '../types.js';
import { type ZnodeInput, type ZnodeOutput, znodeModel } from './model.js';
import { CoordOracle } from './oracle.js';
import { type CoordWorkloadShared, coordClient } from './workload.js';

export type CoordSim = SimSystem<
  CoordNode,
  CoordMessage,
  CoordRequest,
  CoordResponse,
  CoordConfig,
  CoordWorkloadShared
>;

function drawKnobs(rng: Rng, drawn: SimOptionsBase): Record<string, number> {
  const roundTripMs = 2 * (drawn.latencyMsMax + 2 * drawn.latencyTailMsMean) + drawn.diskLatencyMsMax;
  const electionFloor = Math.ceil((2 * roundTripMs) / drawn.tickMs);
  return {
    keyCount: rng.between(1, 4),
    preVote: rng.chance(2, 3) ? 1 : 0,
    checkQuorum: rng.chance(2, 3) ? 1 : 0,
    electionTicks: Math.min(400, Math.max(rng.between(8, 20), electionFloor)),
    heartbeatTicks: rng.between(1, 3),
    maxInflightMsgs: rng.pick([1, 4, 64]),
    snapshotEntries: rng.pick([16, 64, 500, 100_000]),
    snapshotChunkBytes: rng.pick([512, 65536]),
    // The simulated disk syncs only when asked: log writes are acknowledged after the nudge (node.ts).
    syncNudgeTicks: rng.pick([1, 2, 5]),
  };
}

function buildConfig(options: SimOptions, oracle: CoordOracle, bugs: CoordTestOnlyBugs | undefined): CoordConfig {
  const knob = (name: string): number => {
    const value = options.knobs[name];
    assert(value !== undefined, `coord sim: knob ${name} missing`);
    return value;
  };
  const electionTicks = knob('electionTicks');
  const heartbeatTicks = Math.min(knob('heartbeatTicks'), Math.max(1, Math.floor(electionTicks / 4)));
  void leaseMarginTicks;
  const initialVoters: NodeId[] = [];
  for (let id = 1; id <= options.nodeCount; id++) initialVoters.push(NodeId(id));
  const roundTripTicks = Math.ceil(
    (2 * (options.latencyMsMax + 2 * options.latencyTailMsMean) + options.diskLatencyMsMax) / options.tickMs,
  );
  return coordConfig({
    initialVoters,
    snapshotEntries: knob('snapshotEntries'),
    minSessionTimeoutMs: 200,
    maxSessionTimeoutMs: 10_000,
    tickMs: options.tickMs,
    touchEveryTicks: Math.max(1, Math.floor(100 / options.tickMs)),
    expiryCheckTicks: 2,
    reapEveryTicks: 20,
    forwardResendTicks: Math.max(4, 3 * roundTripTicks),
    noLeaderCloseTicks: 4 * electionTicks,
    syncNudgeTicks: knob('syncNudgeTicks'),
    observer: oracle,
    ...(bugs === undefined ? {} : { testOnlyBugs: bugs }),
    raft: {
      electionTicks,
      heartbeatTicks,
      preVote: knob('preVote') === 1,
      checkQuorum: knob('checkQuorum') === 1,
      maxInflightMsgs: knob('maxInflightMsgs'),
      snapshotChunkBytes: knob('snapshotChunkBytes'),
    },
  });
}

function checkSafety(view: ClusterView<CoordNode>): void {
  let oracle: CoordOracle | null = null;
  const cores = [];
  for (const node of view.nodes) {
    const state = node.state;
    if (state === null || !node.up) continue;
    if (state.config.observer instanceof CoordOracle) oracle = state.config.observer;
    cores.push(state.core);
    const orphans = state.orphanEphemerals();
    assert(orphans.length === 0, `n${node.id}: ephemeral nodes of closed sessions: ${orphans.join(' ')}`);
  }
  oracle?.raft.check(cores);
  assert(oracle?.violation == null, `FIFO: ${oracle?.violation}`);
}

function converged(view: ClusterView<CoordNode>, shared: CoordWorkloadShared): boolean {
  for (const [client, done] of shared.livenessDone) if (done < shared.livenessOps && client > 0) return false;
  for (const sessionId of shared.abandoned.keys()) {
    if (shared.oracle.tree.session(sessionId) !== undefined) return false;
  }
  let leader: CoordNode | null = null;
  for (const node of view.nodes) {
    const state = node.state;
    if (
      state !== null &&
      node.up &&
      state.core.role === 'leader' &&
      (leader === null || state.core.term > leader.core.term)
    ) {
      leader = state;
    }
  }
  if (leader === null) return false;
  for (const node of view.nodes) {
    const state = node.state;
    if (state === null || !node.up || state.appliedIndex < leader.core.log.committed) return false;
  }
  return true;
}

export function defineCoordSim(name = 'coord', bugs?: CoordTestOnlyBugs): CoordSim {
  // The oracle is built with the config (it is the nodes' observer) and handed to the workload of the same run.
  const oracles = new WeakMap<SimOptions, CoordOracle>();
  return defineSimSystem({
    name,
    description: 'ZooKeeper semantics on Raft: sessions, ephemerals, watches, FIFO clients, local reads, sync',
    protocol: coordProtocol,
    codec: schemas,
    swarm: (rng, drawn) => ({ ...drawn, knobs: drawKnobs(rng, drawn) }),
    config(options) {
      const oracle = new CoordOracle();
      oracles.set(options, oracle);
      return buildConfig(options, oracle, bugs);
    },
    workload: {
      init({ options }) {
        const oracle = oracles.get(options);
        assert(oracle !== undefined, 'coord sim: the config was not built before the workload');
        const livenessDone = new Map<number, number>();
        for (let client = 1; client <= options.clientCount; client++) livenessDone.set(client, 0);
        return {
          recorder: new HistoryRecorder<ZnodeInput, ZnodeOutput>(),
          oracle,
          violations: [],
          keyCount: options.knobs.keyCount ?? 2,
          livenessOps: options.livenessOpsPerClient,
          livenessDone,
          abandoned: new Map(),
          nextProcess: 1,
          clients: [],
          stats: {
            writes: 0,
            reads: 0,
            notifications: 0,
            expirations: 0,
            moves: 0,
            syncs: 0,
            indeterminate: 0,
            ephemeralChecks: 0,
          },
        };
      },
      client: (context, shared) => {
        const client = coordClient(context, shared);
        return {
          onStart: () => client.onStart(),
          onReply: (node, requestId, response) => client.onReply(node, requestId, response),
          onTimer: (timer) => {
            client.onTimer(timer);
            if (client.hasAbandoned) shared.livenessDone.delete(context.id);
          },
          onLiveness: () => client.onLiveness(),
        };
      },
      check(shared) {
        if (shared.violations.length > 0) {
          const more = shared.violations.length > 1 ? ` (+${shared.violations.length - 1} more)` : '';
          return { ok: false, message: `${shared.violations[0]}${more}` };
        }
        const history = shared.recorder.history();
        const result = checkLinearizable(znodeModel, history);
        const s = shared.stats;
        const summary = `${history.length} writes linearizable; ${s.reads} reads at their zxid; ${s.notifications} notifications; ${s.moves} moves; ${s.expirations} expirations (${s.ephemeralChecks} ephemeral checks, ${shared.abandoned.size} abandoned); ${s.syncs} syncs; last zxid ${formatZxid(shared.oracle.lastZxid)}`;
        if (result.ok === true) return { ok: true, summary };
        if (result.ok === 'unknown') return { ok: 'unknown', summary: `${history.length} writes: ${result.reason}` };
        return { ok: false, message: `writes not linearizable: ${result.counterexample}` };
      },
      status: (shared) =>
        `writes ${shared.stats.writes} reads ${shared.stats.reads} notif ${shared.stats.notifications} moves ${shared.stats.moves} expired ${shared.stats.expirations} zxid ${formatZxid(shared.oracle.lastZxid)}`,
    },
    invariantsGlobal: checkSafety,
    converged,
  });
}

/** The registration `dsys sim coord` uses. */
export const coordSim: CoordSim = defineCoordSim();
