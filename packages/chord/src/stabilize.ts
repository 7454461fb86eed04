/**
 * Joining and keeping the ring's shape (TON §IV.D, Fig. 6), per virtual node:
 *
 *   create():         predecessor = nil; successor = n
 *   join(n'):         predecessor = nil; successor = n'.find_successor(n)
 *   stabilize():      x = successor.predecessor; if x in (n, successor) then successor = x;
 *                     successor.notify(n)
 *   notify(n'):       if predecessor is nil or n' in (predecessor, n) then predecessor = n'
 *   fix_fingers():    next = next + 1; finger[next] = find_successor(n + 2^(next-1))
 *   check_predecessor(): if predecessor has failed then predecessor = nil
 *
 * plus the successor list (§IV.E.3): stabilize copies the successor's list, prepends the successor
 * and drops the last entry; a successor that does not answer is dropped and the next entry takes its
 * place. This is what Theorem 5 ("at some time after the last join all successor pointers will be
 * correct") and Theorems 7-8 (lookups survive when every node fails with probability 1/2 and r =
 * Omega(log N)) rely on.
 *
 * The seed notes' three-step join maps onto this: (1) the new node's fingers are filled by lookups
 * through the ring right after it joins (its first fix_fingers pass runs every tick); (2) existing
 * nodes learn of it through notify/stabilize and their own fix_fingers; (3) keys move when a node's
 * predecessor changes (`onRangeChange` in store.ts, the "notify higher layer software" hook).
 */
import type { NodeId } from '@dsys/kit';
import type { NodeRef } from './messages.js';
import { sameRef } from './messages.js';
import { distance, fingerStart, inOpen, inOpenClosed } from './ring.js';
import { startLookup, suspect } from './routing.js';
import {
  type ChordState,
  expect,
  heardFrom,
  isSuspected,
  nextPeriod,
  type Pending,
  remember,
  send,
  type Vnode,
} from './state.js';
import { onRangeChange, persistMember } from './store.js';

/** TON `create()`: a one-node ring. */
export function createRing(state: ChordState, vnode: Vnode): void {
  vnode.status = 'joined';
  vnode.isolated = false;
  vnode.predecessor = null;
  vnode.successors = [vnode.self];
  vnode.fingers.fill(null);
  startPeriodicTasks(state, vnode);
  persistMember(state);
}

function startPeriodicTasks(state: ChordState, vnode: Vnode): void {
  vnode.nextStabilizeTick = state.tick + 1;
  vnode.nextFixTick = state.tick + 1;
  vnode.nextCheckTick = nextPeriod(state, state.config.checkPredecessorTicks);
  vnode.nextReconcileTick = nextPeriod(state, state.config.reconcileTicks);
  vnode.fingerNext = 0;
  vnode.fingerPasses = 0;
}

/** Begins (or retries) a join: find our successor through a seed, or through our own joined vnodes. */
export function attemptJoin(state: ChordState, vnode: Vnode, seeds: readonly NodeId[]): void {
  if (vnode.joinOp !== null) return;
  const local = state.vnodes.some((other) => other.status === 'joined');
  let op: ReturnType<typeof startLookup>;
  if (local) {
    op = startLookup(state, vnode.self.id, { type: 'join', vnode: vnode.index });
  } else {
    const order = joinCandidates(state, vnode, seeds);
    if (order.length === 0) return;
    op = startLookup(state, vnode.self.id, { type: 'join', vnode: vnode.index }, { seeds: order });
  }
  if (op !== null && state.ops.has(op.id)) vnode.joinOp = op.id;
}

/**
 * A former member may found the ring again only when every node it knows of has answered that it is
 * not a member either: then no ring is left to join. Swarm seed 0x306800728bb0229d: n1 created the
 * ring and crashed before anyone joined it; restarted, it remembered its membership and tried to join
 * (departure 2 in the README), as did everyone else, each through the others, forever. A node that
 * never was a member never founds a ring this way (that is the `create` bootstrap's job), and nodes
 * that time out do not count as answers, so a ring behind a slow link is not duplicated. If two
 * former members found rings at once (each asked the other while it was still joining), the rings
 * are disjoint and reconciliation (below) merges them.
 */
function noRingLeft(state: ChordState, nonMembers: readonly NodeId[]): boolean {
  if (!state.member || state.vnodes.some((other) => other.status === 'joined')) return false;
  const everyone = knownAddresses(state, state.joinSeeds);
  for (const addr of nonMembers) if (everyone.includes(addr)) state.nonMembers.add(addr);
  return everyone.length > 0 && everyone.every((addr) => state.nonMembers.has(addr));
}

function knownAddresses(state: ChordState, seeds: readonly NodeId[]): NodeId[] {
  const all: NodeId[] = [];
  for (const addr of [...seeds, ...state.known, ...state.peers, ...state.config.seeds]) {
    if (addr !== state.address && !all.includes(addr)) all.push(addr);
  }
  return all;
}

/** Nodes a join attempt asks, in order (a non-member answers with no candidates, so the next is asked). */
const JOIN_SEEDS_PER_ATTEMPT = 4;

/**
 * The given seeds in turn, starting from a different one at each attempt so that one failed seed
 * cannot stall us; then every other node this one knows of (remembered from an earlier membership,
 * the simulator's peers, the configured seeds). The fallback matters when the seed itself is not a
 * ring member: swarm seed 0x3d9b64451af7f223 had n3 told to join through n10 and, before that join
 * got through a partition, n10 left and was told to rejoin through n3. Each asked only the other,
 * neither was a member, and both retried forever although each still remembered nine members.
 */
export function joinCandidates(state: ChordState, vnode: Vnode, seeds: readonly NodeId[]): NodeId[] {
  const attempt = vnode.joinSeed++;
  const order: NodeId[] = [];
  const add = (list: readonly NodeId[], count: number) => {
    const eligible = list.filter((addr) => addr !== state.address && !order.includes(addr));
    if (eligible.length === 0) return;
    const first = attempt % eligible.length;
    const rotated = [...eligible.slice(first), ...eligible.slice(0, first)];
    order.push(...rotated.slice(0, count));
  };
  add(seeds, JOIN_SEEDS_PER_ATTEMPT);
  add([...state.known, ...state.peers, ...state.config.seeds], JOIN_SEEDS_PER_ATTEMPT);
  return order;
}

/** The join lookup ended: adopt the successor it found (TON `join`), or retry later. */
export function onJoinLookup(
  state: ChordState,
  vnode: Vnode,
  nodes: NodeRef[] | null,
  nonMembers: readonly NodeId[],
): void {
  vnode.joinOp = null;
  if (vnode.status !== 'joining') return;
  const successors = nodes === null ? [] : nodes.filter((node) => !sameRef(node, vnode.self));
  if (successors.length === 0) {
    vnode.nextJoinTick = nextPeriod(state, state.config.stabilizeTicks * 2);
    if (noRingLeft(state, nonMembers)) createRing(state, vnode);
    return;
  }
  state.nonMembers.clear();
  vnode.status = 'joined';
  vnode.isolated = false;
  vnode.predecessor = null;
  vnode.successors = successors.slice(0, state.config.successorListLength);
  vnode.fingers.fill(null);
  startPeriodicTasks(state, vnode);
  persistMember(state);
}

// ---------------------------------------------------------------------------------------------
// stabilize

export function stabilize(state: ChordState, vnode: Vnode): void {
  vnode.nextStabilizeTick = nextPeriod(state, state.config.stabilizeTicks);
  if (vnode.stabilizing) return;
  const successor = vnode.successors[0]!;
  if (sameRef(successor, vnode.self)) {
    // Alone on the ring: the predecessor (if any) is the only other node, so it is the successor.
    const x = vnode.predecessor;
    if (x !== null && !sameRef(x, vnode.self)) adoptSuccessor(state, vnode, x, []);
    return;
  }
  const rpc = expect(state, successor.addr, 'getPred', { vnode: vnode.index, target: successor });
  if (rpc === null) return;
  vnode.stabilizing = true;
  send(state, successor.addr, { type: 'getPred', rpc, vnode: successor.vnode });
}

/** `successor.predecessor`, with the successor list piggybacked (§IV.E.3). */
export function answerGetPred(state: ChordState, from: NodeId, rpc: number, vnodeIndex: number): void {
  const vnode = state.vnodes[vnodeIndex];
  if (vnode === undefined || vnode.status !== 'joined') {
    // Not a ring member (restarted, left, or not yet joined): an empty list says so.
    send(state, from, { type: 'predReply', rpc, pred: null, successors: [] });
    return;
  }
  send(state, from, { type: 'predReply', rpc, pred: vnode.predecessor, successors: vnode.successors });
}

export function onPredReply(state: ChordState, pending: Pending, pred: NodeRef | null, successors: NodeRef[]): void {
  const vnode = state.vnodes[pending.vnode]!;
  vnode.stabilizing = false;
  const asked = pending.target!;
  if (vnode.status !== 'joined' || !sameRef(vnode.successors[0] ?? null, asked)) return;
  if (successors.length === 0) {
    // The successor is alive but no ring member: drop it like a failed one.
    dropRef(vnode, asked);
    return;
  }
  const x = pred;
  if (x !== null && !isSuspected(state, x.addr) && !sameRef(x, vnode.self) && inOpen(x.id, vnode.self.id, asked.id)) {
    adoptSuccessor(state, vnode, x, [asked, ...successors]);
    return;
  }
  for (const node of successors) remember(state, node.addr);
  vnode.successors = successorList(state, vnode, [asked, ...successors]);
  setFinger0(state, vnode);
  send(state, vnode.successors[0]!.addr, { type: 'notify', vnode: vnode.successors[0]!.vnode, node: vnode.self });
}

export function onGetPredTimeout(state: ChordState, pending: Pending): void {
  const vnode = state.vnodes[pending.vnode]!;
  vnode.stabilizing = false;
  suspect(state, pending.to);
}

function adoptSuccessor(state: ChordState, vnode: Vnode, successor: NodeRef, rest: NodeRef[]): void {
  vnode.successors = successorList(state, vnode, [successor, ...rest]);
  setFinger0(state, vnode);
  send(state, successor.addr, { type: 'notify', vnode: successor.vnode, node: vnode.self });
}

/**
 * A successor list from candidates in ring order: no duplicates, no suspected nodes, cut where it
 * comes back around to this vnode (small rings), at most r entries, never empty.
 */
export function successorList(state: ChordState, vnode: Vnode, candidates: readonly NodeRef[]): NodeRef[] {
  const list: NodeRef[] = [];
  for (const node of candidates) {
    if (sameRef(node, vnode.self)) break;
    if (isSuspected(state, node.addr)) continue;
    if (list.some((known) => sameRef(known, node))) continue;
    list.push(node);
    if (list.length === state.config.successorListLength) break;
  }
  return list.length > 0 ? list : [vnode.self];
}

function setFinger0(state: ChordState, vnode: Vnode): void {
  // Fingers below the successor's distance all point at it (finger i covers n + 2^i).
  const successor = vnode.successors[0]!;
  if (sameRef(successor, vnode.self)) return;
  const span = distance(state.ring, vnode.self.id, successor.id);
  for (let i = 0; i < vnode.fingers.length && 1n << BigInt(i) <= span; i++) vnode.fingers[i] = successor;
}

function dropRef(vnode: Vnode, ref: NodeRef): void {
  const kept = vnode.successors.filter((node) => !sameRef(node, ref));
  vnode.successors = kept.length > 0 ? kept : [vnode.self];
  for (let i = 0; i < vnode.fingers.length; i++) if (sameRef(vnode.fingers[i] ?? null, ref)) vnode.fingers[i] = null;
}

// ---------------------------------------------------------------------------------------------
// Reconciliation: look ourselves up through another node (see config `reconcileTicks`).

export function reconcile(state: ChordState, vnode: Vnode): void {
  vnode.nextReconcileTick = nextPeriod(state, state.config.reconcileTicks);
  if (vnode.reconcileOp !== null) return;
  const others = [...state.known, ...state.peers, ...state.config.seeds].filter((addr) => addr !== state.address);
  if (others.length === 0) {
    // Nobody else is known: there is no ring to look for.
    vnode.isolated = false;
    return;
  }
  const via = state.rng.pick(others);
  const op = startLookup(state, vnode.self.id, { type: 'reconcile', vnode: vnode.index }, { seeds: [via] });
  if (op !== null && state.ops.has(op.id)) vnode.reconcileOp = op.id;
}

/** Reconciliations in a row that find nobody before an isolated vnode counts itself alone. */
export const ISOLATED_RECONCILES_MAX = 3;

export function onReconcileLookup(state: ChordState, vnode: Vnode, nodes: NodeRef[] | null): void {
  vnode.reconcileOp = null;
  if (vnode.status !== 'joined') return;
  const found = nodes?.find((node) => !sameRef(node, vnode.self));
  if (nodes === null || found === undefined) {
    if (vnode.isolated && ++vnode.reconcileMisses >= ISOLATED_RECONCILES_MAX) vnode.isolated = false;
    if (vnode.isolated) vnode.nextReconcileTick = nextPeriod(state, state.config.stabilizeTicks);
    return;
  }
  vnode.reconcileMisses = 0;
  const successor = vnode.successors[0]!;
  if (sameRef(successor, vnode.self) || inOpen(found.id, vnode.self.id, successor.id)) {
    adoptSuccessor(state, vnode, found, nodes);
  }
}

// ---------------------------------------------------------------------------------------------
// notify

export function onNotify(state: ChordState, from: NodeId, vnodeIndex: number, node: NodeRef): void {
  const vnode = state.vnodes[vnodeIndex];
  if (vnode === undefined || vnode.status !== 'joined' || sameRef(node, vnode.self)) return;
  heardFrom(state, from);
  remember(state, from);
  const old = vnode.predecessor;
  if (old === null || inOpen(node.id, old.id, vnode.self.id)) {
    vnode.predecessor = node;
    onRangeChange(state, vnode, old, node);
  }
  // A node alone on the ring takes the first node that notifies it as its successor too.
  if (sameRef(vnode.successors[0]!, vnode.self)) {
    vnode.successors = [node];
    setFinger0(state, vnode);
  }
}

// ---------------------------------------------------------------------------------------------
// check_predecessor

export function checkPredecessor(state: ChordState, vnode: Vnode): void {
  vnode.nextCheckTick = nextPeriod(state, state.config.checkPredecessorTicks);
  const predecessor = vnode.predecessor;
  if (vnode.checking || predecessor === null || predecessor.addr === state.address) return;
  const rpc = expect(state, predecessor.addr, 'ping', { vnode: vnode.index, target: predecessor });
  if (rpc === null) return;
  vnode.checking = true;
  send(state, predecessor.addr, { type: 'ping', rpc, vnode: predecessor.vnode });
}

export function onPong(state: ChordState, pending: Pending, member: boolean): void {
  const vnode = state.vnodes[pending.vnode]!;
  vnode.checking = false;
  heardFrom(state, pending.to);
  // Alive but no longer a member (it restarted or left): forget it as predecessor.
  if (!member && sameRef(vnode.predecessor, pending.target)) vnode.predecessor = null;
}

export function onPingTimeout(state: ChordState, pending: Pending): void {
  const vnode = state.vnodes[pending.vnode]!;
  vnode.checking = false;
  suspect(state, pending.to);
}

// ---------------------------------------------------------------------------------------------
// fix_fingers

/**
 * Refreshes the next finger. Fingers whose start lies within (n, successor] are the successor and need
 * no lookup; a lookup's answer s also serves every later finger whose start lies in [start, s], so a
 * pass costs O(log N) lookups rather than m (the paper's per-finger loop, with the obvious shortcut).
 */
export function fixFingers(state: ChordState, vnode: Vnode): void {
  const firstPass = vnode.fingerPasses === 0;
  vnode.nextFixTick = firstPass ? state.tick + 1 : nextPeriod(state, state.config.fixFingersTicks);
  if (vnode.fixing) return;
  const bits = state.ring.bits;
  const successor = vnode.successors[0]!;
  for (let steps = 0; steps < bits; steps++) {
    const index = vnode.fingerNext;
    const start = fingerStart(state.ring, vnode.self.id, index);
    if (sameRef(successor, vnode.self) || inOpenClosed(start, vnode.self.id, successor.id)) {
      vnode.fingers[index] = sameRef(successor, vnode.self) ? null : successor;
      advanceFinger(vnode, bits);
      continue;
    }
    const op = startLookup(state, start, { type: 'finger', vnode: vnode.index, index });
    if (op !== null && state.ops.has(op.id)) vnode.fixing = true;
    return;
  }
}

function advanceFinger(vnode: Vnode, bits: number): void {
  vnode.fingerNext++;
  if (vnode.fingerNext >= bits) {
    vnode.fingerNext = 0;
    vnode.fingerPasses++;
  }
}

export function onFingerLookup(state: ChordState, vnode: Vnode, index: number, nodes: NodeRef[] | null): void {
  vnode.fixing = false;
  if (vnode.status !== 'joined' || vnode.fingerNext !== index) return;
  if (nodes === null) {
    advanceFinger(vnode, state.ring.bits);
    return;
  }
  const found = nodes[0]!;
  const start = fingerStart(state.ring, vnode.self.id, index);
  const reach = distance(state.ring, start, found.id);
  vnode.fingers[index] = sameRef(found, vnode.self) ? null : found;
  advanceFinger(vnode, state.ring.bits);
  // Later fingers whose start is in [start, found] have the same successor.
  while (vnode.fingerNext !== 0) {
    const next = fingerStart(state.ring, vnode.self.id, vnode.fingerNext);
    if (distance(state.ring, start, next) > reach) break;
    vnode.fingers[vnode.fingerNext] = vnode.fingers[index]!;
    advanceFinger(vnode, state.ring.bits);
  }
}

// ---------------------------------------------------------------------------------------------
// Graceful leave (TON §IV.E.4): tell the predecessor and the successor, who link up directly.

export function sendLeaving(state: ChordState, vnode: Vnode): void {
  const successor = vnode.successors[0]!;
  const predecessor = vnode.predecessor;
  const successors = vnode.successors.filter((node) => !sameRef(node, vnode.self));
  if (!sameRef(successor, vnode.self)) {
    send(state, successor.addr, {
      type: 'leaving',
      vnode: successor.vnode,
      node: vnode.self,
      pred: predecessor,
      successors,
    });
  }
  if (predecessor !== null && !sameRef(predecessor, vnode.self) && !sameRef(predecessor, successor)) {
    send(state, predecessor.addr, {
      type: 'leaving',
      vnode: predecessor.vnode,
      node: vnode.self,
      pred: predecessor,
      successors,
    });
  }
}

export function onLeaving(
  state: ChordState,
  vnodeIndex: number,
  node: NodeRef,
  pred: NodeRef | null,
  successors: NodeRef[],
): void {
  const vnode = state.vnodes[vnodeIndex];
  if (vnode === undefined || vnode.status !== 'joined') return;
  if (sameRef(vnode.successors[0]!, node)) {
    vnode.successors = successorList(state, vnode, [
      ...successors,
      ...vnode.successors.filter((known) => !sameRef(known, node)),
    ]);
    setFinger0(state, vnode);
  }
  if (sameRef(vnode.predecessor, node)) {
    const old = vnode.predecessor;
    vnode.predecessor = pred !== null && !sameRef(pred, vnode.self) ? pred : null;
    if (vnode.predecessor !== null) onRangeChange(state, vnode, old, vnode.predecessor);
  }
  // The node is gone from the ring: no finger or list entry should keep pointing at it.
  for (let i = 0; i < vnode.fingers.length; i++) if (sameRef(vnode.fingers[i] ?? null, node)) vnode.fingers[i] = null;
  vnode.successors = vnode.successors.filter((known) => !sameRef(known, node));
  if (vnode.successors.length === 0) vnode.successors = [vnode.self];
}
