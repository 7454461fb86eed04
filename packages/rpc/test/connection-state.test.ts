// Goal: a client reports every change of its connection through `onStateChange` (connected, bound,
// disconnected with the reason, reconnecting, failed, closed), so callers need not read log messages; and
// a client that is never closed does not keep the Node process alive once nothing waits for it.
// Method: real servers on loopback, faults from the cutting proxy and from restarts; a child process for
// the process lifetime.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { s } from '@dsys/kit';
import { type ClientStateEvent, connect, defineInterface, memoryLogger, RpcError, serve, unary } from '../src/index.js';
import { Counter, counterHandlers, counterState } from './support/counter.js';
import { TcpProxy, waitFor } from './support/net.js';

const here = dirname(fileURLToPath(import.meta.url));

/** A client's idea of the counter that the server does not share (`get` takes an argument). */
const CounterElsewhere = defineInterface({
  name: 'counter',
  version: 1,
  procedures: { get: unary({ args: s.struct({ key: s.uint }), result: s.struct({ value: s.int }), idempotent: true }) },
});

/** The states of `events`, with the reason or attempt where there is one. */
function summary(events: readonly ClientStateEvent[]): string[] {
  return events.map((event) => {
    switch (event.state) {
      case 'bound':
        return `bound resumed=${event.info.resumed}`;
      case 'disconnected':
        return `disconnected wasConnected=${event.wasConnected}`;
      case 'reconnecting':
        return `reconnecting #${event.attempt}`;
      default:
        return event.state;
    }
  });
}

test('onStateChange reports connect, bind, a lost connection, the reconnection and the resumed session', async () => {
  const server = await serve(Counter, counterHandlers(counterState()), { logger: memoryLogger().logger });
  const proxy = await TcpProxy.start(server.port);
  const events: ClientStateEvent[] = [];
  const client = connect(Counter, proxy.address, {
    reconnectBackoffBaseMs: 5,
    onStateChange: (event) => events.push(event),
  });
  try {
    assert.equal(client.state, 'disconnected');
    await client.ready();
    assert.equal(client.state, 'bound');
    assert.deepEqual(summary(events), ['connected', 'bound resumed=false']);
    proxy.cut();
    await waitFor(() => events.length >= 6, 'the client to reconnect and bind again');
    assert.deepEqual(summary(events).slice(2), [
      'disconnected wasConnected=true',
      'reconnecting #1',
      'connected',
      'bound resumed=true',
    ]);
    const lost = events[2];
    assert.ok(lost?.state === 'disconnected' && lost.reason.length > 0, 'the reason is given');
    const retry = events[3];
    assert.ok(retry?.state === 'reconnecting' && retry.delayMs >= 0 && retry.delayMs <= 5);
    assert.deepEqual(await client.stub.get({}), { value: 0 });
  } finally {
    await client.close();
    await proxy.close();
    await server.close();
  }
  assert.equal(events.at(-1)?.state, 'closed');
  assert.equal(client.state, 'closed');
});

test('a failed dial is reported as a disconnection that never connected; the server GOAWAY reason is passed on', async () => {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const events: ClientStateEvent[] = [];
  const client = connect(
    Counter,
    { host: '127.0.0.1', port },
    { reconnectBackoffBaseMs: 10, reconnectBackoffMaxMs: 40, onStateChange: (event) => events.push(event) },
  );
  let server: Awaited<ReturnType<typeof serve>> | null = null;
  try {
    const call = client.stub.get({}, { timeoutMs: 10_000 });
    await waitFor(() => events.some((event) => event.state === 'reconnecting'), 'a first failed dial');
    assert.deepEqual(summary(events).slice(0, 2), ['disconnected wasConnected=false', 'reconnecting #1']);
    server = await serve(Counter, counterHandlers(counterState()), { port, logger: memoryLogger().logger });
    assert.deepEqual(await call, { value: 0 });
    const bound = events.findLast((event) => event.state === 'bound');
    assert.ok(bound?.state === 'bound' && bound.info.service === 'counter');
    const before = events.length;
    await server.close();
    server = null;
    await waitFor(() => events.length > before, 'the client to notice the server going away');
    const lost = events[before];
    assert.ok(lost?.state === 'disconnected', `got ${lost?.state}`);
    assert.equal(lost.wasConnected, true);
    assert.match(lost.reason, /the server went away: server shutting down/);
  } finally {
    await client.close();
    await server?.close();
  }
});

test('a refused bind is reported as failed, with the BIND_MISMATCH error', async () => {
  const server = await serve(Counter, counterHandlers(counterState()), { logger: memoryLogger().logger });
  const events: ClientStateEvent[] = [];
  const client = connect(CounterElsewhere, server.address, { onStateChange: (event) => events.push(event) });
  try {
    await assert.rejects(client.ready(), RpcError);
    assert.deepEqual(summary(events), ['connected', 'failed']);
    const failed = events[1];
    assert.ok(failed?.state === 'failed' && failed.error.detail.code === 'BIND_MISMATCH');
    assert.equal(client.state, 'failed');
  } finally {
    await client.close();
    await server.close();
  }
  assert.deepEqual(summary(events), ['connected', 'failed', 'closed']);
});

test('a listener that throws is logged and does not break the client', async () => {
  const server = await serve(Counter, counterHandlers(counterState()), { logger: memoryLogger().logger });
  const { logger, entries } = memoryLogger();
  const client = connect(Counter, server.address, {
    logger,
    onStateChange: () => {
      throw new Error('listener bug');
    },
  });
  try {
    assert.deepEqual(await client.stub.get({}), { value: 0 });
    const logged = entries.filter((entry) => entry.msg === 'rpc: an onStateChange listener threw');
    assert.deepEqual(
      logged.map((entry) => entry.fields.event),
      ['connected', 'bound'],
    );
  } finally {
    await client.close();
    await server.close();
  }
});

test('a connection holds the process only while a call waits', async () => {
  const server = await serve(Counter, counterHandlers(counterState()), { logger: memoryLogger().logger });
  const client = connect(Counter, server.address, { tickMs: 2 });
  try {
    await client.ready();
    await waitFor(() => !client.holdsProcess, 'the idle client to let go of the process');
    const slow = client.stub.slow({ ms: 50 });
    assert.equal(client.holdsProcess, true, 'held from the moment the call is made');
    assert.equal(await slow, true);
    await waitFor(() => !client.holdsProcess, 'the client to let go again once the call is answered');
  } finally {
    await client.close();
    await server.close();
  }
});

test('a process that never closes its client exits on its own once its calls are answered', async () => {
  const server = await serve(Counter, counterHandlers(counterState()), { logger: memoryLogger().logger });
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(here, 'fixtures', 'forgotten-client.ts'), String(server.port)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  let exitCode: number | null = null;
  child.once('exit', (code) => {
    exitCode = code ?? -1;
  });
  try {
    await waitFor(() => exitCode !== null, 'the child process to exit by itself', 20_000);
    assert.equal(exitCode, 0);
    assert.equal(output, 'slow true value 0\n', 'the calls were answered before the exit');
  } finally {
    if (exitCode === null) child.kill();
    await server.close();
  }
});
