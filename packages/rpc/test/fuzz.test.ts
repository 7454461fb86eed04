// Goal: no bytes can crash the decoders: the frame parser, a server connection and a client endpoint
// take arbitrary input (random bytes, random bodies behind valid length prefixes, mutated valid frames)
// and either use it, answer it, or close with a reason, never throw. Split points never change frames.
// Method: fast-check properties with a fixed seed (reproducible in CI).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, Writer } from '@dsys/kit';
import fc from 'fast-check';
import { RpcClient, RpcServer, type Transport } from '../src/index.js';
import { type FrameCursor, FrameParser, Hello, Kind, writeControl } from '../src/wire.js';
import { Counter, counterHandlers, counterState } from './support/counter.js';
import { ManualClock, MemoryPair } from './support/memory.js';
import { frame } from './support/net.js';

const SEED = 0x5eed;
const RUNS = 300;

const chunks = fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 12 });

test('the frame parser takes any bytes without throwing and respects its limit', () => {
  fc.assert(
    fc.property(chunks, fc.integer({ min: 1, max: 64 }), (pieces, frameBytesMax) => {
      const parser = new FrameParser(frameBytesMax);
      for (const piece of pieces) {
        parser.push(piece, (cursor: FrameCursor) => {
          assert.ok(cursor.end - cursor.offset <= frameBytesMax);
        });
      }
      parser.end();
    }),
    { seed: SEED, numRuns: RUNS },
  );
});

test('splitting a stream of frames anywhere yields the same frames', () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      (bodies, cuts) => {
        const stream = new Writer();
        for (const body of bodies) stream.raw(frame(body));
        const bytes = stream.finish();
        const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
        const parser = new FrameParser(1024);
        const seen: number[][] = [];
        let from = 0;
        for (const to of [...points, bytes.length]) {
          parser.push(bytes.slice(from, to), (cursor) =>
            seen.push([...cursor.bytes.subarray(cursor.offset, cursor.end)]),
          );
          from = to;
        }
        assert.deepEqual(
          seen,
          bodies.map((body) => [...body]),
        );
        assert.equal(parser.end(), null);
      },
    ),
    { seed: SEED, numRuns: RUNS },
  );
});

function quietTransport(): Transport & { closedWith: string | null } {
  const transport = {
    closedWith: null as string | null,
    wake() {},
    close(reason: string) {
      transport.closedWith = reason;
    },
    congested: () => false,
  };
  return transport;
}

function boundServerConnection(server: RpcServer<typeof Counter>) {
  const transport = quietTransport();
  const connection = server.connect(transport, 'fuzz');
  const hello = new Writer();
  writeControl(hello, Kind.HELLO, Hello, {
    protocol: 1,
    nonce: 1,
    service: 'counter',
    version: 1,
    procedures: Counter.names.map((name, i) => ({ name, fingerprint: Counter.fingerprints[i]! })),
    reflect: false,
    frameBytesMax: 1 << 20,
  });
  connection.receive(hello.finish().slice());
  connection.takeOutput();
  return { connection, transport };
}

/** Frame bodies that start with a real kind byte, so decoding gets past the first check. */
const bodies = fc.array(
  fc.tuple(fc.integer({ min: 1, max: 12 }), fc.uint8Array({ maxLength: 48 })).map(([kind, rest]) => {
    const body = new Uint8Array(rest.length + 1);
    body[0] = kind;
    body.set(rest, 1);
    return body;
  }),
  { maxLength: 8 },
);

test('a server connection takes any bytes and any frames without throwing', () => {
  const clock = new ManualClock();
  const server = new RpcServer(
    Counter,
    counterHandlers(counterState()),
    { frameBytesMax: 256 },
    {
      clock,
      incarnation: 5n,
      sessionIdStart: 1,
    },
  );
  fc.assert(
    fc.property(chunks, bodies, (raw, framed) => {
      const fresh = server.connect(quietTransport(), 'fuzz-raw');
      for (const piece of raw) fresh.receive(piece);
      fresh.closed('done');
      const { connection } = boundServerConnection(server);
      for (const body of framed) connection.receive(frame(body));
      connection.takeOutput();
      clock.now += 1;
      server.tick();
      connection.closed('done');
    }),
    { seed: SEED, numRuns: RUNS },
  );
  server.invariants();
});

test('mutated valid CALL frames are answered or refused, never thrown', () => {
  const pair = new MemoryPair(Counter, counterHandlers(counterState()));
  pair.client.stub.add({ delta: 1, token: 1 });
  const valid = pair.client.takeOutput()!;
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
      (flips) => {
        const mutated = valid.slice();
        // Keep the length prefix intact so the body itself is what gets fuzzed.
        for (const [at, value] of flips) mutated[4 + (at % (mutated.length - 4))] = value;
        const { connection } = boundServerConnection(pair.server);
        connection.receive(mutated);
        connection.takeOutput();
        connection.closed('done');
      },
    ),
    { seed: SEED, numRuns: RUNS },
  );
  pair.server.invariants();
});

test('a client endpoint takes any bytes from a server without throwing', () => {
  fc.assert(
    fc.property(chunks, bodies, (raw, framed) => {
      const clock = new ManualClock();
      const client = new RpcClient(Counter, {}, { clock, rng: Rng.fromSeed(1), transport: 'stream' });
      client.connected(quietTransport());
      client.stub.get({}).catch(() => {});
      for (const piece of raw) client.receive(piece);
      client.disconnected('fuzz');
      client.connected(quietTransport());
      for (const body of framed) client.receive(frame(body));
      clock.now += 100;
      client.tick();
      client.invariants();
      client.close();
    }),
    { seed: SEED, numRuns: RUNS },
  );
});
