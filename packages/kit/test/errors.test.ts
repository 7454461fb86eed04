// Goal: typed errors carry a code and metadata, render readable messages; assert narrows and throws.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AssertionError, assert as check, DsError, errorMessage } from '../src/index.js';

test('DsError carries code and detail', () => {
  const error = new DsError({ code: 'NOT_LEADER' as const, leader: 3 });
  assert.equal(error.code, 'NOT_LEADER');
  assert.equal(error.detail.leader, 3);
  assert.equal(error.message, 'NOT_LEADER (leader=3)');
  assert.equal(errorMessage(error), 'NOT_LEADER (leader=3)');
  assert.equal(errorMessage('plain'), 'plain');
});

test('assert throws AssertionError with the message', () => {
  assert.throws(
    () => check(false, 'commitIndex <= lastIndex'),
    (e: unknown) => e instanceof AssertionError && e.message === 'commitIndex <= lastIndex',
  );
  check(true, 'fine');
});
