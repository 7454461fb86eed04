/**
 * Global knowledge of a ring, which no node has: the sorted identifiers of every live member vnode.
 * Checkers use it to judge the protocol (is each successor pointer correct? Theorem 5), experiments
 * use it to judge lookups (did it return the key's current successor?), and `installStableRing`
 * builds the state stabilization converges to, so that the paper's stable-network experiments can
 * start from a converged ring of 10^4 nodes without simulating its whole growth.
 */
import { assert } from '@dsys/kit';
import { type NodeRef, sameRef } from './messages.js';
import { distance, fingerStart, type Ring } from './ring.js';
import type { ChordState } from './state.js';

export class RingOracle {
  /** Member vnodes, ascending by identifier. */
  readonly members: NodeRef[];
  readonly ring: Ring;
  private readonly indexOf = new Map<string, number>();

  constructor(ring: Ring, states: Iterable<ChordState>, includeStatus: (status: string) => boolean = isMember) {
    this.ring = ring;
    const members: NodeRef[] = [];
    for (const state of states) {
      for (const vnode of state.vnodes) if (includeStatus(vnode.status)) members.push(vnode.self);
    }
    members.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    this.members = members;
    members.forEach((ref, index) => {
      this.indexOf.set(refKey(ref), index);
    });
  }

  get size(): number {
    return this.members.length;
  }

  /** Index of the first member with identifier >= id (wrapping). */
  successorIndex(id: bigint): number {
    const members = this.members;
    let low = 0;
    let high = members.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (members[mid]!.id < id) low = mid + 1;
      else high = mid;
    }
    return low === members.length ? 0 : low;
  }

  /** The key's successor among the members: the node responsible for it. */
  successorOf(id: bigint): NodeRef {
    assert(this.members.length > 0, 'RingOracle: empty ring');
    return this.members[this.successorIndex(id)]!;
  }

  /** The member after `ref` (its correct successor pointer). */
  next(ref: NodeRef, steps = 1): NodeRef {
    const index = this.indexOf.get(refKey(ref));
    assert(index !== undefined, 'RingOracle.next: not a member');
    return this.members[(index + steps) % this.members.length]!;
  }

  previous(ref: NodeRef): NodeRef {
    const index = this.indexOf.get(refKey(ref));
    assert(index !== undefined, 'RingOracle.previous: not a member');
    return this.members[(index - 1 + this.members.length) % this.members.length]!;
  }

  has(ref: NodeRef): boolean {
    return this.indexOf.has(refKey(ref));
  }

  /** The first `count` members from the key's successor on, on distinct physical nodes. */
  replicaSet(id: bigint, count: number): number[] {
    const addresses: number[] = [];
    const start = this.successorIndex(id);
    for (let i = 0; i < this.members.length && addresses.length < count; i++) {
      const ref = this.members[(start + i) % this.members.length]!;
      if (!addresses.includes(ref.addr)) addresses.push(ref.addr);
    }
    return addresses;
  }
}

function isMember(status: string): boolean {
  return status === 'joined';
}

function refKey(ref: NodeRef): string {
  return `${ref.addr}#${ref.vnode}`;
}

export interface RingReport {
  readonly members: number;
  /** Member vnodes whose successor pointer is not the next member (Theorem 5 wants 0). */
  readonly wrongSuccessors: number;
  readonly wrongPredecessors: number;
  /** Successor-list entries that differ from the true next members. */
  readonly wrongListEntries: number;
}

/** Compares every member's pointers with the truth. */
export function checkRing(ring: Ring, states: readonly ChordState[]): RingReport {
  const oracle = new RingOracle(ring, states);
  let wrongSuccessors = 0;
  let wrongPredecessors = 0;
  let wrongListEntries = 0;
  for (const state of states) {
    for (const vnode of state.vnodes) {
      if (vnode.status !== 'joined') continue;
      const alone = oracle.size === 1;
      const expected = alone ? vnode.self : oracle.next(vnode.self);
      if (!sameRef(vnode.successors[0]!, expected)) wrongSuccessors++;
      const expectedPred = alone ? null : oracle.previous(vnode.self);
      if (!alone && !sameRef(vnode.predecessor, expectedPred)) wrongPredecessors++;
      const length = Math.min(state.config.successorListLength, Math.max(1, oracle.size - 1));
      for (let i = 0; i < length; i++) {
        const entry = vnode.successors[i] ?? null;
        if (!sameRef(entry, alone ? vnode.self : oracle.next(vnode.self, i + 1))) wrongListEntries++;
      }
    }
  }
  return { members: oracle.size, wrongSuccessors, wrongPredecessors, wrongListEntries };
}

/**
 * Sets every member vnode's predecessor, successor list and fingers to their correct values: the
 * state that stabilization and fix_fingers converge to in a stable network (Theorem 5 and §IV.D).
 * Every vnode of `states` becomes a member. Consecutive equal fingers share one ref object.
 */
export function installStableRing(ring: Ring, states: readonly ChordState[]): RingOracle {
  const oracle = new RingOracle(ring, states, () => true);
  assert(oracle.size >= 1, 'installStableRing: no vnodes');
  for (const state of states) {
    for (const vnode of state.vnodes) {
      vnode.status = 'joined';
      const length = Math.min(state.config.successorListLength, Math.max(1, oracle.size - 1));
      vnode.successors = [];
      for (let i = 1; i <= length; i++)
        vnode.successors.push(oracle.size === 1 ? vnode.self : oracle.next(vnode.self, i));
      vnode.predecessor = oracle.size === 1 ? null : oracle.previous(vnode.self);
      fillFingers(ring, oracle, vnode.self, vnode.fingers);
      vnode.fingerNext = 0;
      vnode.fingerPasses = 1;
      vnode.nextStabilizeTick = state.tick + 1 + state.rng.int(state.config.stabilizeTicks);
      vnode.nextFixTick = state.tick + 1 + state.rng.int(state.config.fixFingersTicks);
      vnode.nextCheckTick = state.tick + 1 + state.rng.int(state.config.checkPredecessorTicks);
    }
    state.member = true;
  }
  return oracle;
}

function fillFingers(ring: Ring, oracle: RingOracle, self: NodeRef, fingers: (NodeRef | null)[]): void {
  const successor = oracle.size === 1 ? null : oracle.next(self);
  const span = successor === null ? 0n : distance(ring, self.id, successor.id);
  for (let i = 0; i < fingers.length; i++) {
    if (successor === null) {
      fingers[i] = null;
    } else if (1n << BigInt(i) <= span) {
      fingers[i] = successor;
    } else {
      const found = oracle.successorOf(fingerStart(ring, self.id, i));
      fingers[i] = sameRef(found, self) ? null : found;
    }
  }
}
