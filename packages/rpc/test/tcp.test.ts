// Goal: the counter service end to end over real TCP on loopback: typed calls and errors, pipelining,
// deadlines enforced by the server, cancellation, streams (and cancelling them), binding checks, and
// the at-most-once machinery across broken connections and server restarts.
// Method: a real server and client per test; faults come from a proxy (cut, black hole) or restarts.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { s } from '@dsys/kit';
import { connect, defineInterface, memoryLogger, RpcError, serve, unary } from '../src/index.js';
import { Counter, counterHandlers, counterState } from './support/counter.js';
import { TcpProxy, waitFor } from './support/net.js';

async function rejection(promise: Promise<unknown>): Promise<RpcError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof RpcError, `expected an RpcError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the call to fail');
}

test('typed calls, application errors and argument checks over TCP', async () => {
  const state = counterState();
  const { logger } = memoryLogger();
  const server = await serve(Counter, counterHandlers(state), { logger });
  const client = connect(Counter, server.address, { logger });
  try {
    const info = await client.ready();
    assert.equal(info.service, 'counter');
    assert.equal(info.resumed, false);
    assert.deepEqual(await client.stub.add({ delta: 5, token: 1 }), { value: 5 });
    assert.deepEqual(await client.stub.get({}), { value: 5 });
    const bytes = new Uint8Array([1, 2, 3]);
    assert.deepEqual(await client.stub.echo(bytes), bytes);

    const failed = await rejection(client.stub.fail({ code: 'NOT_FOUND' }));
    assert.equal(failed.detail.code, 'APPLICATION');
    assert.equal(failed.detail.appCode, 'NOT_FOUND');
    assert.equal(failed.executed, 'yes');

    // A JS caller that ignores the types gets a validation error naming the field; nothing is sent.
    const invalid = await rejection(
      client.stub.add({ delta: 'x', token: 2 } as unknown as { delta: number; token: number }),
    );
    assert.equal(invalid.detail.code, 'INVALID_ARGUMENT');
    assert.equal(invalid.executed, 'no');
    assert.match(invalid.message, /\$\.delta: expected int/);
    assert.equal(state.executions.get(2), undefined);
  } finally {
    await client.close();
    await server.close();
  }
});

test('many calls pipelined on one connection', async () => {
  const state = counterState();
  const server = await serve(Counter, counterHandlers(state), { logger: memoryLogger().logger });
  const client = connect(Counter, server.address);
  try {
    const results = await Promise.all(
      Array.from({ length: 500 }, (_, i) => client.stub.add({ delta: 1, token: 100 + i })),
    );
    const values = results.map((r) => r.value).sort((a, b) => a - b);
    assert.deepEqual(
      values,
      Array.from({ length: 500 }, (_, i) => i + 1),
    );
    assert.equal(server.stats().connections, 1);
    assert.equal(server.stats().callsStarted, 500);
  } finally {
    await client.close();
    await server.close();
  }
});

test('replies written while earlier writes are queued arrive intact (output written without a copy)', async () => {
  // Each side writes its frames straight from its output buffer. A write the kernel does not take at
  // once stays queued with that buffer, and the frames encoded meanwhile must go to another one: here
  // the client stops reading, so the server's writes queue while it keeps answering calls.
  const Bulk = defineInterface({
    name: 'bulk',
    version: 1,
    procedures: { echo: unary({ args: s.bytes({ bytesMax: 1 << 20 }), result: s.bytes({ bytesMax: 1 << 20 }) }) },
  });
  const server = await serve(Bulk, { echo: (bytes) => bytes }, { logger: memoryLogger().logger });
  const client = connect(Bulk, server.address);
  try {
    await client.ready();
    const payload = (i: number) => {
      const bytes = new Uint8Array(i % 4 === 0 ? 64 : 150_000 + ((i * 7919) % 200_000));
      for (let at = 0; at < bytes.length; at++) bytes[at] = (i * 31 + at) & 0xff;
      return bytes;
    };
    for (let wave = 0; wave < 2; wave++) {
      // Test-only access to the client's socket, to stop reading replies for a while.
      const socket = (client as unknown as { socket: net.Socket }).socket;
      socket.pause();
      const sent = Array.from({ length: 64 }, (_, i) => payload(wave * 64 + i));
      const echoed = Promise.all(sent.map((bytes) => client.stub.echo(bytes)));
      // ~16 MB of replies: more than loopback buffers hold, so the server's writes queue (and it stops
      // reading once 1 MiB waits); either way, frames are encoded while a write of the buffer is queued.
      const answered = 64 * (wave + 1);
      await waitFor(
        () => server.stats().readPauses > wave || server.stats().callsStarted >= answered,
        'the server to answer the wave or stop reading',
      );
      socket.resume();
      const replies = await echoed;
      for (let i = 0; i < sent.length; i++) assert.deepEqual(replies[i], sent[i], `wave ${wave}, call ${i}`);
    }
  } finally {
    await client.close();
    await server.close();
  }
});

test('a deadline is sent to the server and enforced there', async () => {
  const state = counterState();
  const server = await serve(Counter, counterHandlers(state), { logger: memoryLogger().logger, tickMs: 2 });
  // A long client grace period proves that the answer came from the server's own enforcement.
  const client = connect(Counter, server.address, { deadlineGraceMs: 5000 });
  try {
    const started = performance.now();
    const error = await rejection(client.stub.slow({ ms: 30_000 }, { timeoutMs: 100 }));
    const elapsedMs = performance.now() - started;
    assert.equal(error.detail.code, 'DEADLINE_EXCEEDED');
    assert.equal(error.executed, 'unknown');
    assert.match(error.message, /on the server/);
    assert.ok(elapsedMs >= 95 && elapsedMs < 3000, `answered after ${elapsedMs} ms`);
    await waitFor(() => state.slowAborted === 1, 'the handler to see its signal abort');
    assert.equal(server.stats().deadlinesExceeded, 1);
  } finally {
    await client.close();
    await server.close();
  }
});

test('cancelling a call with an AbortSignal tells the server', async () => {
  const state = counterState();
  const server = await serve(Counter, counterHandlers(state), { logger: memoryLogger().logger });
  const client = connect(Counter, server.address);
  try {
    await client.ready();
    const controller = new AbortController();
    const call = client.stub.slow({ ms: 30_000 }, { signal: controller.signal });
    await waitFor(() => server.stats().callsStarted === 1, 'the call to start');
    controller.abort();
    const error = await rejection(call);
    assert.equal(error.detail.code, 'CANCELLED');
    assert.equal(error.executed, 'unknown');
    await waitFor(() => state.slowAborted === 1, 'the handler to be cancelled');
  } finally {
    await client.close();
    await server.close();
  }
});

test('server streams deliver every item in order, then end', async () => {
  const state = counterState();
  const server = await serve(Counter, counterHandlers(state), { logger: memoryLogger().logger });
  const client = connect(Counter, server.address);
  try {
    const seen: number[] = [];
    // A window of ~5 items forces many credit round trips.
    for await (const item of client.stub.watch({ count: 200, size: 100 }, { windowBytes: 512 })) seen.push(item.n);
    assert.deepEqual(
      seen,
      Array.from({ length: 200 }, (_, i) => i),
    );
    await waitFor(() => state.watchEnded.length === 1, 'the handler to return');
    assert.deepEqual(state.watchEnded, ['done']);
  } finally {
    await client.close();
    await server.close();
  }
});

test('a stream cancelled by the client stops the server handler', async () => {
  const state = counterState();
  const server = await serve(Counter, counterHandlers(state), { logger: memoryLogger().logger });
  const client = connect(Counter, server.address);
  try {
    const seen: number[] = [];
    for await (const item of client.stub.watch({ count: 1_000_000, size: 10 })) {
      seen.push(item.n);
      if (seen.length === 3) break; // leaving the loop cancels the stream
    }
    assert.deepEqual(seen, [0, 1, 2]);
    await waitFor(() => state.watchEnded.length === 1, 'the handler to stop');
    assert.match(state.watchEnded[0]!, /cancelled by the client/);
    assert.equal(server.stats().streamsCancelled, 1);
    // The connection is still good.
    assert.deepEqual(await client.stub.get({}), { value: 0 });
  } finally {
    await client.close();
    await server.close();
  }
});

// The client's view of the counter after two incompatible edits: `add` takes a bigint now, and a
// `reset` procedure the server does not have.
const CounterNext = defineInterface({
  name: 'counter',
  version: 2,
  procedures: {
    add: unary({ args: s.struct({ delta: s.i64, token: s.uint }), result: s.struct({ value: s.int }) }),
    get: unary({ args: s.struct({}), result: s.struct({ value: s.int }), idempotent: true }),
    reset: unary({ args: s.struct({}), result: s.bool }),
  },
});

test('a binding mismatch fails the bind and names the procedures that differ', async () => {
  const server = await serve(Counter, counterHandlers(counterState()), { logger: memoryLogger().logger });
  const client = connect(CounterNext, server.address);
  try {
    const error = await rejection(client.ready());
    assert.equal(error.detail.code, 'BIND_MISMATCH');
    assert.deepEqual(
      error.detail.problems?.map((p) => [p.procedure, p.problem]),
      [
        ['add', 'different'],
        ['reset', 'missing'],
      ],
    );
    assert.match(error.message, /cannot bind to service 'counter': 2 procedure\(s\) differ/);
    assert.match(error.message, /client: unary add\(struct\{delta:i64,token:uint\}\)/);
    assert.match(error.message, /server: unary add\(struct\{delta:int,token:uint\}\)/);
    assert.match(error.message, /reset: missing on the server/);
    // Every call fails the same way, definitely not executed.
    const call = await rejection(client.stub.get({}));
    assert.equal(call.detail.code, 'BIND_MISMATCH');
    assert.equal(call.executed, 'no');
  } finally {
    await client.close();
    await server.close();
  }
});

test('a compatible evolution (a procedure added on the server) still binds', async () => {
  const CounterOld = defineInterface({
    name: 'counter',
    version: 0,
    procedures: { get: Counter.procedures.get, add: Counter.procedures.add },
  });
  const server = await serve(Counter, counterHandlers(counterState()), { logger: memoryLogger().logger });
  const client = connect(CounterOld, server.address);
  try {
    const info = await client.ready();
    assert.equal(info.version, 1);
    assert.deepEqual(await client.stub.add({ delta: 2, token: 1 }), { value: 2 });
  } finally {
    await client.close();
    await server.close();
  }
});

test('a retried call is executed once: the reply is lost, the client resumes, the cache answers', async () => {
  const state = counterState();
  const handlers = counterHandlers(state);
  let proxy: TcpProxy | null = null;
  let cutOnce = true;
  const server = await serve(
    Counter,
    {
      ...handlers,
      add(args, context) {
        const result = handlers.add(args, context);
        // The procedure ran; now the connection breaks before its reply can leave.
        if (cutOnce) {
          cutOnce = false;
          proxy!.cut();
        }
        return result;
      },
    },
    { logger: memoryLogger().logger },
  );
  proxy = await TcpProxy.start(server.port);
  const client = connect(Counter, proxy.address, { reconnectBackoffBaseMs: 5 });
  try {
    await client.ready();
    assert.deepEqual(await client.stub.add({ delta: 7, token: 42 }), { value: 7 });
    assert.equal(state.executions.get(42), 1, 'executed exactly once');
    assert.equal(server.stats().callsAnsweredFromCache, 1);
    assert.equal(client.bindInfo?.resumed, true);
    assert.ok(proxy.connections >= 2);
  } finally {
    await client.close();
    await proxy.close();
    await server.close();
  }
});

test('a server restart makes an in-flight non-idempotent call indeterminate; idempotent calls are retried', async () => {
  const state = counterState();
  const first = await serve(Counter, counterHandlers(state), { logger: memoryLogger().logger });
  const port = first.port;
  const client = connect(Counter, first.address, { reconnectBackoffBaseMs: 5, reconnectBackoffMaxMs: 50 });
  let second: Awaited<ReturnType<typeof serve>> | null = null;
  try {
    const before = await client.ready();
    const inFlight = rejection(client.stub.slow({ ms: 300 }));
    await waitFor(() => first.stats().callsStarted === 1, 'the slow call to start');
    await first.close();
    const echoed = client.stub.echo(new Uint8Array([9])); // sent while the server is down
    second = await serve(Counter, counterHandlers(state), { port, logger: memoryLogger().logger });
    const error = await inFlight;
    assert.equal(error.detail.code, 'INDETERMINATE');
    assert.equal(error.executed, 'unknown');
    assert.match(error.message, /the server restarted/);
    assert.deepEqual(await echoed, new Uint8Array([9]));
    const after = client.bindInfo!;
    assert.notEqual(after.incarnation, before.incarnation);
    assert.equal(after.resumed, false);
    assert.equal(client.stats().indeterminate, 1);
  } finally {
    await client.close();
    await second?.close();
  }
});

test('the client reconnects with backoff until the server comes up', async () => {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const client = connect(
    Counter,
    { host: '127.0.0.1', port },
    { reconnectBackoffBaseMs: 10, reconnectBackoffMaxMs: 40 },
  );
  let server: Awaited<ReturnType<typeof serve>> | null = null;
  try {
    const call = client.stub.get({}, { timeoutMs: 10_000 });
    await waitFor(() => client.client.wantsConnection() === false, 'a first failed dial');
    server = await serve(Counter, counterHandlers(counterState()), { port, logger: memoryLogger().logger });
    assert.deepEqual(await call, { value: 0 });
  } finally {
    await client.close();
    await server?.close();
  }
});

test('keepalive detects a silent server and reconnects', async () => {
  const server = await serve(Counter, counterHandlers(counterState()), { logger: memoryLogger().logger });
  const proxy = await TcpProxy.start(server.port);
  const client = connect(Counter, proxy.address, {
    keepaliveIntervalMs: 30,
    keepaliveTimeoutMs: 60,
    reconnectBackoffBaseMs: 5,
    // The HELLO of the new connection may fall into the black hole too.
    bindTimeoutMs: 200,
  });
  try {
    await client.ready();
    proxy.blackhole = true; // the server's bytes (PONGs included) vanish
    await waitFor(() => proxy.connections >= 2, 'the client to give up on the silent connection');
    proxy.blackhole = false;
    assert.deepEqual(await client.stub.get({}), { value: 0 });
    assert.ok(client.stats().binds >= 2);
  } finally {
    await client.close();
    await proxy.close();
    await server.close();
  }
});

test('frame size limits: oversized arguments fail locally, oversized results fail on the server', async () => {
  const { logger, entries } = memoryLogger();
  const server = await serve(Counter, counterHandlers(counterState()), { logger, frameBytesMax: 4096 });
  const client = connect(Counter, server.address, { frameBytesMax: 2048 });
  try {
    await client.ready();
    const tooBig = await rejection(client.stub.echo(new Uint8Array(5000)));
    assert.equal(tooBig.detail.code, 'INVALID_ARGUMENT');
    assert.equal(tooBig.executed, 'no');
    assert.match(tooBig.message, /exceed the server's frame limit of 4096/);
    // 3000 bytes fit the server's limit but the reply does not fit the client's.
    const reply = await rejection(client.stub.echo(new Uint8Array(3000)));
    assert.equal(reply.detail.code, 'INTERNAL');
    assert.match(reply.message, /exceeds the client's frame limit of 2048/);
    assert.deepEqual(
      entries.filter((entry) => entry.level === 'warn' || entry.level === 'error'),
      [],
    );
  } finally {
    await client.close();
    await server.close();
  }
});

test('a client that closes ends its session: the server drops its cached replies at once', async () => {
  const server = await serve(Counter, counterHandlers(counterState()), { logger: memoryLogger().logger });
  const stays = connect(Counter, server.address);
  const leaves = connect(Counter, server.address);
  try {
    await stays.stub.add({ delta: 1, token: 1 });
    for (let token = 2; token < 12; token++) await leaves.stub.add({ delta: 1, token });
    assert.equal(server.stats().sessions, 2);
    const cachedBefore = server.stats().replyCacheBytes;
    assert.ok(cachedBefore > 0);
    await leaves.close();
    await waitFor(() => server.stats().sessions === 1, 'the closed client to end its session');
    assert.ok(server.stats().replyCacheBytes < cachedBefore);
    assert.equal(server.stats().sessionsEvicted, 0);
    assert.deepEqual(await stays.stub.add({ delta: 1, token: 12 }), { value: 12 });
  } finally {
    await stays.close();
    await server.close();
  }
});
