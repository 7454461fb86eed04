/**
 * `npm run bench -w @dsys/coord [-- --quick]`: dsys coord against Apache ZooKeeper 3.8 (Debian's
 * zookeeper package), side by side in one run: a 3-server ensemble of each on loopback, the same
 * client library (node-zookeeper-client) and the same load: create, setData, getData, exists with 1
 * and 64 requests in flight through one follower, and getData spread over all three servers.
 * Throughput (ops/s) and p99 latency per phase. Built for a shared, noisy machine: each round runs
 * every phase once on both systems back to back (which goes first alternates by round), rounds are
 * repeated (`--rounds N`, default 5), and the report gives the median of each system plus the median
 * of the per-round paired ratios (two runs seconds apart see nearly the same machine load). The load
 * average is printed before and after. Then message counts showing that reads served by a dsys
 * follower never reach the leader.
 *
 * Investigation flags: `--phases 'create, 1 in|setData, 1 in'` (a subset), `--keep-logs` (keep the
 * dsys members' data dirs and logs), `--member-log-level info`. Both ensembles' members talk to each
 * other directly (no harness proxies).
 *
 * The script installs Debian's zookeeper if it is missing, writes the ZooKeeper configs in a temp
 * directory, starts each server with java directly, waits for `ruok`, and stops everything by PID.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BenchRow, percentile, quick, report, row } from '@dsys/benchkit';
import { type Cluster, nodeCommand, startCluster, waitFor } from '@dsys/harness';
import zookeeper from 'node-zookeeper-client';
import { coordNodeEntry } from '../src/real/index.js';

type Client = ReturnType<typeof zookeeper.createClient>;
const PEER = 'zookeeper 3.8';
const PHASE_MS = quick ? 1000 : 2000;
function roundsFlag(): number {
  const at = process.argv.indexOf('--rounds');
  if (at < 0) return quick ? 1 : 5;
  const value = Number(process.argv[at + 1]);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error('--rounds takes a positive integer');
  return value;
}
const ROUNDS = roundsFlag();

function fourLetter(port: number, word: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (chunk) => {
      text += chunk.toString();
    });
    socket.on('error', () => resolve(''));
    socket.on('close', () => resolve(text));
    socket.write(word);
  });
}

function ensureZooKeeper(): void {
  if (existsSync('/usr/share/java/zookeeper.jar')) return;
  console.log('installing Debian zookeeper (apt-get) ...');
  spawnSync('apt-get', ['update'], { stdio: 'inherit' });
  const install = spawnSync('apt-get', ['install', '-y', '-o', 'DPkg::Lock::Timeout=300', 'zookeeper'], {
    stdio: 'inherit',
  });
  if (install.status !== 0) throw new Error('apt-get install zookeeper failed');
}

/** A 3-server Apache ZooKeeper ensemble on loopback, started with java directly. */
async function startZooKeeper(basePort: number): Promise<{ ports: number[]; stop(): void; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'zk-bench-'));
  const processes: ChildProcess[] = [];
  const ports = [0, 1, 2].map((i) => basePort + i);
  writeFileSync(
    join(dir, 'logback.xml'),
    '<configuration><appender name="C" class="ch.qos.logback.core.ConsoleAppender"><encoder><pattern>%msg%n</pattern></encoder></appender><root level="ERROR"><appender-ref ref="C"/></root></configuration>\n',
  );
  for (let id = 1; id <= 3; id++) {
    const data = join(dir, `data${id}`);
    mkdirSync(data, { recursive: true });
    writeFileSync(join(data, 'myid'), `${id}\n`);
    const servers = [1, 2, 3]
      .map((n) => `server.${n}=127.0.0.1:${basePort + 100 + n}:${basePort + 200 + n}`)
      .join('\n');
    writeFileSync(
      join(dir, `zoo${id}.cfg`),
      `tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=${data}\nclientPort=${ports[id - 1]}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n4lw.commands.whitelist=*\nadmin.enableServer=false\n${servers}\n`,
    );
    const child = spawn(
      'java',
      [
        '-Xmx1g',
        `-Dlogback.configurationFile=${join(dir, 'logback.xml')}`,
        '-Dzookeeper.jmx.log4j.disable=true',
        '-cp',
        `${dir}:/usr/share/java/zookeeper.jar`,
        'org.apache.zookeeper.server.quorum.QuorumPeerMain',
        join(dir, `zoo${id}.cfg`),
      ],
      // Detached (its own session), as the harness starts each dsys node: with the kernel's
      // autogroup scheduling a session is a CPU-share group, so on a busy machine both systems' servers
      // then get the same share, and neither shares one with the load generator.
      { stdio: ['ignore', 'ignore', 'inherit'], detached: true },
    );
    processes.push(child);
  }
  const stop = () => {
    for (const child of processes)
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      async () =>
        (await Promise.all(ports.map((port) => fourLetter(port, 'srvr')))).every((text) =>
          /Mode: (leader|follower)/.test(text),
        ),
      {
        description: 'ZooKeeper ensemble serving',
        timeoutMs: 60_000,
        intervalMs: 250,
      },
    );
  } catch (error) {
    stop();
    throw error;
  }
  return { ports, stop, dir };
}

/** `--member-log-level info`: the dsys members' log level (default error), e.g. with `--keep-logs`. */
const memberLogLevelAt = process.argv.indexOf('--member-log-level');
const memberLogLevel = memberLogLevelAt < 0 ? 'error' : (process.argv[memberLogLevelAt + 1] ?? 'error');

async function startCoord(): Promise<{ cluster: Cluster; ports: number[] }> {
  const cluster = await startCluster({
    nodes: 3,
    readyTimeoutMs: 30_000,
    // Members talk to each other directly, as ZooKeeper's servers do. With the harness's fault
    // proxies (its default) every peer message took an extra hop through this process's event loop,
    // which is busy being the load generator: slower writes, and under load even leader changes.
    proxies: false,
    // `--keep-logs`: keep the members' data dirs and logs (printed at the end) to look into a run.
    keepDataDir: process.argv.includes('--keep-logs'),
    command: (node) =>
      nodeCommand(coordNodeEntry, [
        '--id',
        String(node.id),
        '--peers',
        [...node.peers].map(([id, e]) => `${id}=${e.host}:${e.port}`).join(','),
        '--listen-peer',
        `${node.peerAddress.host}:${node.peerAddress.port}`,
        '--listen-client',
        `${node.clientAddress.host}:${node.clientAddress.port}`,
        '--data-dir',
        node.dataDir,
        '--log-level',
        memberLogLevel,
      ]),
  });
  const ports = cluster.endpoints().map((endpoint) => Number(endpoint.split(':')[1]));
  await waitFor(
    async () =>
      (await Promise.all(ports.map((port) => fourLetter(port, 'srvr')))).some((text) => /Mode: leader/.test(text)),
    {
      description: 'dsys coord has a leader',
      timeoutMs: 30_000,
      intervalMs: 200,
    },
  );
  return { cluster, ports };
}

function connectClient(port: number): Promise<Client> {
  const client = zookeeper.createClient(`127.0.0.1:${port}`, { sessionTimeout: 30_000 });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no connection to ${port}`)), 15_000);
    client.once('connected', () => {
      clearTimeout(timer);
      resolve(client);
    });
    client.connect();
  });
}

type Issue = (client: Client, n: number, done: (error: unknown) => void) => void;

/** Keeps `inFlight` requests outstanding per client for PHASE_MS; returns ops/s and latencies. */
async function phase(
  clients: Client[],
  inFlight: number,
  issue: Issue,
): Promise<{ opsPerSecond: number; p50: number; p99: number; errors: number }> {
  const latencies: number[] = [];
  let errors = 0;
  let counter = 0;
  const started = performance.now();
  const deadline = started + PHASE_MS;
  await Promise.all(
    clients.map(
      (client) =>
        new Promise<void>((resolve) => {
          let active = 0;
          const launch = (): void => {
            if (performance.now() >= deadline) {
              if (active === 0) resolve();
              return;
            }
            active++;
            const t0 = performance.now();
            issue(client, counter++, (error) => {
              active--;
              if (error) errors++;
              else latencies.push(performance.now() - t0);
              launch();
            });
          };
          for (let i = 0; i < inFlight; i++) launch();
        }),
    ),
  );
  const seconds = (performance.now() - started) / 1000;
  return {
    opsPerSecond: latencies.length / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    errors,
  };
}

interface Phase {
  readonly name: string;
  readonly inFlight: number;
  readonly spread: boolean;
  readonly issue: Issue;
}

const value = Buffer.alloc(100, 0x61);
let runTag = 0;
const PHASES: Phase[] = [1, 64].flatMap((inFlight) => [
  {
    name: `create, ${inFlight} in flight`,
    inFlight,
    spread: false,
    issue: ((c, n, done) => c.create(`/bench/c-${runTag}-${inFlight}-${n}`, value, done)) as Issue,
  },
  {
    name: `setData, ${inFlight} in flight`,
    inFlight,
    spread: false,
    issue: ((c, n, done) => c.setData(`/bench/k${n % 16}`, value, -1, done)) as Issue,
  },
  {
    name: `getData, ${inFlight} in flight`,
    inFlight,
    spread: false,
    issue: ((c, n, done) => c.getData(`/bench/k${n % 16}`, done)) as Issue,
  },
  {
    name: `exists, ${inFlight} in flight`,
    inFlight,
    spread: false,
    issue: ((c, n, done) => c.exists(`/bench/k${n % 16}`, done)) as Issue,
  },
]);
PHASES.push({
  name: 'getData over 3 servers, 64 in flight',
  inFlight: 22,
  spread: true,
  issue: (c, n, done) => c.getData(`/bench/k${n % 16}`, done),
});
/**
 * `--phases 'create, 1 in|setData, 1 in'` keeps the phases whose name contains one of the
 * '|'-separated texts (for investigations; phase names contain commas).
 */
const phaseFilter = process.argv.indexOf('--phases');
if (phaseFilter >= 0) {
  const words = (process.argv[phaseFilter + 1] ?? '').split('|').filter((word) => word.length > 0);
  if (words.length === 0) throw new Error("--phases takes texts separated by '|'");
  const kept = PHASES.filter((p) => words.some((word) => p.name.includes(word)));
  if (kept.length === 0) throw new Error(`--phases ${words.join('|')} matches no phase`);
  PHASES.splice(0, PHASES.length, ...kept);
}

type PhaseResult = { opsPerSecond: number; p50: number; p99: number; errors: number };

async function prepare(port: number): Promise<void> {
  const setup = await connectClient(port);
  await new Promise((resolve) => setup.create('/bench', Buffer.alloc(0), () => resolve(null)));
  for (let k = 0; k < 16; k++) await new Promise((resolve) => setup.create(`/bench/k${k}`, value, () => resolve(null)));
  setup.close();
}

async function runPhase(p: Phase, ports: number[], followerPort: number): Promise<PhaseResult> {
  runTag++;
  const clients = await Promise.all((p.spread ? ports : [followerPort]).map((port) => connectClient(port)));
  const result = await phase(clients, p.inFlight, p.issue);
  for (const client of clients) client.close();
  return result;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

interface PhaseSummary {
  readonly ours: PhaseResult;
  readonly theirs: PhaseResult;
  /** Per round, dsys throughput over ZooKeeper's in the same round. */
  readonly pairedRatios: readonly number[];
}

/**
 * Runs `ROUNDS` rounds; a round runs every phase on both systems back to back, the one going first
 * alternating by round. So a phase's samples are spread over the whole run (a burst of load elsewhere
 * on the machine hits one round of each phase, not all rounds of one), and each pair is measured
 * seconds apart. Reports the median of each system and the per-round paired ratios.
 */
async function runBoth(
  ours: { ports: number[]; follower: number },
  theirs: { ports: number[]; follower: number },
): Promise<Map<string, PhaseSummary>> {
  await prepare(ours.follower);
  await prepare(theirs.follower);
  const samples = new Map<string, { ours: PhaseResult[]; theirs: PhaseResult[] }>();
  for (const p of PHASES) samples.set(p.name, { ours: [], theirs: [] });
  for (let round = 0; round < ROUNDS; round++) {
    for (const p of PHASES) {
      const entry = samples.get(p.name)!;
      if (round % 2 === 0) {
        entry.ours.push(await runPhase(p, ours.ports, ours.follower));
        entry.theirs.push(await runPhase(p, theirs.ports, theirs.follower));
      } else {
        entry.theirs.push(await runPhase(p, theirs.ports, theirs.follower));
        entry.ours.push(await runPhase(p, ours.ports, ours.follower));
      }
    }
    console.log(`  round ${round + 1}/${ROUNDS} done (load average ${loadText()})`);
  }
  const pick = (list: PhaseResult[]): PhaseResult => ({
    opsPerSecond: median(list.map((r) => r.opsPerSecond)),
    p50: median(list.map((r) => r.p50)),
    p99: median(list.map((r) => r.p99)),
    errors: list.reduce((sum, r) => sum + r.errors, 0),
  });
  const results = new Map<string, PhaseSummary>();
  for (const p of PHASES) {
    const entry = samples.get(p.name)!;
    const pairedRatios = entry.ours.map((a, i) => a.opsPerSecond / entry.theirs[i]!.opsPerSecond);
    const summary = { ours: pick(entry.ours), theirs: pick(entry.theirs), pairedRatios };
    results.set(p.name, summary);
    const ratios = [...pairedRatios].sort((a, b) => a - b);
    console.log(
      `  ${p.name}: dsys ${Math.round(summary.ours.opsPerSecond)} ops/s p50 ${summary.ours.p50.toFixed(2)} p99 ${summary.ours.p99.toFixed(1)} ms | zookeeper ${Math.round(summary.theirs.opsPerSecond)} ops/s p50 ${summary.theirs.p50.toFixed(2)} p99 ${summary.theirs.p99.toFixed(1)} ms | paired ratio median ${median(ratios).toFixed(2)} (${ratios[0]!.toFixed(2)}-${ratios[ratios.length - 1]!.toFixed(2)}) (errors ${summary.ours.errors}/${summary.theirs.errors})`,
    );
  }
  return results;
}

function loadText(): string {
  return loadavg()
    .map((value) => value.toFixed(1))
    .join(' ');
}

function mntr(text: string, key: string): number {
  const match = new RegExp(`^${key}\\t(\\d+)`, 'm').exec(text);
  return match === null ? Number.NaN : Number(match[1]);
}

async function main(): Promise<void> {
  ensureZooKeeper();
  const rows: BenchRow[] = [];
  console.log(
    `starting dsys coord (3 processes) and zookeeper 3.8 (3 java processes); ${ROUNDS} rounds of ${PHASE_MS} ms phases; load average ${loadText()}`,
  );
  const coord = await startCoord();
  let zk: Awaited<ReturnType<typeof startZooKeeper>> | null = null;
  try {
    zk = await startZooKeeper(21810);
    const modes = await Promise.all(coord.ports.map((port) => fourLetter(port, 'mntr')));
    const followerIndex = modes.findIndex((text) => /zk_server_state\tfollower/.test(text));
    const leaderIndex = modes.findIndex((text) => /zk_server_state\tleader/.test(text));
    const coordFollower = coord.ports[followerIndex]!;
    const zkModes = await Promise.all(zk.ports.map((port) => fourLetter(port, 'srvr')));
    const zkFollower = zk.ports[zkModes.findIndex((text) => /Mode: follower/.test(text))]!;
    const results = await runBoth(
      { ports: coord.ports, follower: coordFollower },
      { ports: zk.ports, follower: zkFollower },
    );
    for (const p of PHASES) {
      const { ours: a, theirs: b, pairedRatios } = results.get(p.name)!;
      rows.push(row(p.name, 'throughput', 'ops/s', a.opsPerSecond, { name: PEER, value: b.opsPerSecond }, true));
      rows.push(row(p.name, 'throughput, median paired ratio', 'x', median(pairedRatios), null, true));
      rows.push(row(p.name, 'p99 latency', 'ms', a.p99, { name: PEER, value: b.p99 }, false));
    }
    // Reads at a follower never touch the leader: count the leader's forwarded items around a read phase.
    const modesNow = await Promise.all(coord.ports.map((port) => fourLetter(port, 'mntr')));
    const leaderNow = modesNow.findIndex((text) => /zk_server_state\tleader/.test(text));
    if (leaderNow !== leaderIndex) {
      console.log(`note: the dsys leader changed during the run (member ${leaderIndex + 1} -> ${leaderNow + 1})`);
    }
    if (leaderNow < 0 || leaderNow === followerIndex) throw new Error('no stable dsys leader for the message count');
    const leaderBefore = await fourLetter(coord.ports[leaderNow]!, 'mntr');
    const followerBefore = await fourLetter(coordFollower, 'mntr');
    const client = await connectClient(coordFollower);
    await phase([client], 64, (c, n, done) => c.getData(`/bench/k${n % 16}`, done));
    client.close();
    // The close is sent without waiting for its answer; give it a moment to reach the leader.
    await waitFor(
      async () =>
        mntr(await fourLetter(coord.ports[leaderNow]!, 'mntr'), 'zk_forward_items_received') >=
        mntr(leaderBefore, 'zk_forward_items_received') + 2,
      { timeoutMs: 3000, description: 'the session close reaches the leader' },
    ).catch(() => undefined);
    const leaderAfter = await fourLetter(coord.ports[leaderNow]!, 'mntr');
    const followerAfter = await fourLetter(coordFollower, 'mntr');
    const forwarded = mntr(leaderAfter, 'zk_forward_items_received') - mntr(leaderBefore, 'zk_forward_items_received');
    const servedLocally = mntr(followerAfter, 'zk_local_reads_served') - mntr(followerBefore, 'zk_local_reads_served');
    console.log(
      `reads at a follower: ${servedLocally} served locally, ${forwarded} items forwarded to the leader (the session's connect and close)`,
    );
    rows.push(
      row('getData at a follower, 64 in flight', 'items forwarded to the leader', 'count', forwarded, null, false),
    );
    rows.push(row('getData at a follower, 64 in flight', 'reads served locally', 'count', servedLocally, null, true));
  } finally {
    zk?.stop();
    await coord.cluster.stopAll();
    if (process.argv.includes('--keep-logs')) console.log(`dsys member logs kept in ${coord.cluster.dataDir}`);
  }
  console.log(`load average at the end: ${loadText()}`);
  report('coord', rows);
}

await main();
