/** Malformed histories (from files or hand-built) are rejected with a typed error, not misjudged. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkLinearizable, HistoryError, type Operation, registerModel } from '../src/index.js';
import type { RegisterInput, RegisterOutput } from '../src/models.js';

type Op = Operation<RegisterInput, RegisterOutput>;
const base: Op = {
  id: 7,
  client: 1,
  input: { type: 'read' },
  call: 5,
  return: 6,
  status: 'ok',
  output: { type: 'read', value: null },
};

const BAD: [string, Op, RegExp][] = [
  [
    'ok without output',
    { id: 7, client: 1, input: { type: 'read' }, call: 5, return: 6, status: 'ok' },
    /without output/,
  ],
  ['return before call', { ...base, return: 4 }, /before its call/],
  ['non-finite call', { ...base, call: Number.NaN }, /call time NaN/],
  ['ok with infinite return', { ...base, return: Number.POSITIVE_INFINITY }, /has return Infinity/],
  ['unknown status', { ...base, status: 'maybe' as Op['status'] }, /unknown status maybe/],
];

for (const [name, operation, message] of BAD) {
  test(`rejects a history with ${name}`, () => {
    assert.throws(
      () => checkLinearizable(registerModel, [operation]),
      (error) => error instanceof HistoryError && error.detail.operation === 7 && message.test(error.message),
    );
  });
}

test("an 'info' operation's recorded return time is ignored: it stays open forever", () => {
  const write: Op = { id: 0, client: 1, input: { type: 'write', value: 'a' }, call: 0, return: 1, status: 'info' };
  const read: Op = { ...base, id: 1, client: 2, call: 100, return: 101, output: { type: 'read', value: null } };
  assert.equal(checkLinearizable(registerModel, [write, read]).ok, true);
});
