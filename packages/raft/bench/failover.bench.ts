/**
 * Fail-over time: from kill -9 of the leader to the first write committed under a new leader, on a
 * 3-node cluster of real processes (`npm run bench:failover -w @dsys/raft [-- --quick]`).
 *
 * Each trial: wait until every node has applied the leader's commit index, kill -9 the leader, and at
 * once start a put through a `KvClient` that still believes in the dead leader; the time until that
 * put is acknowledged covers the followers' election timeout, the pre-vote and vote rounds, the new
 * leader's no-op commit, and the client finding the new leader. The killed node is restarted before
 * the next trial. 20 trials (5 with --quick); the median and the maximum are reported.
 */
import { median, quick, report, row } from '@dsys/benchkit';
import { nodeCommand, startCluster, waitFor } from '@dsys/harness';
import { KvClient, raftNodeArgs, raftNodeEntry } from '@dsys/raft/real';

const TRIALS = quick ? 5 : 20;
/** The defaults of `dsys raft start`, spelled out: 10 ms ticks, election timeout 30 to 60 ticks. */
const FLAGS = ['--tick-ms', '10', '--election-ticks', '30', '--heartbeat-ticks', '3', '--log-level', 'warn'];

const cluster = await startCluster({
  nodes: 3,
  proxies: false,
  command: (node) => nodeCommand(raftNodeEntry, raftNodeArgs(node, FLAGS)),
  readyTimeoutMs: 60_000,
});
const samplesMs: number[] = [];
try {
  const probe = new KvClient(cluster.endpoints(), { timeoutMs: 30_000 });
  for (let trial = 0; trial < TRIALS; trial++) {
    const writer = new KvClient(cluster.endpoints(), { timeoutMs: 30_000 });
    await writer.put('failover/warm', String(trial)); // the writer knows the leader and has a session
    const leader = await caughtUpLeader(probe);
    await cluster.kill(leader);
    const killedMs = performance.now();
    await writer.put('failover/after', String(trial));
    const elapsedMs = performance.now() - killedMs;
    samplesMs.push(elapsedMs);
    console.log(
      `trial ${trial + 1}/${TRIALS}: killed n${leader}, first write committed after ${elapsedMs.toFixed(0)} ms`,
    );
    await writer.close();
    await cluster.start(leader);
  }
  await probe.close();
} finally {
  await cluster.stopAll();
}

report('raft-failover', [
  row('3 processes, kill -9 of the leader', 'to first committed write, median', 'ms', median(samplesMs), null, false),
  row('3 processes, kill -9 of the leader', 'to first committed write, max', 'ms', Math.max(...samplesMs), null, false),
]);

/** The leader, once every node has applied everything it committed (so any follower may win). */
async function caughtUpLeader(client: KvClient): Promise<number> {
  return waitFor(
    async () => {
      const statuses = await client.statusAll();
      const leader = statuses.find((entry) => entry.ok && entry.status.role === 'leader');
      if (leader === undefined || !leader.ok) return null;
      const caughtUp = statuses.every((entry) => entry.ok && entry.status.applied >= leader.status.commit);
      return caughtUp ? leader.status.node : null;
    },
    { description: 'a leader with every node caught up', timeoutMs: 30_000 },
  );
}
