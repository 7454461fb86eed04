/**
 * The state of one physical Chord node (all of its virtual nodes), and the small helpers every part
 * of the protocol shares: sending, the pending-RPC table, the failure detector's suspect list.
 *
 * A step appends effects to `state.out`; `protocol.ts` hands them back to the driver in order.
 */
import type { ClientId, Effect, NodeId, RequestId, Rng } from '@dsys/kit';
import { assert } from '@dsys/kit';
import type { ChordConfig } from './config.js';
import type { ChordMessage, ChordResponse, ChordStats, Item, LookupMode, NodeRef, VnodeStatus } from './messages.js';
import type { Ring } from './ring.js';

/** One virtual node: its place on the ring and its routing state (TON Fig. 6 variables). */
export interface Vnode {
  readonly index: number;
  readonly self: NodeRef;
  status: VnodeStatus;
  predecessor: NodeRef | null;
  /** The successor list; `successors[0]` is the successor. Only `[self]` when alone on the ring. */
  successors: NodeRef[];
  /** finger[i] = successor(self + 2^i), or null while unknown. Consecutive equal fingers share one object. */
  fingers: (NodeRef | null)[];
  /** Next finger fix_fingers refreshes. */
  fingerNext: number;
  /** Full passes of fix_fingers done since the join (the first pass runs every tick). */
  fingerPasses: number;
  nextStabilizeTick: number;
  nextFixTick: number;
  nextCheckTick: number;
  nextReconcileTick: number;
  reconcileOp: number | null;
  /**
   * Every successor timed out and the list fell back to the vnode itself: it is cut off, not known
   * to be alone. While isolated (and alone) it neither answers lookups as the successor of every key
   * nor takes responsibility for keys; it looks for the ring (reconciliation) instead. Cleared when
   * it links to another node, or when `ISOLATED_RECONCILES_MAX` reconciliations in a row found
   * nobody (it is then alone as far as anyone can tell, like the last survivor of a crash).
   */
  isolated: boolean;
  /** Consecutive reconciliations of an isolated vnode that found nobody. */
  reconcileMisses: number;
  /** An RPC of that periodic task is in flight: do not start another. */
  stabilizing: boolean;
  fixing: boolean;
  checking: boolean;
  /** Joining: index of the next seed to try, and the tick of the next attempt. */
  joinSeed: number;
  nextJoinTick: number;
  joinOp: number | null;
}

export interface StoredItem {
  readonly key: string;
  readonly keyId: bigint;
  value: Uint8Array;
  seq: number;
  writer: number;
  /** Last tick this copy was confirmed (written, or listed by its primary's sync). */
  confirmedTick: number;
}

export interface Pending {
  readonly rpc: number;
  readonly to: NodeId;
  readonly deadlineTick: number;
  readonly kind: PendingKind;
  /** Owning operation (replies and timeouts go to it), or null for periodic tasks. */
  readonly op: number | null;
  /** Vnode of a periodic task. */
  readonly vnode: number;
  /** The node asked (periodic tasks), to compare with the current pointers when the answer comes. */
  readonly target: NodeRef | null;
}

export type PendingKind =
  | 'getPred'
  | 'ping'
  | 'step'
  | 'route'
  | 'store'
  | 'replicaPut'
  | 'fetch'
  | 'sync'
  | 'push'
  | 'handoff'
  | 'transfer';

/** Who asked for a client-visible result. */
export interface ClientTicket {
  readonly client: ClientId;
  readonly requestId: RequestId;
}

/** What to do with a finished lookup. */
export type LookupPurpose =
  | { readonly type: 'client'; readonly ticket: ClientTicket }
  | { readonly type: 'join'; readonly vnode: number }
  | { readonly type: 'finger'; readonly vnode: number; readonly index: number }
  | { readonly type: 'reconcile'; readonly vnode: number }
  | { readonly type: 'op'; readonly op: number };

export interface Candidate {
  readonly addr: NodeId;
  /** The vnode known at that address closest before the target (null for a seed). */
  readonly ref: NodeRef | null;
  /** Clockwise distance from the candidate to the target (smaller is closer). */
  readonly dist: bigint;
}

export interface LookupOp {
  readonly kind: 'lookup';
  readonly id: number;
  readonly target: bigint;
  readonly mode: LookupMode;
  readonly purpose: LookupPurpose;
  readonly deadlineTick: number;
  hops: number;
  timeouts: number;
  /** Iterative: nodes still to ask, closest first. */
  candidates: Candidate[];
  readonly asked: Set<NodeId>;
  /** Iterative: the RPC in flight and the distance of the node it asked. */
  awaiting: number | null;
  askedDist: bigint;
  /** Nodes that timed out during this lookup (sent as `avoid`). */
  readonly failed: NodeId[];
  /** Nodes that answered that they are no ring member (a join uses this to tell that no ring exists). */
  readonly nonMembers: NodeId[];
  /** The last node that answered, and the nodes that failed since: it is asked again if nothing else is left. */
  lastLive: Candidate | null;
  failedSinceLive: NodeId[];
}

export interface PutOp {
  readonly kind: 'put';
  readonly id: number;
  readonly ticket: ClientTicket | null;
  readonly key: string;
  readonly keyId: bigint;
  readonly value: Uint8Array;
  readonly deadlineTick: number;
  attempts: number;
}

export interface GetOp {
  readonly kind: 'get';
  readonly id: number;
  readonly ticket: ClientTicket | null;
  readonly key: string;
  readonly keyId: bigint;
  readonly deadlineTick: number;
  attempts: number;
  outstanding: number;
  best: Item | null;
  /** The primary answered that it is responsible, or a copy was found: the answers may decide. */
  done: boolean;
}

/** At a primary: a write waiting for its replicas' acknowledgements. */
export interface StoreOp {
  readonly kind: 'store';
  readonly id: number;
  readonly coordinator: NodeId;
  readonly coordinatorRpc: number;
  readonly item: Item;
  /** Further successors to ask when a replica target fails. */
  spares: NodeId[];
  outstanding: number;
  readonly acked: Set<NodeId>;
  readonly deadlineTick: number;
}

export interface HandoffOp {
  readonly kind: 'handoff';
  readonly id: number;
  readonly key: string;
  readonly seq: number;
  readonly writer: number;
  readonly startTick: number;
  readonly deadlineTick: number;
}

export interface LeaveOp {
  readonly kind: 'leave';
  readonly id: number;
  readonly ticket: ClientTicket | null;
  outstanding: number;
  readonly deadlineTick: number;
  /** A transfer was not acknowledged: the leave is abandoned rather than lose the items. */
  failed: boolean;
  /** Transfer rounds so far (items written meanwhile need another round). */
  rounds: number;
  /** Versions the heirs acknowledged, by key. */
  readonly handedOver: Map<string, { seq: number; writer: number }>;
}

/** Forwarding state of a recursive lookup at one hop: alternates to try when the next hop is silent. */
export interface RouteForward {
  readonly lookup: number;
  readonly origin: NodeId;
  readonly target: bigint;
  readonly hops: number;
  alternates: Candidate[];
}

export type Operation = LookupOp | PutOp | GetOp | StoreOp | HandoffOp | LeaveOp;

/** A vnode became responsible for (from, to]; `from` null while its predecessor is unknown. */
export interface RangeEvent {
  readonly vnode: number;
  readonly from: bigint | null;
  readonly to: bigint;
}

export interface ChordState {
  readonly config: ChordConfig;
  readonly ring: Ring;
  readonly address: NodeId;
  readonly name: string;
  readonly rng: Rng;
  /** Other nodes known at start (the simulator's peers), for `auto` bootstrap. */
  readonly peers: readonly NodeId[];
  tick: number;
  readonly vnodes: Vnode[];
  readonly pending: Map<number, Pending>;
  rpcNext: number;
  readonly ops: Map<number, Operation>;
  opNext: number;
  /** Recursive lookups this node forwarded, by the RPC of the forward, until the next hop acknowledges. */
  readonly routeForwards: Map<number, RouteForward>;
  /** Failure detector: address -> tick until which it counts as failed. */
  readonly suspects: Map<NodeId, number>;
  readonly store: Map<string, StoredItem>;
  /** Keys with a handoff in flight (one at a time per key). */
  readonly handoffKeys: Set<string>;
  /** Range changes not yet drained by the driver (the application callback); bounded, oldest dropped. */
  readonly rangeEvents: RangeEvent[];
  /** Other nodes' addresses, for reconciliation (bounded by `knownMax`). */
  readonly known: NodeId[];
  /**
   * Nodes that answered a join attempt that they are no ring member, since this node last joined.
   * Bounded: only addresses from `joinCandidates` (seeds, known, peers) are added.
   */
  readonly nonMembers: Set<NodeId>;
  /** Where to join through: the config's seeds, the simulator's peers, or a `join` request's node. */
  joinSeeds: readonly NodeId[];
  /** Lamport clock of item versions this node has seen. */
  lamport: number;
  nextReplicateTick: number;
  /** Has been a ring member (durable): an `auto` restart joins instead of creating. */
  member: boolean;
  /** Records appended since the last compaction. */
  records: number;
  readonly stats: ChordStats;
  /** The last few reasons for rejecting input (newest last). */
  readonly rejections: string[];
  /** Effects of the step being run. */
  out: Effect<ChordMessage, ChordResponse>[];
}

export const REJECTIONS_KEPT = 16;

export function send(state: ChordState, to: NodeId, message: ChordMessage): void {
  state.out.push({ type: 'send', to, message });
}

export function reply(state: ChordState, ticket: ClientTicket, response: ChordResponse): void {
  state.out.push({ type: 'reply', client: ticket.client, requestId: ticket.requestId, response });
}

export function replyError(
  state: ChordState,
  ticket: ClientTicket,
  code: Extract<ChordResponse, { type: 'error' }>['code'],
  reason: string,
): void {
  reply(state, ticket, { type: 'error', code, reason });
}

/** Records an RPC in flight; returns its number for the message. Null when the table is full. */
export function expect(
  state: ChordState,
  to: NodeId,
  kind: PendingKind,
  options: { op?: number; vnode?: number; target?: NodeRef | null } = {},
): number | null {
  if (state.pending.size >= state.config.pendingRpcsMax) return null;
  const rpc = state.rpcNext++;
  state.pending.set(rpc, {
    rpc,
    to,
    deadlineTick: state.tick + state.config.rpcTimeoutTicks,
    kind,
    op: options.op ?? null,
    vnode: options.vnode ?? 0,
    target: options.target ?? null,
  });
  return rpc;
}

/** Takes the pending RPC a reply answers; null when unknown, expired, or from the wrong node. */
export function settle(state: ChordState, rpc: number, from: NodeId, kind: PendingKind): Pending | null {
  const pending = state.pending.get(rpc);
  if (pending === undefined || pending.to !== from || pending.kind !== kind) return null;
  state.pending.delete(rpc);
  return pending;
}

export function isSuspected(state: ChordState, address: NodeId): boolean {
  const until = state.suspects.get(address);
  if (until === undefined) return false;
  if (until > state.tick) return true;
  state.suspects.delete(address);
  return false;
}

/** Hearing from a node clears suspicion of it. */
export function heardFrom(state: ChordState, address: NodeId): void {
  if (state.suspects.size > 0) state.suspects.delete(address);
}

export function newOpId(state: ChordState): number {
  return state.opNext++;
}

export function addOp(state: ChordState, op: Operation): void {
  assert(!state.ops.has(op.id), `op ${op.id} exists`);
  state.ops.set(op.id, op);
}

export function reject(state: ChordState, from: NodeId | null, reason: string): void {
  state.stats.rejected++;
  state.rejections.push(from === null ? reason : `from ${from}: ${reason}`);
  if (state.rejections.length > REJECTIONS_KEPT) state.rejections.shift();
}

/** Period of a task: jittered in [period/2, 3 period/2] (TON §V.D) when configured. */
export function nextPeriod(state: ChordState, period: number): number {
  if (!state.config.jitter || period < 2) return state.tick + period;
  return state.tick + state.rng.between(Math.max(1, Math.floor(period / 2)), period + Math.floor(period / 2));
}

export function joinedVnodes(state: ChordState): Vnode[] {
  return state.vnodes.filter((vnode) => vnode.status === 'joined');
}

export function isJoined(state: ChordState): boolean {
  for (const vnode of state.vnodes) if (vnode.status === 'joined') return true;
  return false;
}

/** Remembers another node's address for reconciliation; a full list replaces a random entry. */
export function remember(state: ChordState, address: NodeId): void {
  if (address === state.address || state.known.includes(address)) return;
  if (state.known.length < state.config.knownMax) state.known.push(address);
  else state.known[state.rng.int(state.known.length)] = address;
}
