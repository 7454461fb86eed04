/**
 * What the etcd gateway's HTTP/2 layer costs by itself (`npm run bench:grpc-server -w @dsys/raft`):
 * the gateway's gRPC server (`src/real/etcd/grpc.ts`, on node:http2) with one method that answers at
 * once, in its own process, driven by the etcd bench's client (`GrpcChannel`) with 64 calls in flight
 * on 8 connections, as `bench:etcd` drives the leader. Reported: calls per second and the server
 * process's CPU time (user + system) per call over 5 s after a 2 s warm-up, median of 3 rounds. No
 * peer: it isolates our server's share of a write through the etcd API (see the README's "Next").
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { median, report, row } from '@dsys/benchkit';
import { Logger } from '@dsys/runtime-node';
import { GrpcChannel, startGrpcServer } from '../src/real/etcd/grpc.js';

const METHOD = '/dsys.Bench/Echo';
const CONNECTIONS = 8;
const IN_FLIGHT = 64;

type ToServer = 'start' | 'stop';
type FromServer = { port: number } | { calls: number; cpuMicros: number };

if (process.argv[2] === 'server') {
  // The server side: one process, like a gateway.
  const answer = new Uint8Array(40);
  let calls = 0;
  const server = await startGrpcServer({
    listen: { host: '127.0.0.1', port: 0 },
    methods: new Map([
      [
        METHOD,
        async () => {
          calls++;
          return answer;
        },
      ],
    ]),
    logger: new Logger({ level: 'warn', node: 'bench' }),
    requestBytesMax: 1 << 20,
    defaultTimeoutMs: 5_000,
  });
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
  process.send?.({ port: server.endpoint.port } satisfies FromServer);
} else {
  const rates: number[] = [];
  const cpuPerCall: number[] = [];
  for (let round = 1; round <= 3; round++) {
    const child = fork(fileURLToPath(import.meta.url), ['server'], { execArgv: ['--import', 'tsx'] });
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
    rates.push((done / elapsedMs) * 1000);
    cpuPerCall.push(result.cpuMicros / result.calls);
    process.stdout.write(
      `round ${round}/3: ${Math.round(rates.at(-1)!)} calls/s, server ${cpuPerCall.at(-1)!.toFixed(1)} us CPU per call\n`,
    );
  }
  const bench = `gRPC server on node:http2, ${IN_FLIGHT} calls in flight on ${CONNECTIONS} connections`;
  report('raft-grpc-server', [
    row(bench, 'calls per second', 'calls/s', median(rates), null, true),
    row(bench, 'server CPU per call', 'us', median(cpuPerCall), null, false),
  ]);
}
