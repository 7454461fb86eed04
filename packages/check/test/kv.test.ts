/**
 * The key-value model: P-compositionality (each key checked on its own, as a register), the smallest
 * failing key reported by name, and get / put / delete / cas semantics per key.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkLinearizable, kvModel } from '../src/index.js';
import { casKey, del, get, history, info, ok, put } from './support/build.js';

test('independent keys pass; each key is its own register', () => {
  const h = history(
    ok(1, 0, 5, put('x', 'a')),
    ok(2, 0, 5, put('y', 'b')),
    ok(3, 6, 7, get('x', 'a')),
    ok(3, 8, 9, get('y', 'b')),
    ok(4, 6, 9, get('z', null)),
  );
  assert.deepEqual(checkLinearizable(kvModel, h), { ok: true, operations: 5 });
});

test('a violation on one key is reported with that key and only its operations', () => {
  const h = history(
    ok(1, 0, 5, put('x', 'a')),
    ok(2, 0, 5, put('y', 'b')),
    ok(3, 6, 7, get('x', 'a')),
    ok(4, 6, 7, get('y', 'stale')),
  );
  const result = checkLinearizable(kvModel, h);
  assert.equal(result.ok, false);
  if (result.ok !== false) return;
  assert.equal(result.operations, 4);
  assert.equal(
    result.counterexample,
    [
      'not linearizable (key "y"): after linearizing 1 of 2 operations, none of these can go next:',
      '  client 4  [t=6..t=7]  get(y) -> "stale"',
      'state after the prefix: "b"',
      'last linearized (1 of 1):',
      '  client 2  [t=0..t=5]  put(y, "b") -> ok',
    ].join('\n'),
  );
});

test('when several keys fail, the smallest failing sub-history is reported', () => {
  const h = history(
    ok(1, 0, 1, put('big', 'a')),
    ok(1, 2, 3, put('big', 'b')),
    ok(1, 4, 5, put('big', 'c')),
    ok(2, 6, 7, get('big', 'a')),
    ok(3, 0, 1, get('small', 'ghost')),
  );
  const result = checkLinearizable(kvModel, h);
  assert.equal(result.ok, false);
  if (result.ok === false)
    assert.match(result.counterexample, /^not linearizable \(key "small"\): after linearizing 0 of 1/);
});

test('delete makes the key absent; a get of the old value after it is a violation', () => {
  const good = history(ok(1, 0, 1, put('x', 'a')), ok(1, 2, 3, del('x')), ok(2, 4, 5, get('x', null)));
  const bad = history(ok(1, 0, 1, put('x', 'a')), ok(1, 2, 3, del('x')), ok(2, 4, 5, get('x', 'a')));
  assert.equal(checkLinearizable(kvModel, good).ok, true);
  assert.equal(checkLinearizable(kvModel, bad).ok, false);
});

test('cas per key: create-if-absent, swap, and cas to null deletes', () => {
  const h = history(
    ok(1, 0, 1, casKey('x', null, 'a', true)),
    ok(1, 2, 3, casKey('x', null, 'b', false)),
    ok(1, 4, 5, casKey('x', 'a', null, true)),
    ok(2, 6, 7, get('x', null)),
    ok(2, 8, 9, casKey('y', 'a', 'b', false)),
  );
  assert.equal(checkLinearizable(kvModel, h).ok, true);
  const doubleCreate = history(ok(1, 0, 5, casKey('x', null, 'a', true)), ok(2, 0, 5, casKey('x', null, 'b', true)));
  assert.equal(checkLinearizable(kvModel, doubleCreate).ok, false);
});

test('an info put on one key may or may not have happened', () => {
  const seen = history(info(1, 0, put('x', 'a')), ok(2, 5, 6, get('x', 'a')));
  const unseen = history(info(1, 0, put('x', 'a')), ok(2, 5, 6, get('x', null)));
  assert.equal(checkLinearizable(kvModel, seen).ok, true);
  assert.equal(checkLinearizable(kvModel, unseen).ok, true);
});

test('the kv model describes operations with their key', () => {
  assert.equal(kvModel.describe(put('x', 'a').input, undefined), 'put(x, "a") -> ?');
  assert.equal(kvModel.describe(del('x').input, del('x').output), 'delete(x) -> ok');
  assert.equal(
    kvModel.describe(casKey('k', 'a', null, true).input, { type: 'cas', ok: true }),
    'cas(k, "a", null) -> ok',
  );
  assert.equal(kvModel.describePartition?.(history(ok(1, 0, 1, get('k', null)))), 'key "k"');
});
