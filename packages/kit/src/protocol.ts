/**
 * The protocol interface every dsys system implements (etcd/raft's Ready, TigerBeetle's tick).
 *
 * A protocol node is a deterministic state machine: `step(state, event)` mutates the node's own
 * state and returns effects in the order the driver must carry them out. It never awaits, never
 * reads a clock (time arrives as `tick` events carrying the node's local `nowMs`), draws randomness
 * only from the `rng` it was given, and never touches sockets or files: it asks for them with effects.
 *
 * The same node runs under two drivers that it cannot tell apart:
 * - `@dsys/sim`: virtual time, seeded faults, many nodes in one process;
 * - `@dsys/runtime-node`: TCP, real timers, files with fsync.
 *
 * Effect-order contract (both drivers honour it, with the same code shape):
 * 1. Effects run in the order returned, across steps too: one FIFO for the node's life.
 * 2. Storage effects (`persist`, `compact`) reach the log at once and in that order, so the disk never
 *    holds a later record without the earlier ones.
 * 3. A `persist` with `sync: true` (and a `compact` with `barrier: true`) is a barrier: every later `send` or `reply`,
 *    of this step or a later one, goes out only once the barrier is durable. So "persist term+vote,
 *    then send the vote" is written `[persist, send]` and can never send first. Effects *before* it
 *    are not delayed (a Raft leader may send AppendEntries to followers in parallel with its own
 *    fsync by ordering `[send, persist]`). A later record may become durable in the same fsync as an
 *    earlier barrier (group commit); that is indistinguishable from the strict order with the sends in
 *    between lost, which the network model allows anyway.
 * 4. A persist/compact with an `ack` number produces a later `{ type: 'persisted', ack }` event once durable.
 */
import type { ClientId, NodeId, RequestId } from './ids.js';
import type { Rng } from './rng.js';

/** What a node finds on its disk when it (re)starts: the last snapshot and the records appended after it. */
export interface Durable {
  readonly snapshot: Uint8Array | null;
  readonly records: readonly Uint8Array[];
}

export const EMPTY_DURABLE: Durable = Object.freeze({ snapshot: null, records: Object.freeze([]) });

export interface NodeContext<Config> {
  readonly id: NodeId;
  /** Every node of the initial cluster, including this one, sorted ascending. */
  readonly peers: readonly NodeId[];
  readonly config: Config;
  /** This node's own stream. */
  readonly rng: Rng;
  /** Durable state recovered from disk (empty on first boot). */
  readonly durable: Durable;
  /** The node's local clock at start, in ms (virtual in the sim). */
  readonly nowMs: number;
}

export type Event<Message, Request> =
  /** One logical tick; `nowMs` is the node's local clock (drifts per node in the sim). */
  | { readonly type: 'tick'; readonly nowMs: number }
  | { readonly type: 'receive'; readonly from: NodeId; readonly message: Message }
  | { readonly type: 'request'; readonly client: ClientId; readonly requestId: RequestId; readonly request: Request }
  | { readonly type: 'persisted'; readonly ack: number };

export type Effect<Message, Response> =
  | { readonly type: 'send'; readonly to: NodeId; readonly message: Message }
  /** Append records to the node's durable log; `sync` makes it a barrier (see the contract above). */
  | { readonly type: 'persist'; readonly records: readonly Uint8Array[]; readonly sync: boolean; readonly ack?: number }
  /**
   * Atomically replace everything durable with `snapshot` followed by `records` (log compaction).
   * Always synced; its `ack` (if any) comes once the new state is durable. After a crash the node sees
   * either the old state or the new, never a mix. `barrier: false` lets later sends and replies go out
   * while the (large, slow) write runs: for a node whose promises wait for the ack instead, so that a
   * compaction does not silence it (a leader's heartbeats) for the length of a snapshot write.
   */
  | {
      readonly type: 'compact';
      readonly snapshot: Uint8Array;
      readonly records: readonly Uint8Array[];
      readonly barrier: boolean;
      readonly ack?: number;
    }
  | { readonly type: 'reply'; readonly client: ClientId; readonly requestId: RequestId; readonly response: Response };

/** A node-local annotation for traces and tests; never affects the protocol. */
export interface Protocol<State, Message, Request, Response, Config> {
  readonly name: string;
  /** Builds a node from config (validated here, once) and recovered durable state. */
  init(context: NodeContext<Config>): State;
  step(state: State, event: Event<Message, Request>): Effect<Message, Response>[];
  /** Cross-field checks of one node's state; throws (via `assert`) on a broken invariant. */
  invariants(state: State): void;
}

/** Shorthand for the message type of a protocol. */
export type MessageOf<P> = P extends Protocol<unknown, infer M, unknown, unknown, unknown> ? M : never;
export type RequestOf<P> = P extends Protocol<unknown, unknown, infer R, unknown, unknown> ? R : never;
export type ResponseOf<P> = P extends Protocol<unknown, unknown, unknown, infer R, unknown> ? R : never;
export type StateOf<P> = P extends Protocol<infer S, unknown, unknown, unknown, unknown> ? S : never;
export type ConfigOf<P> = P extends Protocol<unknown, unknown, unknown, unknown, infer C> ? C : never;
