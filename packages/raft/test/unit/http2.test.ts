/**
 * The purpose-built HTTP/2 connection under the etcd gateway's gRPC (src/real/etcd/http2/connection.ts,
 * through grpc.ts's `startGrpcServer` and `GrpcChannel`), against the reference implementation and
 * against bad input:
 * - interop with nghttp2 (node:http2) both ways: node's client calls our server (small and 1 MiB
 *   messages, which need our send queue to wait for node's 65,535-byte windows, a 5 MiB request that
 *   needs our stream WINDOW_UPDATEs, 200 concurrent calls on one session, a trailers-only error, a plain
 *   GET answered 415), and our channel calls a node server acting as a gRPC server by hand (answers
 *   and a percent-encoded error status, 1 and 5 MiB answers through our receive windows, a server
 *   that allows 2 concurrent streams: 20 calls queue in our client, also on a fresh connection, where
 *   the client waits for the server's SETTINGS before it opens streams), and GOAWAY or a dropped
 *   connection with calls pending or queued: those fail UNAVAILABLE at once, retryable, and the next
 *   call opens a new connection);
 * - a raw TCP client breaking RFC 9113 one way at a time: every connection error is answered with
 *   GOAWAY carrying the RFC's code and the socket closes; a stream error (RST_STREAM) leaves the
 *   connection working; padding, priority and CONTINUATION are understood; after each case the server
 *   still serves a fresh client (bad input ends one connection, never the server);
 * - a call whose deadline passes: the client fails DEADLINE_EXCEEDED and the server receives
 *   RST_STREAM CANCEL (seen by a recording proxy in between), and the same channel still works.
 * Everything runs on 127.0.0.1 with ephemeral ports; waits are for events or conditions, never sleeps.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { describe, type TestContext, test } from 'node:test';
import { type Endpoint, Logger } from '@dsys/runtime-node';
import {
  frameMessage,
  GrpcChannel,
  GrpcCode,
  GrpcError,
  type GrpcServer,
  startGrpcServer,
  type UnaryHandler,
} from '../../src/real/etcd/grpc.js';
import { H2Connection, type H2Stream, type StreamListener } from '../../src/real/etcd/http2/connection.js';
import {
  CLIENT_PREFACE,
  Flag,
  FRAME_HEADER_BYTES,
  FrameType,
  frame,
  H2Code,
  rstStreamFrame,
  Setting,
  settingsFrame,
  WINDOW_MAX,
  windowUpdateFrame,
} from '../../src/real/etcd/http2/frames.js';
import { encodeHeaders, type HeaderList, HpackDecoder } from '../../src/real/etcd/http2/hpack.js';

const logger = new Logger({ level: 'warn', node: 'test' });
const LOCAL: Endpoint = { host: '127.0.0.1', port: 0 };
const MiB = 1024 * 1024;

const ECHO = '/test.Echo/Echo';
/** Answers the request's length as a 4-byte number (big requests, small answers). */
const SIZE = '/test.Echo/Size';
/** Never answers. */
const HANG = '/test.Echo/Hang';
/** Node server only: answers `grpc-status 5` with a percent-encoded message. */
const NOT_FOUND = '/test.Echo/NotFound';
/** Node server only: the request is a 4-byte size; the answer that many bytes. */
const BIG = '/test.Echo/Big';

const target = (endpoint: Endpoint): string => `${endpoint.host}:${endpoint.port}`;

// ------------------------------------------------------------------------------------------------
// Helpers

/** Cleanups run when the test ends, the last registered first (clients before their servers). */
function scope(t: TestContext): (cleanup: () => unknown) => void {
  const cleanups: Array<() => unknown> = [];
  t.after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });
  return (cleanup) => cleanups.push(cleanup);
}

/** Polls `check` until it holds; fails after `timeoutMs` naming `what`. */
async function waitFor(check: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** The one message of a gRPC body (flag 0, 4-byte length, bytes). */
function unframe(body: Buffer): Buffer {
  assert.ok(body.length >= 5, `body of ${body.length} bytes`);
  assert.equal(body[0], 0, 'uncompressed');
  assert.equal(body.readUInt32BE(1), body.length - 5, 'message length');
  return body.subarray(5);
}

function assertSameBytes(actual: Buffer, expected: Buffer, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  assert.ok(actual.equals(expected), `${what}: bytes differ`);
}

async function rejection(promise: Promise<unknown>): Promise<GrpcError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof GrpcError, `expected a GrpcError, got ${String(error)}`);
    return error;
  }
  assert.fail('the call succeeded');
}

const handlers = (hangs: { count: number } = { count: 0 }): Map<string, UnaryHandler> =>
  new Map<string, UnaryHandler>([
    [ECHO, async (request) => request],
    [
      SIZE,
      async (request) => {
        const answer = Buffer.alloc(4);
        answer.writeUInt32BE(request.length, 0);
        return answer;
      },
    ],
    [
      HANG,
      () => {
        hangs.count++;
        return new Promise<Uint8Array>(() => undefined);
      },
    ],
  ]);

async function startEchoServer(
  defer: (cleanup: () => unknown) => void,
  options: { requestBytesMax?: number; hangs?: { count: number } } = {},
): Promise<GrpcServer> {
  const server = await startGrpcServer({
    listen: LOCAL,
    methods: handlers(options.hangs),
    logger,
    requestBytesMax: options.requestBytesMax ?? 8 * MiB,
    defaultTimeoutMs: 5000,
  });
  defer(() => server.close());
  return server;
}

/** A fresh channel (a new connection) gets an answer: the server survived whatever came before. */
async function assertServes(endpoint: Endpoint): Promise<void> {
  const channel = new GrpcChannel(target(endpoint));
  try {
    const answer = await channel.call(ECHO, Buffer.from('still serving'), 3000);
    assert.equal(answer.toString(), 'still serving');
  } finally {
    channel.close();
  }
}

// ------------------------------------------------------------------------------------------------
// Raw frames

interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
  /** HEADERS with END_HEADERS: the decoded block. */
  readonly headers: HeaderList | null;
}

interface Answer {
  readonly headers: HeaderList | null;
  readonly data: Buffer;
  readonly trailers: HeaderList | null;
  readonly dataFrames: number;
}

const field = (headers: HeaderList | null, name: string): string | undefined => {
  if (headers === null) return undefined;
  for (let index = 0; index < headers.length; index += 2) if (headers[index] === name) return headers[index + 1];
  return undefined;
};

/** Splits a byte stream into frames (after `skip` bytes: a client preface), decoding header blocks. */
class FrameReader {
  readonly frames: Frame[] = [];
  closed = false;
  private input = Buffer.alloc(0);
  private skip: number;
  private readonly decoder = new HpackDecoder({ headerListBytesMax: 1 << 20 });
  private readonly watchers = new Set<() => void>();

  constructor(skip = 0) {
    this.skip = skip;
  }

  push(chunk: Buffer): void {
    this.input = Buffer.concat([this.input, chunk]);
    if (this.skip > 0) {
      const skipped = Math.min(this.skip, this.input.length);
      this.input = this.input.subarray(skipped);
      this.skip -= skipped;
    }
    while (this.input.length >= FRAME_HEADER_BYTES) {
      const length = this.input.readUIntBE(0, 3);
      if (this.input.length < FRAME_HEADER_BYTES + length) break;
      const type = this.input[3]!;
      const flags = this.input[4]!;
      const streamId = this.input.readUInt32BE(5) & WINDOW_MAX;
      const payload = Buffer.from(this.input.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length));
      const complete = type === FrameType.HEADERS && (flags & Flag.END_HEADERS) !== 0;
      const headers = complete ? this.decoder.decode(payload) : null;
      this.frames.push({ type, flags, streamId, payload, headers });
      this.input = this.input.subarray(FRAME_HEADER_BYTES + length);
    }
    this.notify();
  }

  end(): void {
    this.closed = true;
    this.notify();
  }

  /** Resolves with what `find` returns once it is not undefined (checked on every read and at close). */
  until<T>(find: () => T | undefined, what: string, timeoutMs = 3000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const stop = (): void => {
        clearTimeout(timer);
        this.watchers.delete(check);
      };
      const check = (): void => {
        const found = find();
        if (found === undefined) return;
        stop();
        resolve(found);
      };
      const timer = setTimeout(() => {
        stop();
        const seen = this.frames.map((f) => `${f.type}/${f.flags}/${f.streamId}`).join(' ');
        reject(new Error(`timed out waiting for ${what} (frames type/flags/stream: ${seen}; closed ${this.closed})`));
      }, timeoutMs);
      this.watchers.add(check);
      check();
    });
  }

  /** The first GOAWAY, parsed. */
  goaway(): Promise<{ lastStreamId: number; code: number; debug: string }> {
    return this.until(() => {
      const goaway = this.frames.find((f) => f.type === FrameType.GOAWAY);
      if (goaway === undefined) return undefined;
      return {
        lastStreamId: goaway.payload.readUInt32BE(0) & WINDOW_MAX,
        code: goaway.payload.readUInt32BE(4),
        debug: goaway.payload.subarray(8).toString('utf8'),
      };
    }, 'GOAWAY');
  }

  /** The frames of stream `streamId` up to its END_STREAM: a response's headers, body and trailers. */
  answer(streamId: number): Promise<Answer> {
    return this.until(() => {
      const frames = this.frames.filter((f) => f.streamId === streamId);
      const ended = frames.some(
        (f) => (f.type === FrameType.HEADERS || f.type === FrameType.DATA) && (f.flags & Flag.END_STREAM) !== 0,
      );
      if (!ended) return undefined;
      const blocks = frames.filter((f) => f.type === FrameType.HEADERS);
      const data = frames.filter((f) => f.type === FrameType.DATA);
      return {
        headers: blocks[0]?.headers ?? null,
        trailers: blocks[1]?.headers ?? null,
        data: Buffer.concat(data.map((f) => f.payload)),
        dataFrames: data.length,
      };
    }, `the answer on stream ${streamId}`);
  }

  /** The code of a RST_STREAM on `streamId`. */
  reset(streamId: number): Promise<number> {
    return this.until(() => {
      const reset = this.frames.find((f) => f.type === FrameType.RST_STREAM && f.streamId === streamId);
      return reset?.payload.readUInt32BE(0);
    }, `RST_STREAM on stream ${streamId}`);
  }

  private notify(): void {
    for (const watcher of [...this.watchers]) watcher();
  }
}

/** A TCP client speaking HTTP/2 by hand. */
class RawPeer {
  readonly socket: net.Socket;
  readonly reader = new FrameReader();

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.reader.push(chunk));
    socket.on('error', () => undefined); // a reset is one of the ways to be closed
    socket.on('close', () => this.reader.end());
  }

  static async open(endpoint: Endpoint, defer: (cleanup: () => unknown) => void): Promise<RawPeer> {
    const socket = net.connect({ host: endpoint.host, port: endpoint.port });
    const peer = new RawPeer(socket);
    defer(() => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return peer;
  }

  send(...frames: Buffer[]): void {
    this.socket.write(Buffer.concat(frames));
  }

  /** The client preface and an empty SETTINGS frame. */
  start(): void {
    this.send(CLIENT_PREFACE, settingsFrame([]));
  }

  closed(): Promise<true> {
    return this.reader.until(() => (this.reader.closed ? true : undefined), 'the socket to close');
  }
}

const requestBlock = (path = ECHO): Buffer =>
  encodeHeaders([
    ':method',
    'POST',
    ':scheme',
    'http',
    ':path',
    path,
    ':authority',
    'test',
    'content-type',
    'application/grpc',
    'te',
    'trailers',
  ]);

/** A whole unary call on `streamId`: HEADERS, then DATA with the framed message ending the stream. */
const call = (streamId: number, message: Buffer, path = ECHO): Buffer[] => [
  frame(FrameType.HEADERS, Flag.END_HEADERS, streamId, requestBlock(path)),
  frame(FrameType.DATA, Flag.END_STREAM, streamId, frameMessage(message)),
];

function assertOkAnswer(answer: Answer, message: string): void {
  assert.equal(field(answer.headers, ':status'), '200');
  assert.equal(field(answer.trailers, 'grpc-status'), '0');
  assert.equal(unframe(answer.data).toString(), message);
}

const noGoaway = (reader: FrameReader): void =>
  assert.equal(
    reader.frames.find((f) => f.type === FrameType.GOAWAY),
    undefined,
    'no GOAWAY',
  );

// ------------------------------------------------------------------------------------------------
// node:http2 as the client, and as the server

interface NodeAnswer {
  readonly headers: http2.IncomingHttpHeaders;
  readonly trailers: http2.IncomingHttpHeaders | null;
  readonly body: Buffer;
}

async function nodeSession(endpoint: Endpoint, defer: (cleanup: () => unknown) => void) {
  const session = http2.connect(`http://${target(endpoint)}`);
  defer(() => new Promise<void>((resolve) => session.close(() => resolve())));
  await new Promise<void>((resolve, reject) => {
    session.once('connect', () => resolve());
    session.once('error', reject);
  });
  return session;
}

const grpcRequest = (path: string): http2.OutgoingHttpHeaders => ({
  ':method': 'POST',
  ':path': path,
  'content-type': 'application/grpc',
  te: 'trailers',
});

function nodeCall(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body: Buffer | null,
): Promise<NodeAnswer> {
  return new Promise((resolve, reject) => {
    const request = session.request(headers, { endStream: body === null });
    let responseHeaders: http2.IncomingHttpHeaders | null = null;
    let trailers: http2.IncomingHttpHeaders | null = null;
    const chunks: Buffer[] = [];
    request.on('response', (received) => {
      responseHeaders = received;
    });
    request.on('trailers', (received) => {
      trailers = received;
    });
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('error', reject);
    request.on('close', () => {
      if (responseHeaders === null) reject(new Error(`stream closed without an answer (code ${request.rstCode})`));
      else resolve({ headers: responseHeaders, trailers, body: Buffer.concat(chunks) });
    });
    if (body !== null) request.end(body);
  });
}

interface NodeGrpcServer {
  readonly endpoint: Endpoint;
  /** Sessions open now. */
  readonly sessions: Set<http2.ServerHttp2Session>;
  /** Streams seen, and sessions opened, since the start. */
  readonly counts: { streams: number; sessions: number };
  /** Calls to HANG, waiting forever. */
  readonly hanging: http2.ServerHttp2Stream[];
}

/** A gRPC server written by hand on node:http2 (ECHO, BIG, NOT_FOUND, HANG). */
async function startNodeGrpcServer(
  defer: (cleanup: () => unknown) => void,
  settings: http2.Settings = {},
): Promise<NodeGrpcServer> {
  const server = http2.createServer({ settings });
  const sessions = new Set<http2.ServerHttp2Session>();
  const counts = { streams: 0, sessions: 0 };
  const hanging: http2.ServerHttp2Stream[] = [];
  server.on('session', (session) => {
    counts.sessions++;
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    session.on('error', () => undefined);
  });
  server.on('stream', (stream, headers) => {
    counts.streams++;
    stream.on('error', () => undefined);
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => {
      const message = unframe(Buffer.concat(chunks));
      switch (headers[':path']) {
        case ECHO:
          answerOk(stream, message);
          return;
        case BIG:
          answerOk(stream, pattern(message.readUInt32BE(0)));
          return;
        case NOT_FOUND:
          stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
          stream.on('wantTrailers', () =>
            stream.sendTrailers({ 'grpc-status': '5', 'grpc-message': 'no such key: caf%C3%A9, 100%25 sure' }),
          );
          stream.end();
          return;
        case HANG:
          hanging.push(stream);
          return;
        default:
          stream.respond(
            { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12' },
            { endStream: true },
          );
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  defer(async () => {
    for (const session of sessions) session.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { endpoint: { host: '127.0.0.1', port: address.port }, sessions, counts, hanging };
}

function answerOk(stream: http2.ServerHttp2Stream, message: Buffer): void {
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
  stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
  stream.end(frameMessage(message));
}

/** `bytes` recognisable bytes (a position-dependent pattern, so a lost or repeated frame shows). */
function pattern(bytes: number): Buffer {
  const out = Buffer.allocUnsafe(bytes);
  for (let index = 0; index < bytes; index++) out[index] = (index * 7 + (index >>> 12)) & 0xff;
  return out;
}

const sizeRequest = (bytes: number): Buffer => {
  const request = Buffer.alloc(4);
  request.writeUInt32BE(bytes, 0);
  return request;
};

// ------------------------------------------------------------------------------------------------

describe('node:http2 client against our server', () => {
  test('a small call: headers, one message, trailers with grpc-status 0', async (t) => {
    const defer = scope(t);
    const server = await startEchoServer(defer);
    const session = await nodeSession(server.endpoint, defer);
    const answer = await nodeCall(session, grpcRequest(ECHO), frameMessage(Buffer.from('hello')));
    assert.equal(answer.headers[':status'], 200);
    assert.equal(answer.headers['content-type'], 'application/grpc');
    assert.equal(answer.trailers?.['grpc-status'], '0');
    assert.equal(unframe(answer.body).toString(), 'hello');
  });

  test("1 MiB each way: our answer waits for node's 65,535-byte windows", async (t) => {
    const defer = scope(t);
    const server = await startEchoServer(defer);
    const session = await nodeSession(server.endpoint, defer);
    const message = randomBytes(MiB);
    const answer = await nodeCall(session, grpcRequest(ECHO), frameMessage(message));
    assert.equal(answer.trailers?.['grpc-status'], '0');
    assertSameBytes(unframe(answer.body), message, 'echo');
    // And again on the same session: the windows are accounted right after the first big answer.
    const again = await nodeCall(session, grpcRequest(ECHO), frameMessage(message));
    assertSameBytes(unframe(again.body), message, 'second echo');
  });

  test('a 5 MiB request needs our stream WINDOW_UPDATEs (the stream window is 4 MiB)', async (t) => {
    const defer = scope(t);
    const server = await startEchoServer(defer);
    const session = await nodeSession(server.endpoint, defer);
    const answer = await nodeCall(session, grpcRequest(SIZE), frameMessage(pattern(5 * MiB)));
    assert.equal(answer.trailers?.['grpc-status'], '0');
    assert.equal(unframe(answer.body).readUInt32BE(0), 5 * MiB);
  });

  test('200 concurrent calls on one session', async (t) => {
    const defer = scope(t);
    const server = await startEchoServer(defer);
    const session = await nodeSession(server.endpoint, defer);
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, index) =>
        nodeCall(session, grpcRequest(ECHO), frameMessage(Buffer.from(`call ${index}`))),
      ),
    );
    answers.forEach((answer, index) => {
      assert.equal(answer.trailers?.['grpc-status'], '0');
      assert.equal(unframe(answer.body).toString(), `call ${index}`);
    });
  });

  test('an unknown method: a trailers-only answer with grpc-status 12 in the headers', async (t) => {
    const defer = scope(t);
    const server = await startEchoServer(defer);
    const session = await nodeSession(server.endpoint, defer);
    const answer = await nodeCall(session, grpcRequest('/test.Echo/Nope'), frameMessage(Buffer.from('x')));
    assert.equal(answer.headers[':status'], 200);
    assert.equal(answer.headers['grpc-status'], String(GrpcCode.UNIMPLEMENTED));
    assert.equal(answer.headers['grpc-message'], 'unknown method /test.Echo/Nope');
    assert.equal(answer.trailers, null);
    assert.equal(answer.body.length, 0);
  });

  test('a plain GET (not gRPC) is answered HTTP 415', async (t) => {
    const defer = scope(t);
    const server = await startEchoServer(defer);
    const session = await nodeSession(server.endpoint, defer);
    const answer = await nodeCall(session, { ':method': 'GET', ':path': '/' }, null);
    assert.equal(answer.headers[':status'], 415);
    // The session is still good for gRPC.
    const echo = await nodeCall(session, grpcRequest(ECHO), frameMessage(Buffer.from('after GET')));
    assert.equal(unframe(echo.body).toString(), 'after GET');
  });
});

describe('our GrpcChannel against a node:http2 server', () => {
  test('an answer, and an error status with a percent-encoded message', async (t) => {
    const defer = scope(t);
    const server = await startNodeGrpcServer(defer);
    const channel = new GrpcChannel(target(server.endpoint));
    defer(() => channel.close());
    assert.equal((await channel.call(ECHO, Buffer.from('ping'), 3000)).toString(), 'ping');
    const error = await rejection(channel.call(NOT_FOUND, Buffer.from('k'), 3000));
    assert.equal(error.status, GrpcCode.NOT_FOUND);
    assert.equal(error.detail.message, 'no such key: café, 100% sure');
  });

  test("a 1 MiB request (waits for node's windows), 1 and 5 MiB answers (5 MiB needs our WINDOW_UPDATEs)", async (t) => {
    const defer = scope(t);
    const server = await startNodeGrpcServer(defer);
    const channel = new GrpcChannel(target(server.endpoint));
    defer(() => channel.close());
    const message = randomBytes(MiB);
    assertSameBytes(await channel.call(ECHO, message, 5000), message, 'echo');
    for (const bytes of [MiB, 5 * MiB]) {
      assertSameBytes(await channel.call(BIG, sizeRequest(bytes), 5000), pattern(bytes), `${bytes}-byte answer`);
    }
    assert.equal(server.counts.sessions, 1, 'all on one connection');
  });

  /** 20 concurrent calls through one channel to a server allowing 2 streams at once; all must succeed. */
  async function twentyOverTwo(t: TestContext, warmUp: boolean): Promise<void> {
    const defer = scope(t);
    const server = await startNodeGrpcServer(defer, { maxConcurrentStreams: 2 });
    const channel = new GrpcChannel(target(server.endpoint));
    defer(() => channel.close());
    if (warmUp) assert.equal((await channel.call(ECHO, Buffer.from('warm'), 3000)).toString(), 'warm');
    const calls = Array.from({ length: 20 }, (_, index) => channel.call(ECHO, Buffer.from(`call ${index}`), 5000));
    const answers = await Promise.all(calls);
    answers.forEach((answer, index) => {
      assert.equal(answer.toString(), `call ${index}`);
    });
    assert.equal(server.counts.streams, warmUp ? 21 : 20, 'no stream refused and sent again');
    assert.equal(server.counts.sessions, 1);
  }

  test('a server allowing 2 concurrent streams: 20 concurrent calls all succeed (the client queues)', (t) =>
    twentyOverTwo(t, true));

  test('the same 20 calls on a fresh channel: the client waits for the server SETTINGS (its limit)', (t) =>
    twentyOverTwo(t, false));

  test('GOAWAY with calls pending: they fail UNAVAILABLE and the next call opens a new connection', async (t) => {
    const defer = scope(t);
    const server = await startNodeGrpcServer(defer);
    const channel = new GrpcChannel(target(server.endpoint));
    defer(() => channel.close());
    // Stream 1 is answered; 3, 5 and 7 hang. The GOAWAY's last stream id is 1: they were not processed.
    // (node:http2 turns a last id of 0 into the last stream it received, so 1 is the lowest to give.)
    assert.equal((await channel.call(ECHO, Buffer.from('first'), 3000)).toString(), 'first');
    const pending = Array.from({ length: 3 }, () => rejection(channel.call(HANG, Buffer.from('wait'), 10_000)));
    await waitFor(() => server.hanging.length === 3, 'three calls at the server');
    for (const session of server.sessions) session.goaway(http2.constants.NGHTTP2_NO_ERROR, 1);
    for (const error of await Promise.all(pending)) assert.equal(error.status, GrpcCode.UNAVAILABLE);
    assert.equal((await channel.call(ECHO, Buffer.from('after'), 3000)).toString(), 'after');
    assert.equal(server.counts.sessions, 2, 'a second connection');
  });

  test('GOAWAY while calls wait for a stream slot: those fail UNAVAILABLE too, none is sent', async (t) => {
    const defer = scope(t);
    const server = await startNodeGrpcServer(defer, { maxConcurrentStreams: 2 });
    const channel = new GrpcChannel(target(server.endpoint));
    defer(() => channel.close());
    // A first call (stream 1, the GOAWAY's last id below), and the server's limit is known.
    assert.equal((await channel.call(ECHO, Buffer.from('warm'), 3000)).toString(), 'warm');
    const pending = Array.from({ length: 5 }, () => rejection(channel.call(HANG, Buffer.from('wait'), 10_000)));
    await waitFor(() => server.hanging.length === 2, 'two calls at the server');
    for (const session of server.sessions) session.goaway(http2.constants.NGHTTP2_NO_ERROR, 1);
    const started = performance.now();
    for (const error of await Promise.all(pending)) assert.equal(error.status, GrpcCode.UNAVAILABLE);
    assert.ok(performance.now() - started < 2000, 'failed at once, not at their deadline');
    assert.equal(server.counts.streams, 3, 'no call was started after the GOAWAY');
    assert.equal((await channel.call(ECHO, Buffer.from('after'), 3000)).toString(), 'after');
  });

  test('the server dropping the connection: pending calls fail UNAVAILABLE, the next call reconnects', async (t) => {
    const defer = scope(t);
    const server = await startNodeGrpcServer(defer);
    const channel = new GrpcChannel(target(server.endpoint));
    defer(() => channel.close());
    const pending = rejection(channel.call(HANG, Buffer.from('wait'), 10_000));
    await waitFor(() => server.hanging.length === 1, 'the call at the server');
    for (const session of server.sessions) session.destroy();
    assert.equal((await pending).status, GrpcCode.UNAVAILABLE);
    assert.equal((await channel.call(ECHO, Buffer.from('after'), 3000)).toString(), 'after');
    assert.equal(server.counts.sessions, 2);
  });

  test('H2Connection: GOAWAY fails only the streams above its last id, as retryable', async (t) => {
    const defer = scope(t);
    const server = await startNodeGrpcServer(defer);
    const socket = net.connect({ host: server.endpoint.host, port: server.endpoint.port });
    defer(() => socket.destroy());
    const connection = new H2Connection(socket, { role: 'client', bodyBytesMax: MiB });
    const events: string[] = [];
    const listener: StreamListener = {
      onEnd: (stream: H2Stream) => events.push(`${stream.id} end`),
      onFail: (stream: H2Stream, _reason: string, retryable: boolean) =>
        events.push(`${stream.id} fail${retryable ? ' retryable' : ''}`),
    };
    const block = encodeHeaders([
      ':method',
      'POST',
      ':scheme',
      'http',
      ':path',
      HANG,
      ':authority',
      'test',
      'content-type',
      'application/grpc',
      'te',
      'trailers',
    ]);
    for (let index = 0; index < 3; index++) connection.request(block, frameMessage(Buffer.from('wait')), listener);
    await waitFor(() => server.hanging.length === 3, 'three streams at the server');
    for (const session of server.sessions) session.goaway(http2.constants.NGHTTP2_NO_ERROR, 1);
    await waitFor(() => events.length === 2, 'streams 3 and 5 to fail');
    assert.deepEqual(events.sort(), ['3 fail retryable', '5 fail retryable']);
    assert.equal(connection.usable, false, 'no new streams after GOAWAY');
    // Stream 1 was below the last id: the server may still answer it, and then the connection ends.
    answerOk(server.hanging[0]!, Buffer.from('late'));
    await waitFor(() => events.length === 3, 'stream 1 to end');
    assert.equal(events[2], '1 end');
    await waitFor(() => socket.writableEnded, 'the client to end the connection, its last stream done');
  });
});

describe('bad input on a raw socket: connection errors end that connection with GOAWAY', () => {
  const cases: ReadonlyArray<{ name: string; frames: () => Buffer[]; code: H2Code; preface?: false }> = [
    {
      name: 'a frame over 16,384 bytes: FRAME_SIZE_ERROR',
      frames: () => [frame(FrameType.DATA, 0, 1, Buffer.alloc(16_385))],
      code: H2Code.FRAME_SIZE_ERROR,
    },
    {
      name: 'DATA on stream 0: PROTOCOL_ERROR',
      frames: () => [frame(FrameType.DATA, 0, 0, Buffer.from('x'))],
      code: H2Code.PROTOCOL_ERROR,
    },
    {
      name: 'DATA on an idle stream (5, never opened): PROTOCOL_ERROR',
      frames: () => [frame(FrameType.DATA, Flag.END_STREAM, 5, frameMessage(Buffer.from('x')))],
      code: H2Code.PROTOCOL_ERROR,
    },
    {
      name: 'HEADERS with an invalid HPACK block (indexed field 0): COMPRESSION_ERROR',
      frames: () => [frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, Buffer.from([0x80]))],
      code: H2Code.COMPRESSION_ERROR,
    },
    {
      name: 'a header block interrupted by a PING: PROTOCOL_ERROR',
      frames: () => [
        frame(FrameType.HEADERS, 0, 1, requestBlock().subarray(0, 4)),
        frame(FrameType.PING, 0, 0, Buffer.alloc(8)),
      ],
      code: H2Code.PROTOCOL_ERROR,
    },
    {
      name: 'a first frame after the preface that is not SETTINGS: PROTOCOL_ERROR',
      frames: () => [CLIENT_PREFACE, frame(FrameType.PING, 0, 0, Buffer.alloc(8))],
      code: H2Code.PROTOCOL_ERROR,
      preface: false,
    },
    {
      name: 'a WINDOW_UPDATE taking the connection window over 2^31-1: FLOW_CONTROL_ERROR',
      frames: () => [windowUpdateFrame(0, WINDOW_MAX)],
      code: H2Code.FLOW_CONTROL_ERROR,
    },
    {
      name: 'an even client stream id: PROTOCOL_ERROR',
      frames: () => call(2, Buffer.from('x')),
      code: H2Code.PROTOCOL_ERROR,
    },
  ];
  for (const bad of cases) {
    test(bad.name, async (t) => {
      const defer = scope(t);
      const server = await startEchoServer(defer);
      const peer = await RawPeer.open(server.endpoint, defer);
      if (bad.preface !== false) peer.start();
      peer.send(...bad.frames());
      const goaway = await peer.reader.goaway();
      assert.equal(goaway.code, bad.code, `GOAWAY code (debug: ${goaway.debug})`);
      assert.equal(goaway.lastStreamId, 0, 'no stream was processed');
      await peer.closed();
      await assertServes(server.endpoint);
    });
  }

  test('garbage instead of the preface: the socket is closed', async (t) => {
    const defer = scope(t);
    const server = await startEchoServer(defer);
    const peer = await RawPeer.open(server.endpoint, defer);
    peer.send(Buffer.from('GET / HTTP/1.1\r\nHost: test\r\n\r\n'));
    await peer.closed();
    await assertServes(server.endpoint);
  });
});

describe('a raw socket: what is not a connection error', () => {
  test('a PING is answered with a PING ACK carrying the same 8 bytes', async (t) => {
    const defer = scope(t);
    const server = await startEchoServer(defer);
    const peer = await RawPeer.open(server.endpoint, defer);
    peer.start();
    peer.send(frame(FrameType.PING, 0, 0, Buffer.from('8 bytes!')));
    const ack = await peer.reader.until(
      () => peer.reader.frames.find((f) => f.type === FrameType.PING),
      'the PING ACK',
    );
    assert.equal(ack.flags, Flag.ACK);
    assert.equal(ack.streamId, 0);
    assert.equal(ack.payload.toString(), '8 bytes!');
    noGoaway(peer.reader);
  });

  test('a WINDOW_UPDATE of 0 on an open stream resets that stream only (RST_STREAM PROTOCOL_ERROR)', async (t) => {
    const defer = scope(t);
    const server = await startEchoServer(defer);
    const peer = await RawPeer.open(server.endpoint, defer);
    peer.start();
    peer.send(frame(FrameType.HEADERS, Flag.END_HEADERS, 1, requestBlock()), windowUpdateFrame(1, 0));
    assert.equal(await peer.reader.reset(1), H2Code.PROTOCOL_ERROR);
    // The connection goes on: a call on the next stream is answered, a PING too.
    peer.send(...call(3, Buffer.from('next stream')), frame(FrameType.PING, 0, 0, Buffer.from('still on')));
    assertOkAnswer(await peer.reader.answer(3), 'next stream');
    await peer.reader.until(
      () => peer.reader.frames.find((f) => f.type === FrameType.PING && f.payload.toString() === 'still on'),
      'the PING ACK',
    );
    noGoaway(peer.reader);
    assert.equal(peer.reader.closed, false);
  });

  test('padding, priority and CONTINUATION: a request split and padded every legal way is served', async (t) => {
    const defer = scope(t);
    const server = await startEchoServer(defer);
    const peer = await RawPeer.open(server.endpoint, defer);
    peer.start();
    const block = requestBlock();
    const split = 7;
    // HEADERS: pad length 3, priority (dependency 0, weight 15), the first fragment, 3 bytes of padding.
    const headersPayload = Buffer.concat([Buffer.from([3, 0, 0, 0, 0, 15]), block.subarray(0, split), Buffer.alloc(3)]);
    const body = frameMessage(Buffer.from('padded and continued'));
    const half = 10;
    peer.send(
      frame(FrameType.HEADERS, Flag.PADDED | Flag.PRIORITY, 1, headersPayload),
      frame(FrameType.CONTINUATION, 0, 1, block.subarray(split, split + 5)),
      frame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, block.subarray(split + 5)),
      frame(FrameType.DATA, Flag.PADDED, 1, Buffer.concat([Buffer.from([7]), body.subarray(0, half), Buffer.alloc(7)])),
      frame(FrameType.DATA, Flag.PADDED | Flag.END_STREAM, 1, Buffer.concat([Buffer.from([0]), body.subarray(half)])),
    );
    const answer = await peer.reader.answer(1);
    assertOkAnswer(answer, 'padded and continued');
    assert.equal(answer.dataFrames, 1);
    noGoaway(peer.reader);
  });

  test('an oversized request: a trailers-only RESOURCE_EXHAUSTED, and the connection goes on', async (t) => {
    const defer = scope(t);
    const server = await startEchoServer(defer, { requestBytesMax: 1000 });
    const peer = await RawPeer.open(server.endpoint, defer);
    peer.start();
    // 5,000 bytes in two DATA frames: the answer comes after the first, before the request ended.
    const body = frameMessage(Buffer.alloc(5000, 1));
    peer.send(
      frame(FrameType.HEADERS, Flag.END_HEADERS, 1, requestBlock()),
      frame(FrameType.DATA, 0, 1, body.subarray(0, 4000)),
      frame(FrameType.DATA, Flag.END_STREAM, 1, body.subarray(4000)),
    );
    const refused = await peer.reader.answer(1);
    assert.equal(field(refused.headers, ':status'), '200');
    assert.equal(field(refused.headers, 'grpc-status'), String(GrpcCode.RESOURCE_EXHAUSTED));
    assert.equal(refused.trailers, null, 'trailers-only');
    assert.equal(refused.dataFrames, 0);
    // The whole oversized message in one frame, then a call that fits, on the same connection.
    peer.send(...call(3, Buffer.alloc(5000, 2)), ...call(5, Buffer.from('small enough')));
    const refusedAgain = await peer.reader.answer(3);
    assert.equal(field(refusedAgain.headers, 'grpc-status'), String(GrpcCode.RESOURCE_EXHAUSTED));
    assertOkAnswer(await peer.reader.answer(5), 'small enough');
    // Answered before stream 1 ended: RST_STREAM NO_ERROR tells the client to stop sending. Stream 3
    // had ended (one frame) when it was answered: resetting a closed stream is not allowed.
    assert.equal(await peer.reader.reset(1), H2Code.NO_ERROR);
    assert.ok(!peer.reader.frames.some((f) => f.type === FrameType.RST_STREAM && f.streamId === 3));
    noGoaway(peer.reader);
    // Through a channel: the status arrives as a GrpcError.
    const channel = new GrpcChannel(target(server.endpoint));
    defer(() => channel.close());
    const error = await rejection(channel.call(ECHO, Buffer.alloc(5000), 3000));
    assert.equal(error.status, GrpcCode.RESOURCE_EXHAUSTED);
    assert.equal((await channel.call(ECHO, Buffer.from('fits'), 3000)).toString(), 'fits');
  });

  test('RST_STREAM from the client before the request ends: the stream is dropped, the connection goes on', async (t) => {
    const defer = scope(t);
    const server = await startEchoServer(defer);
    const peer = await RawPeer.open(server.endpoint, defer);
    peer.start();
    peer.send(
      frame(FrameType.HEADERS, Flag.END_HEADERS, 1, requestBlock()),
      rstStreamFrame(1, H2Code.CANCEL),
      // Late DATA on the stream we reset: ignored (not idle, just closed).
      frame(FrameType.DATA, Flag.END_STREAM, 1, frameMessage(Buffer.from('late'))),
      ...call(3, Buffer.from('next')),
    );
    assertOkAnswer(await peer.reader.answer(3), 'next');
    assert.equal(
      peer.reader.frames.some((f) => f.streamId === 1 && f.type !== FrameType.RST_STREAM),
      false,
      'nothing answered on the reset stream',
    );
    noGoaway(peer.reader);
  });
});

/** Polls `condition` (for state no frame announces) every 10 ms, failing after `timeoutMs`. */
async function waitUntil(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    assert.ok(performance.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('a client that does not take its answers: the server stops taking work', () => {
  /** An echo server that counts the calls it answered, with a small output allowance. */
  async function countingServer(defer: (cleanup: () => unknown) => void, outputBytesMax: number) {
    const counts = { calls: 0 };
    const server = await startGrpcServer({
      listen: LOCAL,
      methods: new Map<string, UnaryHandler>([
        [
          ECHO,
          async (request) => {
            counts.calls++;
            return request;
          },
        ],
      ]),
      logger,
      requestBytesMax: 8 * MiB,
      defaultTimeoutMs: 5000,
      outputBytesMax,
    });
    defer(() => server.close());
    return { server, counts };
  }

  test('answers held by flow control: new streams are refused (REFUSED_STREAM) until the client opens windows', async (t) => {
    const defer = scope(t);
    const { server, counts } = await countingServer(defer, 50 * 1024);
    const peer = await RawPeer.open(server.endpoint, defer);
    peer.start(); // default windows: 65,535 bytes for the connection and each stream
    const message = Buffer.alloc(16_000, 7); // one DATA frame each (16,384 at most)
    // 8 answers of 16,005 bytes, 65,535 of window: 62,505 bytes wait in the server, over the 50 KiB
    // allowance only once the 8th answer is queued, so none of these 8 can be refused.
    const first = Array.from({ length: 8 }, (_, index) => 1 + 2 * index);
    peer.send(...first.flatMap((id) => call(id, message)));
    await waitUntil(() => counts.calls === 8, 'the 8 calls answered');
    await new Promise((resolve) => setImmediate(resolve));
    peer.send(...call(17, message));
    assert.equal(await peer.reader.reset(17), H2Code.REFUSED_STREAM);
    // Windows opened: every held answer arrives, whole, and new work is taken again.
    peer.send(windowUpdateFrame(0, 16 * MiB), ...first.map((id) => windowUpdateFrame(id, 1 * MiB)));
    for (const id of first) assert.deepEqual((await peer.reader.answer(id)).data, frameMessage(message));
    peer.send(...call(19, Buffer.from('after')));
    assertOkAnswer(await peer.reader.answer(19), 'after');
  });

  test('a client that stops reading its socket: the server stops reading requests until it drains', async (t) => {
    const defer = scope(t);
    const { server, counts } = await countingServer(defer, 64 * 1024);
    const peer = await RawPeer.open(server.endpoint, defer);
    // Windows wide open, so only the socket holds answers back.
    peer.send(
      CLIENT_PREFACE,
      settingsFrame([[Setting.INITIAL_WINDOW_SIZE, WINDOW_MAX]]),
      windowUpdateFrame(0, WINDOW_MAX - 65_535),
    );
    peer.socket.pause();
    const calls = 2400;
    const message = Buffer.alloc(16_000, 3); // one DATA frame each (16,384 at most)
    for (let index = 0; index < calls; index++) peer.send(...call(1 + 2 * index, message));
    // 2,400 answers of 16 KB (38 MB) cannot all sit in loopback buffers: the count must stall.
    // Polled (nothing arrives on the paused socket to wake a frame watcher): stalled = no new call for 300 ms.
    let stable = { calls: -1, since: performance.now() };
    const deadline = performance.now() + 15_000;
    while (performance.now() - stable.since < 300) {
      assert.ok(performance.now() < deadline, `the server kept taking calls (${counts.calls})`);
      if (counts.calls !== stable.calls) stable = { calls: counts.calls, since: performance.now() };
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(counts.calls < calls, `the server answered all ${calls} calls into a socket nobody read`);
    peer.socket.resume();
    const last = 1 + 2 * (calls - 1);
    await peer.reader.until(
      () =>
        peer.reader.frames.some((f) => f.streamId === last && (f.flags & Flag.END_STREAM) !== 0) ? true : undefined,
      'the last answer',
      20_000,
    );
    assert.equal(counts.calls, calls);
  });
});

describe('deadlines', () => {
  test('a call past its deadline fails DEADLINE_EXCEEDED and the server receives RST_STREAM CANCEL', async (t) => {
    const defer = scope(t);
    const hangs = { count: 0 };
    const server = await startEchoServer(defer, { hangs });
    // A proxy between the channel and the server records what the client sends.
    const upstream = new FrameReader(CLIENT_PREFACE.length);
    let proxied = 0;
    const proxy = net.createServer((client) => {
      proxied++;
      const toServer = net.connect({ host: server.endpoint.host, port: server.endpoint.port });
      client.on('data', (chunk: Buffer) => upstream.push(chunk));
      client.pipe(toServer);
      toServer.pipe(client);
      client.on('error', () => toServer.destroy());
      toServer.on('error', () => client.destroy());
      client.on('close', () => toServer.destroy());
      toServer.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    defer(() => new Promise<void>((resolve) => proxy.close(() => resolve())));
    const channel = new GrpcChannel(`127.0.0.1:${(proxy.address() as net.AddressInfo).port}`);
    defer(() => channel.close());

    const error = await rejection(channel.call(HANG, Buffer.from('never answered'), 150));
    assert.equal(error.status, GrpcCode.DEADLINE_EXCEEDED);
    assert.equal(await upstream.reset(1), H2Code.CANCEL);
    await waitFor(() => hangs.count === 1, 'the handler to have had the call');
    // The same channel, on the same connection, still gets answers.
    assert.equal((await channel.call(ECHO, Buffer.from('after'), 3000)).toString(), 'after');
    assert.equal(proxied, 1, 'one connection');
  });
});
