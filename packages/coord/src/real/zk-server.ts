/**
 * The ZooKeeper client port: a thin adapter from TCP connections speaking ZooKeeper's jute protocol
 * to the protocol's requests. Each connection is one in-process client of the node
 * (`RunningNode.openLocalClient`); the protocol does the rest (sessions, FIFO order, watches).
 *
 * Per connection: the first 4 bytes are either a four-letter word (ruok, srvr, stat, mntr, conf:
 * answered in text, then closed) or the length of the ConnectRequest frame. Replies must leave in
 * request order (clients match them by xid in order), so requests the adapter answers itself (auth,
 * unimplemented operations) take a slot in the same queue as those the protocol answers.
 *
 * Bad input (undecodable frames, absurd lengths, anything before a valid ConnectRequest) closes only
 * that connection, with a `warn` log line naming the reason and a count by reason.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { type ClientId, describeDecodeError, RequestId } from '@dsys/kit';
import type { Endpoint, LocalClient, Logger, MetricsRegistry, RunningNode } from '@dsys/runtime-node';
import {
  decodeConnectRequest,
  decodeRequest,
  encodeConnectResponse,
  encodeNotification,
  encodeReply,
  fourLetterWord,
  OpCode,
  Xid,
} from '../jute.js';
import type { CoordNode } from '../node.js';
import type { CoordRequest, CoordResponse, ServerStatus } from '../schema.js';
import { Err, EventType } from '../types.js';
import { fourLetterAnswer } from './four-letter.js';

export interface ZkServerOptions {
  readonly node: RunningNode<CoordNode, CoordRequest, CoordResponse>;
  readonly listen: Endpoint;
  readonly logger: Logger;
  readonly frameBytesMax?: number;
  readonly handshakeTimeoutMs?: number;
  /** Extra facts for the `conf` four-letter word. */
  readonly describe?: () => Record<string, string | number>;
}

export interface ZkServer {
  readonly endpoint: Endpoint;
  close(): Promise<void>;
}

const FRAME_BYTES_MAX_DEFAULT = 8 * 1024 * 1024;
/** A connection whose unsent replies pile up beyond this is closed (a client that stopped reading). */
const WRITE_BUFFER_BYTES_MAX = 64 * 1024 * 1024;

interface Slot {
  readonly xid: number;
  readonly opcode: number;
  /** A reply the adapter produced itself; null while the protocol's is awaited. */
  bytes: Uint8Array | null;
}

class ZkConnection {
  private readonly socket: Socket;
  private readonly server: ZkServerState;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private state: 'start' | 'handshake' | 'open' | 'closed' = 'start';
  private client: LocalClient<CoordRequest> | null = null;
  private seq = 0;
  private readonly slots: Slot[] = [];
  private readOnly: boolean | null = null;
  private corked = false;
  private readonly handshakeTimer: NodeJS.Timeout;
  readonly remote: string;

  constructor(socket: Socket, server: ZkServerState) {
    this.socket = socket;
    this.server = server;
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.setNoDelay(true);
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', () => this.teardown());
    socket.on('close', () => this.teardown());
    this.handshakeTimer = setTimeout(() => {
      if (this.state === 'start' || this.state === 'handshake')
        this.reject('HANDSHAKE_TIMEOUT', 'no session within the handshake timeout');
    }, server.handshakeTimeoutMs);
  }

  private isClosed(): boolean {
    return this.state === 'closed';
  }

  get id(): ClientId | null {
    return this.client?.id ?? null;
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.buffered < 4) return;
      const head = this.peek(4);
      if (this.state === 'start') {
        const word = fourLetterWord(head);
        if (word !== null) {
          this.state = 'closed';
          void this.server.fourLetter(word).then((text) => this.socket.end(text));
          return;
        }
      }
      const length = new DataView(head.buffer, head.byteOffset, 4).getInt32(0);
      if (length < 0 || length > this.server.frameBytesMax) {
        this.reject('FRAME_TOO_LARGE', `frame length ${length} outside [0, ${this.server.frameBytesMax}]`);
        return;
      }
      if (this.buffered < 4 + length) return;
      const frame = this.take(4 + length).subarray(4);
      this.onFrame(frame);
      if (this.isClosed()) return;
    }
  }

  private peek(count: number): Uint8Array {
    if (this.chunks[0]!.length >= count) return this.chunks[0]!.subarray(0, count);
    return Buffer.concat(this.chunks).subarray(0, count);
  }

  private take(count: number): Uint8Array {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const taken = all.subarray(0, count);
    const rest = all.subarray(count);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return taken;
  }

  private onFrame(frame: Uint8Array): void {
    if (this.state === 'start') {
      const decoded = decodeConnectRequest(frame);
      if (!decoded.ok) {
        this.reject('BAD_CONNECT', describeDecodeError(decoded.error));
        return;
      }
      const request = decoded.value;
      this.readOnly = request.readOnly;
      this.state = 'handshake';
      this.client = this.server.node.openLocalClient((_requestId, response) => this.onResponse(response));
      this.server.connections.set(this.client.id, this);
      this.client.request(RequestId(1), {
        type: 'connect',
        conn: 1,
        sessionId: request.sessionId,
        password: request.password,
        timeoutMs: request.timeoutMs,
        lastZxidSeen: request.lastZxidSeen,
      });
      return;
    }
    const decoded = decodeRequest(frame);
    if (!decoded.ok) {
      this.reject('BAD_REQUEST', describeDecodeError(decoded.error));
      return;
    }
    const request = decoded.value;
    if (request.kind === 'auth') {
      // ACLs are not enforced (every node is world-readable and writable), so credentials change nothing.
      this.slots.push({
        xid: request.xid,
        opcode: request.opcode,
        bytes: encodeReply(Xid.AUTH, 0, 0, OpCode.AUTH, { type: 'none' }),
      });
      this.flush();
      return;
    }
    if (request.kind === 'unimplemented') {
      this.slots.push({
        xid: request.xid,
        opcode: request.opcode,
        bytes: encodeReply(request.xid, 0, Err.UNIMPLEMENTED, request.opcode, { type: 'none' }),
      });
      this.flush();
      return;
    }
    if (request.op.type !== 'ping') this.slots.push({ xid: request.xid, opcode: request.opcode, bytes: null });
    this.seq++;
    this.client?.request(RequestId(this.seq + 1), {
      type: 'op',
      conn: 1,
      seq: this.seq,
      xid: request.xid,
      op: request.op,
    });
  }

  private onResponse(response: CoordResponse): void {
    if (this.state === 'closed') return;
    switch (response.type) {
      case 'connected':
        clearTimeout(this.handshakeTimer);
        this.state = 'open';
        this.write(
          encodeConnectResponse({
            timeoutMs: response.timeoutMs,
            sessionId: response.sessionId,
            password: response.password,
            readOnly: this.readOnly === null ? null : false,
          }),
        );
        return;
      case 'closed':
        if (this.state === 'handshake' && response.expired) {
          this.write(
            encodeConnectResponse({
              timeoutMs: 0,
              sessionId: 0,
              password: new Uint8Array(16),
              readOnly: this.readOnly === null ? null : false,
            }),
          );
        }
        this.server.logger.debug('closing client connection', { remote: this.remote, reason: response.reason });
        this.close();
        return;
      case 'event':
        if (response.eventType === EventType.NONE) return; // expiry is told at the next handshake, as ZooKeeper does
        this.write(encodeNotification({ type: response.eventType, state: response.state, path: response.path }));
        return;
      case 'reply': {
        if (response.xid === Xid.PING) {
          this.write(encodeReply(Xid.PING, response.zxid, 0, OpCode.PING, { type: 'none' }));
          return;
        }
        const slot = this.slots.find((item) => item.bytes === null);
        if (slot === undefined || slot.xid !== response.xid) {
          this.server.logger.error('reply out of order', {
            remote: this.remote,
            xid: response.xid,
            expected: slot?.xid ?? null,
          });
          this.close();
          return;
        }
        slot.bytes = encodeReply(response.xid, response.zxid, response.err, slot.opcode, response.result);
        this.flush();
        return;
      }
      case 'status':
        return;
    }
  }

  private flush(): void {
    while (this.slots.length > 0 && this.slots[0]!.bytes !== null) this.write(this.slots.shift()!.bytes!);
  }

  private write(bytes: Uint8Array): void {
    if (this.state === 'closed') return;
    // Replies produced in one turn of the event loop leave in one write (one syscall, not one each).
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      setImmediate(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(bytes);
    if (this.socket.writableLength > WRITE_BUFFER_BYTES_MAX)
      this.reject('SLOW_CONSUMER', 'client is not reading its replies');
  }

  private reject(reason: string, detail: string): void {
    if (this.state === 'closed') return;
    this.server.logger.warn('closing connection: bad input', { reason, detail, remote: this.remote });
    this.server.rejected(reason);
    this.close();
  }

  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.socket.end();
    this.socket.destroySoon?.();
    this.teardown();
  }

  private teardown(): void {
    clearTimeout(this.handshakeTimer);
    if (this.state !== 'closed') {
      this.state = 'closed';
      this.socket.destroy();
    }
    const client = this.client;
    if (client === null) return;
    this.client = null;
    this.server.connections.delete(client.id);
    client.request(RequestId(0), { type: 'disconnect', conn: 1 });
    client.close();
  }
}

interface ZkServerState {
  readonly node: RunningNode<CoordNode, CoordRequest, CoordResponse>;
  readonly logger: Logger;
  readonly frameBytesMax: number;
  readonly handshakeTimeoutMs: number;
  readonly connections: Map<ClientId, ZkConnection>;
  fourLetter(word: string): Promise<string>;
  rejected(reason: string): void;
}

export async function startZkServer(options: ZkServerOptions): Promise<ZkServer> {
  const metrics: MetricsRegistry = options.node.metrics;
  const rejectedCounter = metrics.counter(
    'coord_client_frames_rejected_total',
    'Client connections closed for bad input, by reason',
    ['reason'],
  );
  const connections = new Map<ClientId, ZkConnection>();
  const state: ZkServerState = {
    node: options.node,
    logger: options.logger,
    frameBytesMax: options.frameBytesMax ?? FRAME_BYTES_MAX_DEFAULT,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
    connections,
    async fourLetter(word) {
      const status = (await options.node.request({ type: 'status' }, { timeoutMs: 2000 })) as ServerStatus & {
        type: 'status';
      };
      return fourLetterAnswer(word, status, connections.size, options.describe?.() ?? {});
    },
    rejected: (reason) => rejectedCounter.inc(1, { reason }),
  };
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    new ZkConnection(socket, state);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listen.port, options.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => options.logger.error('client port error', { error }));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.listen.port;
  return {
    endpoint: { host: options.listen.host, port },
    close: () =>
      new Promise<void>((resolve) => {
        for (const connection of [...connections.values()]) connection.close();
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
