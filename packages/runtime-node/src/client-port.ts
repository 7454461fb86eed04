/**
 * The node's built-in client listener (see client-wire.ts for the frames). Each connection gets a
 * fresh `ClientId`; its requests become `request` events and the protocol's `reply` effects come back
 * here. Limits per connection: `requestsInFlightMax` outstanding requests (more are rejected, not
 * queued), the frame size and frame deadline of every port, and a write buffer bound (a client that
 * sends requests but never reads replies is closed as SLOW_CONSUMER).
 */
import { createServer, type Server, type Socket } from 'node:net';
import {
  type ClientId,
  decode,
  describeDecodeError,
  encode,
  type RequestId,
  RequestId as toRequestId,
} from '@dsys/kit';
import type { ClientWire, ReplyFrame } from './client-wire.js';
import { type ConnectionLimits, coalesceWritesDefault, FramedConnection } from './connection.js';
import type { Endpoint } from './endpoint.js';
import type { Logger } from './logger.js';
import { listen } from './peer-transport.js';
import type { TransportMetrics } from './transport-metrics.js';

export interface ClientPortLimits extends ConnectionLimits {
  readonly connectionsMax: number;
  readonly requestsInFlightMax: number;
}

export interface ClientPortOptions<Request, Response> {
  readonly listen: Endpoint;
  readonly wire: ClientWire<Request, Response>;
  readonly limits: ClientPortLimits;
  readonly logger: Logger;
  readonly metrics: TransportMetrics;
  readonly allocateClientId: () => ClientId;
  readonly onRequest: (client: ClientId, requestId: RequestId, request: Request) => void;
  /** Coalesce each client's replies of one turn (see connection.ts; default: `coalesceWritesDefault()`). */
  readonly coalesceWrites?: boolean;
}

interface ClientSession {
  readonly client: ClientId;
  readonly connection: FramedConnection;
  readonly inFlight: Set<number>;
}

export class ClientPort<Request, Response> {
  private readonly options: ClientPortOptions<Request, Response>;
  private readonly server: Server;
  private readonly sessions = new Map<ClientId, ClientSession>();
  private endpointNow: Endpoint;
  private accepting = true;
  private paused = false;
  private serverClosed: Promise<void> | null = null;

  private constructor(options: ClientPortOptions<Request, Response>, server: Server, endpoint: Endpoint) {
    this.options = options;
    this.server = server;
    this.endpointNow = endpoint;
  }

  static async start<Request, Response>(
    options: ClientPortOptions<Request, Response>,
  ): Promise<ClientPort<Request, Response>> {
    let port: ClientPort<Request, Response> | null = null;
    const server = createServer((socket) => port?.accept(socket));
    const endpoint = await listen(server, options.listen);
    port = new ClientPort(options, server, endpoint);
    server.on('error', (error) => options.logger.error('client listener error', { error }));
    return port;
  }

  get endpoint(): Endpoint {
    return this.endpointNow;
  }

  get connectionCount(): number {
    return this.sessions.size;
  }

  /** Sends the protocol's response; false if the client is gone or never asked (the reply is dropped). */
  reply(client: ClientId, requestId: RequestId, response: Response): boolean {
    return this.write(client, { type: 'response', requestId, response });
  }

  reject(client: ClientId, requestId: RequestId, reason: string): boolean {
    return this.write(client, { type: 'rejected', requestId, reason });
  }

  setPaused(paused: boolean): void {
    this.paused = paused;
    for (const session of this.sessions.values()) {
      if (paused) session.connection.socket.pause();
      else session.connection.socket.resume();
    }
  }

  /**
   * Stops accepting connections and requests; open connections stay until `close` (so replies held
   * behind the last fsync can still be delivered).
   */
  stopAccepting(): void {
    this.accepting = false;
    // The server's close callback fires only once every connection is gone, so it is awaited in close().
    this.serverClosed ??= new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Closes every connection, letting replies already written go out first. */
  async close(): Promise<void> {
    this.stopAccepting();
    const closing = [...this.sessions.values()].map(
      (session) =>
        new Promise<void>((resolve) => {
          session.connection.socket.once('close', () => resolve());
          session.connection.close('SHUTDOWN', 'node shutting down');
        }),
    );
    await Promise.all([...closing, this.serverClosed]);
  }

  private write(client: ClientId, frame: ReplyFrame<Response>): boolean {
    const session = this.sessions.get(client);
    if (session === undefined || !session.inFlight.delete(frame.requestId)) return false;
    return session.connection.send(encode(this.options.wire.replyFrame, frame));
  }

  private accept(socket: Socket): void {
    const { limits, logger, metrics } = this.options;
    if (!this.accepting || this.sessions.size >= limits.connectionsMax) {
      logger.warn('refusing client connection', {
        remote: socket.remoteAddress ?? '?',
        reason: this.accepting ? 'too many connections' : 'shutting down',
      });
      metrics.port('client').closed('TOO_MANY_CONNECTIONS').inc();
      socket.destroy();
      return;
    }
    const client = this.options.allocateClientId();
    const connection: FramedConnection = new FramedConnection(socket, {
      limits,
      logger: logger.child({ component: 'client-port', client }),
      metrics: metrics.port('client'),
      coalesceWrites: this.options.coalesceWrites ?? coalesceWritesDefault(),
      onFrame: (frame) => this.onFrame(session, frame),
      onClose: () => this.sessions.delete(client),
    });
    const session: ClientSession = { client, connection, inFlight: new Set() };
    this.sessions.set(client, session);
    if (this.paused) socket.pause();
  }

  private onFrame(session: ClientSession, frame: Uint8Array): void {
    const decoded = decode(this.options.wire.requestFrame, frame);
    if (!decoded.ok) {
      session.connection.close('DECODE_ERROR', `request: ${describeDecodeError(decoded.error)}`);
      return;
    }
    const { requestId, request } = decoded.value;
    const id = toRequestId(requestId);
    let refusal: string | null = null;
    if (!this.accepting) refusal = 'node shutting down';
    else if (session.inFlight.has(requestId)) refusal = `requestId ${requestId} is already in flight`;
    else if (session.inFlight.size >= this.options.limits.requestsInFlightMax) {
      refusal = `more than ${this.options.limits.requestsInFlightMax} requests in flight`;
    }
    if (refusal !== null) {
      if (!session.inFlight.has(requestId)) {
        session.connection.send(encode(this.options.wire.replyFrame, { type: 'rejected', requestId, reason: refusal }));
      } else {
        // A duplicate id cannot be answered without confusing the first request's reply: bad input.
        session.connection.close('DUPLICATE_REQUEST', refusal);
      }
      return;
    }
    session.inFlight.add(requestId);
    this.options.onRequest(session.client, id, request);
  }
}
