/**
 * A client of a node's built-in client port (client-wire.ts). One TCP connection, many outstanding
 * calls matched by `requestId`. Failures are typed so that a history recorder can tell a definite
 * failure ('REJECTED': status 'fail') from an indeterminate one ('TIMEOUT', 'CONNECTION_LOST': status
 * 'info', the request may still take effect). The client never retries: that is the caller's decision.
 */
import { connect as tcpConnect } from 'node:net';
import { decode, describeDecodeError, encode, type Schema } from '@dsys/kit';
import { type ClientWire, clientWire, type ReplyFrame } from './client-wire.js';
import { type Endpoint, formatEndpoint } from './endpoint.js';
import { ClientError } from './errors.js';
import { describeFrameError, encodeFrame, FrameDecoder } from './frame.js';

export interface NodeClientOptions<Request, Response> {
  readonly request: Schema<Request>;
  readonly response: Schema<Response>;
  readonly frameBytesMax?: number;
  readonly connectTimeoutMs?: number;
  /** Default for `call`; a call never waits forever. */
  readonly callTimeoutMs?: number;
}

interface PendingCall<Response> {
  resolve(response: Response): void;
  reject(error: ClientError): void;
  timer: NodeJS.Timeout;
}

export class NodeClient<Request, Response> {
  readonly endpoint: Endpoint;
  private readonly socket: import('node:net').Socket;
  private readonly wire: ClientWire<Request, Response>;
  private readonly decoder: FrameDecoder;
  private readonly callTimeoutMs: number;
  private readonly pending = new Map<number, PendingCall<Response>>();
  private nextRequestId = 1;
  private lost: ClientError | null = null;

  private constructor(
    socket: import('node:net').Socket,
    endpoint: Endpoint,
    options: NodeClientOptions<Request, Response>,
  ) {
    this.socket = socket;
    this.endpoint = endpoint;
    this.wire = clientWire(options);
    this.decoder = new FrameDecoder({ frameBytesMax: options.frameBytesMax ?? 16 * 1024 * 1024 });
    this.callTimeoutMs = options.callTimeoutMs ?? 10_000;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.fail(`socket error: ${error.message}`));
    socket.on('close', () => this.fail('connection closed by the node'));
  }

  static connect<Request, Response>(
    endpoint: Endpoint,
    options: NodeClientOptions<Request, Response>,
  ): Promise<NodeClient<Request, Response>> {
    const timeoutMs = options.connectTimeoutMs ?? 5_000;
    return new Promise((resolve, reject) => {
      const socket = tcpConnect({ host: endpoint.host, port: endpoint.port });
      const fail = (reason: string) => {
        clearTimeout(timer);
        socket.destroy();
        reject(new ClientError({ code: 'CONNECT_FAILED', endpoint: formatEndpoint(endpoint), reason }));
      };
      const timer = setTimeout(() => fail(`no connection within ${timeoutMs} ms`), timeoutMs);
      socket.once('error', (error) => fail(error.message));
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        socket.setNoDelay(true);
        resolve(new NodeClient(socket, endpoint, options));
      });
    });
  }

  get outstanding(): number {
    return this.pending.size;
  }

  /** Sends `request` and waits for its response; rejects with a `ClientError`. */
  call(request: Request, options: { timeoutMs?: number } = {}): Promise<Response> {
    if (this.lost !== null) return Promise.reject(this.lost);
    const requestId = this.nextRequestId++;
    const timeoutMs = options.timeoutMs ?? this.callTimeoutMs;
    return new Promise<Response>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new ClientError({ code: 'TIMEOUT', timeoutMs }));
      }, timeoutMs);
      this.pending.set(requestId, { resolve, reject, timer });
      this.socket.write(encodeFrame(encode(this.wire.requestFrame, { requestId, request })));
    });
  }

  /** Sends raw bytes (tests of the node's defences use this to send garbage on a real socket). */
  writeRaw(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Fails outstanding calls with CONNECTION_LOST and drops the connection. */
  close(): Promise<void> {
    if (this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.fail('closed by the client');
      // Not end(): a server that never reads would never finish the close handshake.
      this.socket.destroy();
    });
  }

  private onData(chunk: Buffer): void {
    const { frames, error } = this.decoder.push(chunk);
    for (const frame of frames) {
      const reply = decode(this.wire.replyFrame, frame);
      if (!reply.ok) {
        this.fail(`bad response: ${describeDecodeError(reply.error)}`, 'BAD_RESPONSE');
        return;
      }
      this.settle(reply.value);
    }
    if (error !== null) this.fail(`bad response: ${describeFrameError(error)}`, 'BAD_RESPONSE');
  }

  private settle(reply: ReplyFrame<Response>): void {
    const call = this.pending.get(reply.requestId);
    // A reply after our timeout fired is expected and harmless.
    if (call === undefined) return;
    this.pending.delete(reply.requestId);
    clearTimeout(call.timer);
    if (reply.type === 'response') call.resolve(reply.response);
    else call.reject(new ClientError({ code: 'REJECTED', reason: reply.reason }));
  }

  private fail(reason: string, code: 'CONNECTION_LOST' | 'BAD_RESPONSE' = 'CONNECTION_LOST'): void {
    if (this.lost === null) {
      this.lost =
        code === 'BAD_RESPONSE'
          ? new ClientError({ code, reason })
          : new ClientError({ code: 'CONNECTION_LOST', reason });
    }
    const calls = [...this.pending.values()];
    this.pending.clear();
    // Outstanding calls are indeterminate whatever broke the connection.
    for (const call of calls) {
      clearTimeout(call.timer);
      call.reject(new ClientError({ code: 'CONNECTION_LOST', reason }));
    }
    if (!this.socket.destroyed && code === 'BAD_RESPONSE') this.socket.destroy();
  }
}
