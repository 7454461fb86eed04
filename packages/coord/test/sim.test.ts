/**
 * The coordination service in the deterministic simulator: a swarm of seeds (faults, crashes,
 * partitions, leader changes, session moves and expirations) with every check on (see
 * src/sim/system.ts), same seed same trace, and deliberately broken variants that the checks catch.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runSwarm, seedForIndex } from '@dsys/sim';
import { coordSim, defineCoordSim } from '../src/index.js';

const SWARM_SEEDS = 120;

describe('coord in the simulator', () => {
  test(`${SWARM_SEEDS} swarm seeds: linearizable writes, monotonic exact reads, FIFO, watches once and in order, ephemerals gone after expiry`, () => {
    let moves = 0;
    let expirations = 0;
    let notifications = 0;
    for (let index = 0; index < SWARM_SEEDS; index++) {
      const seed = seedForIndex(index);
      const result = runSwarm(coordSim, seed);
      assert.ok(result.ok, `seed 0x${seed.toString(16)}: ${result.failure?.message}`);
      const summary = result.check?.ok === true ? result.check.summary : '';
      moves += Number(/(\d+) moves/.exec(summary)?.[1] ?? 0);
      expirations += Number(/(\d+) expirations/.exec(summary)?.[1] ?? 0);
      notifications += Number(/(\d+) notifications/.exec(summary)?.[1] ?? 0);
    }
    // The swarm really exercises what it claims to check.
    assert.ok(moves > 50, `session moves: ${moves}`);
    assert.ok(expirations > 5, `expirations: ${expirations}`);
    assert.ok(notifications > 500, `notifications: ${notifications}`);
  });

  test('the same seed gives the same trace hash', () => {
    const seed = seedForIndex(7);
    assert.equal(runSwarm(coordSim, seed).traceHash, runSwarm(coordSim, seed).traceHash);
  });

  test('notifications delivered late are caught (a reply shows the change first)', () => {
    const broken = defineCoordSim('coord-late-watches', { delayNotifications: true });
    let caught: string | null = null;
    for (let index = 0; index < 60 && caught === null; index++) {
      const result = runSwarm(broken, seedForIndex(index));
      if (!result.ok) caught = result.failure?.message ?? '';
    }
    assert.ok(caught !== null, 'no seed caught the late notifications');
    assert.match(caught, /before the (data|child) watch/);
  });

  test("reads that overtake the connection's writes are caught", () => {
    const broken = defineCoordSim('coord-reads-jump', { readsJumpWrites: true });
    let caught: string | null = null;
    for (let index = 0; index < 60 && caught === null; index++) {
      const result = runSwarm(broken, seedForIndex(index));
      if (!result.ok) caught = result.failure?.message ?? '';
    }
    assert.ok(caught !== null, 'no seed caught reads overtaking writes');
  });
});
