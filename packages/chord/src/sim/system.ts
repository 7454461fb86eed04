/**
 * `chordSim`: Chord registered with the deterministic simulator (`dsys sim chord --seed N`).
 *
 * Swarm (drawn from the seed): 1..16 physical nodes with 1..3 virtual nodes each, ring sizes of 16,
 * 32 or 160 bits, iterative or recursive lookups, loss, duplication, symmetric and one-way partitions
 * that heal, crashes (nodes keep their items on disk) and restarts, graceful leaves and rejoins, clock
 * drift; then a liveness phase in which every fault stops and the ring must converge (Theorem 5) with
 * every acknowledged key back on its replicas, a fresh put from every client must succeed, and every
 * key must read back. See workload.ts.
 */
import { assert, type Rng } from '@dsys/kit';
import { type ClusterView, defineSimSystem, type SimOptions, type SimOptionsBase, type SimSystem } from '@dsys/sim';
import { CHORD_CONFIG_DEFAULT, type ChordConfig } from '../config.js';
import {
  type ChordMessage,
  type ChordRequest,
  type ChordResponse,
  compareVersions,
  messageSchema,
  requestSchema,
  responseSchema,
} from '../messages.js';
import { checkRing, RingOracle } from '../oracle.js';
import { chordProtocol } from '../protocol.js';
import { keyId, nodeId, ringOf } from '../ring.js';
import type { ChordState } from '../state.js';
import { AdminClient, ChordClient, type ChordShared, checkHistories, newShared } from './workload.js';

function swarm(rng: Rng, drawn: SimOptionsBase): SimOptionsBase {
  const nodeCount = rng.between(1, 16);
  const tickMs = drawn.tickMs;
  const config = drawConfigKnobs(rng, drawn, nodeCount);
  const operationMs = config.operationTimeoutTicks * tickMs;
  return {
    ...drawn,
    nodeCount,
    // Crashed nodes keep their items on disk; the swarm may take down a minority at once.
    crashedMax: Math.floor((nodeCount - 1) / 2),
    clientCount: rng.between(1, 4),
    requestTimeoutMs: operationMs + 20 * tickMs,
    livenessTicksMax: 6000,
    opsMax: rng.between(50, 250),
    knobs: {
      ...drawn.knobs,
      idBits: rng.pick([16, 32, 160]),
      vnodes: rng.pick([1, 1, 2, 3]),
      recursive: rng.chance(1, 3) ? 1 : 0,
      stabilizeTicks: config.stabilizeTicks,
      fixFingersTicks: config.fixFingersTicks,
      rpcTimeoutTicks: config.rpcTimeoutTicks,
      replicateTicks: config.replicateTicks,
      churn: nodeCount >= 3 && rng.chance(1, 2) ? 1 : 0,
      keys: rng.pick([4, 16, 64]),
      putPercent: rng.between(20, 60),
    },
  };
}

/** Periods and timeouts in ticks, scaled to the drawn network so that a healthy RPC never times out. */
function drawConfigKnobs(rng: Rng, drawn: SimOptionsBase, _nodes: number) {
  const roundTripMs = 2 * (drawn.latencyMsMax + 4 * drawn.latencyTailMsMean) + drawn.diskLatencyMsMax + 1;
  const rpcTimeoutTicks = Math.max(3, Math.ceil((2 * roundTripMs) / drawn.tickMs));
  return {
    rpcTimeoutTicks,
    stabilizeTicks: rng.between(2, 10),
    fixFingersTicks: rng.between(1, 5),
    replicateTicks: rng.between(10, 30),
    operationTimeoutTicks: 12 * rpcTimeoutTicks,
  };
}

/** The config of a run: the knobs, and the safe identifier width (no two vnodes share an identifier). */
export function simConfig(options: SimOptions): ChordConfig {
  const knobs = options.knobs;
  const vnodes = knobs.vnodes ?? 1;
  const rpcTimeoutTicks = knobs.rpcTimeoutTicks ?? 10;
  const replicateTicks = knobs.replicateTicks ?? 20;
  let idBits = knobs.idBits ?? 160;
  if (hasCollision(idBits, options.nodeCount, vnodes)) idBits = 160;
  return {
    ...CHORD_CONFIG_DEFAULT,
    idBits,
    vnodes,
    successorListLength: 6,
    replicas: 3,
    stabilizeTicks: knobs.stabilizeTicks ?? 5,
    fixFingersTicks: knobs.fixFingersTicks ?? 2,
    checkPredecessorTicks: knobs.stabilizeTicks ?? 5,
    replicateTicks,
    replicaLeaseTicks: 5 * replicateTicks,
    rpcTimeoutTicks,
    operationTimeoutTicks: 12 * rpcTimeoutTicks,
    suspectTicks: 3 * rpcTimeoutTicks,
    lookupMode: knobs.recursive === 1 ? 'recursive' : 'iterative',
    addressing: 'sim',
    bootstrap: 'auto',
    persist: true,
    compactRecordsMax: 512,
  };
}

function hasCollision(bits: number, nodeCount: number, vnodes: number): boolean {
  const ring = ringOf(bits);
  const seen = new Set<bigint>();
  for (let node = 1; node <= nodeCount; node++) {
    for (let vnode = 0; vnode < vnodes; vnode++) {
      const id = nodeId(ring, `n${node}`, vnode);
      if (seen.has(id)) return true;
      seen.add(id);
    }
  }
  return false;
}

function upStates(view: ClusterView<ChordState>): ChordState[] {
  const states: ChordState[] = [];
  for (const node of view.nodes) if (node.up && node.state !== null) states.push(node.state);
  return states;
}

/** Cheap checks after every step: no two live vnodes on one identifier, no vnode its own predecessor. */
function invariantsGlobal(view: ClusterView<ChordState>): void {
  const seen = new Set<bigint>();
  for (const node of view.nodes) {
    const state = node.state;
    if (!node.up || state === null) continue;
    for (const vnode of state.vnodes) {
      assert(!seen.has(vnode.self.id), `two vnodes share identifier ${vnode.self.id}`);
      seen.add(vnode.self.id);
      const predecessor = vnode.predecessor;
      assert(
        predecessor === null || predecessor.addr !== vnode.self.addr || predecessor.vnode !== vnode.index,
        `n${state.address}#${vnode.index} is its own predecessor`,
      );
    }
  }
}

/**
 * Liveness: every live node is a member, every pointer is right (Theorem 5), every acknowledged key
 * is on its first `replicas` successors at its newest acknowledged version; then clients read back.
 */
function converged(view: ClusterView<ChordState>, shared: ChordShared): boolean {
  if (!shared.ringStable) {
    if (!shared.adminDone || shared.putsInFlight > 0) return false;
    const states = upStates(view);
    if (states.length === 0 || !ringCorrect(states)) return false;
    if (!replicasPlaced(states, shared)) return false;
    shared.ringStable = true;
  }
  return shared.verifyQueue !== null && shared.verifyQueue.length === 0 && shared.verifyOutstanding === 0;
}

function ringCorrect(states: readonly ChordState[]): boolean {
  for (const state of states) for (const vnode of state.vnodes) if (vnode.status !== 'joined') return false;
  const report = checkRing(states[0]!.ring, states);
  return report.wrongSuccessors === 0 && report.wrongPredecessors === 0 && report.wrongListEntries === 0;
}

function replicasPlaced(states: readonly ChordState[], shared: ChordShared): boolean {
  const ring = states[0]!.ring;
  const replicas = states[0]!.config.replicas;
  const oracle = new RingOracle(ring, states);
  const byAddress = new Map(states.map((state) => [state.address as number, state]));
  for (const [key, history] of shared.keys) {
    if (history.acked.length === 0) continue;
    const newest = history.acked.reduce((a, b) => (compareVersions(a, b) >= 0 ? a : b));
    for (const address of oracle.replicaSet(keyId(ring, key), replicas)) {
      const stored = byAddress.get(address)?.store.get(key);
      if (stored === undefined || compareVersions(stored, newest) < 0) return false;
    }
  }
  return true;
}

export const chordSim: SimSystem<ChordState, ChordMessage, ChordRequest, ChordResponse, ChordConfig, ChordShared> =
  defineSimSystem({
    name: 'chord',
    description:
      'Chord DHT with a replicated key-value store: joins, leaves, crashes, partitions; Theorem 5 convergence',
    protocol: chordProtocol,
    codec: { message: messageSchema, request: requestSchema, response: responseSchema },
    swarm,
    config: (options) => simConfig(options),
    workload: {
      init: ({ options }) => newShared(options),
      client: (context, shared) => {
        if (context.id === 1 && context.options.knobs.churn === 1 && context.options.clientCount >= 2) {
          shared.adminDone = false;
          return new AdminClient(context, shared, Math.max(50, context.options.safetyMs / 8));
        }
        return new ChordClient(context, shared);
      },
      check: checkHistories,
      status: (shared) =>
        `ops ${shared.ops} ok ${shared.ok} err ${shared.errors} timeouts ${shared.timeouts} left ${shared.left.size}`,
    },
    invariantsGlobal,
    converged,
  });
