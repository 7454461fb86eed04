// Goal: the register stays linearizable under everything the swarm throws at it (1..7 nodes, loss,
// duplication, symmetric and one-way partitions, minority crashes with torn writes, restarts, clock
// drift), and the liveness phase always converges; and the harness can fail: deliberately broken
// variants are caught by the linearizability checker within a small budget of seeds.
// Method: `runSwarm` over the first seeds of the campaign sequence (`seedForIndex`), as
// `npm run sim -w @dsys/abd -- --seeds N` does; CI budget 200 seeds (a few seconds).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatSeed } from '@dsys/kit';
import { ratio, runSwarm, type SimOverrides, seedForIndex } from '@dsys/sim';
import { type AbdMutation, abdSim, defineAbdSim } from '../src/index.js';

const SEEDS = 200;

test(`${SEEDS} swarm seeds: linearizable, invariants hold, liveness converges`, () => {
  let operations = 0;
  let crashes = 0;
  let cuts = 0;
  let tornBytes = 0;
  for (let index = 0; index < SEEDS; index++) {
    const result = runSwarm(abdSim, seedForIndex(index));
    assert.ok(result.ok, `seed ${formatSeed(result.seed)}: ${result.failure?.message}`);
    assert.equal(result.check?.ok, true, `seed ${formatSeed(result.seed)}: ${JSON.stringify(result.check)}`);
    operations += result.stats?.requests ?? 0;
    crashes += result.stats?.crashes ?? 0;
    cuts += result.stats?.droppedCut ?? 0;
    tornBytes += result.stats?.bytesTruncated ?? 0;
  }
  // The budget really exercised faults (not a hundred quiet runs).
  assert.ok(crashes > 20, `crashes: ${crashes}`);
  assert.ok(cuts > 100, `packets cut by partitions: ${cuts}`);
  assert.ok(tornBytes > 0, 'some crashes tore a write that recovery then truncated');
  assert.ok(operations > 6000, `requests: ${operations}`);
});

test('same seed, same trace hash (with every message through the schemas too)', () => {
  for (const wireCodec of [false, true]) {
    const a = runSwarm(abdSim, 78, { overrides: { wireCodec } });
    const b = runSwarm(abdSim, 78, { overrides: { wireCodec } });
    assert.ok(a.ok, a.failure?.message);
    assert.ok((a.stats?.events ?? 0) > 4000);
    assert.equal(a.traceHash, b.traceHash);
  }
});

/** Runs seeds until the first failure; returns its index and failure code. */
function firstFailure(mutation: AbdMutation, budget: number, overrides: SimOverrides = {}) {
  const system = defineAbdSim(mutation);
  for (let index = 0; index < budget; index++) {
    const result = runSwarm(system, seedForIndex(index), { overrides });
    if (!result.ok) return { index, code: result.failure?.code, message: result.failure?.message ?? '' };
  }
  return null;
}

test('the harness can fail: a quorum of one is caught by the checker', () => {
  const found = firstFailure('quorum-of-one', 100);
  assert.ok(found !== null, 'quorum-of-one survived 100 seeds');
  assert.equal(found.code, 'CHECK');
  assert.match(found.message, /not linearizable/);
});

test('the harness can fail: reads without write-back are caught (contended, lossy swarm)', () => {
  // The new/old inversion needs a read to overlap a half-done write: lossy links, several replicas
  // and busy clients make that common; the plain swarm finds it too, in about 1 seed in 1000.
  const contended: SimOverrides = {
    nodeCount: 3,
    lossRatio: ratio(20, 100),
    clientCount: 8,
    thinkMsMax: 0,
    knobs: { readPercent: 80, retransmitTicks: 20 },
  };
  const found = firstFailure('read-without-write-back', 100, contended);
  assert.ok(found !== null, 'read-without-write-back survived 100 contended seeds');
  assert.equal(found.code, 'CHECK');
});
