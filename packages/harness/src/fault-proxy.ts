/**
 * A fault-injecting TCP proxy for one directed link: node i dials the proxy instead of node j, and the
 * proxy forwards bytes both ways between i's connection (the *source*) and its own connection to j
 * (the *target*). Because the proxy sits in user space it can fail the link on command, without root
 * and without network namespaces (see the README for why the harness uses proxies).
 *
 * Link modes:
 * - 'open': bytes pass, optionally each chunk delayed by `latencyMs` (order is always kept).
 * - 'reset': the peer looks crashed or refusing. Existing connections get a TCP RST on both sides;
 *   new connections are accepted and reset at once (the dialer sees ECONNRESET right after connect
 *   rather than ECONNREFUSED: the proxy keeps its port bound so no other process can take it).
 * - 'blackhole': a silent partition. Connections stay open and new ones are accepted, but every byte
 *   in either direction is read and thrown away; nothing errors, so only the application's timeouts
 *   notice. A TCP stream with a hole in it is corrupt, so `heal()` resets every connection that lost
 *   bytes (or a FIN); the application reconnects as it would after a real partition timed it out.
 * - 'stall': a partition as TCP experiences it when it is short: nothing is delivered and nothing is
 *   lost. The proxy stops reading (so the kernel buffers fill and the sender's writes back up), holds
 *   chunks already in flight, and dials the target for new connections only on `heal()`, when
 *   everything resumes in order.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { assert } from '@dsys/kit';
import { type Endpoint, LOOPBACK } from './endpoint.js';

export type CutMode = 'reset' | 'blackhole' | 'stall';
export type LinkMode = 'open' | CutMode;

export interface FaultProxyOptions {
  /** Where the proxy forwards to (node j's peer address). */
  readonly target: Endpoint;
  /** Listen address; default 127.0.0.1 and a kernel-chosen port. */
  readonly host?: string;
  readonly port?: number;
  /** A label for messages, e.g. `1->2`. */
  readonly name?: string;
  /** Added to every chunk in both directions; default 0. */
  readonly latencyMs?: number;
  /** Bytes held back per direction (latency queue) before the sender is paused; default 1 MiB. */
  readonly queuedBytesMax?: number;
}

export interface FaultProxyStats {
  readonly connectionsAccepted: number;
  readonly connectionsActive: number;
  /** Connections the proxy reset on purpose (cut in 'reset' mode, or healed after losing bytes). */
  readonly connectionsReset: number;
  /** Dials to the target that failed (the target node is down): the source is reset in turn. */
  readonly targetConnectFailures: number;
  /** Bytes delivered from the dialer to the target. */
  readonly bytesToTarget: number;
  /** Bytes delivered from the target back to the dialer. */
  readonly bytesToSource: number;
  /** Bytes thrown away in 'blackhole' mode (both directions). */
  readonly bytesDropped: number;
}

type Counter = 'bytesToTarget' | 'bytesToSource';
type PauseReason = 'backpressure' | 'queue' | 'stall';

/** What a connection needs from its proxy; kept narrow so the proxy's public surface stays small. */
interface ProxyState {
  readonly mode: LinkMode;
  readonly latencyMs: number;
  readonly queuedBytesMax: number;
  count(counter: Counter | 'bytesDropped' | 'connectionsReset', amount: number): void;
}

/** One direction of one proxied connection: reads `from`, delivers to `to` in order, after the latency. */
class Pipe {
  private readonly queue: { chunk: Buffer; dueMs: number }[] = [];
  private queuedBytes = 0;
  private lastDueMs = 0;
  private timer: NodeJS.Timeout | null = null;
  private ending = false;
  private readonly pauses = new Set<PauseReason>();

  constructor(
    private readonly proxy: ProxyState,
    private readonly from: Socket,
    private readonly to: Socket,
    private readonly counter: Counter,
    private readonly onLoss: () => void,
  ) {
    from.on('data', (chunk: Buffer) => this.push(chunk));
    from.on('end', () => this.end());
    to.on('drain', () => {
      this.resume('backpressure');
      this.flush();
    });
    if (proxy.mode === 'stall') this.pause('stall');
    else from.resume();
  }

  private push(chunk: Buffer): void {
    if (this.proxy.mode === 'blackhole') {
      this.proxy.count('bytesDropped', chunk.length);
      this.onLoss();
      return;
    }
    const dueMs = Math.max(performance.now() + this.proxy.latencyMs, this.lastDueMs);
    this.lastDueMs = dueMs;
    this.queue.push({ chunk, dueMs });
    this.queuedBytes += chunk.length;
    if (this.queuedBytes > this.proxy.queuedBytesMax) this.pause('queue');
    this.flush();
  }

  private end(): void {
    if (this.proxy.mode === 'blackhole') {
      this.onLoss();
      return;
    }
    this.ending = true;
    this.flush();
  }

  /** Delivers every chunk that is due, and schedules the next; holds everything unless the link is open. */
  flush(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.proxy.mode !== 'open' || this.to.destroyed) return;
    const nowMs = performance.now();
    while (this.queue.length > 0 && this.queue[0]!.dueMs <= nowMs) {
      const { chunk } = this.queue.shift()!;
      this.queuedBytes -= chunk.length;
      this.proxy.count(this.counter, chunk.length);
      if (!this.to.write(chunk)) this.pause('backpressure');
    }
    if (this.queuedBytes <= this.proxy.queuedBytesMax) this.resume('queue');
    const head = this.queue[0];
    if (head !== undefined) {
      this.timer = setTimeout(() => this.flush(), Math.max(0, head.dueMs - nowMs));
    } else if (this.ending && !this.to.writableEnded) {
      this.to.end();
    }
  }

  /** Blackhole: throws away what is held; returns whether anything was lost. */
  discard(): boolean {
    const lost = this.queue.length > 0;
    this.proxy.count('bytesDropped', this.queuedBytes);
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.resume('queue');
    return lost;
  }

  pause(reason: PauseReason): void {
    this.pauses.add(reason);
    this.from.pause();
  }

  resume(reason: PauseReason): void {
    this.pauses.delete(reason);
    if (this.pauses.size === 0 && !this.from.destroyed) this.from.resume();
  }

  close(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** One accepted connection and, once dialed, its connection to the target. */
class ProxiedConnection {
  target: Socket | null = null;
  private pipes: Pipe[] = [];
  /** Bytes or a FIN were thrown away (blackhole): the stream is corrupt and must be reset on heal. */
  lostBytes = false;
  private closed = false;
  private readonly dropWhileUnconnected = (chunk: Buffer): void => {
    this.proxy.count('bytesDropped', chunk.length);
    this.lostBytes = true;
  };
  private readonly loseOnEnd = (): void => {
    this.lostBytes = true;
  };

  constructor(
    private readonly proxy: ProxyState & { readonly targetEndpoint: Endpoint; onClosed(c: ProxiedConnection): void },
    readonly source: Socket,
    private readonly onTargetFailure: () => void,
  ) {
    source.setNoDelay(true);
    source.on('error', () => this.reset());
    source.on('close', (hadError: boolean) => (hadError ? this.reset() : this.finish()));
  }

  /** Applies the proxy's current mode to a connection that has no target yet. */
  applyModeUnconnected(): void {
    // Pause first: removing the last 'data' listener does not stop a flowing stream, it drops chunks.
    this.source.pause();
    this.source.removeListener('data', this.dropWhileUnconnected);
    this.source.removeListener('end', this.loseOnEnd);
    switch (this.proxy.mode) {
      case 'open':
        this.dial();
        return;
      case 'reset':
        this.cutReset();
        return;
      case 'blackhole':
        this.source.on('data', this.dropWhileUnconnected);
        this.source.on('end', this.loseOnEnd);
        this.source.resume();
        return;
      case 'stall':
        return;
    }
  }

  private dial(): void {
    assert(this.target === null, 'ProxiedConnection.dial: already dialed');
    const target = createConnection({ ...this.proxy.targetEndpoint, allowHalfOpen: true });
    this.target = target;
    target.setNoDelay(true);
    target.once('connect', () => {
      if (this.closed) return;
      const loss = (): void => {
        this.lostBytes = true;
      };
      this.pipes = [
        new Pipe(this.proxy, this.source, target, 'bytesToTarget', loss),
        new Pipe(this.proxy, target, this.source, 'bytesToSource', loss),
      ];
    });
    target.on('error', () => {
      if (this.pipes.length === 0) this.onTargetFailure();
      this.reset();
    });
    target.on('close', (hadError: boolean) => (hadError ? this.reset() : this.finish()));
  }

  /** The link's mode changed. A stream that lost bytes in a blackhole is corrupt, so reopening resets it. */
  onModeChange(): void {
    const mode = this.proxy.mode;
    if (mode === 'reset' || (mode === 'open' && this.lostBytes)) {
      this.cutReset();
    } else if (this.target === null) {
      this.applyModeUnconnected();
    } else if (mode === 'blackhole') {
      for (const pipe of this.pipes) {
        if (pipe.discard()) this.lostBytes = true;
        pipe.resume('stall');
      }
    } else if (mode === 'stall') {
      for (const pipe of this.pipes) pipe.pause('stall');
    } else {
      assert(mode === 'open', 'ProxiedConnection.onModeChange: unexpected mode');
      for (const pipe of this.pipes) {
        pipe.resume('stall');
        pipe.flush();
      }
    }
  }

  /** A reset the proxy decides on (a cut, or a heal after lost bytes), counted in the stats. */
  private cutReset(): void {
    if (this.closed) return;
    this.proxy.count('connectionsReset', 1);
    this.reset();
  }

  /** Abortive close of both sides (RST), as a crashed peer or a cut link looks to TCP. */
  reset(): void {
    if (this.closed) return;
    this.close();
    abort(this.source);
    if (this.target !== null) abort(this.target);
  }

  /** One side closed cleanly; the other ends once its pipe has delivered what it holds. */
  private finish(): void {
    if (this.source.destroyed && (this.target === null || this.target.destroyed)) this.close();
  }

  /** Ends both sides without a reset (used when the proxy itself shuts down). */
  destroy(): void {
    if (this.closed) return;
    this.close();
    this.source.destroy();
    this.target?.destroy();
  }

  private close(): void {
    this.closed = true;
    for (const pipe of this.pipes) pipe.close();
    this.proxy.onClosed(this);
  }
}

export class FaultProxy {
  readonly name: string;
  readonly target: Endpoint;
  private readonly server: Server;
  private readonly connections = new Set<ProxiedConnection>();
  private linkMode: LinkMode = 'open';
  private latency: number;
  private readonly queuedBytesMax: number;
  private counters = {
    connectionsAccepted: 0,
    connectionsReset: 0,
    targetConnectFailures: 0,
    bytesToTarget: 0,
    bytesToSource: 0,
    bytesDropped: 0,
  };
  private boundAddress: Endpoint | null = null;

  private constructor(options: FaultProxyOptions) {
    this.name = options.name ?? `proxy->${options.target.host}:${options.target.port}`;
    this.target = options.target;
    this.latency = validLatency(options.latencyMs ?? 0);
    this.queuedBytesMax = options.queuedBytesMax ?? 1024 * 1024;
    if (!Number.isSafeInteger(this.queuedBytesMax) || this.queuedBytesMax < 1) {
      throw new RangeError(`queuedBytesMax must be a positive integer, got ${this.queuedBytesMax}`);
    }
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.accept(socket));
  }

  /** Starts listening; resolves once the proxy's address is known. */
  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const proxy = new FaultProxy(options);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen({ host: options.host ?? LOOPBACK, port: options.port ?? 0 }, () => {
        proxy.server.removeListener('error', reject);
        resolve();
      });
    });
    const address = proxy.server.address();
    assert(address !== null && typeof address !== 'string', 'FaultProxy.start: server has no TCP address');
    proxy.boundAddress = { host: address.address, port: address.port };
    return proxy;
  }

  /** The address dialers use instead of the target's. */
  get address(): Endpoint {
    assert(this.boundAddress !== null, 'FaultProxy.address: not started');
    return this.boundAddress;
  }

  get mode(): LinkMode {
    return this.linkMode;
  }

  get latencyMs(): number {
    return this.latency;
  }

  /** Changes the per-chunk delay for chunks arriving from now on (earlier ones keep their due time). */
  setLatency(latencyMs: number): void {
    this.latency = validLatency(latencyMs);
  }

  /** Fails the link; see the module comment for what each mode does to existing and new connections. */
  cut(mode: CutMode = 'reset'): void {
    this.setMode(mode);
  }

  /** Reopens the link. After 'blackhole', connections that lost bytes are reset. */
  heal(): void {
    this.setMode('open');
  }

  stats(): FaultProxyStats {
    return { ...this.counters, connectionsActive: this.connections.size };
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    for (const connection of [...this.connections]) connection.destroy();
    if (!this.server.listening) return;
    await new Promise<void>((resolve, reject) =>
      this.server.close((error) => (error !== undefined ? reject(error) : resolve())),
    );
  }

  private setMode(mode: LinkMode): void {
    if (this.linkMode === mode) return;
    this.linkMode = mode;
    for (const connection of [...this.connections]) connection.onModeChange();
  }

  private accept(socket: Socket): void {
    this.counters.connectionsAccepted++;
    const state = this.connectionState();
    const connection = new ProxiedConnection(state, socket, () => this.counters.targetConnectFailures++);
    this.connections.add(connection);
    connection.applyModeUnconnected();
  }

  private connectionState(): ProxyState & { targetEndpoint: Endpoint; onClosed(c: ProxiedConnection): void } {
    // Getters, so connections always see the proxy's current mode and latency.
    const proxy = this;
    return {
      get mode() {
        return proxy.linkMode;
      },
      get latencyMs() {
        return proxy.latency;
      },
      queuedBytesMax: this.queuedBytesMax,
      targetEndpoint: this.target,
      count(counter, amount) {
        proxy.counters[counter] += amount;
      },
      onClosed(connection) {
        proxy.connections.delete(connection);
      },
    };
  }
}

/**
 * Closes with a TCP RST where possible. Once a FIN is queued (`end()` was called) libuv refuses the
 * reset (EINVAL), and Node 20 then leaves the handle half-closed so the process spins at exit
 * (measured on Node 20.20: `socket.end(); socket.resetAndDestroy()` never exits). Such a socket has
 * already told its peer it is done, so a plain close is the faithful choice anyway.
 */
function abort(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.writableEnded) socket.destroy();
  else socket.resetAndDestroy();
}

function validLatency(latencyMs: number): number {
  if (!Number.isFinite(latencyMs) || latencyMs < 0) throw new RangeError(`latencyMs must be >= 0, got ${latencyMs}`);
  return latencyMs;
}
