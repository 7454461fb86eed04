// Goal: the endpoint logic without sockets: stream flow control bounds what the server sends ahead of
// a slow consumer (and a congested transport stops it), limits answer RESOURCE_EXHAUSTED without
// running anything, a rejected call is retried with backoff, deadlines fire on the client when the
// server cannot answer, and the reply cache answers a repeated seq without running it again.
// Method: a client and a server joined in memory (test/support/memory.ts), a manual clock, explicit pumps.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { s } from '@dsys/kit';
import { defineInterface, RpcError, type StreamSink, unary } from '../src/index.js';
import { Counter, counterHandlers, counterState } from './support/counter.js';
import { MemoryPair } from './support/memory.js';

test('stream flow control: the server sends at most a window ahead of the consumer', async () => {
  const state = counterState();
  let sent = 0;
  const handlers = {
    ...counterHandlers(state),
    async watch({ count, size }: { count: number; size: number }, sink: StreamSink<{ n: number; pad: Uint8Array }>) {
      for (let n = 0; n < count; n++) {
        await sink.send({ n, pad: new Uint8Array(size) });
        sent++;
      }
    },
  };
  const pair = new MemoryPair(Counter, handlers);
  const stream = pair.client.stub.watch({ count: 1000, size: 100 }, { windowBytes: 1000 });
  await pair.settle();
  // Each ITEM body is ~104 bytes: a 1000-byte window lets ~10 through before the sender waits.
  const sentBeforeReading = sent;
  assert.ok(sentBeforeReading >= 9 && sentBeforeReading <= 11, `sent ${sentBeforeReading} items unread`);
  const bytesBeforeReading = pair.serverBytes;
  await pair.settle();
  assert.equal(sent, sentBeforeReading, 'nothing more without credit');
  assert.equal(pair.serverBytes, bytesBeforeReading);

  const iterator = stream[Symbol.asyncIterator]();
  for (let i = 0; i < 20; i++) assert.equal((await pair.await(iterator.next())).value.n, i);
  await pair.settle();
  assert.ok(sent > sentBeforeReading, 'reading grants credit');
  assert.ok(sent <= 20 + 11, `sent ${sent} after 20 were read`);

  // A congested transport (the peer reads slowly) also holds the sender back, whatever the credit.
  pair.congested = true;
  const unread = sent - 20;
  for (let i = 20; i < 20 + unread; i++) assert.equal((await pair.await(iterator.next())).value.n, i);
  await pair.settle();
  const sentWhileCongested = sent;
  assert.ok(sentWhileCongested <= 20 + unread + 1, 'at most the send in progress completes');
  await pair.settle();
  assert.equal(sent, sentWhileCongested);
  pair.congested = false;
  pair.connection.drained();
  await pair.settle();
  assert.ok(sent > sentWhileCongested);
  await iterator.return!();
});

test('a server over its in-flight limit answers RESOURCE_EXHAUSTED; the client retries with backoff', async () => {
  const state = counterState();
  let finishSlow: (done: boolean) => void = () => {};
  const handlers = { ...counterHandlers(state), slow: () => new Promise<boolean>((resolve) => (finishSlow = resolve)) };
  const pair = new MemoryPair(Counter, handlers, {
    server: { callsInFlightMax: 1 },
    client: { retryBackoffBaseMs: 10, retryBackoffMaxMs: 10 },
  });
  const slow = pair.client.stub.slow({ ms: 0 });
  const add = pair.client.stub.add({ delta: 1, token: 5 });
  pair.pump();
  assert.equal(state.executions.get(5), undefined, 'rejected, not run');
  assert.equal(pair.server.stats().callsRejected, 1);
  finishSlow(true);
  assert.equal(await pair.await(slow), true);
  pair.advance(11); // past the backoff: the retry goes out with a new seq
  await pair.settle();
  assert.deepEqual(await add, { value: 1 });
  assert.equal(state.executions.get(5), 1);
  assert.equal(pair.client.stats().retries, 1);
});

test('a client queue over its limit fails at once with RESOURCE_EXHAUSTED', async () => {
  const pair = new MemoryPair(Counter, counterHandlers(counterState()), {
    client: { callsInFlightMax: 1, callsQueuedMax: 2 },
  });
  const calls = [1, 2, 3, 4].map((token) => pair.client.stub.add({ delta: 1, token }));
  const fourth = await calls[3]!.then(
    () => assert.fail('the fourth call must be refused'),
    (error: unknown) => error,
  );
  assert.ok(fourth instanceof RpcError);
  assert.equal(fourth.detail.code, 'RESOURCE_EXHAUSTED');
  assert.equal(fourth.executed, 'no');
  pair.pump();
  await pair.settle();
  assert.deepEqual(
    (await Promise.all(calls.slice(0, 3))).map((r) => r.value),
    [1, 2, 3],
  );
});

test('the client enforces the deadline itself when the server does not answer', async () => {
  const pair = new MemoryPair(Counter, counterHandlers(counterState()), { client: { deadlineGraceMs: 20 } });
  // Nothing is pumped: the call is written but the server never sees it.
  const call = pair.client.stub.get({}, { timeoutMs: 100 });
  pair.clock.now += 110;
  pair.client.tick();
  const early = await Promise.race([
    call.then(
      () => 'settled',
      () => 'settled',
    ),
    Promise.resolve('pending'),
  ]);
  assert.equal(early, 'pending', 'within the grace period the client still waits for the server');
  pair.clock.now += 20;
  pair.client.tick();
  const error = await call.then(
    () => assert.fail('no answer was possible'),
    (caught: unknown) => caught,
  );
  assert.ok(error instanceof RpcError);
  assert.equal(error.detail.code, 'DEADLINE_EXCEEDED');
  assert.equal(error.executed, 'unknown', 'it was sent, so it may have run');
});

test('the reply cache answers a repeated seq without running the procedure again', async () => {
  const state = counterState();
  const pair = new MemoryPair(Counter, counterHandlers(state));
  const first = pair.client.stub.add({ delta: 5, token: 1 });
  const sentFrames = pair.client.takeOutput()!;
  pair.connection.receive(sentFrames);
  pair.connection.receive(sentFrames); // the same CALL again (same session, same seq)
  pair.client.receive(pair.connection.takeOutput()!);
  assert.deepEqual(await first, { value: 5 });
  assert.equal(state.executions.get(1), 1);
  assert.equal(pair.server.stats().callsAnsweredFromCache, 1);
});

test('a closed connection lets go of its output buffer; the replies it leaves cached still answer retries', async () => {
  const Blobs = defineInterface({
    name: 'blobs',
    version: 1,
    procedures: { put: unary({ args: s.bytes({ bytesMax: 65536 }), result: s.bytes({ bytesMax: 65536 }) }) },
  });
  let runs = 0;
  const pair = new MemoryPair(Blobs, {
    put: (bytes) => {
      runs++;
      return bytes;
    },
  });
  const replies = Array.from({ length: 32 }, (_, i) => pair.client.stub.put(new Uint8Array(4096).fill(i)));
  const frames = pair.client.takeOutput()!;
  const first = pair.connection;
  first.receive(frames);
  assert.ok(first.out.bytes.length > 64 * 1024, 'the 32 replies grew the output buffer');
  first.closed('the client went away before reading');
  assert.ok(first.out.bytes.length <= 64, 'the cached calls keep the connection, not its buffer');
  // The same CALLs (same session and seqs) over a new connection are answered from the reply cache.
  const second = pair.server.connect({ wake() {}, close() {}, congested: () => false }, 'again');
  second.receive(frames);
  pair.client.receive(second.takeOutput()!);
  for (let i = 0; i < 32; i++) assert.deepEqual(await replies[i], new Uint8Array(4096).fill(i));
  assert.equal(runs, 32, 'each ran once');
  assert.equal(pair.server.stats().callsAnsweredFromCache, 32);
});
