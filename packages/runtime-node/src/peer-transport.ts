/**
 * Protocol messages between nodes over TCP. Each node dials one outbound connection per peer and
 * sends only on it; it receives only on the connections peers dialled to it. Messages are unreliable
 * by contract (kit/protocol.ts), so the transport drops rather than blocks: a bounded queue per peer
 * that sheds its oldest messages when the peer is slow or down.
 *
 * Handshake: the dialler sends Hello {magic, version, clusterId, from, to}; the listener checks it
 * and answers Welcome {accept} or {reject, reason} (then closes). Peers are identified by the
 * handshake, never by address: `--peers` may name a fault-injecting proxy instead of the peer.
 *
 * Reconnection: exponential backoff from `reconnectDelayMsMin` to `reconnectDelayMsMax` with equal
 * jitter (half fixed, half random), reset once a handshake succeeds, so a restarted cluster does not
 * reconnect in lockstep.
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import {
  decode,
  describeDecodeError,
  encode,
  type Infer,
  type NodeId,
  type Schema,
  s,
  NodeId as toNodeId,
  Writer,
} from '@dsys/kit';
import { BoundedQueue } from './bounded-queue.js';
import { type CloseReason, type ConnectionLimits, coalesceWritesDefault, FramedConnection } from './connection.js';
import { type Endpoint, formatEndpoint } from './endpoint.js';
import type { Logger } from './logger.js';
import type { PortMetrics, TransportMetrics } from './transport-metrics.js';

export const PEER_MAGIC = 0x4453_5950; // "DSYP"
export const PEER_PROTOCOL_VERSION = 1;
export const CLUSTER_ID_BYTES_MAX = 128;

export const PeerHello = s.struct({
  magic: s.u32,
  version: s.u8,
  clusterId: s.string({ bytesMax: CLUSTER_ID_BYTES_MAX }),
  from: s.u32,
  to: s.u32,
});
export const PeerWelcome = s.union('type', {
  accept: s.struct({ magic: s.u32, nodeId: s.u32 }),
  reject: s.struct({ reason: s.string({ bytesMax: 512 }) }),
});
type PeerWelcome = Infer<typeof PeerWelcome>;

export interface PeerLimits extends ConnectionLimits {
  readonly handshakeTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly reconnectDelayMsMin: number;
  readonly reconnectDelayMsMax: number;
  readonly sendQueueMessagesMax: number;
  readonly sendQueueBytesMax: number;
  readonly inboundConnectionsMax: number;
}

export interface PeerTransportOptions<Message> {
  readonly self: NodeId;
  readonly clusterId: string;
  /** Where to dial each peer (this node's own entry is ignored). */
  readonly peers: ReadonlyMap<NodeId, Endpoint>;
  readonly listen: Endpoint;
  readonly schema: Schema<Message>;
  readonly limits: PeerLimits;
  readonly logger: Logger;
  readonly metrics: TransportMetrics;
  readonly onMessage: (from: NodeId, message: Message) => void;
  /** Coalesce each peer's messages of one turn (see connection.ts; default: `coalesceWritesDefault()`). */
  readonly coalesceWrites?: boolean;
}

/** Equal jitter: half the exponential delay fixed, half uniformly random. */
export function backoffDelayMs(
  attempt: number,
  limits: Pick<PeerLimits, 'reconnectDelayMsMin' | 'reconnectDelayMsMax'>,
) {
  const exponential = Math.min(limits.reconnectDelayMsMax, limits.reconnectDelayMsMin * 2 ** Math.min(attempt, 30));
  return exponential / 2 + Math.random() * (exponential / 2);
}

class PeerLink {
  private readonly transport: PeerTransport<unknown>;
  private readonly peer: NodeId;
  private readonly endpoint: Endpoint;
  private readonly logger: Logger;
  private readonly queue: BoundedQueue;
  private connection: FramedConnection | null = null;
  private open = false;
  private attempts = 0;
  private timer: NodeJS.Timeout | null = null;
  private welcomeDeadline: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly labels;

  constructor(transport: PeerTransport<unknown>, peer: NodeId, endpoint: Endpoint) {
    this.transport = transport;
    this.peer = peer;
    this.endpoint = endpoint;
    this.logger = transport.logger.child({ component: 'peer-link', peer, endpoint: formatEndpoint(endpoint) });
    const { limits } = transport;
    this.queue = new BoundedQueue(limits.sendQueueMessagesMax, limits.sendQueueBytesMax);
    const metrics = transport.metrics;
    this.labels = {
      connected: metrics.peerConnected.child({ peer: String(peer) }),
      reconnects: metrics.reconnects.child({ peer: String(peer) }),
      queued: metrics.peerQueueMessages.child({ peer: String(peer) }),
      dropped: metrics.messagesDropped.child({ peer: String(peer), reason: 'queue_full' }),
    };
  }

  get connected(): boolean {
    return this.open;
  }

  start(): void {
    this.dial();
  }

  enqueue(payload: Uint8Array): void {
    const dropped = this.queue.push(payload);
    if (dropped > 0) this.labels.dropped.inc(dropped);
    if (this.open) this.flush();
    this.labels.queued.set(this.queue.length);
  }

  stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const connection = this.connection;
    if (connection === null || connection.closed) return Promise.resolve();
    if (this.open) this.flush();
    return new Promise<void>((resolve) => {
      connection.socket.once('close', () => resolve());
      connection.close('SHUTDOWN', 'node shutting down');
    });
  }

  private dial(): void {
    if (this.stopped) return;
    const { limits, metrics } = this.transport;
    if (this.attempts > 0) this.labels.reconnects.inc();
    this.attempts++;
    const socket: Socket = tcpConnect({ host: this.endpoint.host, port: this.endpoint.port });
    const connection = new FramedConnection(socket, {
      limits,
      logger: this.logger,
      metrics: metrics.port('peer_out'),
      coalesceWrites: this.transport.coalesceWrites,
      onFrame: (frame) => this.onFrame(connection, frame),
      onClose: (reason, detail) => this.onClose(connection, reason, detail),
    });
    this.connection = connection;
    const deadline = setTimeout(() => {
      const reason: CloseReason = socket.connecting ? 'CONNECT_TIMEOUT' : 'HANDSHAKE_TIMEOUT';
      connection.close(reason, `no ${socket.connecting ? 'connection' : 'welcome'} within the deadline`);
    }, limits.connectTimeoutMs + limits.handshakeTimeoutMs);
    deadline.unref();
    socket.once('close', () => clearTimeout(deadline));
    socket.once('connect', () => {
      const { clusterId, self } = this.transport;
      const hello = { magic: PEER_MAGIC, version: PEER_PROTOCOL_VERSION, clusterId, from: self, to: this.peer };
      connection.send(encode(PeerHello, hello));
    });
    this.welcomeDeadline = deadline;
  }

  private onFrame(connection: FramedConnection, frame: Uint8Array): void {
    if (this.open) {
      connection.close('UNEXPECTED_FRAME', 'a peer sends nothing back after the welcome');
      return;
    }
    const welcome = decode(PeerWelcome, frame);
    if (!welcome.ok) {
      connection.close('BAD_HANDSHAKE', `welcome: ${describeDecodeError(welcome.error)}`);
      return;
    }
    this.onWelcome(connection, welcome.value);
  }

  private onWelcome(connection: FramedConnection, welcome: PeerWelcome): void {
    if (welcome.type === 'reject') {
      this.logger.warn('peer rejected our handshake', { reason: welcome.reason });
      connection.close('HANDSHAKE_REJECTED', welcome.reason);
      return;
    }
    if (welcome.magic !== PEER_MAGIC || welcome.nodeId !== this.peer) {
      connection.close('BAD_HANDSHAKE', `welcome from node ${welcome.nodeId}, expected ${this.peer}`);
      return;
    }
    if (this.welcomeDeadline !== null) clearTimeout(this.welcomeDeadline);
    this.open = true;
    this.attempts = 0;
    this.labels.connected.set(1);
    this.logger.info('peer link up', {});
    connection.socket.on('drain', () => this.flush());
    this.flush();
  }

  /** Writes queued messages while the socket's buffer has room; the rest waits for 'drain'. */
  private flush(): void {
    const connection = this.connection;
    if (connection === null || !this.open) return;
    const limit = this.transport.limits.writeBufferBytesMax;
    while (this.queue.length > 0 && connection.bufferedBytes < limit) {
      if (!connection.send(this.queue.shift()!)) break;
    }
    this.labels.queued.set(this.queue.length);
  }

  private onClose(connection: FramedConnection, reason: CloseReason, detail: string): void {
    if (connection !== this.connection) return;
    const wasOpen = this.open;
    this.open = false;
    this.connection = null;
    this.labels.connected.set(0);
    if (this.stopped) return;
    const delayMs = backoffDelayMs(Math.max(0, this.attempts - 1), this.transport.limits);
    const log = wasOpen ? this.logger.info.bind(this.logger) : this.logger.debug.bind(this.logger);
    log('peer link down; reconnecting', { reason, detail, delayMs: Math.round(delayMs) });
    this.timer = setTimeout(() => {
      this.timer = null;
      this.dial();
    }, delayMs);
  }
}

/** The inbound side: one handshake, then messages from the peer it named. */
class InboundPeer<Message> {
  from: NodeId | null = null;
  readonly connection: FramedConnection;
  private readonly transport: PeerTransport<Message>;
  private readonly handshakeTimer: NodeJS.Timeout;

  constructor(transport: PeerTransport<Message>, socket: Socket) {
    this.transport = transport;
    const { limits, logger, metrics } = transport;
    this.connection = new FramedConnection(socket, {
      limits,
      logger: logger.child({ component: 'peer-in' }),
      metrics: metrics.port('peer_in'),
      coalesceWrites: transport.coalesceWrites,
      onFrame: (frame) => this.onFrame(frame),
      onClose: () => {
        clearTimeout(this.handshakeTimer);
        transport.forget(this);
      },
    });
    this.handshakeTimer = setTimeout(() => {
      this.connection.close('HANDSHAKE_TIMEOUT', `no hello within ${limits.handshakeTimeoutMs} ms`);
    }, limits.handshakeTimeoutMs);
    this.handshakeTimer.unref();
  }

  private onFrame(frame: Uint8Array): void {
    if (this.from === null) {
      this.onHello(frame);
      return;
    }
    const decoded = decode(this.transport.schema, frame);
    if (!decoded.ok) {
      this.connection.close('DECODE_ERROR', `message from node ${this.from}: ${describeDecodeError(decoded.error)}`);
      return;
    }
    this.transport.deliver(this.from, decoded.value);
  }

  private onHello(frame: Uint8Array): void {
    const hello = decode(PeerHello, frame);
    if (!hello.ok) {
      this.connection.close('BAD_HANDSHAKE', `hello: ${describeDecodeError(hello.error)}`);
      return;
    }
    const problem = this.transport.checkHello(hello.value);
    if (problem !== null) {
      this.connection.send(encode(PeerWelcome, { type: 'reject', reason: problem }));
      this.connection.close('BAD_HANDSHAKE', problem, true);
      return;
    }
    clearTimeout(this.handshakeTimer);
    this.from = toNodeId(hello.value.from);
    this.connection.send(encode(PeerWelcome, { type: 'accept', magic: PEER_MAGIC, nodeId: this.transport.self }));
    this.transport.adopt(this);
  }
}

export class PeerTransport<Message> {
  readonly self: NodeId;
  readonly clusterId: string;
  readonly schema: Schema<Message>;
  readonly limits: PeerLimits;
  readonly logger: Logger;
  readonly metrics: TransportMetrics;
  readonly coalesceWrites: boolean;
  private readonly onMessage: (from: NodeId, message: Message) => void;
  private readonly links = new Map<NodeId, PeerLink>();
  private readonly inbound = new Set<InboundPeer<Message>>();
  private readonly inboundByPeer = new Map<NodeId, InboundPeer<Message>>();
  private readonly server: Server;
  private readonly writer = new Writer();
  private readonly tooLarge: PortMetrics['framesOut'];
  private endpointNow: Endpoint;
  private paused = false;

  private constructor(options: PeerTransportOptions<Message>, server: Server, endpoint: Endpoint) {
    this.self = options.self;
    this.clusterId = options.clusterId;
    this.schema = options.schema;
    this.limits = options.limits;
    this.logger = options.logger;
    this.metrics = options.metrics;
    this.coalesceWrites = options.coalesceWrites ?? coalesceWritesDefault();
    this.onMessage = options.onMessage;
    this.server = server;
    this.endpointNow = endpoint;
    this.tooLarge = options.metrics.messagesDropped.child({ peer: 'any', reason: 'too_large' });
    for (const [peer, address] of options.peers) {
      if (peer !== options.self) this.links.set(peer, new PeerLink(this as PeerTransport<unknown>, peer, address));
    }
  }

  /** Listens on `options.listen` and starts dialling every peer. */
  static async start<Message>(options: PeerTransportOptions<Message>): Promise<PeerTransport<Message>> {
    let transport: PeerTransport<Message> | null = null;
    const server = createServer((socket) => transport?.accept(socket));
    const endpoint = await listen(server, options.listen);
    transport = new PeerTransport(options, server, endpoint);
    server.on('error', (error) => options.logger.error('peer listener error', { error }));
    for (const link of transport.links.values()) link.start();
    return transport;
  }

  get endpoint(): Endpoint {
    return this.endpointNow;
  }

  isConnected(peer: NodeId): boolean {
    return this.links.get(peer)?.connected ?? false;
  }

  /** Queues `message` for `to`; never blocks, never throws on a slow or unknown peer. */
  send(to: NodeId, message: Message): void {
    const link = this.links.get(to);
    if (link === undefined) {
      this.metrics.messagesDropped.inc(1, { peer: String(to), reason: 'unknown_peer' });
      this.logger.warn('dropping message to an unknown peer', { to });
      return;
    }
    const payload = encode(this.schema, message, this.writer);
    if (payload.length > this.limits.frameBytesMax) {
      this.tooLarge.inc();
      this.logger.warn('dropping message larger than frameBytesMax', {
        to,
        bytes: payload.length,
        bytesMax: this.limits.frameBytesMax,
      });
      return;
    }
    link.enqueue(payload);
  }

  /** Stops reading from inbound peers (storage backpressure); TCP flow control pushes back on them. */
  setPaused(paused: boolean): void {
    this.paused = paused;
    for (const peer of this.inbound) {
      if (paused) peer.connection.socket.pause();
      else peer.connection.socket.resume();
    }
  }

  /** Stops listening, says goodbye on every link, and waits for the sockets to close. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const links = [...this.links.values()].map((link) => link.stop());
    for (const peer of this.inbound) peer.connection.close('SHUTDOWN', 'node shutting down');
    await Promise.all([closed, ...links]);
  }

  /** @internal */
  accept(socket: Socket): void {
    if (this.inbound.size >= this.limits.inboundConnectionsMax) {
      this.logger.warn('refusing peer connection: too many', { remote: socket.remoteAddress ?? '?' });
      this.metrics.port('peer_in').closed('TOO_MANY_CONNECTIONS').inc();
      socket.destroy();
      return;
    }
    const peer = new InboundPeer(this, socket);
    this.inbound.add(peer);
    if (this.paused) socket.pause();
  }

  /** @internal Returns why a hello is unacceptable, or null. */
  checkHello(hello: Infer<typeof PeerHello>): string | null {
    if (hello.magic !== PEER_MAGIC) return `bad magic 0x${hello.magic.toString(16)}`;
    if (hello.version !== PEER_PROTOCOL_VERSION)
      return `protocol version ${hello.version}, expected ${PEER_PROTOCOL_VERSION}`;
    if (hello.clusterId !== this.clusterId) return `cluster id "${hello.clusterId}", expected "${this.clusterId}"`;
    if (hello.to !== this.self) return `hello addressed to node ${hello.to}, this is node ${this.self}`;
    if (!this.links.has(toNodeId(hello.from))) return `node ${hello.from} is not a peer of node ${this.self}`;
    return null;
  }

  /** @internal A handshake completed: the newest connection from a peer replaces an older one. */
  adopt(peer: InboundPeer<Message>): void {
    const from = peer.from!;
    const previous = this.inboundByPeer.get(from);
    this.inboundByPeer.set(from, peer);
    previous?.connection.close('REPLACED', 'the peer connected again');
    this.logger.debug('peer connected in', { from, remote: peer.connection.remote });
  }

  /** @internal */
  forget(peer: InboundPeer<Message>): void {
    this.inbound.delete(peer);
    if (peer.from !== null && this.inboundByPeer.get(peer.from) === peer) this.inboundByPeer.delete(peer.from);
  }

  /** @internal */
  deliver(from: NodeId, message: Message): void {
    this.onMessage(from, message);
  }
}

/** Listens and resolves with the bound endpoint (port 0 becomes the ephemeral port). */
export function listen(server: Server, endpoint: Endpoint): Promise<Endpoint> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(endpoint.port, endpoint.host, () => {
      server.off('error', reject);
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : endpoint.port;
      resolve({ host: endpoint.host, port });
    });
  });
}
