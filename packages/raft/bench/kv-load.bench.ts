/**
 * Throughput and latency of a 3-node cluster of real processes under 64 concurrent clients
 * (`npm run bench:load -w @dsys/raft [-- --quick]`): closed-loop puts of 100-byte values over 6,400
 * keys, then linearizable gets (ReadIndex) of the same keys, through one `KvClient` (one RPC connection
 * per node, one session per concurrent writer). Three rounds each (one with --quick), the median
 * round reported. The etcd comparison builds on this workload (bench/peers).
 */
import { median, percentile, quick, report, row } from '@dsys/benchkit';
import { nodeCommand, startCluster } from '@dsys/harness';
import { KvClient, raftNodeArgs, raftNodeEntry } from '@dsys/raft/real';

const CLIENTS = 64;
const ROUND_MS = quick ? 3_000 : 8_000;
const ROUNDS = quick ? 1 : 3;
const VALUE = 'v'.repeat(100);

interface Round {
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

async function round(client: KvClient, kind: 'put' | 'get'): Promise<Round> {
  const latenciesMs: number[] = [];
  const endMs = performance.now() + ROUND_MS;
  const startedMs = performance.now();
  const worker = async (id: number) => {
    for (let i = 0; performance.now() < endMs; i++) {
      const key = `load/${id}/${i % 100}`;
      const began = performance.now();
      if (kind === 'put') await client.put(key, VALUE);
      else await client.get(key);
      latenciesMs.push(performance.now() - began);
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, (_, id) => worker(id)));
  const seconds = (performance.now() - startedMs) / 1000;
  return {
    opsPerSecond: latenciesMs.length / seconds,
    p50Ms: percentile(latenciesMs, 50),
    p99Ms: percentile(latenciesMs, 99),
  };
}

function medianRound(rounds: readonly Round[]): Round {
  const rate = median(rounds.map((r) => r.opsPerSecond));
  return rounds.find((r) => r.opsPerSecond === rate)!;
}

const cluster = await startCluster({
  nodes: 3,
  proxies: false,
  command: (node) => nodeCommand(raftNodeEntry, raftNodeArgs(node, ['--log-level', 'warn'])),
  readyTimeoutMs: 60_000,
});
const results = new Map<'put' | 'get', Round>();
try {
  const client = new KvClient(cluster.endpoints(), { timeoutMs: 30_000 });
  await client.put('load/warm', VALUE);
  for (const kind of ['put', 'get'] as const) {
    const rounds: Round[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const result = await round(client, kind);
      console.log(
        `${kind} round ${i + 1}: ${Math.round(result.opsPerSecond)} ops/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms`,
      );
      rounds.push(result);
    }
    results.set(kind, medianRound(rounds));
  }
  await client.close();
} finally {
  await cluster.stopAll();
}

const bench = `3 processes, ${CLIENTS} clients`;
const rows = [];
for (const [kind, result] of results) {
  const what = kind === 'put' ? 'put (100 B)' : 'get (ReadIndex)';
  rows.push(row(bench, `${what} throughput`, 'ops/s', result.opsPerSecond, null, true));
  rows.push(row(bench, `${what} latency p50`, 'ms', result.p50Ms, null, false));
  rows.push(row(bench, `${what} latency p99`, 'ms', result.p99Ms, null, false));
}
report('raft-kv-load', rows);
