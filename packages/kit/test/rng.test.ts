// Goal: the PRNG is a fixed function of the seed (results never change with Node versions), forks
// depend only on the label path, and the integer helpers are unbiased and in range.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatSeed, parseSeed, Rng } from '../src/index.js';

test('same seed, same stream; different seeds differ', () => {
  const a = Rng.fromSeed(42);
  const b = Rng.fromSeed(42);
  const c = Rng.fromSeed(43);
  const take = (rng: Rng) => Array.from({ length: 16 }, () => rng.u32());
  const sa = take(a);
  assert.deepEqual(sa, take(b));
  assert.notDeepEqual(sa, take(c));
});

test('golden values pin the algorithm (a change here changes every recorded seed)', () => {
  const rng = Rng.fromSeed('0x5eed');
  const values = Array.from({ length: 4 }, () => rng.u32());
  // Recorded from this implementation on 2026-11-30; changing the algorithm changes every recorded seed.
  assert.deepEqual(values, [1940137148, 3905139606, 894994632, 215563343]);
});

test('forks depend on the label only, not on how much the parent consumed', () => {
  const root1 = Rng.fromSeed(7);
  const root2 = Rng.fromSeed(7);
  for (let i = 0; i < 100; i++) root2.u32();
  assert.equal(root1.fork('net').u32(), root2.fork('net').u32());
  // Adding another fork (one more node) does not change an existing stream.
  const beforeNet = Rng.fromSeed(7).fork('net').u32();
  const withNode = Rng.fromSeed(7);
  withNode.fork('node:9');
  assert.equal(withNode.fork('net').u32(), beforeNet);
  assert.notEqual(Rng.fromSeed(7).fork('net').u32(), Rng.fromSeed(7).fork('disk').u32());
  assert.notEqual(Rng.fromSeed(7).fork('a').fork('b').u32(), Rng.fromSeed(7).fork('b').fork('a').u32());
});

test('int is in range and roughly uniform; chance honours integer ratios', () => {
  const rng = Rng.fromSeed(1);
  const counts = new Array<number>(6).fill(0);
  for (let i = 0; i < 60_000; i++) {
    const value = rng.int(6);
    assert.ok(value >= 0 && value < 6);
    counts[value]!++;
  }
  for (const count of counts) assert.ok(count > 9_400 && count < 10_600, `bucket ${count}`);
  let hits = 0;
  for (let i = 0; i < 100_000; i++) if (rng.chance(1, 4)) hits++;
  assert.ok(hits > 24_000 && hits < 26_000, `chance 1/4 gave ${hits}`);
  assert.equal(rng.chance(0, 5), false);
  assert.equal(rng.chance(5, 5), true);
  for (let i = 0; i < 1000; i++) {
    const f = rng.float();
    assert.ok(f >= 0 && f < 1);
    const b = rng.between(-3, 3);
    assert.ok(b >= -3 && b <= 3);
  }
  assert.equal(rng.int(0x1_0000_0000) >= 0, true);
});

test('seeds parse from numbers, decimal and hex text, and round-trip through formatSeed', () => {
  assert.equal(parseSeed(10), 10n);
  assert.equal(parseSeed('10'), 10n);
  assert.equal(parseSeed('0xff'), 255n);
  assert.equal(parseSeed(formatSeed(123456789n)), 123456789n);
  assert.throws(() => parseSeed(-1), RangeError);
  assert.throws(() => parseSeed('banana'), RangeError);
  assert.throws(() => parseSeed('0x10000000000000000'), RangeError);
  assert.notEqual(Rng.fromSeed(1n << 40n).u32(), Rng.fromSeed(0).u32());
});

test('shuffle is a permutation and pick chooses members', () => {
  const rng = Rng.fromSeed(3);
  const items = Array.from({ length: 50 }, (_, i) => i);
  const shuffled = rng.shuffle([...items]);
  assert.deepEqual(
    [...shuffled].sort((a, b) => a - b),
    items,
  );
  assert.notDeepEqual(shuffled, items);
  assert.ok(items.includes(rng.pick(items)));
  assert.equal(rng.bytes(7).length, 7);
});
