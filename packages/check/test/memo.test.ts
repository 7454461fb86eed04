/**
 * The search's data structures against naive references (fast-check, fixed seed):
 * - `LinearizedSet`: its O(1) summaries (Zobrist hash, first non-full word, end of the last
 *   non-zero word) stay equal to a recomputation after any sequence of adds and deletes;
 * - `FailedConfigs`: `has` answers exactly as a list of recorded configurations would, by equality
 *   or (with subsumption) by "same completed set and state, recorded info set ⊆ queried one".
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { FailedConfigs } from '../src/config-cache.js';
import { LinearizedSet } from '../src/linearized-set.js';

const SEED = 0x5eed;

/** Toggles each index in turn (adds if absent, deletes if present), as the search's push/pop would. */
function applyToggles(set: LinearizedSet, reference: Set<number>, toggles: readonly number[]): void {
  for (const index of toggles) {
    if (reference.has(index)) {
      reference.delete(index);
      set.delete(index);
    } else {
      reference.add(index);
      set.add(index);
    }
    set.invariants();
  }
}

test('LinearizedSet keeps its summaries exact under adds and deletes', () => {
  fc.assert(
    fc.property(
      fc
        .integer({ min: 1, max: 130 })
        .chain((size) =>
          fc.tuple(fc.constant(size), fc.array(fc.integer({ min: 0, max: size - 1 }), { maxLength: 300 })),
        ),
      ([size, toggles]) => {
        const set = new LinearizedSet(size);
        const reference = new Set<number>();
        applyToggles(set, reference, toggles);
        assert.deepEqual(
          set.members(),
          [...reference].sort((a, b) => a - b),
        );
      },
    ),
    { seed: SEED, numRuns: 300 },
  );
});

test('LinearizedSet fills words in order: a full prefix moves `low` past it', () => {
  const set = new LinearizedSet(70);
  for (let i = 0; i < 64; i++) set.add(i);
  assert.equal(set.low, 2);
  assert.equal(set.high, 2);
  set.add(69);
  assert.equal(set.high, 3);
  set.delete(5);
  assert.equal(set.low, 0);
  set.invariants();
});

type Config = { completed: number[]; info: number[]; state: number };

const config = fc.record({
  completed: fc.uniqueArray(fc.integer({ min: 0, max: 69 }), { maxLength: 70 }),
  info: fc.uniqueArray(fc.integer({ min: 0, max: 39 }), { maxLength: 8 }),
  state: fc.integer({ min: 0, max: 2 }),
});

function sets(c: Config): [LinearizedSet, LinearizedSet] {
  const completed = new LinearizedSet(70);
  const info = new LinearizedSet(40);
  for (const i of c.completed) completed.add(i);
  for (const j of c.info) info.add(j);
  return [completed, info];
}

const sameMembers = (a: number[], b: number[]) => a.length === b.length && a.every((x) => b.includes(x));

for (const subsume of [false, true]) {
  test(`FailedConfigs answers like a list of configurations (subsume: ${subsume})`, () => {
    // Few distinct completed sets, so that queries often hit a recorded group.
    const completedPool = fc.constantFrom(
      [],
      [0, 1, 2],
      [0, 1, 2, 3, 40, 69],
      Array.from({ length: 64 }, (_, i) => i),
    );
    const small = fc.record({
      completed: completedPool,
      info: config.map((c) => c.info),
      state: config.map((c) => c.state),
    });
    const item = fc.oneof(small, config);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), item), { maxLength: 60 }), (operations) => {
        const failed = new FailedConfigs(subsume);
        const recorded: Config[] = [];
        for (const [isAdd, c] of operations) {
          const [completed, info] = sets(c);
          const expected = recorded.some(
            (r) =>
              r.state === c.state &&
              sameMembers(r.completed, c.completed) &&
              (subsume ? r.info.every((j) => c.info.includes(j)) : sameMembers(r.info, c.info)),
          );
          assert.equal(failed.has(completed, info, c.state), expected);
          if (isAdd && !expected) {
            failed.add(completed, info, c.state);
            recorded.push(c);
          }
        }
        assert.equal(failed.size, recorded.length);
      }),
      { seed: SEED, numRuns: 400 },
    );
  });
}
