/**
 * HistoryRecorder: ids in invocation order, the three endings, pending operations reported as 'info',
 * and the process rules it asserts (one outstanding operation per client; a client retired after an
 * indeterminate operation).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AssertionError } from '@dsys/kit';
import { HistoryRecorder, type RegisterInput, type RegisterOutput } from '../src/index.js';

const WRITE: RegisterInput = { type: 'write', value: 'a' };
const READ: RegisterInput = { type: 'read' };

function recorder() {
  return new HistoryRecorder<RegisterInput, RegisterOutput>();
}

test('records ok, fail and info operations; pending ones are reported as info', () => {
  const r = recorder();
  const a = r.invoke(1, WRITE, 0);
  const b = r.invoke(2, READ, 1);
  const c = r.invoke(3, WRITE, 2);
  const d = r.invoke(4, READ, 3);
  r.ok(a, { type: 'write' }, 5);
  r.fail(b, 6);
  r.info(c);
  assert.deepEqual([a, b, c, d], [0, 1, 2, 3]);
  assert.equal(r.size, 4);
  assert.deepEqual(r.history(), [
    { id: 0, client: 1, input: WRITE, call: 0, return: 5, status: 'ok', output: { type: 'write' } },
    { id: 1, client: 2, input: READ, call: 1, return: 6, status: 'fail' },
    { id: 2, client: 3, input: WRITE, call: 2, return: Number.POSITIVE_INFINITY, status: 'info' },
    { id: 3, client: 4, input: READ, call: 3, return: Number.POSITIVE_INFINITY, status: 'info' },
  ]);
  assert.equal('output' in r.history()[1]!, false, 'fail operations carry no output');
  r.ok(d, { type: 'read', value: 'a' }, 9);
  assert.equal(r.history()[3]!.status, 'ok', 'history() is a snapshot; later completions show up');
});

test('a client has at most one operation outstanding', () => {
  const r = recorder();
  const a = r.invoke(1, READ, 0);
  assert.throws(() => r.invoke(1, READ, 1), AssertionError);
  r.ok(a, { type: 'read', value: null }, 2);
  assert.equal(r.invoke(1, READ, 3), 1, 'the client may continue once its operation ended');
});

test('a client with an indeterminate operation is retired; the workload continues under a fresh number', () => {
  const r = recorder();
  r.info(r.invoke(1, WRITE, 0));
  assert.throws(
    () => r.invoke(1, READ, 5),
    /client 1 had indeterminate operation 0; continue under a fresh client number/,
  );
  assert.equal(r.invoke(11, READ, 5), 1);
});

test('an operation ends once, after its call, at a finite time', () => {
  const r = recorder();
  const a = r.invoke(1, WRITE, 10);
  assert.throws(() => r.ok(a, { type: 'write' }, 9), AssertionError);
  assert.throws(() => r.fail(a, Number.NaN), AssertionError);
  r.ok(a, { type: 'write' }, 10);
  assert.throws(() => r.fail(a, 11), /already ended ok/);
  assert.throws(() => r.info(a), AssertionError);
  assert.throws(() => r.ok(99, { type: 'write' }, 11), /unknown operation id 99/);
  assert.throws(() => r.invoke(2, READ, Number.POSITIVE_INFINITY), AssertionError);
  assert.throws(() => r.invoke(1.5, READ, 0), AssertionError);
});
