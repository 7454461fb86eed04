/**
 * Seeded swarm runs of `chordSim` (dsys sim chord): joins, leaves, crashes with restarts, loss,
 * partitions that heal; then the liveness phase must converge (Theorem 5, every acknowledged key on
 * its replicas), accept a fresh put, and read every acknowledged put back. The CI budget is the first
 * `SEED_BUDGET` campaign seeds (the same as `npm run sim -w @dsys/chord -- --seeds 64`), the seeds
 * that once failed (their causes are scripted in regressions.test.ts), and a determinism check: one
 * seed twice gives one trace hash. Larger campaigns: see the README ("Swarm testing").
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeResult, runSwarm, seedForIndex } from '@dsys/sim';
import { chordSim } from '../src/sim/system.js';

/** About 15 s of CPU on the development machine (0.25 s a seed on average; the slowest take 1 s). */
const SEED_BUDGET = 64;
const FOUND_BY_CAMPAIGNS = [0x3d9b64451af7f223n, 0x306800728bb0229dn, 0x53ca9b6e54673a25n, 0x195c7c9847c1cfc6n];

function check(seed: bigint): void {
  const result = runSwarm(chordSim, seed);
  assert.ok(
    result.ok,
    `${describeResult(result)}\nreproduce: npm run sim -w @dsys/chord -- --seed 0x${seed.toString(16)}`,
  );
}

describe('chord swarm', () => {
  it(`the first ${SEED_BUDGET} campaign seeds`, () => {
    for (let index = 0; index < SEED_BUDGET; index++) check(seedForIndex(index));
  });

  for (const seed of FOUND_BY_CAMPAIGNS) {
    it(`seed 0x${seed.toString(16)} (found by a campaign)`, () => check(seed));
  }

  it('is deterministic: the same seed gives the same trace hash', () => {
    const seed = seedForIndex(2);
    const first = runSwarm(chordSim, seed);
    const second = runSwarm(chordSim, seed);
    assert.equal(first.traceHash, second.traceHash);
    assert.ok(first.traceHash.length > 0);
  });
});
