/**
 * The two search strategies on their own ('eager', Porcupine's order; 'lazy', info operations last
 * with dominance pruning), each against the exhaustive Wing-Gong search, on small arbitrary
 * histories of the register and of a plugged-in counter model (whose 'info' operations commute, so
 * the lazy strategy's pruning rules are exercised on a model they cannot shortcut). Plus the
 * deterministic re-run that reconstructs the deepest dead end.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '@dsys/kit';
import fc from 'fast-check';
import { registerModel } from '../src/models.js';
import { isDeadEnd, type SearchOperation, type SearchStrategy, search } from '../src/search.js';
import type { History, Model, Operation } from '../src/types.js';
import { history, info, ok, read, write } from './support/build.js';
import { add, type CounterInput, type CounterOutput, count, counterModel } from './support/counter-model.js';
import { checkExhaustive } from './support/exhaustive-wing-gong.js';
import { randomPlan, runPlan } from './support/register-workload.js';

const SEED = 0x5eed;
const STRATEGIES: SearchStrategy[] = ['eager', 'lazy'];

/** What `checkLinearizable` feeds the search: 'fail' dropped, read-only 'info' dropped. */
function prepare<S, I, O>(model: Model<S, I, O>, h: History<I, O>): SearchOperation<I, O>[] {
  return h
    .filter((op) => op.status !== 'fail' && !(op.status === 'info' && model.readOnly?.(op.input) === true))
    .map((op) => ({
      input: op.input,
      output: op.status === 'ok' ? op.output : undefined,
      call: op.call,
      return: op.status === 'info' ? Number.POSITIVE_INFINITY : op.return,
    }));
}

function verdict<S, I, O>(model: Model<S, I, O>, h: History<I, O>, strategy: SearchStrategy): boolean {
  const result = search(model, prepare(model, h), strategy, 10_000_000);
  assert.ok(!isDeadEnd(result) && result.kind !== 'budget', `${strategy}: no verdict`);
  return result.kind === 'linearizable';
}

function arbitraryHistory<I, O>(pair: fc.Arbitrary<{ input: I; output: O }>, lengthMax: number) {
  const row = fc.record({
    pair,
    call: fc.integer({ min: 0, max: 8 }),
    length: fc.integer({ min: 0, max: 6 }),
    status: fc.constantFrom('ok', 'ok', 'fail', 'info', 'info'),
  });
  return fc.array(row, { maxLength: lengthMax }).map((rows) =>
    rows.map(({ pair: { input, output }, call, length, status }, id): Operation<I, O> => {
      const base = { id, client: id, input, call };
      if (status === 'ok') return { ...base, return: call + length, status, output };
      if (status === 'fail') return { ...base, return: call + length, status };
      return { ...base, return: Number.POSITIVE_INFINITY, status: 'info' };
    }),
  );
}

function agree<S, I, O>(model: Model<S, I, O>, histories: fc.Arbitrary<History<I, O>>): void {
  const seen = { linearizable: 0, violation: 0 };
  fc.assert(
    fc.property(histories, (h) => {
      const expected = checkExhaustive(model, h).ok;
      for (const strategy of STRATEGIES) assert.equal(verdict(model, h, strategy), expected, strategy);
      seen[expected === true ? 'linearizable' : 'violation']++;
    }),
    { seed: SEED, numRuns: 800 },
  );
  assert.ok(seen.linearizable > 100 && seen.violation > 100, JSON.stringify(seen));
}

const value = fc.constantFrom('a', 'b');
const registerPair = fc.oneof(
  fc.option(value, { nil: null }).map((v) => read(v)),
  value.map((v) => write(v)),
  fc.tuple(fc.option(value, { nil: null }), value, fc.boolean()).map(([expected, v, succeeded]) => ({
    input: { type: 'cas', expected, value: v } as const,
    output: { type: 'cas', ok: succeeded } as const,
  })),
);
const counterPair = fc.oneof(
  fc.integer({ min: 1, max: 2 }).map((delta) => add(delta)),
  fc.integer({ min: 0, max: 4 }).map((value) => count(value)),
);

test('both strategies agree with exhaustive Wing-Gong on small register histories', () => {
  agree(registerModel, arbitraryHistory(registerPair, 8));
});

test('both strategies agree with exhaustive Wing-Gong on small counter histories (a plugged-in model)', () => {
  agree(counterModel, arbitraryHistory(counterPair, 8));
});

test('commuting info operations may be needed back to back: two lost-looking adds explain a read of 3', () => {
  const h = history<CounterInput, CounterOutput>(
    info(1, 0, add(1)),
    info(2, 0, add(2)),
    ok(3, 1, 2, count(0)),
    ok(3, 5, 6, count(3)),
  );
  for (const strategy of STRATEGIES) assert.equal(verdict(counterModel, h, strategy), true, strategy);
  const tooMuch = history<CounterInput, CounterOutput>(info(1, 0, add(1)), info(2, 0, add(2)), ok(3, 5, 6, count(4)));
  for (const strategy of STRATEGIES) assert.equal(verdict(counterModel, tooMuch, strategy), false, strategy);
});

test('both strategies accept generated register histories and reject a corrupted read', () => {
  for (let seed = 1; seed <= 6; seed++) {
    const options = { operations: 400, clients: 10, values: 4, latencyMsMean: 5, infoPerMille: 40, failPerMille: 20 };
    const h = runPlan(randomPlan(Rng.fromSeed(seed), options));
    const victim = h.filter((op) => op.status === 'ok' && op.input.type === 'read')[100]!.id;
    const corrupted = h.map((op) =>
      op.id === victim ? { ...op, output: { type: 'read' as const, value: 'zz' } } : op,
    );
    for (const strategy of STRATEGIES) {
      assert.equal(verdict(registerModel, h, strategy), true, `${strategy} seed ${seed}`);
      assert.equal(verdict(registerModel, corrupted, strategy), false, `${strategy} seed ${seed}`);
    }
  }
});

test('re-running with stopAtDepth reconstructs the deepest dead end, for both strategies', () => {
  const h = history(
    ok(1, 0, 5, write('a')),
    info(2, 6, write('b')),
    ok(3, 10, 12, read('b')),
    ok(3, 20, 22, read('a')),
  );
  const operations = prepare(registerModel, h);
  for (const strategy of STRATEGIES) {
    const result = search(registerModel, operations, strategy, 1000);
    assert.ok(!isDeadEnd(result) && result.kind === 'violation', strategy);
    const deadEnd = search(registerModel, operations, strategy, result.steps, result.deepest);
    assert.ok(isDeadEnd(deadEnd), strategy);
    assert.equal(deadEnd.linearized.length, result.deepest);
    assert.deepEqual(deadEnd.linearized, [0, 1, 2], `${strategy}: write a, info write b, read b`);
    assert.equal(deadEnd.state, 'b');
    assert.deepEqual(deadEnd.candidates, [3]);
  }
});
