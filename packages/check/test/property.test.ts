/**
 * Property tests (fast-check, fixed seeds):
 * - histories produced by running a real register at linearization points inside each operation's
 *   interval, with random overlaps, ties, failures and indeterminate operations, are always accepted;
 * - corrupting one read to a value never written is always rejected;
 * - on small arbitrary histories (mostly not linearizable) the checker agrees with an independent,
 *   exhaustive Wing & Gong search, for the register and the key-value model.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '@dsys/kit';
import fc from 'fast-check';
import {
  checkLinearizable,
  type History,
  type KvInput,
  type KvOutput,
  kvModel,
  type Model,
  type Operation,
  type RegisterInput,
  type RegisterOutput,
  registerModel,
} from '../src/index.js';
import { checkExhaustive } from './support/exhaustive-wing-gong.js';
import { type Fate, type PlannedOperation, randomPlan, runPlan } from './support/register-workload.js';

const SEED = 0x5eed;
const value = fc.constantFrom('a', 'b', 'c');

const registerInput: fc.Arbitrary<RegisterInput> = fc.oneof(
  fc.constant<RegisterInput>({ type: 'read' }),
  value.map((v): RegisterInput => ({ type: 'write', value: v })),
  fc
    .tuple(fc.option(value, { nil: null }), value)
    .map(([expected, v]): RegisterInput => ({ type: 'cas', expected, value: v })),
);

const fate: fc.Arbitrary<Fate> = fc.constantFrom<Fate>(
  'ok',
  'ok',
  'ok',
  'ok',
  'ok',
  'fail',
  'info-applied',
  'info-lost',
);
const duration = fc.integer({ min: 0, max: 4 });

const plannedOperation: fc.Arbitrary<PlannedOperation> = fc.record({
  slot: fc.integer({ min: 0, max: 4 }),
  input: registerInput,
  thinkMs: duration,
  beforeMs: duration,
  afterMs: duration,
  fate,
});

const plan = fc.array(plannedOperation, { minLength: 1, maxLength: 60 });

type RegisterHistory = History<RegisterInput, RegisterOutput>;

test('histories of a real register with random overlaps and timings are always accepted', () => {
  fc.assert(
    fc.property(plan, (planned) => {
      const result = checkLinearizable(registerModel, runPlan(planned));
      assert.equal(result.ok, true, result.ok === false ? result.counterexample : JSON.stringify(result));
    }),
    { seed: SEED, numRuns: 300 },
  );
});

function okReads(history: RegisterHistory): number[] {
  return history.filter((op) => op.status === 'ok' && op.input.type === 'read').map((op) => op.id);
}

function corruptRead(history: RegisterHistory, id: number): RegisterHistory {
  return history.map((op) => (op.id === id ? { ...op, output: { type: 'read', value: 'never written' } } : op));
}

test('a read of a value that was never written is always rejected', () => {
  const withRead = fc
    .tuple(plan, fc.nat())
    .map(([planned, pick]) => {
      const history = runPlan(planned);
      const reads = okReads(history);
      return reads.length === 0 ? null : corruptRead(history, reads[pick % reads.length]!);
    })
    .filter((history): history is RegisterHistory => history !== null);
  fc.assert(
    fc.property(withRead, (history) => {
      const result = checkLinearizable(registerModel, history);
      assert.equal(result.ok, false);
    }),
    { seed: SEED, numRuns: 300 },
  );
});

test('a 2,000-operation history with 10 clients: accepted, and rejected once one read is corrupted', () => {
  const options = { operations: 2000, clients: 10, values: 5, latencyMsMean: 5, infoPerMille: 10, failPerMille: 10 };
  const history = runPlan(randomPlan(Rng.fromSeed(SEED), options));
  assert.deepEqual(checkLinearizable(registerModel, history), { ok: true, operations: 2000 });
  const reads = okReads(history);
  const victim = reads[Math.floor(reads.length / 2)]!;
  const result = checkLinearizable(registerModel, corruptRead(history, victim));
  assert.equal(result.ok, false);
  if (result.ok === false) assert.match(result.counterexample, /read\(\) -> "never written"/);
});

interface Pair<I, O> {
  readonly input: I;
  readonly output: O;
}

/** Small arbitrary histories: random intervals, statuses and outputs, so often not linearizable. */
function arbitraryHistory<I, O>(pair: fc.Arbitrary<Pair<I, O>>, lengthMax: number): fc.Arbitrary<History<I, O>> {
  const row = fc.record({
    pair,
    call: fc.integer({ min: 0, max: 10 }),
    length: fc.integer({ min: 0, max: 6 }),
    status: fc.constantFrom('ok', 'ok', 'ok', 'fail', 'info'),
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

const maybeValue = fc.option(value, { nil: null });

/** Outputs match their input's type, so the model's answer depends on the state alone. */
type RegisterPair = Pair<RegisterInput, RegisterOutput>;
const registerPair: fc.Arbitrary<RegisterPair> = fc.oneof(
  maybeValue.map((v): RegisterPair => ({ input: { type: 'read' }, output: { type: 'read', value: v } })),
  value.map((v): RegisterPair => ({ input: { type: 'write', value: v }, output: { type: 'write' } })),
  fc.tuple(maybeValue, value, fc.boolean()).map(
    ([expected, v, ok]): RegisterPair => ({
      input: { type: 'cas', expected, value: v },
      output: { type: 'cas', ok },
    }),
  ),
);

const key = fc.constantFrom('x', 'y');
type KvPair = Pair<KvInput, KvOutput>;
const kvPair: fc.Arbitrary<KvPair> = fc.oneof(
  fc
    .tuple(key, maybeValue)
    .map(([k, v]): KvPair => ({ input: { type: 'get', key: k }, output: { type: 'get', value: v } })),
  fc.tuple(key, value).map(([k, v]): KvPair => ({ input: { type: 'put', key: k, value: v }, output: { type: 'put' } })),
  key.map((k): KvPair => ({ input: { type: 'delete', key: k }, output: { type: 'delete' } })),
  fc.tuple(key, maybeValue, maybeValue, fc.boolean()).map(
    ([k, expected, v, ok]): KvPair => ({
      input: { type: 'cas', key: k, expected, value: v },
      output: { type: 'cas', ok },
    }),
  ),
);

function agreesWithNaive<S, I, O>(model: Model<S, I, O>, histories: fc.Arbitrary<History<I, O>>): void {
  let rejected = 0;
  fc.assert(
    fc.property(histories, (history) => {
      const ours = checkLinearizable(model, history);
      assert.equal(ours.ok, checkExhaustive(model, history).ok);
      if (ours.ok !== false) return;
      rejected++;
      const counts = /after linearizing (\d+) of (\d+) operations/.exec(ours.counterexample);
      assert.ok(counts !== null && Number(counts[1]) < Number(counts[2]), ours.counterexample);
    }),
    { seed: SEED, numRuns: 1000 },
  );
  assert.ok(rejected > 100, `the generator must produce violations too (got ${rejected})`);
}

test('agrees with an exhaustive Wing-Gong search on small arbitrary register histories', () => {
  agreesWithNaive(registerModel, arbitraryHistory(registerPair, 7));
});

test('agrees with an exhaustive Wing-Gong search on small arbitrary key-value histories', () => {
  agreesWithNaive(kvModel, arbitraryHistory(kvPair, 9));
});
