/**
 * Unary gRPC over HTTP/2 cleartext (h2c with prior knowledge, as grpc-go dials an `http://` endpoint),
 * on `node:http2`: just what etcd clients need from the gateway, and the bench's client for both etcd
 * and us. Protocol: github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md.
 *
 * A call is one HTTP/2 stream: request headers (`:method POST`, `:path /pkg.Service/Method`,
 * `content-type: application/grpc`, optional `grpc-timeout`), one length-prefixed message (a flag byte,
 * 0 for uncompressed, and a 4-byte big-endian length), then the response headers, one message and the
 * trailers with `grpc-status` and a percent-encoded `grpc-message`. A failure before any message is a
 * "trailers-only" response: the status rides in the response headers.
 *
 * Bad input never stops the server: a malformed or oversized message is answered with a status code,
 * a broken HTTP/2 session is destroyed (node's http2 answers protocol errors with GOAWAY).
 */
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  constants,
  createServer,
  type Http2Server,
  type IncomingHttpHeaders,
  type IncomingHttpStatusHeader,
  type ServerHttp2Stream,
} from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { DsError } from '@dsys/kit';
import { type Endpoint, type Logger, parseEndpoint } from '@dsys/runtime-node';

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
}

export interface GrpcServer {
  readonly endpoint: Endpoint;
  close(): Promise<void>;
}

const RESPONSE_HEADERS = Object.freeze({
  [constants.HTTP2_HEADER_STATUS]: 200,
  [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
  'grpc-accept-encoding': 'identity',
});
const OK_TRAILERS = Object.freeze({ 'grpc-status': '0' });

export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  const { logger } = options;
  const server: Http2Server = createServer({
    // Generous per-session memory: a load generator multiplexes many calls on one connection.
    maxSessionMemory: 64,
    settings: { maxConcurrentStreams: 4096 },
  });
  const sessions = new Set<import('node:http2').ServerHttp2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    session.on('error', (error) => logger.debug('http2 session error', { error: error.message }));
  });
  // Small frames must leave at once: Nagle's algorithm would hold an answer behind the client's delayed ACK.
  server.on('connection', (socket: Socket) => socket.setNoDelay(true));
  server.on('sessionError', (error) => logger.debug('http2 session error', { error: error.message }));
  server.on('stream', (stream, headers) => serveStream(stream, headers, options));
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
        for (const session of sessions) session.close();
      }),
  };
}

function serveStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, options: GrpcServerOptions): void {
  stream.on('error', (error) => options.logger.debug('http2 stream error', { error: error.message }));
  const contentType = String(headers[constants.HTTP2_HEADER_CONTENT_TYPE] ?? '');
  if (headers[constants.HTTP2_HEADER_METHOD] !== 'POST' || !contentType.startsWith('application/grpc')) {
    // Not gRPC at all (a browser, curl): plain HTTP 415, as grpc-go answers.
    stream.respond({ [constants.HTTP2_HEADER_STATUS]: 415 }, { endStream: true });
    return;
  }
  const path = String(headers[constants.HTTP2_HEADER_PATH] ?? '');
  const handler = options.methods.get(path);
  if (handler === undefined) {
    respondStatus(stream, GrpcCode.UNIMPLEMENTED, `unknown method ${path}`);
    return;
  }
  const timeoutMs = parseGrpcTimeoutMs(headers['grpc-timeout'] as string | undefined) ?? options.defaultTimeoutMs;
  const chunks: Buffer[] = [];
  let received = 0;
  let done = false;
  stream.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received > options.requestBytesMax + MESSAGE_PREFIX_BYTES && !done) {
      done = true;
      respondStatus(stream, GrpcCode.RESOURCE_EXHAUSTED, `request over ${options.requestBytesMax} bytes`);
      return;
    }
    if (!done) chunks.push(chunk);
  });
  stream.on('end', () => {
    if (done) return;
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    const unframed = unframeMessage(body, options.requestBytesMax);
    if (!unframed.ok) {
      done = true;
      respondStatus(stream, unframed.status, unframed.reason);
      return;
    }
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      respondStatus(stream, GrpcCode.DEADLINE_EXCEEDED, 'context deadline exceeded');
    }, timeoutMs);
    handler(unframed.message).then(
      (response) => {
        clearTimeout(timer);
        if (done) return;
        done = true;
        respondMessage(stream, response);
      },
      (error: unknown) => {
        clearTimeout(timer);
        if (done) return;
        done = true;
        if (error instanceof GrpcError) respondStatus(stream, error.status as GrpcCode, error.detail.message);
        else {
          options.logger.error('gRPC handler failed', { path, error });
          respondStatus(stream, GrpcCode.INTERNAL, error instanceof Error ? error.message : String(error));
        }
      },
    );
  });
}

function respondMessage(stream: ServerHttp2Stream, message: Uint8Array): void {
  if (stream.destroyed || stream.closed) return;
  stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
  stream.once('wantTrailers', () => stream.sendTrailers(OK_TRAILERS));
  stream.end(frameMessage(message));
}

/** A trailers-only response: the status in the headers, no body. */
function respondStatus(stream: ServerHttp2Stream, status: GrpcCode, message: string): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) {
    stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    return;
  }
  stream.respond(
    {
      ...RESPONSE_HEADERS,
      'grpc-status': String(status),
      'grpc-message': encodeGrpcMessage(message),
    },
    { endStream: true },
  );
}

// ------------------------------------------------------------------------------------------------
// Client

/** One HTTP/2 connection to a gRPC server; calls multiplex on it. */
export class GrpcChannel {
  readonly target: string;
  private session: ClientHttp2Session | null = null;
  private closed = false;

  constructor(target: string) {
    this.target = target;
  }

  private connection(): ClientHttp2Session {
    if (this.closed) throw new GrpcError(GrpcCode.CANCELLED, 'channel closed');
    const current = this.session;
    if (current !== null && !current.closed && !current.destroyed) return current;
    const endpoint = parseEndpoint(this.target);
    if (!endpoint.ok) throw new GrpcError(GrpcCode.INVALID_ARGUMENT, endpoint.error);
    const { host, port } = endpoint.value;
    const session = connect(`http://${this.target}`, {
      settings: { enablePush: false },
      maxSessionMemory: 64,
      // As grpc-go: no Nagle delay on small frames.
      createConnection: () => netConnect({ host, port, noDelay: true }),
    });
    session.on('error', () => {
      // Each call on it fails with its own stream error; the next call reconnects.
    });
    session.on('close', () => {
      if (this.session === session) this.session = null;
    });
    this.session = session;
    return session;
  }

  /** One unary call: resolves with the response message, rejects with a `GrpcError`. */
  call(path: string, request: Uint8Array, timeoutMs: number): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      let stream: ClientHttp2Stream;
      try {
        stream = this.connection().request({
          [constants.HTTP2_HEADER_METHOD]: 'POST',
          [constants.HTTP2_HEADER_PATH]: path,
          [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
          te: 'trailers',
          'grpc-timeout': `${Math.max(1, Math.ceil(timeoutMs))}m`,
        });
      } catch (error) {
        reject(error instanceof GrpcError ? error : new GrpcError(GrpcCode.UNAVAILABLE, String(error)));
        return;
      }
      const chunks: Buffer[] = [];
      let status: number | null = null;
      let statusMessage = '';
      const readStatus = (headers: IncomingHttpHeaders & IncomingHttpStatusHeader) => {
        const value = headers['grpc-status'];
        if (value === undefined) return;
        status = Number(value);
        statusMessage = decodeGrpcMessage(String(headers['grpc-message'] ?? ''));
      };
      const timer = setTimeout(() => {
        stream.close(constants.NGHTTP2_CANCEL);
        reject(new GrpcError(GrpcCode.DEADLINE_EXCEEDED, `no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      stream.on('response', (headers) => {
        const httpStatus = Number(headers[constants.HTTP2_HEADER_STATUS]);
        if (httpStatus !== 200) {
          status = GrpcCode.UNKNOWN;
          statusMessage = `HTTP status ${httpStatus}`;
        }
        readStatus(headers);
      });
      stream.on('trailers', (headers) => readStatus(headers as IncomingHttpHeaders & IncomingHttpStatusHeader));
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', (error) => {
        clearTimeout(timer);
        reject(new GrpcError(GrpcCode.UNAVAILABLE, error.message));
      });
      stream.on('close', () => {
        clearTimeout(timer);
        if (status === null) {
          reject(new GrpcError(GrpcCode.UNAVAILABLE, `stream closed without a status (${stream.rstCode})`));
          return;
        }
        if (status !== GrpcCode.OK) {
          reject(new GrpcError(status, statusMessage));
          return;
        }
        const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        const unframed = unframeMessage(body, 64 * 1024 * 1024);
        if (unframed.ok) resolve(unframed.message);
        else reject(new GrpcError(unframed.status, unframed.reason));
      });
      stream.end(frameMessage(request));
    });
  }

  close(): void {
    this.closed = true;
    this.session?.close();
    this.session = null;
  }
}
