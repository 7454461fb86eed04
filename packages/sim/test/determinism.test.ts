// Goal: a seed is a complete description of a run. Same seed, same trace hash and the same trace
// text; different seeds, different hashes; `--trace` changes nothing; and random streams are forked
// by label, so adding a node does not shift the network's, the disk's or another node's stream.
// Method: swarm runs of the `ledger` test protocol (faults on), compared across repetitions.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createSimulation, runSwarm, swarmOptions } from '../src/index.js';
import { ledgerSystem } from './support/ledger.js';

const system = ledgerSystem(3);

test('same seed twice: same trace hash and byte-identical trace', () => {
  const traceA: string[] = [];
  const traceB: string[] = [];
  const a = runSwarm(system, 42, { trace: (line) => traceA.push(line) });
  const b = runSwarm(system, 42, { trace: (line) => traceB.push(line) });
  assert.ok(a.ok, a.failure?.message);
  assert.equal(a.traceHash, b.traceHash);
  assert.ok(traceA.length > 1000);
  assert.equal(traceA.join('\n'), traceB.join('\n'));
});

test('tracing does not change the trace hash', () => {
  const traced = runSwarm(system, 7, { trace: () => {} });
  const untraced = runSwarm(system, 7);
  assert.equal(traced.traceHash, untraced.traceHash);
  assert.deepEqual(traced.stats, untraced.stats);
});

test('different seeds give different hashes', () => {
  const hashes = new Set<string>();
  for (let seed = 1; seed <= 12; seed++) {
    const result = runSwarm(system, seed);
    assert.ok(result.ok, result.failure?.message);
    hashes.add(result.traceHash);
  }
  assert.equal(hashes.size, 12);
});

test('swarm options vary with the seed and include faults, drift and every cluster size', () => {
  const sizes = new Set<number>();
  let withCrashes = 0;
  let withDrift = 0;
  for (let seed = 0; seed < 200; seed++) {
    const options = swarmOptions(system, seed);
    sizes.add(options.nodeCount);
    if (options.crashRatio.numerator > 0) withCrashes++;
    if (options.clockDriftPpmMax > 0) withDrift++;
  }
  assert.deepEqual(
    [...sizes].sort((a, b) => a - b),
    [1, 2, 3, 4, 5, 6, 7],
  );
  assert.ok(withCrashes > 50 && withCrashes < 150, 'crashes are on in some runs and off in others');
  assert.ok(withDrift > 100);
});

test('adding a node does not shift the network, disk or other nodes streams', () => {
  const three = createSimulation(system, { seed: 99, nodeCount: 3, clockDriftPpmMax: 50_000, latencyMsMax: 30 });
  const four = createSimulation(system, { seed: 99, nodeCount: 4, clockDriftPpmMax: 50_000, latencyMsMax: 30 });
  // Link profiles are forked by link label.
  for (const [from, to] of [
    [0, 1],
    [1, 2],
    [2, 0],
  ] as const) {
    assert.equal(three.network.linkBaseUs(from, to), four.network.linkBaseUs(from, to));
  }
  // Per-packet draws come from the `net` stream, untouched by node setup.
  const drawsThree = Array.from({ length: 8 }, () => three.network.delayUs(0, 1));
  const drawsFour = Array.from({ length: 8 }, () => four.network.delayUs(0, 1));
  assert.deepEqual(drawsThree, drawsFour);
  // Each node's clock (drift and phase) is its own: nodes 1..3 tick identically in both clusters.
  three.runFor(500);
  four.runFor(500);
  for (const id of [1, 2, 3]) assert.deepEqual(three.state(id).tickTimesMs, four.state(id).tickTimesMs);
});
