/**
 * Unary echo, side by side in one run: dsys RPC, @grpc/grpc-js (pinned in bench/peers), and the limit,
 * a bare length-prefixed echo over a plain `net` socket with no RPC layer. Payloads of 64 B and 4 KiB,
 * 1 and 64 calls in flight over one connection; calls/s, p50 and p99 latency.
 *
 * Each server runs in its own process (bench/server.ts); the clients run here, one system at a time.
 * Closed loop: each of the `inFlight` workers issues its next call as soon as the previous one returns.
 * Three rounds (one with --quick), interleaved; every figure is the median over the rounds.
 *
 *   npm run bench -w @dsys/rpc            (3 rounds, 2 s per measurement)
 *   npm run bench -w @dsys/rpc -- --quick (1 round, 0.5 s)
 *   ... -- --extra                        (also the async-handler and idempotent variants of dsys)
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
const rounds = quick ? 1 : 3;

interface Result {
  callsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

/** One measurement: `issue(done)` starts a call and calls `done()` when it returns. */
function closedLoop(inFlight: number, issue: (done: () => void) => void): Promise<Result> {
  return new Promise((resolve) => {
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
      });
    };
    outstanding = inFlight;
    for (let i = 0; i < inFlight; i++) worker();
    setTimeout(() => {
      measuring = true;
      startedMs = performance.now();
      setTimeout(() => {
        measuring = false;
        stopping = true;
        stoppedMs = performance.now();
      }, measureMs);
    }, warmupMs);
  });
}

async function startServer(kind: string): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'server.ts'), kind], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let text = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const match = /ready (\d+)/.exec(text);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
  return { port, child };
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

async function runDsys(kind: string, port: number, scenario: Scenario): Promise<Result> {
  const iface = kind === 'dsys-idempotent' ? EchoIdempotent : Echo;
  const client = connect(iface, { host: '127.0.0.1', port });
  await client.ready();
  const payload = new Uint8Array(scenario.payloadBytes).fill(7);
  const echo = client.stub.echo;
  const result = await closedLoop(scenario.inFlight, (done) => {
    echo(payload).then(done, (error: unknown) => {
      throw error;
    });
  });
  await client.close();
  return result;
}

async function runGrpc(port: number, scenario: Scenario): Promise<Result> {
  const grpc = await loadGrpc();
  const Client = grpc.makeGenericClientConstructor(grpcEchoDefinition(), 'Echo');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  await new Promise<void>((resolve, reject) =>
    client.waitForReady(Date.now() + 5000, (error: Error | undefined) => (error ? reject(error) : resolve())),
  );
  const payload = Buffer.alloc(scenario.payloadBytes, 7);
  const result = await closedLoop(scenario.inFlight, (done) => {
    client.echo(payload, (error: Error | null) => {
      if (error) throw error;
      done();
    });
  });
  client.close();
  return result;
}

/** The bare client: requests pipelined on one socket, replies in order, one write per received chunk. */
async function runBare(port: number, scenario: Scenario): Promise<Result> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const frame = Buffer.alloc(4 + scenario.payloadBytes, 7);
  frame.writeUInt32LE(scenario.payloadBytes, 0);
  const waiting: (() => void)[] = [];
  let outgoing: Buffer[] = [];
  let pending: Buffer | null = null;
  socket.on('data', (chunk: Buffer) => {
    const data: Buffer = pending === null ? chunk : Buffer.concat([pending, chunk]);
    let offset = 0;
    while (data.length - offset >= 4) {
      const end = offset + 4 + data.readUInt32LE(offset);
      if (end > data.length) break;
      offset = end;
      waiting.shift()!();
    }
    pending = offset < data.length ? data.subarray(offset) : null;
    if (outgoing.length > 0) {
      socket.write(outgoing.length === 1 ? outgoing[0]! : Buffer.concat(outgoing));
      outgoing = [];
    }
  });
  let scheduled = false;
  const result = await closedLoop(scenario.inFlight, (done) => {
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

async function measure(kind: string, port: number, scenario: Scenario): Promise<Result> {
  if (kind === 'grpc') return runGrpc(port, scenario);
  if (kind === 'bare') return runBare(port, scenario);
  return runDsys(kind, port, scenario);
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
const kinds = ['dsys', 'grpc', 'bare', ...(extra ? ['dsys-async', 'dsys-idempotent'] : [])];
const servers = new Map<string, { port: number; child: ChildProcess }>();
for (const kind of kinds) servers.set(kind, await startServer(kind));
const samples = new Map<string, Result[]>();
try {
  // Warm every system up (JIT tiers, connection pools, buffers) before anything is recorded.
  for (const kind of kinds) {
    for (const scenario of scenarios) await measure(kind, servers.get(kind)!.port, { ...scenario, inFlight: 64 });
  }
  for (let round = 0; round < rounds; round++) {
    for (const scenario of scenarios) {
      const order = kinds.map((_, i) => kinds[(i + round) % kinds.length]!);
      for (const kind of order) {
        const result = await measure(kind, servers.get(kind)!.port, scenario);
        const key = `${label(scenario)}|${kind}`;
        samples.set(key, [...(samples.get(key) ?? []), result]);
        console.log(
          `round ${round + 1}/${rounds}  ${label(scenario).padEnd(24)} ${kind.padEnd(16)} ` +
            `${Math.round(result.callsPerSecond).toString().padStart(8)} calls/s  p50 ${result.p50Ms.toFixed(3)} ms  p99 ${result.p99Ms.toFixed(3)} ms`,
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
    };
  };
  const ours = summary('dsys');
  for (const [peerKind, peerName] of [
    ['grpc', 'grpc-js'],
    ['bare', 'bare net echo'],
  ] as const) {
    const peer = summary(peerKind);
    rows.push(
      row(
        label(scenario),
        'throughput',
        'calls/s',
        ours.callsPerSecond,
        { name: peerName, value: peer.callsPerSecond },
        true,
      ),
    );
    rows.push(row(label(scenario), 'p50 latency', 'ms', ours.p50Ms, { name: peerName, value: peer.p50Ms }, false));
    rows.push(row(label(scenario), 'p99 latency', 'ms', ours.p99Ms, { name: peerName, value: peer.p99Ms }, false));
  }
  for (const variant of ['dsys-async', 'dsys-idempotent']) {
    if (!kinds.includes(variant)) continue;
    const bare = summary('bare');
    rows.push(
      row(
        `${label(scenario)} (${variant})`,
        'throughput',
        'calls/s',
        summary(variant).callsPerSecond,
        { name: 'bare net echo', value: bare.callsPerSecond },
        true,
      ),
    );
  }
}
report('rpc', rows);
