/**
 * FaultProxy against an in-process TCP server: bytes pass intact under load, latency delays without
 * reordering, and each cut mode does to existing and new connections what the module comment says.
 * Negative checks ("nothing arrives while cut") watch for a bounded window through `waitFor` and
 * expect it to time out; every positive check waits for its condition.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type Endpoint, FaultProxy, HarnessError, waitFor } from '../src/index.js';

interface Target {
  server: Server;
  address: Endpoint;
  /** Bytes received per accepted connection, in accept order. */
  received: Buffer[][];
  sockets: Socket[];
}

/** A TCP server that records what it receives and echoes it back. */
async function startEchoTarget(): Promise<Target> {
  const target: Target = { server: createServer(), address: { host: '127.0.0.1', port: 0 }, received: [], sockets: [] };
  target.server.on('connection', (socket) => {
    const chunks: Buffer[] = [];
    target.received.push(chunks);
    target.sockets.push(socket);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      socket.write(chunk);
    });
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => target.server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const address = target.server.address();
  assert.ok(address !== null && typeof address !== 'string');
  target.address = { host: '127.0.0.1', port: address.port };
  return target;
}

async function stopTarget(target: Target): Promise<void> {
  for (const socket of target.sockets) socket.destroy();
  await new Promise<void>((resolve) => target.server.close(() => resolve()));
}

interface Dialer {
  socket: Socket;
  chunks: Buffer[];
  error: NodeJS.ErrnoException | null;
  closed: boolean;
}

/** Opens a connection and records what happens to it, without waiting for the connect. */
function open(endpoint: Endpoint): Dialer {
  const socket = createConnection(endpoint);
  const dialer: Dialer = { socket, chunks: [], error: null, closed: false };
  socket.on('data', (chunk: Buffer) => dialer.chunks.push(chunk));
  socket.on('error', (error) => {
    dialer.error = error;
  });
  socket.on('close', () => {
    dialer.closed = true;
  });
  return dialer;
}

/** Opens a connection and waits until it is established. */
function dial(endpoint: Endpoint): Promise<Dialer> {
  const dialer = open(endpoint);
  return new Promise((resolve, reject) => {
    dialer.socket.once('connect', () => resolve(dialer));
    dialer.socket.once('error', reject);
  });
}

const total = (chunks: readonly Buffer[]): number => chunks.reduce((sum, chunk) => sum + chunk.length, 0);
const sha256 = (chunks: readonly Buffer[]): string => {
  const hash = createHash('sha256');
  for (const chunk of chunks) hash.update(chunk);
  return hash.digest('hex');
};

/** Asserts that `condition` stays false for `windowMs` (a negative check needs an observation window). */
async function assertStaysFalse(condition: () => boolean, windowMs: number, what: string): Promise<void> {
  await assert.rejects(
    waitFor(() => condition(), { description: what, timeoutMs: windowMs, intervalMs: 10 }),
    (error: unknown) => error instanceof HarnessError && error.code === 'WAIT_TIMEOUT',
    `expected never: ${what}`,
  );
}

describe('FaultProxy', () => {
  let target: Target;
  before(async () => {
    target = await startEchoTarget();
  });
  after(async () => {
    await stopTarget(target);
  });

  test('forwards 8 MiB both ways intact under load (sha256 of each direction)', async () => {
    const proxy = await FaultProxy.start({ target: target.address });
    try {
      const connectionsBefore = target.received.length;
      const dialer = await dial(proxy.address);
      const payload = randomBytes(8 * 1024 * 1024);
      // Many writes of odd sizes so chunk boundaries differ on each hop.
      for (let offset = 0; offset < payload.length; offset += 65_521) {
        dialer.socket.write(payload.subarray(offset, offset + 65_521));
      }
      await waitFor(() => total(dialer.chunks) >= payload.length, {
        description: 'the echo of 8 MiB',
        timeoutMs: 20_000,
      });
      const expected = createHash('sha256').update(payload).digest('hex');
      assert.equal(sha256(target.received[connectionsBefore]!), expected, 'bytes at the target');
      assert.equal(sha256(dialer.chunks), expected, 'bytes echoed back to the dialer');
      const stats = proxy.stats();
      assert.equal(stats.bytesToTarget, payload.length);
      assert.equal(stats.bytesToSource, payload.length);
      assert.equal(stats.connectionsAccepted, 1);
      assert.equal(stats.bytesDropped, 0);
      dialer.socket.destroy();
    } finally {
      await proxy.close();
    }
  });

  test('latency delays every chunk and keeps their order', async () => {
    const latencyMs = 80;
    const proxy = await FaultProxy.start({ target: target.address, latencyMs });
    try {
      const dialer = await dial(proxy.address);
      const startedMs = performance.now();
      const messages = Array.from({ length: 50 }, (_, i) => `message-${i};`);
      for (const message of messages) dialer.socket.write(message);
      const expected = messages.join('');
      await waitFor(() => Buffer.concat(dialer.chunks).toString() === expected || null, {
        description: 'all 50 messages echoed in order',
      });
      const roundTripMs = performance.now() - startedMs;
      // Each direction adds latencyMs; allow 10% for timer granularity.
      assert.ok(roundTripMs >= 2 * latencyMs * 0.9, `round trip ${roundTripMs} ms < 2 x ${latencyMs} ms`);
      proxy.setLatency(0);
      dialer.chunks.length = 0;
      dialer.socket.write('after');
      await waitFor(() => Buffer.concat(dialer.chunks).toString() === 'after' || null, { description: 'echo' });
      dialer.socket.destroy();
    } finally {
      await proxy.close();
    }
  });

  test("cut('reset') resets existing connections and every new one; heal lets new ones through", async () => {
    const proxy = await FaultProxy.start({ target: target.address });
    try {
      const existing = await dial(proxy.address);
      existing.socket.write('hello');
      await waitFor(() => total(existing.chunks) === 5, { description: 'echo before the cut' });
      proxy.cut();
      assert.equal(proxy.mode, 'reset');
      await waitFor(() => existing.closed, { description: 'the existing connection to close' });
      assert.equal(existing.error?.code, 'ECONNRESET');

      // Accepted by the kernel, then reset by the proxy: the RST may even beat Node's connect callback.
      const during = open(proxy.address);
      await waitFor(() => during.closed, { description: 'a new connection to be reset' });
      assert.equal(during.error?.code, 'ECONNRESET');

      proxy.heal();
      const afterHeal = await dial(proxy.address);
      afterHeal.socket.write('again');
      await waitFor(() => Buffer.concat(afterHeal.chunks).toString() === 'again' || null, {
        description: 'echo after heal',
      });
      assert.equal(proxy.stats().connectionsReset, 2);
      afterHeal.socket.destroy();
    } finally {
      await proxy.close();
    }
  });

  test("cut('blackhole') accepts and silently discards; heal resets only connections that lost bytes", async () => {
    const proxy = await FaultProxy.start({ target: target.address });
    try {
      const lossy = await dial(proxy.address);
      const idle = await dial(proxy.address);
      await waitFor(() => proxy.stats().connectionsActive === 2, { description: 'two proxied connections' });
      proxy.cut('blackhole');
      lossy.socket.write('lost in the void');
      const fresh = await dial(proxy.address); // accepted even though the link is down
      fresh.socket.write('also lost');
      await waitFor(() => proxy.stats().bytesDropped === 'lost in the void'.length + 'also lost'.length, {
        description: 'the proxy to read and drop both writes',
      });
      await assertStaysFalse(
        () => lossy.chunks.length > 0 || fresh.chunks.length > 0 || lossy.closed || fresh.closed,
        200,
        'any reply or error during the blackhole',
      );
      assert.equal(proxy.stats().bytesToTarget, 0);

      proxy.heal();
      await waitFor(() => lossy.closed && fresh.closed, { description: 'connections that lost bytes to be reset' });
      assert.equal(lossy.error?.code, 'ECONNRESET');
      // The idle connection lost nothing, so its stream is intact and it carries on.
      idle.socket.write('intact');
      await waitFor(() => Buffer.concat(idle.chunks).toString() === 'intact' || null, {
        description: 'the idle connection to work after heal',
      });
      idle.socket.destroy();
    } finally {
      await proxy.close();
    }
  });

  test("cut('stall') holds bytes without loss and delivers them in order on heal", async () => {
    const proxy = await FaultProxy.start({ target: target.address });
    try {
      const existing = await dial(proxy.address);
      existing.socket.write('a');
      await waitFor(() => total(existing.chunks) === 1, { description: 'echo before the stall' });
      proxy.cut('stall');
      const payload = randomBytes(256 * 1024);
      existing.socket.write(payload);
      const fresh = await dial(proxy.address);
      fresh.socket.write('new connection');
      const connectionsBefore = target.received.length;
      await assertStaysFalse(
        () => total(existing.chunks) > 1 || target.received.length > connectionsBefore || existing.closed,
        200,
        'delivery or a new target connection during the stall',
      );
      proxy.heal();
      await waitFor(() => total(existing.chunks) === 1 + payload.length || null, {
        description: 'the stalled payload echoed after heal',
      });
      assert.equal(sha256(existing.chunks), sha256([Buffer.from('a'), payload]));
      await waitFor(() => Buffer.concat(fresh.chunks).toString() === 'new connection' || null, {
        description: 'the connection opened during the stall to be connected on heal',
      });
      assert.equal(proxy.stats().bytesDropped, 0);
      existing.socket.destroy();
      fresh.socket.destroy();
    } finally {
      await proxy.close();
    }
  });

  test('a target that is down looks like a reset to the dialer and is counted', async () => {
    const down = await startEchoTarget();
    await stopTarget(down);
    const proxy = await FaultProxy.start({ target: down.address });
    try {
      const dialer = open(proxy.address);
      await waitFor(() => dialer.closed, { description: 'the dialer to be reset' });
      assert.equal(dialer.error?.code, 'ECONNRESET');
      assert.equal(proxy.stats().targetConnectFailures, 1);
    } finally {
      await proxy.close();
    }
  });

  test('a half-close (FIN) from the dialer reaches the target and the reply still comes back', async () => {
    const server = createServer({ allowHalfOpen: true }, (socket) => {
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('end', () => socket.end(`got ${Buffer.concat(chunks).toString()}`));
    });
    await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const address = server.address();
    assert.ok(address !== null && typeof address !== 'string');
    const proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port: address.port } });
    try {
      const dialer = await dial(proxy.address);
      dialer.socket.end('question');
      await waitFor(() => dialer.closed, { description: 'the reply and the FIN' });
      assert.equal(Buffer.concat(dialer.chunks).toString(), 'got question');
      assert.equal(dialer.error, null);
    } finally {
      await proxy.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  test('rejects bad options', async () => {
    await assert.rejects(FaultProxy.start({ target: target.address, latencyMs: -1 }), RangeError);
    await assert.rejects(FaultProxy.start({ target: target.address, queuedBytesMax: 0 }), RangeError);
  });
});
