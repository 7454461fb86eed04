/**
 * The scale target: a 10,000-node ring answering 100,000 lookups through the protocol's own message
 * handling (iterative find_successor, 160-bit identifiers), in one process on one core.
 */
import { Rng } from '@dsys/kit';
import { CHORD_CONFIG_DEFAULT } from '../config.js';
import { installStableRing } from '../oracle.js';
import { keyId, ringOf } from '../ring.js';
import { RingSim } from './ring-sim.js';

export interface ScaleResult {
  readonly nodes: number;
  readonly lookups: number;
  readonly events: number;
  /** Mean `hops` (the paper's path length, see paper.ts `pathLength`), routing via the successor list too. */
  readonly meanPathLength: number;
  /** Lookups that returned the key's true successor. */
  readonly correct: number;
}

export function scaleRun(options: { nodes: number; lookups: number; seed: number }): ScaleResult {
  const config = { ...CHORD_CONFIG_DEFAULT, bootstrap: 'manual' as const, successorListLength: 16 };
  const sim = new RingSim({ seed: options.seed, config, tickMs: 10, ticks: false, latencyMsMin: 1, latencyMsMax: 10 });
  for (let address = 1; address <= options.nodes; address++) sim.addNode(address);
  const ring = ringOf(config.idBits);
  const oracle = installStableRing(ring, [...sim.liveStates()]);
  const rng = Rng.fromSeed(options.seed).fork('scale');
  let pathSum = 0;
  let correct = 0;
  const batch = 5_000;
  for (let start = 0; start < options.lookups; start += batch) {
    const handles = [];
    for (let i = start; i < Math.min(options.lookups, start + batch); i++) {
      handles.push(sim.request(1 + rng.int(options.nodes), { type: 'lookup', key: `scale-${i}` }));
    }
    sim.drainRequests(1e9);
    for (const handle of handles) {
      const response = handle.response;
      if (response?.type !== 'lookup' || handle.request.type !== 'lookup') continue;
      pathSum += response.hops;
      if (response.node.id === oracle.successorOf(keyId(ring, handle.request.key)).id) correct++;
    }
  }
  return {
    nodes: options.nodes,
    lookups: options.lookups,
    events: sim.events,
    meanPathLength: pathSum / options.lookups,
    correct,
  };
}
