/**
 * dsys Raft KV side by side with etcd 3.4 (`npm run bench:etcd -w @dsys/raft [-- --quick]`, also part
 * of `npm run bench`): a 3-member etcd cluster (Debian's etcd-server, installed with apt-get if
 * missing) and a 3-node dsys cluster, both on loopback with fsync on (their defaults), data in a temp
 * directory, started here and stopped by PID.
 *
 * Both are driven by the SAME load generator and client code: `EtcdClient` (etcd's gRPC API over
 * our own HTTP/2 client, `GrpcChannel`) in a separate process (`load-generator.ts`), against etcd's
 * own gRPC port and the dsys nodes' etcd gateways. dsys is also driven through its native RPC client
 * (`KvClient`) for reference.
 * Workload, as in etcd's performance guide (Documentation/op-guide/performance.md): 10,000 keys,
 * 256-byte values; puts to the leader (etcd's benchmark --target-leader); linearizable single-key
 * ranges to every member (one client: to a follower); 1 and 64 concurrent clients, the 64 sharing 8
 * connections. Closed loop.
 *
 * The machine is shared and noisy, so runs interleave: in each round every workload runs once on
 * each system, one after the other (the order rotates per round), and the median round is reported.
 * The load average is printed before and after, and the generator's own CPU use per run, to show
 * whether the generator was the bottleneck. `--cpu-prof-dir DIR` makes each dsys node write a V8 CPU
 * profile there when it stops.
 */
import { type ChildProcess, execFileSync, fork, spawn, spawnSync } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machine, median, quick, row } from '@dsys/benchkit';
import { allocatePorts, type Cluster, nodeCommand, startCluster, waitFor } from '@dsys/harness';
import { EtcdClient, raftNodeArgs, raftNodeEntry } from '@dsys/raft/real';
import type { LoadJob, LoadResult } from './load-generator.js';
import { reportRaft } from './raft-report.js';

/** `--name value` from the command line (for profiling runs: fewer systems, workloads or rounds). */
function option(name: string): string | undefined {
  const at = process.argv.indexOf(`--${name}`);
  return at < 0 ? undefined : process.argv[at + 1];
}

const ROUNDS = Number(option('rounds') ?? (quick ? 1 : 3));
const DURATION_MS = Number(option('duration-ms') ?? (quick ? 2_000 : 5_000));
const WARMUP_MS = quick ? 500 : 1_000;
const KEYS = 10_000;
const VALUE_BYTES = 256;
const CONNECTIONS_FOR_MANY = 8;
const PEER = 'etcd 3.4';

type System = 'etcd' | 'dsys' | 'native';
interface Workload {
  readonly kind: 'put' | 'get';
  readonly clients: number;
}
/** `--workloads put:64,get:1`: a subset (default: all four). */
const WORKLOADS: readonly Workload[] = (option('workloads') ?? 'put:1,put:64,get:1,get:64').split(',').map((text) => {
  const [kind, clients] = text.split(':');
  if ((kind !== 'put' && kind !== 'get') || !(Number(clients) >= 1)) throw new Error(`--workloads: bad "${text}"`);
  return { kind, clients: Number(clients) };
});
/** `--cpu-prof-dir DIR`: profile the dsys nodes (node's --cpu-prof), e.g. to find the gateway's costs. */
const CPU_PROFILE_DIR = option('cpu-prof-dir');
/** `--systems dsys,native`: a subset (default: etcd, dsys, native). */
const SYSTEMS = (option('systems') ?? 'etcd,dsys,native').split(',') as System[];

interface Targets {
  readonly leader: string;
  readonly all: readonly string[];
}

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

function loadAverage(): string {
  return loadavg()
    .map((value) => value.toFixed(1))
    .join(' ');
}

// ------------------------------------------------------------------------------------------------
// etcd

function etcdBinary(): string {
  const found = spawnSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' });
  if (found.status === 0 && found.stdout.trim() !== '') return found.stdout.trim();
  log('etcd not found: installing etcd-server with apt-get');
  execFileSync('apt-get', ['install', '-y', '-o', 'DPkg::Lock::Timeout=300', 'etcd-server'], { stdio: 'inherit' });
  return 'etcd';
}

interface EtcdCluster {
  readonly endpoints: readonly string[];
  readonly pids: readonly number[];
  stop(): Promise<void>;
}

async function startEtcd(dir: string): Promise<EtcdCluster> {
  const binary = etcdBinary();
  const version = spawnSync(binary, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0] ?? '?';
  log(`etcd: ${version.trim()} (${binary})`);
  const ports = await allocatePorts(6);
  const client = (i: number) => `127.0.0.1:${ports[i]}`;
  const peer = (i: number) => `http://127.0.0.1:${ports[3 + i]}`;
  const initial = [0, 1, 2].map((i) => `m${i + 1}=${peer(i)}`).join(',');
  const children: ChildProcess[] = [];
  for (const i of [0, 1, 2]) {
    const args = [
      ...['--name', `m${i + 1}`, '--data-dir', join(dir, `etcd-m${i + 1}`)],
      ...['--listen-client-urls', `http://${client(i)}`, '--advertise-client-urls', `http://${client(i)}`],
      ...['--listen-peer-urls', peer(i), '--initial-advertise-peer-urls', peer(i)],
      ...['--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', 'dsys-bench'],
      ...['--logger', 'zap', '--log-outputs', 'stderr', '--log-level', 'warn'],
    ];
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const logFile = createWriteStream(join(dir, `etcd-m${i + 1}.log`));
    child.stdout?.pipe(logFile);
    child.stderr?.pipe(logFile);
    children.push(child);
  }
  const stop = async () => {
    await Promise.all(children.map((child) => stopProcess(child)));
  };
  const endpoints = [0, 1, 2].map(client);
  try {
    await waitForLeader(endpoints);
  } catch (error) {
    await stop();
    throw error;
  }
  return { endpoints, pids: children.map((child) => child.pid!), stop };
}

/** SIGTERM, then SIGKILL after 10 s; resolves once the process has exited. */
function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

async function waitForLeader(endpoints: readonly string[]): Promise<Targets> {
  const client = new EtcdClient(endpoints, { timeoutMs: 2_000 });
  try {
    const leader = await waitFor(() => client.leaderEndpoint(), { description: 'a leader', timeoutMs: 60_000 });
    return { leader, all: endpoints };
  } finally {
    client.close();
  }
}

// ------------------------------------------------------------------------------------------------
// dsys

async function startDsys(): Promise<{ cluster: Cluster; etcdEndpoints: string[] }> {
  const etcdPorts = await allocatePorts(3);
  const etcdEndpoints = etcdPorts.map((port) => `127.0.0.1:${port}`);
  const members = etcdEndpoints.map((endpoint, i) => `${i + 1}=${endpoint}`).join(',');
  const cluster = await startCluster({
    nodes: 3,
    proxies: false,
    command: (node) => {
      const command = nodeCommand(
        raftNodeEntry,
        raftNodeArgs(node, [
          ...['--log-level', 'warn', '--etcd-listen', etcdEndpoints[node.id - 1]!, '--etcd-endpoints', members],
        ]),
      );
      // `--cpu-prof-dir DIR`: each node writes a V8 CPU profile there when it stops.
      if (CPU_PROFILE_DIR === undefined) return command;
      return { ...command, args: ['--cpu-prof', '--cpu-prof-dir', CPU_PROFILE_DIR, ...command.args] };
    },
    readyTimeoutMs: 60_000,
  });
  return { cluster, etcdEndpoints };
}

function dsysPids(cluster: Cluster): number[] {
  return [1, 2, 3].flatMap((id) => cluster.pid(id) ?? []);
}

// ------------------------------------------------------------------------------------------------
// The load generator process

class LoadGenerator {
  private readonly child: ChildProcess;
  private readonly ready: Promise<void>;

  constructor() {
    const script = fileURLToPath(new URL('./load-generator.ts', import.meta.url));
    this.child = fork(script, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.ready = new Promise((resolve, reject) => {
      this.child.once('message', () => resolve());
      this.child.once('exit', (code) => reject(new Error(`load generator exited (${code})`)));
    });
  }

  async run(job: LoadJob): Promise<LoadResult> {
    await this.ready;
    return new Promise((resolve, reject) => {
      this.child.once('message', (message: { ok: true; result: LoadResult } | { ok: false; error: string }) => {
        if (message.ok) resolve(message.result);
        else reject(new Error(`load generator: ${message.error}`));
      });
      this.child.send(job);
    });
  }

  stop(): Promise<void> {
    return stopProcess(this.child);
  }
}

/**
 * Where reads go. A single connection reads from one member: a follower, pinned, so that every run
 * measures the same path (a ReadIndex round trip to the leader) whichever member won the election;
 * before, it was the first member, a leader in some runs and a follower in others. Many clients
 * spread over every member; the native client picks its own.
 */
function readEndpoints(system: System, workload: Workload, targets: Targets): readonly string[] {
  if (system === 'native' || workload.clients > 1) return targets.all;
  return [targets.all.find((endpoint) => endpoint !== targets.leader) ?? targets.leader];
}

function job(system: System, workload: Workload, targets: Targets): LoadJob {
  return {
    system: system === 'native' ? 'native' : 'etcd',
    kind: workload.kind,
    clients: workload.clients,
    connections: workload.clients === 1 ? 1 : CONNECTIONS_FOR_MANY,
    writeEndpoints: [targets.leader],
    readEndpoints: readEndpoints(system, workload, targets),
    keys: KEYS,
    valueBytes: VALUE_BYTES,
    warmupMs: WARMUP_MS,
    durationMs: DURATION_MS,
  };
}

/** CPU seconds (user + system) the processes have used so far, from /proc/<pid>/stat (Linux). */
function cpuSecondsOf(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  return ticks / CLOCK_TICKS_PER_SECOND;
}
/** Linux's USER_HZ. */
const CLOCK_TICKS_PER_SECOND = 100;

function describeRun(system: System, workload: Workload, result: LoadResult, serverCpuSeconds: number): string {
  const errors = result.errors === 0 ? '' : `, ${result.errors} errors (${result.firstError})`;
  const cpuPerOpUs = (serverCpuSeconds * 1e6) / Math.max(1, result.totalOps);
  return (
    `${system.padEnd(6)} ${workload.kind} x${String(workload.clients).padEnd(2)}: ` +
    `${Math.round(result.opsPerSecond).toString().padStart(6)} ops/s, p50 ${result.p50Ms.toFixed(2)} ms, ` +
    `p99 ${result.p99Ms.toFixed(2)} ms, servers ${cpuPerOpUs.toFixed(0)} µs CPU/op, ` +
    `generator CPU ${(result.generatorCpu * 100).toFixed(0)}%${errors}`
  );
}

// ------------------------------------------------------------------------------------------------

const dir = await mkdtemp(join(tmpdir(), 'dsys-etcd-bench-'));
log(`machine: ${machine()}; load average before: ${loadAverage()}; data in ${dir}`);
let etcd: EtcdCluster | null = null;
let dsys: { cluster: Cluster; etcdEndpoints: string[] } | null = null;
const generator = new LoadGenerator();
const results = new Map<string, LoadResult[]>();
try {
  if (SYSTEMS.includes('etcd')) etcd = await startEtcd(dir);
  dsys = await startDsys();
  const targets: Record<System, Targets> = {
    etcd: etcd === null ? { leader: '', all: [] } : await waitForLeader(etcd.endpoints),
    dsys: await waitForLeader(dsys.etcdEndpoints),
    // The native client finds the leader itself; it gets every node's RPC endpoint.
    native: { leader: dsys.cluster.endpoints()[0]!, all: dsys.cluster.endpoints() },
  };
  for (const system of SYSTEMS.filter((name) => name !== 'native')) {
    const filled = await generator.run({ ...job(system, { kind: 'put', clients: 64 }, targets[system]), kind: 'fill' });
    log(`${system}: wrote ${KEYS} keys in ${filled.seconds.toFixed(1)} s (${filled.errors} errors)`);
  }
  const systems = SYSTEMS;
  for (let round = 0; round < ROUNDS; round++) {
    log(`round ${round + 1}/${ROUNDS} (load average ${loadAverage()})`);
    for (const workload of WORKLOADS) {
      for (let i = 0; i < systems.length; i++) {
        const system = systems[(i + round) % systems.length]!;
        const pids = system === 'etcd' ? (etcd?.pids ?? []) : dsysPids(dsys.cluster);
        const cpuBefore = cpuSecondsOf(pids);
        const result = await generator.run(job(system, workload, targets[system]));
        log(`  ${describeRun(system, workload, result, cpuSecondsOf(pids) - cpuBefore)}`);
        const key = `${system}/${workload.kind}/${workload.clients}`;
        results.set(key, [...(results.get(key) ?? []), result]);
      }
    }
  }
} finally {
  await generator.stop();
  await Promise.all([etcd?.stop(), dsys?.cluster.stopAll()]);
  await rm(dir, { recursive: true, force: true });
}
log(`load average after: ${loadAverage()}`);

/** The round with the median rate, so that its latencies come from the same run. */
function medianRun(system: System, workload: Workload): LoadResult {
  const runs = results.get(`${system}/${workload.kind}/${workload.clients}`) ?? [];
  const rate = median(runs.map((run) => run.opsPerSecond));
  return runs.find((run) => run.opsPerSecond === rate)!;
}

const rows = [];
// A partial run (`--systems`) reports what it measured: the etcd comparison needs both dsys and etcd.
const compared = SYSTEMS.includes('dsys') && SYSTEMS.includes('etcd');
for (const workload of compared ? WORKLOADS : []) {
  const bench = `etcd API: 3 nodes, fsync, ${VALUE_BYTES} B values, ${workload.clients} client${workload.clients === 1 ? '' : 's'}`;
  const ours = medianRun('dsys', workload);
  const theirs = medianRun('etcd', workload);
  const peer = (value: number) => ({ name: PEER, value });
  const what = workload.kind === 'put' ? 'writes' : 'linearizable reads';
  rows.push(row(bench, `${what} per second`, 'ops/s', ours.opsPerSecond, peer(theirs.opsPerSecond), true));
  rows.push(row(bench, `${what} latency p50`, 'ms', ours.p50Ms, peer(theirs.p50Ms), false));
  rows.push(row(bench, `${what} latency p99`, 'ms', ours.p99Ms, peer(theirs.p99Ms), false));
  if (!SYSTEMS.includes('native')) continue;
  const native = medianRun('native', workload);
  const nativeBench = `native RPC (KvClient): 3 nodes, fsync, ${VALUE_BYTES} B values, ${workload.clients} client${workload.clients === 1 ? '' : 's'}`;
  rows.push(row(nativeBench, `${what} per second`, 'ops/s', native.opsPerSecond, null, true));
  rows.push(row(nativeBench, `${what} latency p99`, 'ms', native.p99Ms, null, false));
}
if (!compared) log('partial run without both dsys and etcd: no rows written; the table below is the stored one');
reportRaft(rows);
