/**
 * The etcd bench's load generator, a child process of `etcd.bench.ts` (`fork` with an IPC channel), so
 * that the client's work never runs in the servers' event loops. The parent sends one `LoadJob` at a
 * time; the generator runs it closed-loop (each simulated client issues its next request when the
 * previous one is answered) and answers with a `LoadResult`, including its own CPU time, so that the
 * parent can tell whether the generator itself was the bottleneck.
 *
 * The same code drives real etcd and the dsys gateway (`EtcdClient`: gRPC over our own HTTP/2
 * client); `native` jobs drive dsys through its own RPC client (`KvClient`) for reference.
 */
import { percentile } from '@dsys/benchkit';
import { EtcdClient, KvClient } from '@dsys/raft/real';

export interface LoadJob {
  readonly system: 'etcd' | 'native';
  /** `fill`: write every key once (then stop), so that reads find values. */
  readonly kind: 'put' | 'get' | 'fill';
  readonly clients: number;
  /** HTTP/2 connections the clients share (etcd's benchmark --conns); native: one KvClient. */
  readonly connections: number;
  /** Where writes go (the leader, as etcd's benchmark --target-leader) and where reads go (every member). */
  readonly writeEndpoints: readonly string[];
  readonly readEndpoints: readonly string[];
  readonly keys: number;
  readonly valueBytes: number;
  readonly warmupMs: number;
  readonly durationMs: number;
}

export interface LoadResult {
  readonly ops: number;
  /** Answered requests including the warm-up (for CPU time per request over the whole job). */
  readonly totalOps: number;
  readonly errors: number;
  readonly firstError: string | null;
  readonly seconds: number;
  readonly opsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** CPU time of this process over the measured window, per wall second (1 = one core busy). */
  readonly generatorCpu: number;
}

type Operation = (key: string) => Promise<unknown>;

/** The request functions of one job, one per connection; the clients share them round robin. */
function operations(job: LoadJob, value: Uint8Array): { ops: Operation[]; close(): Promise<void> } {
  const encoder = new TextEncoder();
  if (job.system === 'native') {
    const endpoints = [...new Set([...job.writeEndpoints, ...job.readEndpoints])];
    const text = 'v'.repeat(job.valueBytes);
    const client = new KvClient(endpoints, { timeoutMs: 30_000 });
    const op: Operation = job.kind === 'put' ? (key) => client.put(key, text) : (key) => client.get(key);
    return { ops: [op], close: () => client.close() };
  }
  const endpoints = job.kind === 'put' ? job.writeEndpoints : job.readEndpoints;
  const clients = Array.from(
    { length: job.connections },
    (_, i) => new EtcdClient([endpoints[i % endpoints.length]!], { timeoutMs: 30_000 }),
  );
  const ops = clients.map(
    (client): Operation =>
      job.kind === 'put'
        ? (key) => client.put({ key: encoder.encode(key), value })
        : (key) => client.range({ key: encoder.encode(key) }),
  );
  return {
    ops,
    close: async () => {
      for (const client of clients) client.close();
    },
  };
}

function keyName(index: number): string {
  return `key${String(index).padStart(5, '0')}`;
}

async function fill(job: LoadJob): Promise<LoadResult> {
  const { ops, close } = operations({ ...job, kind: 'put' }, new Uint8Array(job.valueBytes).fill(0x61));
  let next = 0;
  let errors = 0;
  let firstError: string | null = null;
  const startedMs = performance.now();
  const worker = async (id: number) => {
    for (let key = next++; key < job.keys; key = next++) {
      try {
        await ops[id % ops.length]!(keyName(key));
      } catch (error) {
        errors++;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: job.clients }, (_, id) => worker(id)));
  await close();
  const seconds = (performance.now() - startedMs) / 1000;
  return {
    ops: job.keys,
    totalOps: job.keys,
    errors,
    firstError,
    seconds,
    opsPerSecond: job.keys / seconds,
    p50Ms: 0,
    p99Ms: 0,
    generatorCpu: 0,
  };
}

async function run(job: LoadJob): Promise<LoadResult> {
  if (job.kind === 'fill') return fill(job);
  const value = new Uint8Array(job.valueBytes).fill(0x61);
  const { ops, close } = operations(job, value);
  const latenciesMs: number[] = [];
  let errors = 0;
  let totalOps = 0;
  let firstError: string | null = null;
  const startedMs = performance.now();
  const measureFromMs = startedMs + job.warmupMs;
  const endMs = measureFromMs + job.durationMs;
  let cpuAtStart: NodeJS.CpuUsage | null = null;
  const worker = async (id: number) => {
    const op = ops[id % ops.length]!;
    // Each client walks the key space from its own offset: spread keys, no coordination.
    let next = Math.floor((id * job.keys) / job.clients);
    for (;;) {
      const began = performance.now();
      if (began >= endMs) return;
      if (cpuAtStart === null && began >= measureFromMs) cpuAtStart = process.cpuUsage();
      try {
        await op(keyName(next));
      } catch (error) {
        errors++;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
      const finished = performance.now();
      totalOps++;
      if (began >= measureFromMs && finished <= endMs) latenciesMs.push(finished - began);
      next = (next + 1) % job.keys;
    }
  };
  await Promise.all(Array.from({ length: job.clients }, (_, id) => worker(id)));
  const cpu = process.cpuUsage(cpuAtStart ?? undefined);
  await close();
  const seconds = job.durationMs / 1000;
  return {
    ops: latenciesMs.length,
    totalOps,
    errors,
    firstError,
    seconds,
    opsPerSecond: latenciesMs.length / seconds,
    p50Ms: percentile(latenciesMs, 50),
    p99Ms: percentile(latenciesMs, 99),
    generatorCpu: (cpu.user + cpu.system) / 1e6 / seconds,
  };
}

if (process.send !== undefined) {
  process.on('message', (job: LoadJob) => {
    run(job).then(
      (result) => process.send!({ ok: true, result }),
      (error: unknown) => process.send!({ ok: false, error: error instanceof Error ? error.stack : String(error) }),
    );
  });
  process.send({ ready: true });
}
