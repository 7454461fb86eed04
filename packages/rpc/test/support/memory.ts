/**
 * A client and a server endpoint joined by an in-memory byte stream, with a manual clock and explicit
 * pumping: deterministic tests of flow control, limits and retries, without sockets or real time.
 */
import { Rng } from '@dsys/kit';
import {
  type ClientOptions,
  type HandlersOf,
  type Interface,
  RpcClient,
  RpcServer,
  type ServerConnection,
  type ServerOptions,
  type Transport,
} from '../../src/index.js';

export class ManualClock {
  now = 0;
  nowMs(): number {
    return this.now;
  }
}

export class MemoryPair<I extends Interface> {
  readonly clock = new ManualClock();
  readonly server: RpcServer<I>;
  readonly client: RpcClient<I>;
  connection: ServerConnection;
  /** Set to make the server's transport report congestion (a slow reader). */
  congested = false;
  /** Bytes the server sent, in total. */
  serverBytes = 0;
  private readonly clientTransport: Transport;

  constructor(iface: I, handlers: HandlersOf<I>, options: { server?: ServerOptions; client?: ClientOptions } = {}) {
    this.server = new RpcServer(iface, handlers, options.server ?? {}, {
      clock: this.clock,
      incarnation: 1n,
      sessionIdStart: 1000,
    });
    this.connection = this.server.connect({ wake() {}, close() {}, congested: () => this.congested }, 'memory');
    this.client = new RpcClient(iface, options.client ?? {}, {
      clock: this.clock,
      rng: Rng.fromSeed(7),
      transport: 'stream',
    });
    this.clientTransport = { wake() {}, close() {}, congested: () => false };
    this.client.connected(this.clientTransport);
    this.pump();
  }

  /** Moves bytes both ways until neither side has anything to send. Returns the rounds taken. */
  pump(roundsMax = 1000): number {
    for (let round = 0; round < roundsMax; round++) {
      const toServer = this.client.takeOutput();
      if (toServer !== null) this.connection.receive(toServer);
      const toClient = this.connection.takeOutput();
      if (toClient !== null) {
        this.serverBytes += toClient.length;
        this.client.receive(toClient);
      }
      if (toServer === null && toClient === null) return round;
    }
    throw new Error('MemoryPair.pump: no quiescence');
  }

  /** Lets promise continuations (handlers, consumers) run, then pumps; repeats until nothing moves. */
  async settle(): Promise<void> {
    for (let i = 0; i < 100; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      if (this.pump() === 0) {
        await new Promise((resolve) => setImmediate(resolve));
        if (this.pump() === 0) return;
      }
    }
  }

  /** Awaits `promise` while pumping (its answer may need bytes to move first). */
  async await<T>(promise: Promise<T>, roundsMax = 100): Promise<T> {
    let settled = false;
    const observed = promise.then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    for (let i = 0; i < roundsMax && !settled; i++) await this.settle();
    if (!settled) throw new Error('MemoryPair.await: the promise never settled');
    await observed;
    return promise;
  }

  advance(ms: number): void {
    this.clock.now += ms;
    this.server.tick();
    this.client.tick();
    this.pump();
  }
}
