/**
 * Unary gRPC over HTTP/2 cleartext (h2c with prior knowledge, as grpc-go dials an `http://` endpoint),
 * on our own HTTP/2 connection (`http2/connection.ts`, which says why not node:http2): just what etcd
 * clients need from the gateway, and the bench's client for both etcd and us. Protocol:
 * github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md.
 *
 * A call is one HTTP/2 stream: request headers (`:method POST`, `:path /pkg.Service/Method`,
 * `content-type: application/grpc`, optional `grpc-timeout`), one length-prefixed message (a flag byte,
 * 0 for uncompressed, and a 4-byte big-endian length), then the response headers, one message and the
 * trailers with `grpc-status` and a percent-encoded `grpc-message`. A failure before any message is a
 * "trailers-only" response: the status rides in the response headers.
 *
 * Bad input never stops the server: a malformed or oversized message is answered with a status code,
 * a broken HTTP/2 connection is ended with GOAWAY (only that connection).
 */
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { DsError } from '@dsys/kit';
import { type Endpoint, type Logger, parseEndpoint } from '@dsys/runtime-node';
import { H2Connection, type H2Stream, type StreamListener } from './http2/connection.js';
import { encodeHeaders, type HeaderList } from './http2/hpack.js';

/** gRPC status codes (grpc/doc/statuscodes.md). */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcCode = (typeof GrpcCode)[keyof typeof GrpcCode];

/** A call that ended with a non-OK status (from a handler, or as the client received it). */
export class GrpcError extends DsError<{ code: 'GRPC_STATUS'; status: number; message: string }> {
  constructor(status: number, message: string) {
    super({ code: 'GRPC_STATUS', status, message }, `grpc status ${status}: ${message}`);
  }

  get status(): number {
    return this.detail.status;
  }
}

const MESSAGE_PREFIX_BYTES = 5;

/** Frames one uncompressed message. */
export function frameMessage(message: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(MESSAGE_PREFIX_BYTES + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, MESSAGE_PREFIX_BYTES);
  return frame;
}

/** The one message of a unary call's body, or why it is not acceptable. */
export function unframeMessage(
  body: Buffer,
  bytesMax: number,
): { ok: true; message: Buffer } | { ok: false; status: GrpcCode; reason: string } {
  if (body.length < MESSAGE_PREFIX_BYTES) {
    return { ok: false, status: GrpcCode.INTERNAL, reason: `message truncated (${body.length} bytes)` };
  }
  if (body[0] !== 0) {
    return { ok: false, status: GrpcCode.UNIMPLEMENTED, reason: 'compressed messages are not supported' };
  }
  const length = body.readUInt32BE(1);
  if (length > bytesMax) {
    return { ok: false, status: GrpcCode.RESOURCE_EXHAUSTED, reason: `message of ${length} bytes over ${bytesMax}` };
  }
  if (body.length !== MESSAGE_PREFIX_BYTES + length) {
    return { ok: false, status: GrpcCode.INTERNAL, reason: 'a unary call carries exactly one message' };
  }
  return { ok: true, message: body.subarray(MESSAGE_PREFIX_BYTES) };
}

/** Percent-encodes a status message as the spec asks (everything outside printable ASCII, and '%'). */
export function encodeGrpcMessage(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    if (byte >= 0x20 && byte <= 0x7e && byte !== 0x25) out += String.fromCharCode(byte);
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function decodeGrpcMessage(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch (error) {
    if (error instanceof URIError) return text;
    throw error;
  }
}

/** `grpc-timeout`: digits and a unit (H, M, S, m, u, n), as milliseconds; null when absent or malformed. */
export function parseGrpcTimeoutMs(value: string | undefined): number | null {
  if (value === undefined) return null;
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (match === null) return null;
  const amount = Number(match[1]);
  const unitMs: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001 };
  return amount * unitMs[match[2]!]!;
}

// ------------------------------------------------------------------------------------------------
// Server

/** A unary method: request message bytes in, response message bytes out, or a `GrpcError`. */
export type UnaryHandler = (request: Buffer) => Promise<Uint8Array>;

export interface GrpcServerOptions {
  readonly listen: Endpoint;
  /** By method path, e.g. `/etcdserverpb.KV/Range`. */
  readonly methods: ReadonlyMap<string, UnaryHandler>;
  readonly logger: Logger;
  /** Largest request message (etcd's --max-request-bytes is 1.5 MiB). */
  readonly requestBytesMax: number;
  /** A call without a `grpc-timeout` gets this deadline. */
  readonly defaultTimeoutMs: number;
  /** Answers a connection may hold unsent before the server stops reading it (default 16 MiB). */
  readonly outputBytesMax?: number;
}

export interface GrpcServer {
  readonly endpoint: Endpoint;
  close(): Promise<void>;
}

/** The value of header `name` in a decoded list (names and values alternate), or undefined. */
function headerValue(headers: HeaderList, name: string): string | undefined {
  for (let index = 0; index < headers.length; index += 2) {
    if (headers[index] === name) return headers[index + 1];
  }
  return undefined;
}

const RESPONSE_FIELDS = [':status', '200', 'content-type', 'application/grpc', 'grpc-accept-encoding', 'identity'];
const RESPONSE_HEADERS = encodeHeaders(RESPONSE_FIELDS);
const OK_TRAILERS = encodeHeaders(['grpc-status', '0']);
const NOT_GRPC_HEADERS = encodeHeaders([':status', '415']);
/** Streams one client may have open at once (a load generator multiplexes many calls on one connection). */
const STREAMS_PER_CONNECTION_MAX = 4096;
/** How long `close()` lets open calls finish before it drops their connections. */
const CLOSE_GRACE_MS = 2_000;

export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  const { logger } = options;
  const connections = new Set<H2Connection>();
  const server: Server = createServer((socket: Socket) => {
    // Small frames must leave at once: Nagle's algorithm would hold an answer behind the client's delayed ACK.
    socket.setNoDelay(true);
    const connection: H2Connection = new H2Connection(socket, {
      role: 'server',
      bodyBytesMax: options.requestBytesMax + MESSAGE_PREFIX_BYTES,
      maxConcurrentStreams: STREAMS_PER_CONNECTION_MAX,
      ...(options.outputBytesMax === undefined ? {} : { outputBytesMax: options.outputBytesMax }),
      onRequest: (stream) => serveCall(connection, stream, options),
      onOversized: (stream) =>
        respondStatus(connection, stream, GrpcCode.RESOURCE_EXHAUSTED, `request over ${options.requestBytesMax} bytes`),
      onClose: (error) => {
        connections.delete(connection);
        if (error !== null) logger.debug('gRPC connection ended', { error });
      },
    });
    connections.add(connection);
  });
  const endpoint = await new Promise<Endpoint>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listen.port, options.listen.host, () => {
      server.off('error', reject);
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : options.listen.port;
      resolve({ host: options.listen.host, port });
    });
  });
  server.on('error', (error) => logger.error('gRPC listener error', { error }));
  return {
    endpoint,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const connection of connections) connection.shutdown();
        setTimeout(() => {
          for (const connection of connections) connection.destroy('server closing');
        }, CLOSE_GRACE_MS).unref();
      }),
  };
}

function serveCall(connection: H2Connection, stream: H2Stream, options: GrpcServerOptions): void {
  const headers = stream.headers ?? [];
  const contentType = headerValue(headers, 'content-type') ?? '';
  if (headerValue(headers, ':method') !== 'POST' || !contentType.startsWith('application/grpc')) {
    // Not gRPC at all (a browser, curl): plain HTTP 415, as grpc-go answers.
    connection.respond(stream, NOT_GRPC_HEADERS, null, null);
    return;
  }
  const path = headerValue(headers, ':path') ?? '';
  const handler = options.methods.get(path);
  if (handler === undefined) {
    respondStatus(connection, stream, GrpcCode.UNIMPLEMENTED, `unknown method ${path}`);
    return;
  }
  const unframed = unframeMessage(stream.body(), options.requestBytesMax);
  if (!unframed.ok) {
    respondStatus(connection, stream, unframed.status, unframed.reason);
    return;
  }
  const timeoutMs = parseGrpcTimeoutMs(headerValue(headers, 'grpc-timeout')) ?? options.defaultTimeoutMs;
  let done = false;
  const timer = setTimeout(() => {
    if (done) return;
    done = true;
    respondStatus(connection, stream, GrpcCode.DEADLINE_EXCEEDED, 'context deadline exceeded');
  }, timeoutMs);
  handler(unframed.message).then(
    (response) => {
      clearTimeout(timer);
      if (done) return;
      done = true;
      connection.respond(stream, RESPONSE_HEADERS, frameMessage(response), OK_TRAILERS);
    },
    (error: unknown) => {
      clearTimeout(timer);
      if (done) return;
      done = true;
      if (error instanceof GrpcError) respondStatus(connection, stream, error.status as GrpcCode, error.detail.message);
      else {
        options.logger.error('gRPC handler failed', { path, error });
        respondStatus(connection, stream, GrpcCode.INTERNAL, error instanceof Error ? error.message : String(error));
      }
    },
  );
}

/** A trailers-only response: the status in the headers, no body. */
function respondStatus(connection: H2Connection, stream: H2Stream, status: GrpcCode, message: string): void {
  const block = encodeHeaders([
    ...RESPONSE_FIELDS,
    'grpc-status',
    String(status),
    'grpc-message',
    encodeGrpcMessage(message),
  ]);
  connection.respond(stream, block, null, null);
}

// ------------------------------------------------------------------------------------------------
// Client

/** The largest answer a client call accepts (etcd's client allows up to 2 GiB; ranges here stay far below). */
const ANSWER_BYTES_MAX = 64 * 1024 * 1024;

/** One HTTP/2 connection to a gRPC server; calls multiplex on it. */
export class GrpcChannel {
  readonly target: string;
  private connectionNow: H2Connection | null = null;
  private closed = false;

  constructor(target: string) {
    this.target = target;
  }

  private connection(): H2Connection {
    if (this.closed) throw new GrpcError(GrpcCode.CANCELLED, 'channel closed');
    const current = this.connectionNow;
    if (current?.usable) return current;
    const endpoint = parseEndpoint(this.target);
    if (!endpoint.ok) throw new GrpcError(GrpcCode.INVALID_ARGUMENT, endpoint.error);
    const { host, port } = endpoint.value;
    // As grpc-go: no Nagle delay on small frames. Writes before the connect completes are buffered.
    const socket = netConnect({ host, port, noDelay: true });
    const connection: H2Connection = new H2Connection(socket, {
      role: 'client',
      bodyBytesMax: ANSWER_BYTES_MAX,
      onClose: () => {
        if (this.connectionNow === connection) this.connectionNow = null;
      },
    });
    this.connectionNow = connection;
    return connection;
  }

  /** One unary call: resolves with the response message, rejects with a `GrpcError`. */
  call(path: string, request: Uint8Array, timeoutMs: number): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      let connection: H2Connection;
      try {
        connection = this.connection();
      } catch (error) {
        reject(error instanceof GrpcError ? error : new GrpcError(GrpcCode.UNAVAILABLE, String(error)));
        return;
      }
      const headerBlock = encodeHeaders([
        ':method',
        'POST',
        ':scheme',
        'http',
        ':path',
        path,
        ':authority',
        this.target,
        'content-type',
        'application/grpc',
        'te',
        'trailers',
        'grpc-timeout',
        `${Math.max(1, Math.ceil(timeoutMs))}m`,
      ]);
      let settled = false;
      const listener: StreamListener = {
        onEnd: (ended) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const answer = answerOf(ended);
          if (answer instanceof GrpcError) reject(answer);
          else resolve(answer);
        },
        onFail: (_failed, reason) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          reject(new GrpcError(GrpcCode.UNAVAILABLE, reason));
        },
      };
      const stream = connection.request(headerBlock, frameMessage(request), listener);
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        connection.cancel(stream);
        reject(new GrpcError(GrpcCode.DEADLINE_EXCEEDED, `no answer within ${timeoutMs} ms`));
      }, timeoutMs);
    });
  }

  close(): void {
    this.closed = true;
    this.connectionNow?.shutdown();
    this.connectionNow = null;
  }
}

/** A finished call's message, or its non-OK status as an error. */
function answerOf(stream: H2Stream): Buffer | GrpcError {
  const headers = stream.headers ?? [];
  const httpStatus = headerValue(headers, ':status');
  // The status rides in the trailers, or in the headers of a trailers-only answer.
  const statusFields = stream.trailers ?? headers;
  const grpcStatus = headerValue(statusFields, 'grpc-status');
  if (grpcStatus === undefined) {
    if (httpStatus !== '200') return new GrpcError(GrpcCode.UNKNOWN, `HTTP status ${httpStatus}`);
    return new GrpcError(GrpcCode.UNKNOWN, 'answer without a grpc-status');
  }
  const status = Number(grpcStatus);
  if (status !== GrpcCode.OK) {
    return new GrpcError(status, decodeGrpcMessage(headerValue(statusFields, 'grpc-message') ?? ''));
  }
  const unframed = unframeMessage(stream.body(), ANSWER_BYTES_MAX);
  return unframed.ok ? unframed.message : new GrpcError(unframed.status, unframed.reason);
}
