/**
 * Unary echo, side by side in one run: dsys RPC, @grpc/grpc-js (pinned in bench/peers), and the limit,
 * a bare length-prefixed echo over a plain `net` socket with no RPC layer. Payloads of 64 B and 4 KiB,
 * 1 and 64 calls in flight over one connection; calls/s, p50 and p99 latency.
 *
 * Each server runs in its own process (bench/server.ts); the clients run here, one system at a time.
 * Closed loop: each of the `inFlight` workers issues its next call as soon as the previous one returns.
 * Three rounds (one with --quick), interleaved; every figure is the median over the rounds. Besides
 * calls/s and latency, each measurement charges the CPU time of the client process and of the server
 * process to the calls it completed (µs per call): on a shared machine this is steadier than calls/s,
 * and it says which side the time goes to.
 *
 * dsys runs twice: its echo declared non-idempotent (the headline: every call goes through the
 * at-most-once reply cache) and declared idempotent (no reply cache, as with grpc-js and the bare echo).
 *
 *   npm run bench -w @dsys/rpc            (3 rounds, 2 s per measurement)
 *   npm run bench -w @dsys/rpc -- --quick (1 round, 0.5 s)
 *   ... -- --extra                        (also the async-handler variant of dsys)
 *   ... -- --rounds 5                     (more rounds: steadier medians on a busy machine)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BenchRow, percentile, quick, report, row } from '@dsys/benchkit';
import { connect } from '../src/index.js';
import { Echo, EchoIdempotent, grpcEchoDefinition, loadGrpc } from './echo.js';

const here = dirname(fileURLToPath(import.meta.url));
const measureMs = quick ? 500 : 2000;
const warmupMs = quick ? 200 : 500;
const extra = process.argv.includes('--extra');
const roundsFlag = process.argv.indexOf('--rounds');
const rounds = roundsFlag >= 0 ? Number(process.argv[roundsFlag + 1]) : quick ? 1 : 3;
if (!Number.isSafeInteger(rounds) || rounds < 1) throw new RangeError('--rounds takes a positive integer');

interface Result {
  callsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU time of the client process per completed call. */
  clientCpuUs: number;
  /** CPU time of the server process per completed call. */
  serverCpuUs: number;
}

interface Server {
  port: number;
  child: ChildProcess;
  /** The server process's CPU time so far (µs). */
  cpuUs(): Promise<number>;
}

function cpuUs(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

/** One measurement: `issue(done)` starts a call and calls `done()` when it returns. */
async function closedLoop(server: Server, inFlight: number, issue: (done: () => void) => void): Promise<Result> {
  const cpu = { client: 0, server: 0 };
  const result = await new Promise<Omit<Result, 'clientCpuUs' | 'serverCpuUs'> & { completed: number }>((resolve) => {
    const latencies = new Float64Array(4_000_000);
    let count = 0;
    let measuring = false;
    let stopping = false;
    let outstanding = 0;
    let completed = 0;
    let startedMs = 0;
    let stoppedMs = 0;
    const worker = () => {
      if (stopping) {
        if (--outstanding === 0) finish();
        return;
      }
      const t0 = performance.now();
      issue(() => {
        if (measuring) {
          if (count < latencies.length) latencies[count++] = performance.now() - t0;
          completed++;
        }
        worker();
      });
    };
    const finish = () => {
      const elapsedMs = stoppedMs - startedMs;
      const samples = Array.from(latencies.subarray(0, count));
      resolve({
        callsPerSecond: (completed * 1000) / elapsedMs,
        p50Ms: percentile(samples, 50),
        p99Ms: percentile(samples, 99),
        completed,
      });
    };
    outstanding = inFlight;
    for (let i = 0; i < inFlight; i++) worker();
    setTimeout(() => {
      measuring = true;
      startedMs = performance.now();
      cpu.client -= cpuUs();
      void server.cpuUs().then((us) => {
        cpu.server -= us;
      });
      setTimeout(() => {
        measuring = false;
        stopping = true;
        stoppedMs = performance.now();
        cpu.client += cpuUs();
        void server.cpuUs().then((us) => {
          cpu.server += us;
        });
      }, measureMs);
    }, warmupMs);
  });
  // Both answers have arrived once a third one has (the server answers in order).
  await server.cpuUs();
  const { completed, ...rest } = result;
  return { ...rest, clientCpuUs: cpu.client / completed, serverCpuUs: cpu.server / completed };
}

async function startServer(kind: string): Promise<Server> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'server.ts'), kind], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const cpuWaiters: ((us: number) => void)[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    let text = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      for (let newline = text.indexOf('\n'); newline >= 0; newline = text.indexOf('\n')) {
        const line = text.slice(0, newline);
        text = text.slice(newline + 1);
        const ready = /^ready (\d+)$/.exec(line);
        if (ready) resolve(Number(ready[1]));
        const cpu = /^cpu (\d+)$/.exec(line);
        if (cpu) cpuWaiters.shift()?.(Number(cpu[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
  const cpuUs = () =>
    new Promise<number>((resolve) => {
      cpuWaiters.push(resolve);
      child.stdin!.write('cpu\n');
    });
  return { port, child, cpuUs };
}

async function stopServer(child: ChildProcess): Promise<void> {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stdin!.end();
  await exited;
}

type Scenario = { payloadBytes: number; inFlight: number };
const scenarios: Scenario[] = [
  { payloadBytes: 64, inFlight: 1 },
  { payloadBytes: 64, inFlight: 64 },
  { payloadBytes: 4096, inFlight: 1 },
  { payloadBytes: 4096, inFlight: 64 },
];

/** A failed call ends the bench (one function for all calls: the harness allocates nothing per call). */
function fail(error: unknown): never {
  throw error;
}

async function runDsys(kind: string, server: Server, scenario: Scenario): Promise<Result> {
  const iface = kind === 'dsys-idempotent' ? EchoIdempotent : Echo;
  const client = connect(iface, { host: '127.0.0.1', port: server.port });
  await client.ready();
  const payload = new Uint8Array(scenario.payloadBytes).fill(7);
  const echo = client.stub.echo;
  const result = await closedLoop(server, scenario.inFlight, (done) => {
    echo(payload).then(done, fail);
  });
  await client.close();
  return result;
}

async function runGrpc(server: Server, scenario: Scenario): Promise<Result> {
  const grpc = await loadGrpc();
  const Client = grpc.makeGenericClientConstructor(grpcEchoDefinition(), 'Echo');
  const client = new Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  await new Promise<void>((resolve, reject) =>
    client.waitForReady(Date.now() + 5000, (error: Error | undefined) => (error ? reject(error) : resolve())),
  );
  const payload = Buffer.alloc(scenario.payloadBytes, 7);
  const result = await closedLoop(server, scenario.inFlight, (done) => {
    client.echo(payload, (error: Error | null) => {
      if (error) throw error;
      done();
    });
  });
  client.close();
  return result;
}

/**
 * The bare client: requests pipelined on one socket, the requests of one turn in one write, replies
 * matched in order and each reply's payload handed to its caller (a view, no copy).
 */
async function runBare(server: Server, scenario: Scenario): Promise<Result> {
  const socket = net.connect({ host: '127.0.0.1', port: server.port });
  socket.setNoDelay(true);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const frame = Buffer.alloc(4 + scenario.payloadBytes, 7);
  frame.writeUInt32LE(scenario.payloadBytes, 0);
  const waiting: ((reply: Buffer) => void)[] = [];
  let outgoing: Buffer[] = [];
  let pending: Buffer | null = null;
  socket.on('data', (chunk: Buffer) => {
    const data: Buffer = pending === null ? chunk : Buffer.concat([pending, chunk]);
    let offset = 0;
    while (data.length - offset >= 4) {
      const end = offset + 4 + data.readUInt32LE(offset);
      if (end > data.length) break;
      waiting.shift()!(data.subarray(offset + 4, end));
      offset = end;
    }
    pending = offset < data.length ? data.subarray(offset) : null;
    if (outgoing.length > 0) {
      socket.write(outgoing.length === 1 ? outgoing[0]! : Buffer.concat(outgoing));
      outgoing = [];
    }
  });
  let scheduled = false;
  const result = await closedLoop(server, scenario.inFlight, (done) => {
    waiting.push(done);
    outgoing.push(frame);
    if (!scheduled) {
      scheduled = true;
      setImmediate(() => {
        scheduled = false;
        if (outgoing.length > 0) {
          socket.write(outgoing.length === 1 ? outgoing[0]! : Buffer.concat(outgoing));
          outgoing = [];
        }
      });
    }
  });
  socket.destroy();
  return result;
}

async function measure(kind: string, server: Server, scenario: Scenario): Promise<Result> {
  if (kind === 'grpc') return runGrpc(server, scenario);
  if (kind === 'bare') return runBare(server, scenario);
  return runDsys(kind, server, scenario);
}

function label(scenario: Scenario): string {
  const size = scenario.payloadBytes >= 1024 ? `${scenario.payloadBytes / 1024} KiB` : `${scenario.payloadBytes} B`;
  return `echo ${size} x${scenario.inFlight} in flight`;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

// Every server starts once; measurements are interleaved over rounds (the order rotating) and each
// figure is the median over rounds, so a burst of load on the machine does not land on one system.
const kinds = ['dsys', 'dsys-idempotent', 'grpc', 'bare', ...(extra ? ['dsys-async'] : [])];
const servers = new Map<string, Server>();
for (const kind of kinds) servers.set(kind, await startServer(kind));
const samples = new Map<string, Result[]>();
try {
  // Warm every system up (JIT tiers, connection pools, buffers) before anything is recorded.
  for (const kind of kinds) {
    for (const scenario of scenarios) await measure(kind, servers.get(kind)!, { ...scenario, inFlight: 64 });
  }
  for (let round = 0; round < rounds; round++) {
    for (const scenario of scenarios) {
      const order = kinds.map((_, i) => kinds[(i + round) % kinds.length]!);
      for (const kind of order) {
        const result = await measure(kind, servers.get(kind)!, scenario);
        const key = `${label(scenario)}|${kind}`;
        samples.set(key, [...(samples.get(key) ?? []), result]);
        console.log(
          `round ${round + 1}/${rounds}  ${label(scenario).padEnd(24)} ${kind.padEnd(16)} ` +
            `${Math.round(result.callsPerSecond).toString().padStart(8)} calls/s  p50 ${result.p50Ms.toFixed(3)} ms  ` +
            `p99 ${result.p99Ms.toFixed(3)} ms  cpu/call client ${result.clientCpuUs.toFixed(2)} µs ` +
            `server ${result.serverCpuUs.toFixed(2)} µs`,
        );
      }
    }
  }
} finally {
  for (const { child } of servers.values()) await stopServer(child);
}

const rows: BenchRow[] = [];
for (const scenario of scenarios) {
  const summary = (kind: string): Result => {
    const results = samples.get(`${label(scenario)}|${kind}`)!;
    return {
      callsPerSecond: median(results.map((r) => r.callsPerSecond)),
      p50Ms: median(results.map((r) => r.p50Ms)),
      p99Ms: median(results.map((r) => r.p99Ms)),
      clientCpuUs: median(results.map((r) => r.clientCpuUs)),
      serverCpuUs: median(results.map((r) => r.serverCpuUs)),
    };
  };
  const bare = summary('bare');
  for (const [ourKind, suffix] of [
    ['dsys', ''],
    ['dsys-idempotent', ' (idempotent)'],
    ['dsys-async', ' (async handler)'],
  ] as const) {
    if (!kinds.includes(ourKind)) continue;
    const ours = summary(ourKind);
    const bench = `${label(scenario)}${suffix}`;
    for (const [peerKind, peerName] of [
      ['grpc', 'grpc-js'],
      ['bare', 'bare net echo'],
    ] as const) {
      const peer = summary(peerKind);
      const versus = (value: number) => ({ name: peerName, value });
      rows.push(row(bench, 'throughput', 'calls/s', ours.callsPerSecond, versus(peer.callsPerSecond), true));
      rows.push(row(bench, 'p50 latency', 'ms', ours.p50Ms, versus(peer.p50Ms), false));
      rows.push(row(bench, 'p99 latency', 'ms', ours.p99Ms, versus(peer.p99Ms), false));
    }
    const cpu = (result: Result) => result.clientCpuUs + result.serverCpuUs;
    rows.push(
      row(bench, 'CPU client+server', 'µs/call', cpu(ours), { name: 'bare net echo', value: cpu(bare) }, false),
    );
  }
}
report('rpc', rows);
