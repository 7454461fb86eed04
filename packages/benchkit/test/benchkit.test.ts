// Goal: the bench row math (ratio direction) and percentiles are right; they decide what we publish.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { percentile, row } from '../src/index.js';

test('ratio is above 1 when dsys wins, in both directions', () => {
  assert.equal(row('b', 'throughput', 'ops/s', 200, { name: 'p', value: 100 }, true).ratio, 2);
  assert.equal(row('b', 'latency', 'ms', 5, { name: 'p', value: 10 }, false).ratio, 2);
  assert.equal(row('b', 'latency', 'ms', 5, null, false).ratio, null);
});

test('nearest-rank percentiles', () => {
  const samples = Array.from({ length: 100 }, (_, i) => 100 - i);
  assert.equal(percentile(samples, 50), 50);
  assert.equal(percentile(samples, 99), 99);
  assert.equal(percentile(samples, 100), 100);
  assert.equal(percentile([7], 99), 7);
});
