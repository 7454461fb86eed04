/**
 * find_successor (TON Fig. 5 with the successor-list failure handling of §IV.E):
 *
 *   n.find_successor(id): if id in (n, successor] return successor
 *                         else n' = closest_preceding_node(id); return n'.find_successor(id)
 *
 * A physical node answers for all of its virtual nodes: the closest preceding node is searched in the
 * fingers and successor lists of every local vnode (§6.2 notes a node may use all its vnodes' tables).
 *
 * Iterative mode: the origin asks each hop in turn (`findStep`) and keeps the candidates it learned,
 * closest to the target first; when a hop does not answer within the RPC timeout, it is suspected and
 * the next candidate is asked, so lookups route around failed nodes (§IV.E: "if a node fails, ... the
 * lookup may use the successor list or another finger"). Recursive mode: each hop forwards the query
 * (`route`), acknowledges it to the previous hop, and retries the next candidate on a missing ack; the
 * final hop answers the origin directly (`routeDone`).
 *
 * Progress: every hop asked is strictly closer (clockwise) to the target than the node that named it,
 * so a lookup ends after at most N hops even with stale tables; `hopsMax` bounds it anyway.
 */
import type { NodeId } from '@dsys/kit';
import { assert } from '@dsys/kit';
import { AVOID_MAX, type LookupMode, type NodeRef, sameRef } from './messages.js';
import { lookupDone } from './ops.js';
import { distance, inOpenClosed } from './ring.js';
import {
  addOp,
  type Candidate,
  type ChordState,
  expect,
  heardFrom,
  isJoined,
  isSuspected,
  type LookupOp,
  type LookupPurpose,
  newOpId,
  type RouteForward,
  send,
  type Vnode,
} from './state.js';

/** Candidates a node returns per step (the next hop plus alternates to route around failures). */
export const CANDIDATES_PER_STEP = 4;
/** Nodes a lookup records as answering that they are no ring member (bounds `LookupOp.nonMembers`). */
const NON_MEMBERS_MAX = 64;

export interface LocalAnswer {
  /** The successor list that answers the lookup: `nodes[0]` is the target's successor. */
  readonly nodes: NodeRef[];
}

/**
 * If a local vnode n has target in (n, s], where s is its first successor not known to have failed,
 * the answer is its successor list from s on (Theorem 7: "the closest living successor").
 */
export function localAnswer(
  state: ChordState,
  target: bigint,
  avoid: readonly NodeId[] = [],
  skipAlone = false,
): LocalAnswer | null {
  for (const vnode of state.vnodes) {
    if (vnode.status !== 'joined') continue;
    const alone = isAlone(vnode);
    // A vnode alone on its own ring knows nothing of the others (reconciliation asks around it); one
    // cut off from its successors must not claim every key (swarm seed 0x195c7c9847c1cfc6).
    if (alone && (skipAlone || vnode.isolated)) continue;
    const live = vnode.successors.filter((node) => !isSuspected(state, node.addr) && !avoid.includes(node.addr));
    if (live.length === 0) continue;
    if (inOpenClosed(target, vnode.self.id, live[0]!.id)) return { nodes: live };
  }
  return null;
}

/** The vnode's successor list is only itself: alone on a ring of its own, or isolated. */
export function isAlone(vnode: Vnode): boolean {
  return vnode.successors[0]!.addr === vnode.self.addr && vnode.successors[0]!.vnode === vnode.index;
}

/**
 * closest_preceding_node over every local vnode's fingers and successor list: the known nodes that
 * precede `target` and are closer to it than any local vnode, closest first, one per address.
 */
export function closestPreceding(
  state: ChordState,
  target: bigint,
  count: number,
  avoid: readonly NodeId[] = [],
): Candidate[] {
  const ring = state.ring;
  let bestLocal = ring.size;
  for (const vnode of state.vnodes) {
    if (vnode.status !== 'joined') continue;
    const dist = distance(ring, vnode.self.id, target);
    if (dist !== 0n && dist < bestLocal) bestLocal = dist;
  }
  const found: Candidate[] = [];
  const consider = (node: NodeRef) => {
    if (node.addr === state.address) return;
    const dist = distance(ring, node.id, target);
    if (dist === 0n || dist >= bestLocal) return;
    if (isSuspected(state, node.addr) || avoid.includes(node.addr)) return;
    found.push({ addr: node.addr, ref: node, dist });
  };
  for (const vnode of state.vnodes) {
    if (vnode.status !== 'joined') continue;
    let previous: NodeRef | null = null;
    for (let i = vnode.fingers.length - 1; i >= 0; i--) {
      const finger = vnode.fingers[i]!;
      if (finger === null || finger === previous) continue;
      previous = finger;
      consider(finger);
    }
    if (state.config.routeViaSuccessors) for (const node of vnode.successors) consider(node);
  }
  found.sort((a, b) => (a.dist < b.dist ? -1 : a.dist > b.dist ? 1 : a.addr - b.addr));
  const out: Candidate[] = [];
  for (const candidate of found) {
    if (out.some((chosen) => chosen.addr === candidate.addr)) continue;
    out.push(candidate);
    if (out.length === count) break;
  }
  return out;
}

/** The refs this node names as next hops (for `stepReply`). */
export function candidateRefs(state: ChordState, target: bigint, avoid: readonly NodeId[] = []): NodeRef[] {
  const refs: NodeRef[] = [];
  for (const candidate of closestPreceding(state, target, CANDIDATES_PER_STEP, avoid)) refs.push(candidate.ref!);
  return refs;
}

/** Starts a lookup of `target`; the purpose says what happens with the answer. */
export function startLookup(
  state: ChordState,
  target: bigint,
  purpose: LookupPurpose,
  options: { mode?: LookupMode; seeds?: readonly NodeId[] } = {},
): LookupOp | null {
  if (state.ops.size >= state.config.operationsMax) return null;
  const op: LookupOp = {
    kind: 'lookup',
    id: newOpId(state),
    target,
    mode: options.mode ?? state.config.lookupMode,
    purpose,
    deadlineTick: state.tick + state.config.operationTimeoutTicks,
    hops: 0,
    timeouts: 0,
    candidates: [],
    asked: new Set(),
    awaiting: null,
    askedDist: state.ring.size,
    failed: [],
    nonMembers: [],
    lastLive: null,
    failedSinceLive: [],
  };
  addOp(state, op);
  const seeds = options.seeds;
  if (seeds !== undefined) {
    // A joining node knows no ring positions: it asks a seed first (the farthest possible candidate).
    op.candidates = seeds.map((addr) => ({ addr, ref: null, dist: state.ring.size }));
  } else {
    const answer = localAnswer(state, target);
    if (answer !== null) {
      finishLookup(state, op, answer.nodes);
      return op;
    }
    op.candidates = closestPreceding(state, target, CANDIDATES_PER_STEP);
  }
  if (op.mode === 'recursive' && seeds === undefined) forwardRoute(state, op);
  else askNext(state, op);
  return op;
}

/** Iterative: asks the closest candidate not yet asked, or fails the lookup. */
function askNext(state: ChordState, op: LookupOp): void {
  for (;;) {
    let next = op.candidates.shift();
    if (next === undefined && op.lastLive !== null && op.failedSinceLive.length > 0) {
      // The node that named the failed hops is alive: ask it again, telling it which nodes failed.
      next = op.lastLive;
      op.lastLive = null;
      op.asked.delete(next.addr);
    }
    if (next === undefined) {
      failLookup(state, op, 'no live route to the target');
      return;
    }
    if (op.asked.has(next.addr) || isSuspected(state, next.addr)) continue;
    if (op.hops + op.timeouts >= state.config.hopsMax) {
      failLookup(state, op, `more than ${state.config.hopsMax} hops`);
      return;
    }
    const rpc = expect(state, next.addr, 'step', { op: op.id });
    if (rpc === null) {
      failLookup(state, op, 'too many RPCs in flight');
      return;
    }
    op.asked.add(next.addr);
    op.awaiting = rpc;
    op.askedDist = next.dist;
    send(state, next.addr, { type: 'findStep', rpc, target: op.target, avoid: op.failed.slice(-AVOID_MAX) });
    return;
  }
}

/** Iterative: a hop answered. */
export function onStepReply(
  state: ChordState,
  op: LookupOp,
  from: NodeId,
  reply: { done: boolean; nodes: NodeRef[]; member: boolean },
): void {
  const { done, nodes } = reply;
  op.awaiting = null;
  if (!reply.member && op.nonMembers.length < NON_MEMBERS_MAX) op.nonMembers.push(from);
  op.hops++;
  heardFrom(state, from);
  op.lastLive = { addr: from, ref: null, dist: op.askedDist };
  op.failedSinceLive = [];
  if (done) {
    const live = nodes.filter((node) => !isSuspected(state, node.addr));
    if (live.length === 0) {
      // The answering node names only failed successors: ask it again once it has stabilized.
      failLookup(state, op, 'every successor named by the answer is suspected');
      return;
    }
    finishLookup(state, op, live);
    return;
  }
  if (nodes.some((node) => node.addr === state.address)) {
    // The route leads back to this node: answer from our own vnodes' tables if they can.
    const local = localAnswer(state, op.target, op.failed, true);
    // Only an answer that reaches beyond this node: a node whose vnodes form a ring of their own
    // must learn about the others (reconciliation), not hear itself back.
    if (local?.nodes.some((node) => node.addr !== state.address)) {
      finishLookup(state, op, local!.nodes);
      return;
    }
  }
  for (const node of nodes) {
    if (node.addr === state.address || op.asked.has(node.addr) || isSuspected(state, node.addr)) continue;
    const dist = distance(state.ring, node.id, op.target);
    // Only nodes strictly closer than the one that named them: this is what bounds the lookup.
    if (dist === 0n || dist >= op.askedDist) continue;
    if (op.candidates.some((candidate) => candidate.addr === node.addr)) continue;
    op.candidates.push({ addr: node.addr, ref: node, dist });
  }
  op.candidates.sort((a, b) => (a.dist < b.dist ? -1 : a.dist > b.dist ? 1 : 0));
  askNext(state, op);
}

/** Iterative: a hop did not answer in time. */
export function onStepTimeout(state: ChordState, op: LookupOp, to: NodeId): void {
  op.awaiting = null;
  op.timeouts++;
  op.failed.push(to);
  op.failedSinceLive.push(to);
  askNext(state, op);
}

/** Answers a `findStep` from another node. */
export function answerStep(state: ChordState, from: NodeId, rpc: number, target: bigint, avoid: NodeId[]): void {
  const answer = localAnswer(state, target, avoid);
  if (answer !== null) {
    send(state, from, { type: 'stepReply', rpc, done: true, nodes: answer.nodes, member: true });
    return;
  }
  const nodes = candidateRefs(state, target, avoid);
  send(state, from, { type: 'stepReply', rpc, done: false, nodes, member: isJoined(state) });
}

// ---------------------------------------------------------------------------------------------
// Recursive mode.

function forwardsOf(state: ChordState): Map<number, RouteForward> {
  return state.routeForwards;
}

function forwardRoute(state: ChordState, op: LookupOp): void {
  const forward: RouteForward = {
    lookup: op.id,
    origin: state.address,
    target: op.target,
    hops: 1,
    alternates: op.candidates,
  };
  op.candidates = [];
  if (!sendRoute(state, forward)) failLookup(state, op, 'no live route to the target');
}

/** Sends the route message to the best alternate; false when none is left. */
function sendRoute(state: ChordState, forward: RouteForward): boolean {
  for (;;) {
    const next = forward.alternates.shift();
    if (next === undefined) return false;
    if (isSuspected(state, next.addr)) continue;
    if (forward.hops > state.config.hopsMax) return false;
    const rpc = expect(state, next.addr, 'route');
    if (rpc === null) return false;
    forwardsOf(state).set(rpc, forward);
    send(state, next.addr, {
      type: 'route',
      rpc,
      lookup: forward.lookup,
      origin: forward.origin,
      target: forward.target,
      hops: forward.hops,
    });
    return true;
  }
}

/** A recursive lookup reached this node. */
export function onRoute(
  state: ChordState,
  from: NodeId,
  message: { rpc: number; lookup: number; origin: NodeId; target: bigint; hops: number },
): void {
  send(state, from, { type: 'routeAck', rpc: message.rpc });
  const answer = localAnswer(state, message.target);
  if (answer !== null) {
    send(state, message.origin, { type: 'routeDone', lookup: message.lookup, nodes: answer.nodes, hops: message.hops });
    return;
  }
  const forward: RouteForward = {
    lookup: message.lookup,
    origin: message.origin,
    target: message.target,
    hops: message.hops + 1,
    alternates: closestPreceding(state, message.target, CANDIDATES_PER_STEP),
  };
  // No way on: the origin's own timeout ends the lookup (it retries or reports the failure).
  sendRoute(state, forward);
}

export function onRouteAck(state: ChordState, rpc: number): void {
  forwardsOf(state).delete(rpc);
}

/** The next hop of a recursive lookup did not acknowledge: suspect it, try the next alternate. */
export function onRouteTimeout(state: ChordState, rpc: number): void {
  const forwards = forwardsOf(state);
  const forward = forwards.get(rpc);
  if (forward === undefined) return;
  forwards.delete(rpc);
  const op = forward.origin === state.address ? state.ops.get(forward.lookup) : undefined;
  if (op?.kind === 'lookup') op.timeouts++;
  sendRoute(state, forward);
}

export function onRouteDone(state: ChordState, lookup: number, nodes: NodeRef[], hops: number): void {
  const op = state.ops.get(lookup);
  if (op === undefined || op.kind !== 'lookup' || op.mode !== 'recursive') return;
  op.hops = hops;
  const live = nodes.filter((node) => !isSuspected(state, node.addr));
  if (live.length === 0) {
    failLookup(state, op, 'every successor named by the answer is suspected');
    return;
  }
  finishLookup(state, op, live);
}

// ---------------------------------------------------------------------------------------------
// Completion: `lookupDone` (ops.ts) dispatches on the purpose.

function finishLookup(state: ChordState, op: LookupOp, nodes: NodeRef[]): void {
  assert(nodes.length > 0, 'finishLookup: empty answer');
  state.ops.delete(op.id);
  state.stats.lookups++;
  state.stats.lookupHops += op.hops;
  lookupDone(state, op, nodes, '');
}

export function failLookup(state: ChordState, op: LookupOp, reason: string): void {
  if (!state.ops.has(op.id)) return;
  state.ops.delete(op.id);
  if (op.awaiting !== null) state.pending.delete(op.awaiting);
  state.stats.lookupFailures++;
  lookupDone(state, op, null, reason);
}

// ---------------------------------------------------------------------------------------------
// Failure handling in the routing tables.

/** An address timed out: suspect it and drop it from every table (successor lists, fingers, predecessor). */
export function suspect(state: ChordState, address: NodeId): void {
  if (address === state.address) return;
  if (state.suspects.size >= state.config.suspectsMax && !state.suspects.has(address)) {
    // Full: forget the suspicion that ends first (deterministic: smallest until, then address).
    let oldest: NodeId | null = null;
    let oldestUntil = Number.POSITIVE_INFINITY;
    for (const [candidate, until] of state.suspects) {
      if (until < oldestUntil || (until === oldestUntil && oldest !== null && candidate < oldest)) {
        oldest = candidate;
        oldestUntil = until;
      }
    }
    if (oldest !== null) state.suspects.delete(oldest);
  }
  state.suspects.set(address, state.tick + state.config.suspectTicks);
  state.stats.timeouts++;
  for (const vnode of state.vnodes) dropAddress(vnode, address);
}

/** Removes every ref to `address` from a vnode's tables, keeping its successor list non-empty. */
export function dropAddress(vnode: Vnode, address: NodeId): void {
  if (vnode.status !== 'joined' && vnode.status !== 'leaving') return;
  if (vnode.predecessor?.addr === address) vnode.predecessor = null;
  for (let i = 0; i < vnode.fingers.length; i++) {
    if (vnode.fingers[i]?.addr === address) vnode.fingers[i] = null;
  }
  const kept = vnode.successors.filter((node) => node.addr !== address);
  if (kept.length === vnode.successors.length) return;
  vnode.successors = kept.length > 0 ? kept : [fallbackSuccessor(vnode)];
  // Cut off from every successor it knew: look itself up through another node at the next tick
  // rather than a reconcile period later (stabilization alone cannot find the way back).
  if (sameRef(vnode.successors[0]!, vnode.self)) {
    vnode.isolated = true;
    vnode.reconcileMisses = 0;
    vnode.nextReconcileTick = 0;
  }
}

/** Every successor failed: the closest live finger, else the vnode itself (alone until someone notifies). */
function fallbackSuccessor(vnode: Vnode): NodeRef {
  for (const finger of vnode.fingers) if (finger !== null) return finger;
  return vnode.self;
}
