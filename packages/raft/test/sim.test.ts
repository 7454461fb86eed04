/**
 * The Raft KV service in the deterministic simulator.
 *
 * - Swarm: 500 seeds, each drawing its own cluster (1-7 nodes, membership changes, snapshots),
 *   faults (loss, duplication, reordering, symmetric and one-way partitions, crashes that lose
 *   unsynced writes or tear the last one, restarts) and knobs; Raft's safety properties are checked
 *   after every step and the client history must be linearizable. A failure names the command that
 *   reproduces it.
 * - The checks can fail: with a test-only knob that grants two votes per term, the swarm finds an
 *   election-safety violation within a small seed budget.
 * - Scripted runs that read like prose: an unreliable network with churn; a deposed leader that must
 *   not serve a stale read (and does, with the confirmation round turned off).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatSeed, NodeId } from '@dsys/kit';
import { createSimulation, describeResult, ratio, runSwarm, seedForIndex } from '@dsys/sim';
import { defineRaftSim, type KvResponse, raftSim } from '../src/index.js';

const SWARM_SEEDS = 500;

const calmKnobs = {
  initialVoters: 3,
  admin: 0,
  adminEveryMs: 300,
  keyCount: 2,
  preVote: 0,
  checkQuorum: 0,
  lease: 0,
  electionTicks: 10,
  heartbeatTicks: 1,
  maxSizePerMsgBytes: 65536,
  maxInflightMsgs: 16,
  snapshotEntries: 50,
  snapshotChunkBytes: 512,
};

describe('swarm', () => {
  test(`${SWARM_SEEDS} seeds: safety after every step, linearizable histories, liveness after healing`, () => {
    let unknown = 0;
    let operations = 0;
    for (let index = 0; index < SWARM_SEEDS; index++) {
      const seed = seedForIndex(index);
      const result = runSwarm(raftSim, seed);
      assert.ok(
        result.ok,
        `${describeResult(result)}\nreproduce: npm run sim -w @dsys/raft -- --seed ${formatSeed(seed)}`,
      );
      if (result.check?.ok === 'unknown') unknown++;
      operations += result.stats?.requests ?? 0;
    }
    assert.ok(unknown < SWARM_SEEDS / 20, `${unknown} runs the checker could not decide`);
    assert.ok(operations > SWARM_SEEDS * 20, 'the workload must actually run');
  });

  test('seeds long campaigns found failing, each fixed since, pass', () => {
    // 0xc00d5583c8b94004: a removed leader's successor campaigned before it learned that the new
    // configuration was committed, won under the joint one, crashed and lost its first entry, which
    // the removed member kept; that member (no voter any more) refused it forever. Fixed by the commit
    // hint in refused votes (RaftCore.commitHintFor).
    for (const seed of [0xc00d5583c8b94004n]) {
      const result = runSwarm(raftSim, seed);
      assert.ok(
        result.ok,
        `${describeResult(result)}\nreproduce: npm run sim -w @dsys/raft -- --seed ${formatSeed(seed)}`,
      );
    }
  });

  test('the same seed replays the same run (trace hash), with and without the wire codec', () => {
    for (const index of [3, 17]) {
      const seed = seedForIndex(index);
      const first = runSwarm(raftSim, seed);
      const second = runSwarm(raftSim, seed);
      assert.equal(first.traceHash, second.traceHash);
      const wired = runSwarm(raftSim, seed, { overrides: { wireCodec: true } });
      const wiredAgain = runSwarm(raftSim, seed, { overrides: { wireCodec: true } });
      assert.ok(wired.ok, describeResult(wired));
      assert.equal(wired.traceHash, wiredAgain.traceHash);
    }
  });

  test('the checks can fail: two votes per term (a test-only knob) is caught within 150 seeds', () => {
    const broken = defineRaftSim({ name: 'raft-two-votes', bugs: { voteTwicePerTerm: true } });
    let caught: string | null = null;
    for (let index = 0; index < 150 && caught === null; index++) {
      const result = runSwarm(broken, seedForIndex(index));
      if (!result.ok) caught = result.failure?.message ?? 'failed';
    }
    assert.ok(caught !== null, 'no violation found');
    assert.match(caught, /election safety|vote changes within term/);
  });
});

describe('scripted runs', () => {
  test('an unreliable network with churn: loss, duplication, flapping partitions, crashes and restarts', () => {
    const system = defineRaftSim({
      name: 'raft-churn',
      knobs: { ...calmKnobs, initialVoters: 5, preVote: 1, checkQuorum: 1 },
    });
    // Every 400 ms: isolate one node for 150 ms, then crash another (tearing its last write) and
    // bring it back 150 ms later.
    const script = [];
    for (let round = 0; round < 7; round++) {
      const at = 200 + round * 400;
      script.push({ atMs: at, action: { type: 'partition' as const, groups: [[1 + (round % 5)]] } });
      script.push({ atMs: at + 150, action: { type: 'heal' as const } });
      script.push({ atMs: at + 200, action: { type: 'crash' as const, node: 1 + ((round * 2 + 1) % 5), torn: true } });
      script.push({ atMs: at + 350, action: { type: 'restart' as const, node: 1 + ((round * 2 + 1) % 5) } });
    }
    const result = runSwarm(system, 11, {
      overrides: {
        nodeCount: 5,
        clientCount: 4,
        lossRatio: ratio(15, 100),
        duplicateRatio: ratio(10, 100),
        latencyMsMin: 1,
        latencyMsMax: 10,
        latencyTailMsMean: 5,
        faultIntervalMs: 0,
        safetyMs: 3000,
        opsMax: 300,
        requestTimeoutMs: 200,
        tickMs: 10,
      },
      script,
    });
    assert.ok(result.ok, describeResult(result));
    assert.ok((result.stats?.crashes ?? 0) >= 7);
    assert.ok(result.check?.ok === true, 'history decided linearizable');
  });

  /**
   * n1 leads; it is cut off from n2 and n3, which elect a new leader and accept a newer value. A get
   * sent to n1 must not come back with the old value: n1 cannot confirm its leadership (ReadIndex),
   * so the read waits and fails once n1 learns the new term.
   */
  function deposedLeaderRead(bugs: { readWithoutQuorum?: boolean }): {
    stale: KvResponse | undefined;
    later: KvResponse | undefined;
  } {
    const system = defineRaftSim({
      name: 'raft-deposed',
      knobs: calmKnobs,
      ...(bugs.readWithoutQuorum ? { bugs } : {}),
    });
    const sim = createSimulation(system, { nodeCount: 3, knobs: calmKnobs, seed: 5 });
    const leaderOf = (ids: number[]) => ids.find((id) => sim.state(id).core.role === 'leader');
    sim.runUntil(() => leaderOf([1, 2, 3]) !== undefined, { ticksMax: 200, what: 'a leader' });
    const old = leaderOf([1, 2, 3])!;
    const others = [1, 2, 3].filter((id) => id !== old);
    const call = (node: number, request: Parameters<typeof sim.request>[1]) => {
      const handle = sim.request(node, request);
      sim.runUntil(() => handle.response !== undefined, { ticksMax: 100, what: `reply to ${request.type}` });
      return handle.response!;
    };
    const opened = call(old, { type: 'openSession' });
    assert.ok(opened.type === 'openSession');
    assert.deepEqual(call(old, { type: 'put', sessionId: opened.sessionId, seq: 1, key: 'k', value: 'old' }), {
      type: 'put',
    });
    sim.partition([old], others);
    sim.runUntil(() => leaderOf(others) !== undefined, { ticksMax: 300, what: 'a new leader' });
    const fresh = leaderOf(others)!;
    assert.deepEqual(call(fresh, { type: 'put', sessionId: opened.sessionId, seq: 2, key: 'k', value: 'new' }), {
      type: 'put',
    });
    assert.equal(sim.state(old).core.role, 'leader', 'without check-quorum the old leader does not know yet');
    const read = sim.request(old, { type: 'get', key: 'k' });
    sim.runFor(500);
    const stale = read.response;
    sim.heal();
    sim.runFor(500);
    return { stale, later: read.response };
  }

  test('a deposed leader does not serve a stale read', () => {
    const { stale, later } = deposedLeaderRead({});
    assert.equal(stale, undefined, 'no answer while cut off');
    assert.ok(later?.type === 'error' && later.code === 'NOT_LEADER', `after healing: ${JSON.stringify(later)}`);
  });

  test('...and does, with the confirmation round turned off (a test-only knob)', () => {
    const { stale } = deposedLeaderRead({ readWithoutQuorum: true });
    assert.deepEqual(stale, { type: 'get', value: 'old' });
  });
});

// Keep NodeId imported for readers of the prose above (node ids are plain numbers in scripts).
void NodeId;
