/**
 * Seeded swarm runs of `chordSim` (dsys sim chord): joins, leaves, crashes with restarts, loss,
 * partitions that heal; then the liveness phase must converge (Theorem 5, every acknowledged key on
 * its replicas) and every acknowledged put must read back. A CI budget of fixed seeds, plus a
 * determinism check: one seed twice gives one trace hash.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeResult, runSwarm, seedForIndex } from '@dsys/sim';
import { chordSim } from '../src/sim/system.js';

const SEEDS = [0, 1, 2, 3, 4, 5, 6, 7].map(seedForIndex);

describe('chord swarm', () => {
  for (const seed of SEEDS) {
    it(`seed 0x${seed.toString(16)}`, () => {
      const result = runSwarm(chordSim, seed);
      assert.ok(
        result.ok,
        `${describeResult(result)}\nreproduce: npm run sim -w @dsys/chord -- --seed 0x${seed.toString(16)}`,
      );
    });
  }

  it('is deterministic: the same seed gives the same trace hash', () => {
    const seed = seedForIndex(2);
    const first = runSwarm(chordSim, seed);
    const second = runSwarm(chordSim, seed);
    assert.equal(first.traceHash, second.traceHash);
    assert.ok(first.traceHash.length > 0);
  });
});
