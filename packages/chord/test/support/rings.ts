/** Rings for tests, on the experiment driver (`RingSim`): built by real joins, or installed stable. */
import { NodeId } from '@dsys/kit';
import { CHORD_CONFIG_DEFAULT, type ChordConfig } from '../../src/config.js';
import { RingSim } from '../../src/experiment/ring-sim.js';
import { checkRing, installStableRing, type RingOracle, type RingReport } from '../../src/oracle.js';
import { ringOf } from '../../src/ring.js';
import type { ChordState } from '../../src/state.js';

export function testConfig(overrides: Partial<ChordConfig> = {}): ChordConfig {
  return {
    ...CHORD_CONFIG_DEFAULT,
    bootstrap: 'manual',
    stabilizeTicks: 3,
    checkPredecessorTicks: 3,
    fixFingersTicks: 2,
    rpcTimeoutTicks: 6,
    operationTimeoutTicks: 80,
    suspectTicks: 20,
    replicateTicks: 10,
    replicaLeaseTicks: 30,
    reconcileTicks: 30,
    ...overrides,
  };
}

export function newSim(config: ChordConfig, seed = 1): RingSim {
  return new RingSim({ seed, config, tickMs: 10, latencyMsMin: 1, latencyMsMax: 4, checkInvariants: true });
}

/** Node 1 creates; nodes 2..n join through node 1, `together` at a time, `gapMs` apart. */
export function growRing(sim: RingSim, n: number, options: { together?: number; gapMs?: number } = {}): void {
  sim.addNode(1, { bootstrap: 'create' });
  const together = options.together ?? 1;
  for (let address = 2; address <= n; address++) {
    sim.addNode(address, { bootstrap: 'join', seeds: [NodeId(1)] });
    if ((address - 1) % together === 0) sim.runFor(options.gapMs ?? 30);
  }
}

export function states(sim: RingSim): ChordState[] {
  return [...sim.liveStates()];
}

export function report(sim: RingSim): RingReport {
  const all = states(sim);
  return checkRing(all[0]!.ring, all);
}

export function isCorrect(r: RingReport): boolean {
  return r.wrongSuccessors === 0 && r.wrongPredecessors === 0 && r.wrongListEntries === 0;
}

/** Runs until every pointer is right (Theorem 5); returns the virtual ms it took, or -1. */
export function converge(sim: RingSim, msMax = 30_000): number {
  const start = sim.nowMs;
  return sim.runUntil(() => isCorrect(report(sim)), msMax, 20) ? sim.nowMs - start : -1;
}

export function stableRing(n: number, config: ChordConfig, seed = 1): { sim: RingSim; oracle: RingOracle } {
  const sim = newSim(config, seed);
  for (let address = 1; address <= n; address++) sim.addNode(address);
  const oracle = installStableRing(ringOf(config.idBits), states(sim));
  return { sim, oracle };
}
