// Goal: the real thing holds up. Five node processes on loopback serve concurrent clients while the
// harness kill -9's and restarts nodes (the leader among them), partitions the network and cuts links,
// and finally kill -9's every node at once. The recorded history must be linearizable, and every write
// that was acknowledged must be there after the whole cluster restarted.
// Method: @dsys/harness (a fault proxy on every directed link), `KvClient` workers recording through
// `HistoryClient`, a fault schedule drawn from a seeded Rng, and @dsys/check's `kvModel`. Every fault
// waits for the cluster to make progress before the next one (no fixed sleeps). Unique keys written
// once each give the "no acknowledged write lost" check its own evidence, independent of the checker.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkLinearizable, HistoryRecorder, type KvInput, type KvOutput, kvModel } from '@dsys/check';
import { ClientNumbers, type Cluster, HistoryClient, nodeCommand, startCluster, waitFor } from '@dsys/harness';
import { Rng } from '@dsys/kit';
import { KvClient, KvClientError, raftNodeArgs, raftNodeEntry } from '@dsys/raft/real';

const SEED = 0x5eed_4a17;
const NODES = 5;
const WORKERS = 5;
const KEYS = ['k0', 'k1', 'k2'];
/** Election timeouts of 300 to 600 ms: short enough for a quick test, long enough for a loaded machine. */
const NODE_FLAGS = [
  '--election-ticks',
  '30',
  '--heartbeat-ticks',
  '3',
  '--snapshot-entries',
  '500',
  '--log-level',
  'warn',
];

class Workload {
  readonly recorder = new HistoryRecorder<KvInput, KvOutput>();
  private readonly numbers = new ClientNumbers();
  /** Unique keys whose single put was acknowledged, with the value written. */
  readonly acknowledged = new Map<string, string>();
  ok = 0;
  indeterminate = 0;
  private stopping = false;
  private running: Promise<void>[] = [];

  constructor(
    private readonly client: KvClient,
    private readonly rng: Rng,
  ) {}

  start(): void {
    this.running = Array.from({ length: WORKERS }, (_, worker) => this.work(worker, this.rng.fork(`worker-${worker}`)));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.running);
  }

  private async work(worker: number, rng: Rng): Promise<void> {
    const history = new HistoryClient(this.recorder, this.numbers);
    for (let i = 0; !this.stopping; i++) {
      const input = this.choose(worker, i, rng);
      const recorded = await history.run(input, () => this.execute(input), {
        classifyError: (error) => (error instanceof KvClientError && !error.indeterminate ? 'fail' : 'info'),
      });
      if (recorded.status === 'ok') {
        this.ok++;
        if (input.type === 'put' && input.key.startsWith('u/')) this.acknowledged.set(input.key, input.value);
      } else if (recorded.status === 'info') this.indeterminate++;
      else if (!(recorded.error instanceof KvClientError)) throw recorded.error;
    }
  }

  private choose(worker: number, i: number, rng: Rng): KvInput {
    const key = rng.pick(KEYS);
    const value = `w${worker}-${i}`;
    const roll = rng.int(100);
    if (roll < 35) return { type: 'get', key };
    if (roll < 55) return { type: 'put', key, value };
    if (roll < 80)
      return { type: 'cas', key, expected: rng.chance(1, 2) ? null : `w${rng.int(WORKERS)}-${i - 1}`, value };
    if (roll < 85) return { type: 'delete', key };
    return { type: 'put', key: `u/${worker}/${i}`, value };
  }

  private async execute(input: KvInput): Promise<KvOutput> {
    switch (input.type) {
      case 'get':
        return { type: 'get', value: await this.client.get(input.key) };
      case 'put':
        await this.client.put(input.key, input.value);
        return { type: 'put' };
      case 'delete':
        await this.client.delete(input.key);
        return { type: 'delete' };
      case 'cas':
        return { type: 'cas', ok: await this.client.cas(input.key, input.expected, input.value) };
    }
  }
}

async function leaderOf(client: KvClient, cluster: Cluster): Promise<number> {
  return waitFor(
    async () => {
      let best: { node: number; term: number } | null = null;
      for (const entry of await client.statusAll()) {
        if (!entry.ok || entry.status.role !== 'leader' || !cluster.isRunning(entry.status.node)) continue;
        if (best === null || entry.status.term > best.term) best = { node: entry.status.node, term: entry.status.term };
      }
      return best?.node ?? null;
    },
    { description: 'a leader', timeoutMs: 30_000 },
  );
}

test('5 processes under kill -9, restarts, partitions and cut links: linearizable, no acknowledged write lost', async (t) => {
  const rng = Rng.fromSeed(SEED);
  const cluster = await startCluster({
    nodes: NODES,
    command: (node) => nodeCommand(raftNodeEntry, raftNodeArgs(node, NODE_FLAGS)),
    readyTimeoutMs: 60_000,
  });
  t.after(() => cluster.stopAll());
  const client = new KvClient(cluster.endpoints(), { timeoutMs: 4_000, attemptTimeoutMs: 1_000 });
  t.after(() => client.close());
  const workload = new Workload(client, rng.fork('workload'));
  const faults = rng.fork('faults');
  const progress = async (what: string, ops = 40) => {
    const target = workload.ok + ops;
    await waitFor(() => workload.ok >= target, { description: `${ops} operations after ${what}`, timeoutMs: 45_000 });
  };
  const others = (excluded: number[]) => cluster.ids.filter((id) => !excluded.includes(id));

  workload.start();
  await progress('start');

  // 1. kill -9 the leader, wait for the others to carry on, bring it back.
  const leader1 = await leaderOf(client, cluster);
  await cluster.kill(leader1);
  await progress(`kill -9 of leader n${leader1}`);
  await cluster.start(leader1);

  // 2. A partition that leaves the leader in the minority (silent links: only timeouts notice).
  const leader2 = await leaderOf(client, cluster);
  const buddy = faults.pick(others([leader2]));
  cluster.partition([[leader2, buddy], others([leader2, buddy])], 'blackhole');
  await progress(`partition {n${leader2}, n${buddy}} | rest`);
  cluster.heal();

  // 3. kill -9 a follower while the leader's links to another follower are reset.
  const leader3 = await leaderOf(client, cluster);
  const [victim, cutOff] = faults.shuffle(others([leader3])) as [number, number];
  await cluster.kill(victim);
  cluster.cut(leader3, cutOff, 'reset');
  cluster.cut(cutOff, leader3, 'reset');
  await progress(`kill -9 of n${victim}, links n${leader3} <-> n${cutOff} reset`);
  cluster.heal();
  await cluster.start(victim);

  // 4. Isolate the leader completely, then kill -9 two nodes (a minority) at once.
  const leader4 = await leaderOf(client, cluster);
  cluster.isolate(leader4, 'blackhole');
  await progress(`isolation of leader n${leader4}`);
  cluster.heal();
  const pair = faults.shuffle([...cluster.ids]).slice(0, 2);
  await Promise.all(pair.map((id) => cluster.kill(id)));
  await progress(`kill -9 of n${pair[0]} and n${pair[1]}`);
  await Promise.all(pair.map((id) => cluster.start(id)));
  await progress('restarts');
  await workload.stop();

  // 5. kill -9 of every node at once, then a restart: acknowledged writes were synced on a majority.
  await Promise.all(cluster.ids.map((id) => cluster.kill(id)));
  await Promise.all(cluster.ids.map((id) => cluster.start(id)));
  await leaderOf(client, cluster);
  const verifier = new HistoryClient(workload.recorder, new ClientNumbers(1_000_000));
  assert.ok(workload.acknowledged.size > 10, `${workload.acknowledged.size} acknowledged unique writes`);
  for (const [key, value] of workload.acknowledged) {
    const read = await verifier.run({ type: 'get', key }, async () => ({
      type: 'get' as const,
      value: await client.get(key),
    }));
    assert.equal(read.status, 'ok', `read of ${key}`);
    assert.deepEqual(read.result, { type: 'get', value }, `acknowledged write ${key} = ${value} survived`);
  }
  for (const key of KEYS)
    await verifier.run({ type: 'get', key }, async () => ({ type: 'get' as const, value: await client.get(key) }));

  const history = workload.recorder.history();
  const result = checkLinearizable(kvModel, history);
  t.diagnostic(`${history.length} operations, ${workload.ok} ok, ${workload.indeterminate} indeterminate`);
  assert.equal(result.ok, true, result.ok === false ? result.counterexample : JSON.stringify(result));
});
