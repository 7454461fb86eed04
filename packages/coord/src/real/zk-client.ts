/**
 * `ZkClient`: a small ZooKeeper client speaking the jute protocol over TCP (works against `dsys coord`
 * and Apache ZooKeeper alike). Used by the recipes, the CLI and the tests for the operations
 * node-zookeeper-client lacks (addWatch, getEphemerals, getAllChildrenNumber, containers, TTL, sync).
 *
 * Behaviour of a ZooKeeper client library: requests are pipelined and answered in order; pings every
 * third of the session timeout; when the connection goes quiet for two thirds of it, the client moves
 * to the next server, presents its session and last seen zxid, and re-registers its watches
 * (SetWatches); requests in flight fail with ConnectionLoss (their outcome is unknown). A session the
 * server declares expired ends the client (`expired` resolves, every call fails with SessionExpired).
 */
import { connect, type Socket } from 'node:net';
import { DsError } from '@dsys/kit';
import {
  decodeConnectResponse,
  decodeReply,
  encodeConnectRequest,
  encodeRequest,
  opcodeOf,
  type WatcherEvent,
  Xid,
} from '../jute.js';
import type { MultiOp, MultiResult, Op, Result } from '../schema.js';
import { AddWatchMode, CreateMode, Err, EventType, errName, KeeperState, type Stat } from '../types.js';

export class ZkError extends DsError<{ code: 'ZK_ERROR'; err: number; name: string; path: string }> {
  constructor(err: number, path: string) {
    super({ code: 'ZK_ERROR', err, name: errName(err), path }, `${errName(err)} (${err}) for ${path}`);
  }
  get err(): number {
    return this.detail.err;
  }
}

export type WatchCallback = (event: WatcherEvent) => void;

export interface ZkClientOptions {
  /** `host:port,host:port,...` */
  readonly connectString: string;
  readonly sessionTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
}

interface WatchRegistration {
  readonly kind: 'exists' | 'data' | 'child';
  readonly path: string;
  readonly callback: WatchCallback;
}

interface Pending {
  readonly xid: number;
  readonly opcode: number;
  readonly path: string;
  /**
   * Installed while the reply frame is processed, not after the caller's await: a notification may
   * follow the reply in the same chunk, and it must find its callback.
   */
  readonly watch: WatchRegistration | null;
  resolve(value: { zxid: number; result: Result }): void;
  reject(error: Error): void;
}

const encoder = new TextEncoder();

export class ZkClient {
  private readonly servers: { host: string; port: number }[];
  private serverIndex: number;
  private socket: Socket | null = null;
  private buffer: Buffer = Buffer.alloc(0);
  private connected = false;
  private sessionId = 0;
  private password: Uint8Array = new Uint8Array(16);
  timeoutMs: number;
  private lastZxid = 0;
  private xid = 1;
  private readonly pending: Pending[] = [];
  private readonly dataWatches = new Map<string, Set<WatchCallback>>();
  private readonly existWatches = new Map<string, Set<WatchCallback>>();
  private readonly childWatches = new Map<string, Set<WatchCallback>>();
  private readonly persistent = new Map<string, { recursive: boolean; callback: WatchCallback }>();
  private pingTimer: NodeJS.Timeout | null = null;
  private lastHeard = 0;
  private closed = false;
  private readonly waiters: { resolve(): void; reject(error: Error): void }[] = [];
  private readonly connectTimeoutMs: number;
  /** Resolves when the server declares the session expired (never for a clean close). */
  readonly expired: Promise<void>;
  private settleExpired!: () => void;
  /** Called on every connection state change. */
  onState: (state: 'connected' | 'disconnected' | 'expired' | 'closed') => void = () => undefined;

  private constructor(options: ZkClientOptions) {
    this.servers = options.connectString.split(',').map((entry) => {
      const [host, port] = entry.trim().split(':');
      return { host: host ?? '127.0.0.1', port: Number(port) };
    });
    this.serverIndex = Math.floor(Math.random() * this.servers.length);
    this.timeoutMs = options.sessionTimeoutMs ?? 10_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 15_000;
    this.expired = new Promise((resolve) => {
      this.settleExpired = resolve;
    });
  }

  /** Connects (trying each server in turn) and resolves once a session is established. */
  static async connect(options: ZkClientOptions): Promise<ZkClient> {
    const client = new ZkClient(options);
    client.open();
    await client.untilConnected();
    return client;
  }

  get session(): { id: number; password: Uint8Array } {
    return { id: this.sessionId, password: this.password };
  }

  get server(): string {
    const server = this.servers[this.serverIndex]!;
    return `${server.host}:${server.port}`;
  }

  untilConnected(): Promise<void> {
    if (this.connected) return Promise.resolve();
    if (this.closed) return Promise.reject(new ZkError(Err.SESSION_EXPIRED, '(session)'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new ZkError(Err.CONNECTION_LOSS, '(connect)')), this.connectTimeoutMs);
      this.waiters.push({
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
    });
  }

  private open(): void {
    if (this.closed) return;
    const server = this.servers[this.serverIndex]!;
    const socket = connect(server.port, server.host);
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.lastHeard = Date.now();
    socket.setNoDelay(true);
    socket.on('connect', () => {
      socket.write(
        encodeConnectRequest({
          protocolVersion: 0,
          lastZxidSeen: this.lastZxid,
          timeoutMs: this.timeoutMs,
          sessionId: this.sessionId,
          password: this.password,
          readOnly: false,
        }),
      );
    });
    socket.on('data', (chunk) => this.onData(socket, chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => this.onClose(socket));
    // Unreferenced: an open client alone does not keep a process alive.
    this.pingTimer ??= setInterval(() => this.tick(), 100).unref();
  }

  private tick(): void {
    const quiet = Date.now() - this.lastHeard;
    if (this.socket !== null && quiet > (this.timeoutMs * 2) / 3) {
      this.socket.destroy();
      return;
    }
    if (this.connected && quiet > this.timeoutMs / 3 - 100) this.send(encodeRequest(Xid.PING, { type: 'ping' }));
  }

  private send(bytes: Uint8Array): void {
    this.socket?.write(bytes);
  }

  private onClose(socket: Socket): void {
    if (socket !== this.socket) return;
    this.socket = null;
    const wasConnected = this.connected;
    this.connected = false;
    for (const pending of this.pending.splice(0)) pending.reject(new ZkError(Err.CONNECTION_LOSS, pending.path));
    if (this.closed) return;
    if (wasConnected) this.onState('disconnected');
    this.serverIndex = (this.serverIndex + 1) % this.servers.length;
    setTimeout(() => this.open(), 50).unref();
  }

  private onData(socket: Socket, chunk: Buffer): void {
    if (socket !== this.socket) return;
    this.lastHeard = Date.now();
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    while (this.buffer.length >= 4) {
      const length = this.buffer.readInt32BE(0);
      if (length < 0 || length > 64 * 1024 * 1024) {
        socket.destroy();
        return;
      }
      if (this.buffer.length < 4 + length) return;
      const frame = this.buffer.subarray(4, 4 + length);
      this.buffer = this.buffer.subarray(4 + length);
      if (!this.connected) this.onConnectResponse(socket, frame);
      else this.onReply(socket, frame);
      if (socket !== this.socket) return;
    }
  }

  private onConnectResponse(socket: Socket, frame: Uint8Array): void {
    const decoded = decodeConnectResponse(frame);
    if (!decoded.ok) {
      socket.destroy();
      return;
    }
    if (decoded.value.timeoutMs <= 0) {
      this.expire();
      return;
    }
    this.sessionId = decoded.value.sessionId;
    this.password = decoded.value.password;
    this.timeoutMs = decoded.value.timeoutMs;
    this.connected = true;
    this.resendWatches();
    this.onState('connected');
    for (const waiter of this.waiters.splice(0)) waiter.resolve();
  }

  private resendWatches(): void {
    const persistent: string[] = [];
    const persistentRecursive: string[] = [];
    for (const [path, watch] of this.persistent) (watch.recursive ? persistentRecursive : persistent).push(path);
    const op: Op = {
      type: 'setWatches',
      relativeZxid: this.lastZxid,
      data: [...this.dataWatches.keys()],
      exist: [...this.existWatches.keys()],
      child: [...this.childWatches.keys()],
      persistent,
      persistentRecursive,
    };
    if (op.data.length + op.exist.length + op.child.length + persistent.length + persistentRecursive.length === 0)
      return;
    this.send(encodeRequest(Xid.SET_WATCHES, op));
  }

  private expire(): void {
    this.closed = true;
    this.connected = false;
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    this.socket?.destroy();
    this.socket = null;
    for (const pending of this.pending.splice(0)) pending.reject(new ZkError(Err.SESSION_EXPIRED, pending.path));
    for (const waiter of this.waiters.splice(0)) waiter.reject(new ZkError(Err.SESSION_EXPIRED, '(session)'));
    this.onState('expired');
    this.settleExpired();
  }

  private onReply(socket: Socket, frame: Uint8Array): void {
    const decoded = decodeReply(frame, (xid) => this.pending.find((item) => item.xid === xid)?.opcode);
    if (!decoded.ok) {
      socket.destroy();
      return;
    }
    const { header, event, result } = decoded.value;
    if (event !== null) {
      this.dispatch(event);
      return;
    }
    if (header.xid === Xid.PING || header.xid === Xid.SET_WATCHES || header.xid === Xid.AUTH) return;
    const pending = this.pending.shift();
    if (pending === undefined || pending.xid !== header.xid) {
      socket.destroy();
      return;
    }
    if (header.zxid > this.lastZxid) this.lastZxid = header.zxid;
    const watch = pending.watch;
    if (watch !== null) {
      if (watch.kind === 'exists' && header.err === Err.NO_NODE)
        this.addWatch(this.existWatches, watch.path, watch.callback);
      else if (header.err === 0) {
        this.addWatch(watch.kind === 'child' ? this.childWatches : this.dataWatches, watch.path, watch.callback);
      }
    }
    if (header.err !== 0) pending.reject(new ZkError(header.err, pending.path));
    else pending.resolve({ zxid: header.zxid, result });
  }

  private dispatch(event: WatcherEvent): void {
    const fire = (table: Map<string, Set<WatchCallback>>): void => {
      const callbacks = table.get(event.path);
      if (callbacks === undefined) return;
      table.delete(event.path);
      for (const callback of callbacks) callback(event);
    };
    if (event.type === EventType.NODE_CHILDREN_CHANGED) fire(this.childWatches);
    else {
      fire(this.dataWatches);
      fire(this.existWatches);
      if (event.type === EventType.NODE_DELETED) fire(this.childWatches);
    }
    for (const [path, watch] of this.persistent) {
      const below = watch.recursive && (path === '/' || event.path.startsWith(`${path}/`));
      if (path === event.path || (below && event.type !== EventType.NODE_CHILDREN_CHANGED)) watch.callback(event);
    }
  }

  /** Sends `op` and resolves with the reply (or rejects with `ZkError`). */
  call(
    op: Op,
    path = 'path' in op ? op.path : '/',
    watch: WatchRegistration | null = null,
  ): Promise<{ zxid: number; result: Result }> {
    if (this.closed)
      return Promise.reject(new ZkError(this.sessionId === 0 ? Err.CONNECTION_LOSS : Err.SESSION_EXPIRED, path));
    if (!this.connected) return Promise.reject(new ZkError(Err.CONNECTION_LOSS, path));
    const xid = this.xid++;
    return new Promise((resolve, reject) => {
      this.pending.push({ xid, opcode: opcodeOf(op), path, watch, resolve, reject });
      this.send(encodeRequest(xid, op));
    });
  }

  private addWatch(table: Map<string, Set<WatchCallback>>, path: string, callback: WatchCallback): void {
    let set = table.get(path);
    if (set === undefined) {
      set = new Set();
      table.set(path, set);
    }
    set.add(callback);
  }

  // ----------------------------------------------------------------------------------------------
  // The ZooKeeper API

  async create(
    path: string,
    data: Uint8Array | string = '',
    mode: number = CreateMode.PERSISTENT,
    ttlMs = 0,
  ): Promise<string> {
    const bytes = typeof data === 'string' ? encoder.encode(data) : data;
    const { result } = await this.call({ type: 'create', path, data: bytes, mode, ttlMs, withStat: false });
    return result.type === 'created' ? result.path : path;
  }

  async delete(path: string, version = -1): Promise<void> {
    await this.call({ type: 'delete', path, version });
  }

  async exists(path: string, watch?: WatchCallback): Promise<Stat | null> {
    const registration = watch === undefined ? null : { kind: 'exists' as const, path, callback: watch };
    try {
      const { result } = await this.call({ type: 'exists', path, watch: watch !== undefined }, path, registration);
      return result.type === 'stat' ? result.stat : null;
    } catch (error) {
      if (error instanceof ZkError && error.err === Err.NO_NODE) return null;
      throw error;
    }
  }

  async getData(path: string, watch?: WatchCallback): Promise<{ data: Uint8Array; stat: Stat }> {
    const registration = watch === undefined ? null : { kind: 'data' as const, path, callback: watch };
    const { result } = await this.call({ type: 'getData', path, watch: watch !== undefined }, path, registration);
    if (result.type !== 'data') throw new ZkError(Err.MARSHALLING_ERROR, path);
    return { data: result.data, stat: result.stat };
  }

  async setData(path: string, data: Uint8Array | string, version = -1): Promise<Stat> {
    const bytes = typeof data === 'string' ? encoder.encode(data) : data;
    const { result } = await this.call({ type: 'setData', path, data: bytes, version });
    if (result.type !== 'stat') throw new ZkError(Err.MARSHALLING_ERROR, path);
    return result.stat;
  }

  async getChildren(path: string, watch?: WatchCallback): Promise<{ children: string[]; stat: Stat | null }> {
    const registration = watch === undefined ? null : { kind: 'child' as const, path, callback: watch };
    const op: Op = { type: 'getChildren', path, watch: watch !== undefined, withStat: true };
    const { result } = await this.call(op, path, registration);
    if (result.type !== 'children') throw new ZkError(Err.MARSHALLING_ERROR, path);
    return { children: result.children, stat: result.stat };
  }

  async sync(path = '/'): Promise<void> {
    await this.call({ type: 'sync', path });
  }

  async multi(ops: MultiOp[]): Promise<MultiResult[]> {
    const { result } = await this.call({ type: 'multi', ops }, ops[0]?.path ?? '/');
    if (result.type !== 'multi') throw new ZkError(Err.MARSHALLING_ERROR, '(multi)');
    const failed = result.results.find((item) => item.type === 'error' && item.err !== Err.OK);
    if (failed?.type === 'error') throw new ZkError(failed.err, '(multi)');
    return result.results;
  }

  async addPersistentWatch(path: string, recursive: boolean, callback: WatchCallback): Promise<void> {
    // Registered before the request: an event may follow the reply in the same chunk.
    this.persistent.set(path, { recursive, callback });
    try {
      await this.call({
        type: 'addWatch',
        path,
        mode: recursive ? AddWatchMode.PERSISTENT_RECURSIVE : AddWatchMode.PERSISTENT,
      });
    } catch (error) {
      this.persistent.delete(path);
      throw error;
    }
  }

  async removeWatches(path: string, watcherType: number): Promise<void> {
    await this.call({ type: 'removeWatches', path, watcherType, checkOnly: false });
    this.persistent.delete(path);
    this.dataWatches.delete(path);
    this.childWatches.delete(path);
    this.existWatches.delete(path);
  }

  async getEphemerals(prefix = '/'): Promise<string[]> {
    const { result } = await this.call({ type: 'getEphemerals', prefix });
    return result.type === 'paths' ? result.paths : [];
  }

  async getAllChildrenNumber(path: string): Promise<number> {
    const { result } = await this.call({ type: 'getAllChildrenNumber', path });
    return result.type === 'count' ? result.count : 0;
  }

  /** Closes the session (its ephemeral nodes go) and the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.connected) {
      await this.call({ type: 'close' }).catch(() => undefined);
    }
    this.closed = true;
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    this.socket?.destroy();
    this.socket = null;
    this.onState('closed');
  }

  /** Drops the connection without closing the session (tests: the session must survive a move). */
  dropConnection(): void {
    this.socket?.destroy();
  }

  /** Stops everything without telling the server (tests: a crashed client whose session must expire). */
  abandon(): void {
    this.closed = true;
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    this.socket?.destroy();
    this.socket = null;
  }
}

export { KeeperState };
