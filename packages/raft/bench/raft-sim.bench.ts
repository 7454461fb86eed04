/**
 * `npm run bench -w @dsys/raft [-- --quick]`: how fast the simulator runs a 5-node Raft KV cluster
 * under a steady client workload (simulated seconds per wall second), and the bare core's message
 * throughput (`step` calls per second with three in-memory nodes, storage acknowledging at once).
 * Peers: none yet; phase 2 adds etcd on real processes.
 */
import { median, quick, report, row } from '@dsys/benchkit';
import { NodeId, Rng } from '@dsys/kit';
import { createSimulation } from '@dsys/sim';
import { defineRaftSim, EMPTY_CONF_STATE, type Outgoing, RaftCore, validateRaftConfig } from '../src/index.js';

const knobs = {
  initialVoters: 5,
  admin: 0,
  adminEveryMs: 1000,
  keyCount: 5,
  preVote: 1,
  checkQuorum: 1,
  lease: 0,
  electionTicks: 10,
  heartbeatTicks: 1,
  maxSizePerMsgBytes: 65536,
  maxInflightMsgs: 64,
  snapshotEntries: 1000,
  snapshotChunkBytes: 65536,
};

function simSpeed(virtualMs: number): { simSecondsPerWallSecond: number; eventsPerSecond: number; requests: number } {
  const system = defineRaftSim({ name: 'raft-bench', knobs });
  const sim = createSimulation(system, {
    nodeCount: 5,
    clientCount: 8,
    knobs,
    latencyMsMin: 1,
    latencyMsMax: 2,
    thinkMsMax: 2,
    requestTimeoutMs: 200,
    opsMax: 1_000_000,
    safetyMs: virtualMs,
    seed: 1,
  });
  const started = performance.now();
  sim.runFor(virtualMs);
  const wallMs = performance.now() - started;
  return {
    simSecondsPerWallSecond: virtualMs / wallMs,
    eventsPerSecond: sim.stats.events / (wallMs / 1000),
    requests: sim.stats.requests,
  };
}

/** Three cores, a leader proposing in batches of 16; every message delivered at once. */
function coreSteps(proposals: number): { stepsPerSecond: number; entriesPerSecond: number } {
  const config = validateRaftConfig({ preVote: false, checkQuorum: false });
  const ids = [1, 2, 3].map(NodeId);
  const cores = ids.map(
    (id) =>
      new RaftCore({
        id,
        config,
        rng: Rng.fromSeed(id),
        hardState: { term: 0 as never, vote: null, commit: 0 as never },
        snapshot: null,
        entries: [],
        bootstrapConfig: { ...EMPTY_CONF_STATE, voters: ids },
      }),
  );
  let steps = 0;
  const queue: { from: NodeId; out: Outgoing }[] = [];
  const drain = (core: RaftCore) => {
    while (core.hasReady()) {
      const ready = core.ready();
      for (const out of ready.messages) queue.push({ from: core.id, out });
      if (ready.persistAck !== null) core.persisted(ready.persistAck);
      for (const out of ready.messagesAfterPersist) queue.push({ from: core.id, out });
    }
  };
  const settle = () => {
    for (const core of cores) drain(core);
    while (queue.length > 0) {
      const { from, out } = queue.shift()!;
      const target = cores[out.to - 1]!;
      target.step(from, out.message);
      steps++;
      drain(target);
    }
  };
  const leader = cores[0]!;
  leader.campaign();
  settle();
  const payload = new Uint8Array(64);
  const started = performance.now();
  for (let sent = 0; sent < proposals; sent += 16) {
    for (let i = 0; i < 16; i++) leader.propose(payload);
    steps += 16;
    settle();
  }
  const wallMs = performance.now() - started;
  if (leader.log.committed < proposals) throw new Error('bench: proposals did not commit');
  for (const core of cores) core.compact(new Uint8Array(0));
  return { stepsPerSecond: steps / (wallMs / 1000), entriesPerSecond: proposals / (wallMs / 1000) };
}

const runs = quick ? 1 : 3;
const virtualMs = quick ? 5_000 : 20_000;
const proposals = quick ? 20_000 : 100_000;
const sims = Array.from({ length: runs }, () => simSpeed(virtualMs));
const cores = Array.from({ length: runs }, () => coreSteps(proposals));
report('raft', [
  row(
    'sim: 5 nodes, 8 clients, steady workload',
    'simulated seconds per wall second',
    'x',
    median(sims.map((s) => s.simSecondsPerWallSecond)),
    null,
    true,
  ),
  row(
    'sim: 5 nodes, 8 clients, steady workload',
    'events per second',
    'events/s',
    median(sims.map((s) => s.eventsPerSecond)),
    null,
    true,
  ),
  row(
    'core: 3 nodes in memory, batches of 16',
    'step calls per second',
    'steps/s',
    median(cores.map((c) => c.stepsPerSecond)),
    null,
    true,
  ),
  row(
    'core: 3 nodes in memory, batches of 16',
    'entries committed per second',
    'entries/s',
    median(cores.map((c) => c.entriesPerSecond)),
    null,
    true,
  ),
]);
