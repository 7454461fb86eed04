/**
 * RPC endpoints hosted inside kit `Protocol` nodes, for the deterministic simulator (@dsys/sim) or any
 * other driver of protocol nodes. One simulator message carries one frame body; the network may lose,
 * duplicate and reorder them, which is exactly the setting of Birrell & Nelson's packet-level protocol:
 * the client retransmits until answered, and the server's reply cache suppresses duplicates.
 *
 * Time is the node's virtual clock: it advances on `tick` events (deadlines and retransmissions have the
 * tick's granularity). Handlers must be synchronous here (return a value, not a promise): a protocol
 * step never waits, and a promise would settle outside the simulated timeline. The host checks that.
 * Server streams need an ordered transport and are refused on this one.
 */
import { assert, type Effect, type NodeId, type Rng } from '@dsys/kit';
import { type ClientOptions, RpcClient } from './client.js';
import type { Clock, Transport } from './endpoint.js';
import type { HandlersOf, Interface } from './interface.js';
import { RpcServer, type ServerConnection, type ServerOptions } from './server.js';
import { FRAME_HEADER_BYTES } from './wire.js';

/** A clock that the host sets from tick events. */
export class VirtualClock implements Clock {
  now: number;
  constructor(nowMs: number) {
    this.now = nowMs;
  }
  nowMs(): number {
    return this.now;
  }
}

/** Splits a buffer of length-prefixed frames into frame bodies (views, no copy). */
export function splitFrames(bytes: Uint8Array): Uint8Array[] {
  const bodies: Uint8Array[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  while (offset < bytes.length) {
    assert(bytes.length - offset >= FRAME_HEADER_BYTES, 'splitFrames: truncated header in our own output');
    const length = view.getUint32(offset, true);
    const end = offset + FRAME_HEADER_BYTES + length;
    assert(end <= bytes.length, 'splitFrames: truncated body in our own output');
    bodies.push(bytes.slice(offset + FRAME_HEADER_BYTES, end));
    offset = end;
  }
  return bodies;
}

/** Draws a 64-bit incarnation and a session id start from a node's boot stream (differs every boot). */
function drawIncarnation(rng: Rng): { incarnation: bigint; sessionIdStart: number } {
  const high = rng.u32();
  const low = rng.u32();
  // Session ids: a random start below 2^52 leaves 2^52 ids to issue before leaving the safe range.
  const sessionIdStart = 1 + ((rng.u32() % 0x10_0000) * 0x1_0000_0000 + rng.u32());
  return { incarnation: (BigInt(high) << 32n) | BigInt(low), sessionIdStart };
}

const NEVER_CONGESTED = (): boolean => false;

/**
 * The server half: feed it every message from a peer and every tick; it returns `send` effects.
 * One connection per peer node (a peer's rebinding shows up as a new HELLO on the same connection).
 */
export class SimServerHost<I extends Interface> {
  readonly server: RpcServer<I>;
  readonly clock: VirtualClock;
  private readonly connections = new Map<NodeId, ServerConnection>();

  constructor(iface: I, handlers: HandlersOf<I>, options: ServerOptions, boot: { rng: Rng; nowMs: number }) {
    this.clock = new VirtualClock(boot.nowMs);
    const { incarnation, sessionIdStart } = drawIncarnation(boot.rng.fork('rpc-server'));
    // Bind and frame timeouts guard real sockets; here the network model does that job.
    this.server = new RpcServer(
      iface,
      handlers,
      { idleTimeoutMs: 0, ...options },
      { clock: this.clock, incarnation, sessionIdStart },
    );
  }

  receive<M>(from: NodeId, body: Uint8Array): Effect<M | Uint8Array, never>[] {
    const connection = this.connectionOf(from);
    connection.receiveFrame(body);
    assert(!this.hasPending(connection), 'a handler returned a promise: handlers must be synchronous in the simulator');
    return this.drain(from, connection);
  }

  tick<M>(nowMs: number): Effect<M | Uint8Array, never>[] {
    this.clock.now = nowMs;
    this.server.tick();
    const effects: Effect<M | Uint8Array, never>[] = [];
    for (const [peer, connection] of this.connections) effects.push(...this.drain<M>(peer, connection));
    return effects;
  }

  invariants(): void {
    this.server.invariants();
  }

  private connectionOf(peer: NodeId): ServerConnection {
    let connection = this.connections.get(peer);
    // A connection closed for bad input is replaced: on a message transport the peer is still there.
    if (connection === undefined || connection.isClosed) {
      const transport: Transport = { wake() {}, close() {}, congested: NEVER_CONGESTED };
      connection = this.server.connect(transport, `n${peer}`);
      this.connections.set(peer, connection);
    }
    return connection;
  }

  private hasPending(connection: ServerConnection): boolean {
    return connection.pendingCount > 0;
  }

  private drain<M>(peer: NodeId, connection: ServerConnection): Effect<M | Uint8Array, never>[] {
    const bytes = connection.takeOutput();
    if (bytes === null) return [];
    return splitFrames(bytes).map((message) => ({ type: 'send', to: peer, message }));
  }
}

/**
 * The client half: an `RpcClient` whose frames go to one server node. Call through `client.invoke`
 * (callback form: it reports inside the step that settles the call), then return `drain()`'s effects.
 */
export class SimClientHost<I extends Interface> {
  readonly client: RpcClient<I>;
  readonly clock: VirtualClock;
  readonly server: NodeId;

  constructor(iface: I, server: NodeId, options: ClientOptions, boot: { rng: Rng; nowMs: number }) {
    this.clock = new VirtualClock(boot.nowMs);
    this.server = server;
    this.client = new RpcClient(
      iface,
      { keepaliveIntervalMs: 0, ...options },
      {
        clock: this.clock,
        rng: boot.rng.fork('rpc-client'),
        transport: 'message',
      },
    );
    this.client.connected({ wake() {}, close() {}, congested: NEVER_CONGESTED });
  }

  receive<M>(from: NodeId, body: Uint8Array): Effect<M | Uint8Array, never>[] {
    if (from === this.server) this.client.receiveFrame(body);
    return this.drain();
  }

  tick<M>(nowMs: number): Effect<M | Uint8Array, never>[] {
    this.clock.now = nowMs;
    this.client.tick();
    return this.drain();
  }

  /** Frames written since the last drain, as `send` effects to the server. */
  drain<M>(): Effect<M | Uint8Array, never>[] {
    const bytes = this.client.takeOutput();
    if (bytes === null) return [];
    return splitFrames(bytes).map((message) => ({ type: 'send', to: this.server, message }));
  }

  invariants(): void {
    this.client.invariants();
  }
}
