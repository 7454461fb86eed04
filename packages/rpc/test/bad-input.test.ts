// Goal: bad input is answered or closed with a logged reason, and the server keeps serving everyone
// else: malformed frames, unknown frame kinds, unknown procedures, arguments that do not decode,
// oversized length prefixes, a client that never binds, and one that sends a byte at a time.
// Method: raw sockets speaking the wire format by hand, next to a well-behaved client.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decode, Reader, Writer } from '@dsys/kit';
import { connect, memoryLogger, serve } from '../src/index.js';
import {
  beginFrame,
  endFrame,
  FRAME_HEADER_BYTES,
  Hello,
  Kind,
  readError,
  Status,
  Welcome,
  writeControl,
} from '../src/wire.js';
import { Counter, counterHandlers, counterState } from './support/counter.js';
import { frame, RawClient, waitFor } from './support/net.js';

type Running = Awaited<ReturnType<typeof serve<typeof Counter>>>;

async function withServer(
  options: Parameters<typeof serve>[2],
  body: (server: Running, entries: ReturnType<typeof memoryLogger>['entries']) => Promise<void>,
): Promise<void> {
  const { logger, entries } = memoryLogger();
  const server = await serve(Counter, counterHandlers(counterState()), { ...options, logger });
  try {
    await body(server, entries);
  } finally {
    await server.close();
  }
}

/** A well-behaved client must still be served while someone else misbehaves. */
async function stillServes(server: Running): Promise<void> {
  const client = connect(Counter, server.address);
  try {
    assert.deepEqual(await client.stub.get({}), { value: 0 });
  } finally {
    await client.close();
  }
}

function helloBytes(): Uint8Array {
  const writer = new Writer();
  writeControl(writer, Kind.HELLO, Hello, {
    protocol: 1,
    nonce: 1,
    service: 'counter',
    version: 1,
    procedures: Counter.names.map((name, i) => ({ name, fingerprint: Counter.fingerprints[i]! })),
    reflect: false,
    frameBytesMax: 1 << 20,
  });
  return writer.finish().slice();
}

/** Frames received so far, as bodies. */
function bodies(received: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const view = new DataView(received.buffer, received.byteOffset, received.byteLength);
  let offset = 0;
  while (received.length - offset >= FRAME_HEADER_BYTES) {
    const end = offset + FRAME_HEADER_BYTES + view.getUint32(offset, true);
    if (end > received.length) break;
    out.push(received.subarray(offset + FRAME_HEADER_BYTES, end));
    offset = end;
  }
  return out;
}

/** Binds a raw client; returns its session id. */
async function bindRaw(raw: RawClient): Promise<number> {
  raw.write(helloBytes());
  await waitFor(() => bodies(raw.received).length >= 1, 'the WELCOME');
  const welcome = decode(Welcome, bodies(raw.received)[0]!.subarray(1));
  assert.ok(welcome.ok && welcome.value.result === 'bound');
  return welcome.value.session;
}

function callBytes(session: number, procedure: number, args: Uint8Array, seq = 0): Uint8Array {
  const writer = new Writer();
  const start = beginFrame(writer, Kind.CALL);
  for (const value of [7, procedure, session, seq, seq, 0, 0]) writer.varuint(value);
  writer.raw(args);
  endFrame(writer, start);
  return writer.finish().slice();
}

/** Status and error message of the REPLY to call id 7. */
function reply(raw: RawClient): { status: number; message: string } {
  const body = bodies(raw.received).find((b) => b[0] === Kind.REPLY)!;
  const reader = new Reader(body, 1);
  assert.equal(reader.varuint(), 7);
  const status = reader.u8();
  return { status, message: status === Status.OK ? '' : readError(reader).message };
}

test('an unknown procedure is answered UNKNOWN_PROCEDURE and the connection stays', async () => {
  await withServer({}, async (server) => {
    const raw = await RawClient.connect(server.port);
    const session = await bindRaw(raw);
    raw.write(callBytes(session, 99, new Uint8Array(0)));
    await waitFor(() => bodies(raw.received).some((b) => b[0] === Kind.REPLY), 'the reply');
    assert.equal(reply(raw).status, Status.UNKNOWN_PROCEDURE);
    assert.equal(raw.closed, false);
    raw.socket.destroy();
    await stillServes(server);
  });
});

test('arguments that do not match the schema are answered INVALID_ARGUMENT with the path', async () => {
  await withServer({}, async (server) => {
    const raw = await RawClient.connect(server.port);
    const session = await bindRaw(raw);
    // `add` wants struct{delta:int,token:uint}; a lone byte 0x80 is a truncated varuint.
    const add = Counter.names.indexOf('add');
    raw.write(callBytes(session, add, new Uint8Array([0x80]), 1));
    await waitFor(() => bodies(raw.received).some((b) => b[0] === Kind.REPLY), 'the reply');
    const { status, message } = reply(raw);
    assert.equal(status, Status.INVALID_ARGUMENT);
    assert.match(message, /arguments of add: truncated/);
    assert.equal(server.stats().callsStarted, 0);
    raw.socket.destroy();
    await stillServes(server);
  });
});

test('a malformed frame or an unknown frame kind closes that connection with a logged reason', async () => {
  await withServer({}, async (server, entries) => {
    const garbage = await RawClient.connect(server.port);
    garbage.write(frame(new Uint8Array([200, 1, 2, 3])));
    await waitFor(() => garbage.closed, 'the connection to close');
    assert.ok(entries.some((e) => e.level === 'warn' && /unexpected frame kind 200/.test(String(e.fields.reason))));
    const goAway = bodies(garbage.received).find((b) => b[0] === Kind.GOAWAY);
    assert.ok(goAway !== undefined, 'the peer is told why');

    const truncated = await RawClient.connect(server.port);
    truncated.write(frame(new Uint8Array([Kind.HELLO, 1])));
    await waitFor(() => truncated.closed, 'the connection to close');
    assert.ok(entries.some((e) => /malformed frame: truncated/.test(String(e.fields.reason))));
    assert.equal(server.stats().connectionsClosedForBadInput, 2);
    await stillServes(server);
  });
});

test('an oversized length prefix is refused before anything is allocated', async () => {
  await withServer({ frameBytesMax: 1024 }, async (server, entries) => {
    const raw = await RawClient.connect(server.port);
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, 0xffff_fff0, true);
    raw.write(header);
    await waitFor(() => raw.closed, 'the connection to close');
    assert.ok(entries.some((e) => /exceeds the maximum of 1024/.test(String(e.fields.reason))));
    await stillServes(server);
  });
});

test('a client that never binds is closed after the bind timeout', async () => {
  await withServer({ bindTimeoutMs: 100, tickMs: 5 }, async (server, entries) => {
    const raw = await RawClient.connect(server.port);
    await waitFor(() => raw.closed, 'the connection to close');
    assert.ok(entries.some((e) => /not bound within 100 ms/.test(String(e.fields.reason))));
    await stillServes(server);
  });
});

test('a client sending one byte at a time is cut off; everyone else is served meanwhile', async () => {
  await withServer({ frameReadTimeoutMs: 300, bindTimeoutMs: 60_000, tickMs: 5 }, async (server, entries) => {
    const slow = await RawClient.connect(server.port);
    const hello = helloBytes();
    let sent = 0;
    const dribble = setInterval(() => {
      if (sent < hello.length && !slow.closed) slow.write(hello.subarray(sent, ++sent));
    }, 50);
    try {
      await stillServes(server); // served while the slow one dribbles
      await waitFor(() => slow.closed, 'the slow client to be cut off');
      assert.ok(sent < hello.length, 'cut off before finishing its HELLO');
      assert.ok(entries.some((e) => /frame not completed within 300 ms/.test(String(e.fields.reason))));
    } finally {
      clearInterval(dribble);
    }
  });
});

test('a client that does not read its replies makes the server stop reading it, not buffer without bound', async () => {
  await withServer({ writeHighWaterBytes: 64 * 1024 }, async (server) => {
    const raw = await RawClient.connect(server.port);
    const session = await bindRaw(raw);
    raw.socket.pause(); // read nothing from now on
    const echo = Counter.names.indexOf('echo');
    const payload = new Writer();
    payload.varuint(64 * 1024);
    payload.raw(new Uint8Array(64 * 1024));
    const calls = 400; // 25 MiB of replies, far more than the socket buffers hold
    for (let i = 0; i < calls; i++) raw.write(callBytes(session, echo, payload.finish()));
    await waitFor(() => server.stats().readPauses >= 1, 'the server to stop reading');
    const startedWhilePaused = server.stats().callsStarted;
    assert.ok(startedWhilePaused < calls, `${startedWhilePaused} of ${calls} calls read`);
    raw.socket.resume(); // the client reads again: everything gets through
    await waitFor(() => server.stats().callsStarted === calls, 'every call to be served', 20_000);
    raw.socket.destroy();
    await stillServes(server);
  });
});
