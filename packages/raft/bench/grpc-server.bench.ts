/**
 * The etcd gateway's gRPC server against grpc-js's (`npm run bench:grpc-server -w @dsys/raft`): our
 * unary gRPC server (`src/real/etcd/grpc.ts` on our own HTTP/2 connection, `src/real/etcd/http2/`) and
 * @grpc/grpc-js 1.14.7's server (on node:http2), each with one method that answers a 300-byte request
 * with 40 bytes at once, each in its own process, driven by the etcd bench's client (`GrpcChannel`)
 * with 64 calls in flight on 8 connections, as `bench:etcd` drives the leader. Reported: calls per
 * second and the server process's CPU time (user + system) per call over 5 s after a 2 s warm-up; the
 * servers alternate, 3 rounds each, medians. It isolates the server's share of a call through the
 * etcd API: no Raft, no protobuf.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { median, report, row } from '@dsys/benchkit';
import { Logger } from '@dsys/runtime-node';
import { GrpcChannel, startGrpcServer } from '../src/real/etcd/grpc.js';

const METHOD = '/dsys.Bench/Echo';
const CONNECTIONS = 8;
const IN_FLIGHT = 64;
const ROUNDS = 3;
const SERVERS = ['dsys', 'grpc-js'] as const;
type ServerKind = (typeof SERVERS)[number];

type ToServer = 'start' | 'stop';
type FromServer = { port: number } | { calls: number; cpuMicros: number };

const ANSWER = new Uint8Array(40);

/** Starts the server of `kind` on an ephemeral port; `onCall` counts answered calls. */
async function startServer(kind: ServerKind, onCall: () => void): Promise<{ port: number; close(): Promise<void> }> {
  if (kind === 'dsys') {
    const server = await startGrpcServer({
      listen: { host: '127.0.0.1', port: 0 },
      methods: new Map([
        [
          METHOD,
          async () => {
            onCall();
            return ANSWER;
          },
        ],
      ]),
      logger: new Logger({ level: 'warn', node: 'bench' }),
      requestBytesMax: 1 << 20,
      defaultTimeoutMs: 5_000,
    });
    return { port: server.endpoint.port, close: () => server.close() };
  }
  const grpc = await import('@grpc/grpc-js');
  const server = new grpc.Server();
  const identity = (bytes: Buffer) => bytes;
  server.addService(
    {
      Echo: {
        path: METHOD,
        requestStream: false,
        responseStream: false,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    },
    {
      Echo: (_call: unknown, callback: (error: null, answer: Buffer) => void) => {
        onCall();
        callback(null, Buffer.from(ANSWER));
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error === null ? resolve(bound) : reject(error),
    ),
  );
  return { port, close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
}

if (process.argv[2] === 'server') {
  const kind = process.argv[3] as ServerKind;
  let calls = 0;
  const server = await startServer(kind, () => calls++);
  let startCpu = process.cpuUsage();
  let startCalls = 0;
  process.on('message', (message: ToServer) => {
    if (message === 'start') {
      startCpu = process.cpuUsage();
      startCalls = calls;
      return;
    }
    const used = process.cpuUsage(startCpu);
    const reply: FromServer = { calls: calls - startCalls, cpuMicros: used.user + used.system };
    process.send?.(reply);
    void server.close().then(() => process.exit(0));
  });
  process.send?.({ port: server.port } satisfies FromServer);
} else {
  const rates = new Map<ServerKind, number[]>(SERVERS.map((kind) => [kind, []]));
  const cpuPerCall = new Map<ServerKind, number[]>(SERVERS.map((kind) => [kind, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    // Alternate which server goes first: the machine is shared and its load drifts.
    const order = round % 2 === 1 ? SERVERS : [...SERVERS].reverse();
    for (const kind of order) {
      const { rate, cpu } = await measure(kind);
      rates.get(kind)!.push(rate);
      cpuPerCall.get(kind)!.push(cpu);
      process.stdout.write(
        `round ${round}/${ROUNDS} ${kind.padEnd(7)}: ${Math.round(rate)} calls/s, server ${cpu.toFixed(1)} us CPU per call\n`,
      );
    }
  }
  const bench = `unary gRPC server, ${IN_FLIGHT} calls in flight on ${CONNECTIONS} connections`;
  const peer = (values: Map<ServerKind, number[]>) => ({ name: 'grpc-js 1.14', value: median(values.get('grpc-js')!) });
  report('raft-grpc-server', [
    row(bench, 'calls per second', 'calls/s', median(rates.get('dsys')!), peer(rates), true),
    row(bench, 'server CPU per call', 'us', median(cpuPerCall.get('dsys')!), peer(cpuPerCall), false),
  ]);
}

async function measure(kind: ServerKind): Promise<{ rate: number; cpu: number }> {
  const child = fork(fileURLToPath(import.meta.url), ['server', kind], { execArgv: ['--import', 'tsx'] });
  const next = () => new Promise<FromServer>((resolve) => child.once('message', (m: FromServer) => resolve(m)));
  const hello = await next();
  if (!('port' in hello)) throw new Error('server did not report its port');
  const channels = Array.from({ length: CONNECTIONS }, () => new GrpcChannel(`127.0.0.1:${hello.port}`));
  const request = new Uint8Array(300);
  let running = true;
  let completed = 0;
  const worker = async (index: number) => {
    const channel = channels[index % CONNECTIONS]!;
    while (running) {
      await channel.call(METHOD, request, 5_000);
      completed++;
    }
  };
  const workers = Array.from({ length: IN_FLIGHT }, (_, index) => worker(index));
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  child.send('start' satisfies ToServer);
  const before = completed;
  const started = performance.now();
  await new Promise((resolve) => setTimeout(resolve, 5_000));
  const elapsedMs = performance.now() - started;
  const done = completed - before;
  running = false;
  await Promise.all(workers);
  child.send('stop' satisfies ToServer);
  const result = await next();
  if (!('calls' in result)) throw new Error('server did not report its counts');
  for (const channel of channels) channel.close();
  return { rate: (done / elapsedMs) * 1000, cpu: result.cpuMicros / result.calls };
}
