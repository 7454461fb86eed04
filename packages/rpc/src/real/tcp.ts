/**
 * The TCP (and TLS) driver: sockets, timers and the clock around the I/O-free endpoints.
 *
 * Writes are coalesced: an endpoint only writes frames into its buffer and calls `wake()`; the driver
 * sends everything written in one turn of the event loop with a single `socket.write` (right after a
 * received chunk is processed, or at `setImmediate` for work done elsewhere, such as async handlers).
 * A server stops reading from a client whose unread replies exceed `writeHighWaterBytes` and resumes on
 * 'drain', so a slow reader cannot make the server buffer without bound.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { Rng } from '@dsys/kit';
import { Logger, parseEndpoint } from '@dsys/runtime-node';
import { type BindInfo, type ClientOptions, type ClientState, type ClientStats, RpcClient } from '../client.js';
import type { Clock, RpcLogger, Transport } from '../endpoint.js';
import type { ClientOf, HandlersOf, Interface } from '../interface.js';
import { RpcServer, type ServerConnection, type ServerOptions, type ServerStats } from '../server.js';

export const monotonicClock: Clock = { nowMs: () => performance.now() };

function defaultLogger(): RpcLogger {
  return new Logger({ level: 'warn', node: null, fields: { component: 'rpc' } });
}

function randomU64(): bigint {
  return randomBytes(8).readBigUInt64LE(0);
}

export interface TlsServerOptions {
  readonly key: string | Buffer;
  readonly cert: string | Buffer;
  /** CAs that sign client certificates (with `requireClientCert`). */
  readonly ca?: string | Buffer;
  /** Demand a client certificate signed by `ca` (mutual TLS). */
  readonly requireClientCert?: boolean;
}

export interface ServeOptions extends ServerOptions {
  readonly host?: string;
  /** 0 (default) picks a free port. */
  readonly port?: number;
  readonly tls?: TlsServerOptions;
  /** How often deadlines and connection timeouts are checked. */
  readonly tickMs?: number;
  /** Stop reading a connection while this many reply bytes wait to be sent to it. */
  readonly writeHighWaterBytes?: number;
}

export interface RunningServer<I extends Interface> {
  readonly host: string;
  readonly port: number;
  /** `host:port`, as `connect` and `dsys rpc` take it. */
  readonly address: string;
  readonly rpc: RpcServer<I>;
  /** The endpoint's counters, plus how often a slow reader made the server stop reading its connection. */
  stats(): ServerStats & { readPauses: number };
  /** Stops accepting, says GOAWAY to every client, and resolves once every socket is closed. */
  close(): Promise<void>;
}

interface Endpoint {
  receive(chunk: Uint8Array): void;
  takeOutput(): Uint8Array | null;
  takeOutputView(): Uint8Array | null;
  swapOutput(next: Uint8Array | null): Uint8Array;
}

/** One socket as a `Transport`: coalesced writes, close with a reason, congestion from the write buffer. */
class SocketLink implements Transport {
  endpoint: Endpoint | null = null;
  closeReason: string | null = null;
  private scheduled = false;
  private readonly flushBound = () => this.flush();
  /** The endpoint's former output buffer, referenced by a write still queued in the socket. */
  private queuedBuffer: Uint8Array | null = null;
  /** A former output buffer whose write completed: the next one to swap in. */
  private spareBuffer: Uint8Array | null = null;

  constructor(
    readonly socket: net.Socket,
    private readonly highWaterBytes: number,
    private readonly onCongested: (() => void) | null,
    /** Plain TCP: a write that the kernel takes at once keeps no reference to our buffer (not so for TLS). */
    private readonly zeroCopy: boolean,
  ) {}

  wake(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(this.flushBound);
  }

  flush(): void {
    this.scheduled = false;
    const endpoint = this.endpoint;
    if (endpoint === null) return;
    const socket = this.socket;
    // With nothing queued, Node hands a write to the kernel at once (libuv's try-write) and keeps the
    // buffer only if the kernel did not take all of it (`req.buffer`, lib/internal/stream_base_commons.js).
    // So the endpoint's buffer is written without a copy; if the write queued, the endpoint continues
    // in a second buffer, and the first is reused once nothing is queued any more (two buffers at most).
    const direct = this.zeroCopy && socket.writableLength === 0 && !socket.connecting;
    if (direct && this.queuedBuffer !== null) {
      this.spareBuffer = this.queuedBuffer;
      this.queuedBuffer = null;
    }
    const bytes = direct ? endpoint.takeOutputView() : endpoint.takeOutput();
    if (bytes === null || socket.destroyed || socket.writableEnded) return;
    socket.write(bytes);
    if (direct && socket.writableLength > 0) {
      this.queuedBuffer = endpoint.swapOutput(this.spareBuffer);
      this.spareBuffer = null;
    }
    if (this.onCongested !== null && socket.writableLength > this.highWaterBytes && !socket.isPaused()) {
      socket.pause();
      this.onCongested();
    }
  }

  close(reason: string): void {
    if (this.closeReason !== null) return;
    this.closeReason = reason;
    this.flush();
    this.socket.end();
    // A peer that never reads would keep a half-closed socket forever.
    setTimeout(() => this.socket.destroy(), 2_000).unref();
  }

  congested(): boolean {
    return this.socket.writableLength > this.highWaterBytes;
  }
}

/** Serves `handlers` for `iface` over TCP (or TLS). */
export async function serve<I extends Interface>(
  iface: I,
  handlers: HandlersOf<I>,
  options: ServeOptions = {},
): Promise<RunningServer<I>> {
  const logger = options.logger ?? defaultLogger();
  const rpc = new RpcServer(
    iface,
    handlers,
    { ...options, logger },
    {
      clock: monotonicClock,
      incarnation: randomU64(),
      sessionIdStart: 1 + Number(randomU64() % 0x10_0000_0000_0000n),
    },
  );
  const highWaterBytes = options.writeHighWaterBytes ?? 1024 * 1024;
  const sockets = new Set<net.Socket>();
  let readPauses = 0;
  const paused = () => {
    readPauses++;
  };
  const onSocket = (socket: net.Socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    // Stop reading a client that does not read its replies; 'drain' resumes it.
    const link = new SocketLink(socket, highWaterBytes, paused, options.tls === undefined);
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    const connection: ServerConnection = rpc.connect(link, peer);
    link.endpoint = connection;
    socket.on('data', (chunk: Buffer) => {
      // A plain view: decoded byte fields are then Uint8Arrays, as on every other transport.
      connection.receive(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
      link.flush();
    });
    socket.on('drain', () => {
      socket.resume();
      connection.drained();
    });
    let error: string | null = null;
    socket.on('error', (cause) => {
      error = cause.message;
    });
    socket.on('close', () => {
      sockets.delete(socket);
      connection.closed(link.closeReason ?? error ?? 'closed by the client');
    });
  };
  const listener = options.tls
    ? tls.createServer(
        {
          key: options.tls.key,
          cert: options.tls.cert,
          ...(options.tls.ca === undefined ? {} : { ca: options.tls.ca }),
          requestCert: options.tls.requireClientCert === true,
          rejectUnauthorized: options.tls.requireClientCert === true,
        },
        onSocket,
      )
    : net.createServer(onSocket);
  listener.on('tlsClientError', (error: Error, socket: net.Socket) => {
    logger.warn('rpc: TLS handshake failed', {
      peer: `${socket.remoteAddress}:${socket.remotePort}`,
      reason: error.message,
    });
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      listener.off('error', reject);
      resolve();
    });
  });
  const bound = listener.address() as net.AddressInfo;
  const ticker = setInterval(() => rpc.tick(), options.tickMs ?? 5);
  ticker.unref();
  const host = bound.address;
  return {
    host,
    port: bound.port,
    address: host.includes(':') ? `[${host}]:${bound.port}` : `${host}:${bound.port}`,
    rpc,
    stats: () => ({ ...rpc.stats(), readPauses }),
    close: async () => {
      clearInterval(ticker);
      const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
      rpc.goAway('server shutting down');
      const deadline = setTimeout(() => {
        for (const socket of sockets) socket.destroy();
      }, 1_000);
      await closed;
      clearTimeout(deadline);
    },
  };
}

export interface TlsClientOptions {
  /** CA that signed the server's certificate (default: the system's). */
  readonly ca?: string | Buffer;
  /** Client certificate and key, for servers that require one. */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  /** Name to verify in the server's certificate (default: the host). */
  readonly servername?: string;
}

export interface ConnectOptions extends ClientOptions {
  readonly tls?: TlsClientOptions;
  readonly tickMs?: number;
}

/**
 * A client bound (or binding) to one server address, with reconnection.
 *
 * It keeps the Node process alive only while it is busy (a call or stream unsettled, or a `ready()`
 * waiting), like an idle grpc-js channel: its socket is unref'd, and so is its ticker (keepalive,
 * deadlines, reconnection) whenever nothing waits. A client that is never closed does not hold the process
 * open once its calls are done; `close()` holds it until the socket has closed.
 */
export class RpcConnection<I extends Interface> {
  readonly client: RpcClient<I>;
  /** The generated stub: `await connection.stub.add({ delta: 1 })`. */
  readonly stub: ClientOf<I>;
  private readonly host: string;
  private readonly port: number;
  private readonly options: ConnectOptions;
  private socket: net.Socket | null = null;
  private readonly ticker: NodeJS.Timeout;
  /** The ticker holds the process open (the client is busy, or was at the last tick). */
  private tickerHeld = false;
  private closing: Promise<void> | null = null;

  constructor(iface: I, address: string | { host: string; port: number }, options: ConnectOptions = {}) {
    if (typeof address === 'string') {
      const parsed = parseEndpoint(address);
      if (!parsed.ok) throw new RangeError(parsed.error);
      this.host = parsed.value.host;
      this.port = parsed.value.port;
    } else {
      this.host = address.host;
      this.port = address.port;
    }
    this.options = options;
    this.client = new RpcClient(
      iface,
      { ...options, logger: options.logger ?? defaultLogger() },
      {
        clock: monotonicClock,
        rng: Rng.fromSeed(randomU64()),
        transport: 'stream',
      },
    );
    this.stub = this.client.stub;
    this.ticker = setInterval(() => this.tick(), options.tickMs ?? 5);
    this.ticker.unref();
    // Called on the step from idle to busy, synchronously, so a process waiting only for a call stays up.
    this.client.busyListener = () => {
      if (this.tickerHeld || this.closing !== null) return;
      this.ticker.ref();
      this.tickerHeld = true;
    };
    this.dial();
  }

  /** Where the connection is; `ConnectOptions.onStateChange` reports each change. */
  get state(): ClientState {
    return this.client.state;
  }

  /** True while the connection holds the Node process open (see the class comment). */
  get holdsProcess(): boolean {
    return this.tickerHeld;
  }

  ready(): Promise<BindInfo> {
    return this.client.ready();
  }

  get bindInfo(): BindInfo | null {
    return this.client.bindInfo;
  }

  stats(): ClientStats {
    return this.client.stats();
  }

  /** Fails pending calls with CLOSED, says goodbye, and resolves once the socket is closed. */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    clearInterval(this.ticker);
    this.tickerHeld = false;
    this.client.close();
    const socket = this.socket;
    this.closing =
      socket === null || socket.destroyed
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            socket.ref(); // whoever awaits close() sees it finish
            socket.once('close', () => resolve());
            setTimeout(() => socket.destroy(), 1_000).unref();
          });
    return this.closing;
  }

  private tick(): void {
    this.client.tick();
    // A client that failed to bind (or was closed) will never dial again: let the process exit.
    if (this.client.finished) clearInterval(this.ticker);
    // Released one tick after the client went idle, not at each settled call (a call at a time would
    // otherwise ref and unref per call).
    if (this.tickerHeld && (!this.client.busy || this.client.finished)) {
      this.ticker.unref();
      this.tickerHeld = false;
    }
    if (this.socket === null && this.client.wantsConnection()) this.dial();
  }

  private dial(): void {
    if (this.socket !== null || !this.client.wantsConnection()) return;
    const tlsOptions = this.options.tls;
    const socket = tlsOptions
      ? tls.connect({
          host: this.host,
          port: this.port,
          ...(tlsOptions.ca === undefined ? {} : { ca: tlsOptions.ca }),
          ...(tlsOptions.cert === undefined ? {} : { cert: tlsOptions.cert }),
          ...(tlsOptions.key === undefined ? {} : { key: tlsOptions.key }),
          // SNI carries host names only (RFC 6066 §3); an IP address is still verified against the certificate.
          ...(tlsOptions.servername !== undefined || net.isIP(this.host) === 0
            ? { servername: tlsOptions.servername ?? this.host }
            : {}),
        })
      : net.connect({ host: this.host, port: this.port });
    this.socket = socket;
    socket.setNoDelay(true);
    // The ticker holds the process while calls wait; an idle connection must not (see the class comment).
    socket.unref();
    const link = new SocketLink(socket, 1024 * 1024, null, tlsOptions === undefined);
    link.endpoint = this.client;
    let error: string | null = null;
    let connected = false;
    const timeout = setTimeout(() => {
      if (!connected) socket.destroy(new Error(`connect timed out after ${this.client.limits.bindTimeoutMs} ms`));
    }, this.client.limits.bindTimeoutMs);
    timeout.unref();
    socket.once(tlsOptions ? 'secureConnect' : 'connect', () => {
      connected = true;
      clearTimeout(timeout);
      this.client.connected(link);
      link.flush();
    });
    socket.on('data', (chunk: Buffer) => {
      this.client.receive(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
      link.flush();
    });
    socket.on('error', (cause) => {
      error = cause.message;
    });
    socket.on('close', () => {
      clearTimeout(timeout);
      this.socket = null;
      if (connected) this.client.disconnected(link.closeReason ?? error ?? 'closed by the server');
      else this.client.connectFailed(error ?? 'connection refused');
    });
  }
}

/** Connects to `address` (`host:port`); calls made before the bind completes wait for it. */
export function connect<I extends Interface>(
  iface: I,
  address: string | { host: string; port: number },
  options: ConnectOptions = {},
): RpcConnection<I> {
  return new RpcConnection(iface, address, options);
}
