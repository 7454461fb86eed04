/**
 * What the harness costs a real-process test: the fault proxy's throughput and round-trip latency
 * next to a direct loopback connection (the peer), and how long a 3-node fixture cluster takes to
 * start and a node to come back after kill -9. Run: `npm run bench -w @dsys/harness [-- --quick]`.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { type BenchRow, median, quick, report, row } from '@dsys/benchkit';
import { type Endpoint, FaultProxy, startCluster } from '../src/index.js';
import { relayCommand, request } from '../test/helpers.js';

async function listen(server: Server): Promise<Endpoint> {
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return { host: '127.0.0.1', port: address.port };
}

function connect(endpoint: Endpoint): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(endpoint, () => resolve(socket));
    socket.setNoDelay(true);
    socket.once('error', reject);
  });
}

/** MiB/s for `bytes` written one way to a sink that acknowledges the total. */
async function throughputMiBps(endpoint: Endpoint, bytes: number): Promise<number> {
  const socket = await connect(endpoint);
  const chunk = Buffer.alloc(64 * 1024, 7);
  const startedMs = performance.now();
  const done = new Promise<void>((resolve) => socket.once('data', () => resolve()));
  for (let sent = 0; sent < bytes; sent += chunk.length) {
    if (!socket.write(chunk)) await new Promise((resolve) => socket.once('drain', resolve));
  }
  await done;
  const seconds = (performance.now() - startedMs) / 1000;
  socket.destroy();
  return bytes / 2 ** 20 / seconds;
}

/** Median round trip of a 1-byte ping echoed by the server, in microseconds. */
async function roundTripUs(endpoint: Endpoint, count: number): Promise<number> {
  const socket = await connect(endpoint);
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const startedMs = performance.now();
    const echoed = new Promise((resolve) => socket.once('data', resolve));
    socket.write('p');
    await echoed;
    samples.push((performance.now() - startedMs) * 1000);
  }
  socket.destroy();
  return median(samples);
}

async function proxyRows(): Promise<BenchRow[]> {
  const bytes = (quick ? 32 : 256) * 2 ** 20;
  const sink = createServer((socket) => {
    let received = 0;
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received >= bytes) socket.write('k');
    });
    socket.on('error', () => socket.destroy());
  });
  const echo = createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => socket.write(chunk));
    socket.on('error', () => socket.destroy());
  });
  const sinkAddress = await listen(sink);
  const echoAddress = await listen(echo);
  const sinkProxy = await FaultProxy.start({ target: sinkAddress });
  const echoProxy = await FaultProxy.start({ target: echoAddress });
  const pings = quick ? 500 : 5000;
  const rows = [
    row(
      'proxy throughput',
      `${bytes / 2 ** 20} MiB one way`,
      'MiB/s',
      await throughputMiBps(sinkProxy.address, bytes),
      { name: 'direct loopback', value: await throughputMiBps(sinkAddress, bytes) },
      true,
    ),
    row(
      'proxy round trip',
      `median of ${pings} 1-byte pings`,
      'us',
      await roundTripUs(echoProxy.address, pings),
      { name: 'direct loopback', value: await roundTripUs(echoAddress, pings) },
      false,
    ),
  ];
  await Promise.all([sinkProxy.close(), echoProxy.close()]);
  await Promise.all([sink, echo].map((server) => new Promise((resolve) => server.close(resolve))));
  return rows;
}

async function clusterRows(): Promise<BenchRow[]> {
  const runs = quick ? 1 : 3;
  const startMs: number[] = [];
  const restartMs: number[] = [];
  for (let run = 0; run < runs; run++) {
    const startedMs = performance.now();
    const cluster = await startCluster({ nodes: 3, command: relayCommand() });
    startMs.push(performance.now() - startedMs);
    const killedMs = performance.now();
    await cluster.kill(2);
    await cluster.start(2);
    await request(cluster.endpoint(2), 'ping');
    restartMs.push(performance.now() - killedMs);
    await cluster.stopAll();
  }
  return [
    row('cluster start', '3 fixture nodes + 6 proxies, until all ready', 'ms', median(startMs), null, false),
    row('kill -9 + restart', 'one node, until it answers again', 'ms', median(restartMs), null, false),
  ];
}

report('harness', [...(await proxyRows()), ...(await clusterRows())]);
