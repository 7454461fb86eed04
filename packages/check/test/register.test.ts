/**
 * Hand-written register histories with a known answer, one per rule of the checker: real-time order,
 * concurrency, 'info' (may or may not have happened), 'fail' (never happened), compare-and-set, the
 * step budget, and the shape of the counter-example.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type CheckResult, checkLinearizable, registerModel } from '../src/index.js';
import { cas, fail, history, info, ok, read, write } from './support/build.js';

function counterexample(result: CheckResult): string {
  assert.equal(result.ok, false, 'expected a violation');
  return result.ok === false ? result.counterexample : '';
}

describe('register: real-time order', () => {
  test('the classic stale read after a completed write is caught', () => {
    const h = history(ok(1, 0, 5, write('a')), ok(1, 6, 9, write('b')), ok(2, 10, 15, read('a')));
    const result = checkLinearizable(registerModel, h);
    assert.equal(
      counterexample(result),
      [
        'not linearizable: after linearizing 2 of 3 operations, none of these can go next:',
        '  client 2  [t=10..t=15]  read() -> "a"',
        'state after the prefix: "b"',
        'last linearized (2 of 2):',
        '  client 1  [t=0..t=5]  write("a") -> ok',
        '  client 1  [t=6..t=9]  write("b") -> ok',
      ].join('\n'),
    );
    assert.equal(result.operations, 3);
  });

  test('a read of the initial value before any write passes; after a write it fails', () => {
    assert.equal(checkLinearizable(registerModel, history(ok(1, 0, 1, read(null)), ok(2, 2, 3, write('a')))).ok, true);
    assert.equal(checkLinearizable(registerModel, history(ok(2, 0, 1, write('a')), ok(1, 2, 3, read(null)))).ok, false);
  });

  test('a read concurrent with a write may see either value', () => {
    for (const seen of [null, 'a']) {
      const h = history(ok(1, 0, 10, write('a')), ok(2, 2, 4, read(seen)));
      assert.equal(checkLinearizable(registerModel, h).ok, true, `read saw ${seen}`);
    }
  });

  test('overlapping writes and reads that see either order pass', () => {
    const writes = [ok(1, 0, 10, write('a')), ok(2, 0, 10, write('b'))];
    const first = history(...writes, ok(3, 1, 11, read('a')), ok(4, 1, 11, read('b')), ok(5, 12, 13, read('b')));
    const second = history(...writes, ok(3, 1, 11, read('b')), ok(4, 1, 11, read('a')), ok(5, 12, 13, read('a')));
    assert.equal(checkLinearizable(registerModel, first).ok, true);
    assert.equal(checkLinearizable(registerModel, second).ok, true);
  });

  test('once both overlapping writes completed, the value cannot flip back and forth', () => {
    const h = history(
      ok(1, 0, 10, write('a')),
      ok(2, 0, 10, write('b')),
      ok(3, 12, 13, read('a')),
      ok(3, 14, 15, read('b')),
    );
    const text = counterexample(checkLinearizable(registerModel, h));
    assert.match(text, /client 3 {2}\[t=14\.\.t=15\] {2}read\(\) -> "b"/);
  });

  test('a later read may not go back to an older value (new-old inversion across clients)', () => {
    const h = history(
      ok(1, 0, 100, write('b')),
      ok(0, 0, 1, write('a')),
      ok(2, 10, 20, read('b')),
      ok(3, 30, 40, read('a')),
    );
    assert.equal(checkLinearizable(registerModel, h).ok, false);
  });

  test('touching intervals (return time == call time) count as concurrent', () => {
    const h = history(ok(1, 0, 5, write('a')), ok(2, 5, 6, read(null)));
    assert.equal(checkLinearizable(registerModel, h).ok, true);
  });

  test('an empty history is linearizable', () => {
    assert.deepEqual(checkLinearizable(registerModel, []), { ok: true, operations: 0 });
  });
});

describe("register: 'info' operations may or may not have happened", () => {
  const before = [ok(1, 0, 5, write('a')), info(2, 6, write('b'))];

  test('a later read that sees the info write passes', () => {
    assert.equal(checkLinearizable(registerModel, history(...before, ok(3, 10, 12, read('b')))).ok, true);
  });

  test('a later read that does not see it passes too', () => {
    assert.equal(checkLinearizable(registerModel, history(...before, ok(3, 10, 12, read('a')))).ok, true);
  });

  test('it may take effect long after its call: first unseen, then seen', () => {
    const h = history(...before, ok(3, 10, 12, read('a')), ok(3, 1000, 1001, read('b')));
    assert.equal(checkLinearizable(registerModel, h).ok, true);
  });

  test('but once seen it cannot be undone', () => {
    const h = history(...before, ok(3, 10, 12, read('b')), ok(3, 20, 22, read('a')));
    assert.equal(checkLinearizable(registerModel, h).ok, false);
  });

  test('it cannot take effect before its call', () => {
    const h = history(ok(1, 0, 5, write('a')), ok(3, 6, 7, read('b')), info(2, 10, write('b')));
    assert.equal(checkLinearizable(registerModel, h).ok, false);
  });

  test('an info read constrains nothing', () => {
    const h = history(ok(1, 0, 5, write('a')), info(2, 6, read('zzz')));
    assert.equal(checkLinearizable(registerModel, h).ok, true);
  });

  test('an info cas takes effect only if its expectation holds at its linearization point', () => {
    const seen = history(ok(1, 0, 5, write('a')), info(2, 6, cas('a', 'c', true)), ok(3, 10, 11, read('c')));
    const impossible = history(ok(1, 0, 5, write('a')), info(2, 6, cas('x', 'c', true)), ok(3, 10, 11, read('c')));
    assert.equal(checkLinearizable(registerModel, seen).ok, true);
    assert.equal(checkLinearizable(registerModel, impossible).ok, false);
  });

  test('counter-examples show info operations as open-ended with an unknown output', () => {
    const h = history(ok(1, 0, 5, write('a')), info(2, 6, write('b')), ok(3, 10, 12, read('c')));
    assert.match(
      counterexample(checkLinearizable(registerModel, h)),
      /client 2 {2}\[t=6\.\.t=∞\] {2}write\("b"\) -> \?/,
    );
  });
});

describe("register: 'fail' operations never happened", () => {
  test('a failed write whose value is read is caught', () => {
    const h = history(ok(1, 0, 5, write('a')), fail(2, 6, 8, write('b')), ok(3, 10, 12, read('b')));
    const text = counterexample(checkLinearizable(registerModel, h));
    assert.match(text, /after linearizing 1 of 2 operations/, 'the failed write is not counted');
    assert.doesNotMatch(text, /write\("b"\)/);
  });

  test('a failed write constrains nothing', () => {
    const h = history(ok(1, 0, 5, write('a')), fail(2, 6, 8, write('b')), ok(3, 10, 12, read('a')));
    assert.equal(checkLinearizable(registerModel, h).ok, true);
  });
});

describe('register: compare-and-set', () => {
  test('a cas succeeds exactly when the value matches its expectation', () => {
    const valid = history(ok(1, 0, 1, cas(null, 'a', true)), ok(1, 2, 3, cas('x', 'b', false)), ok(2, 4, 5, read('a')));
    assert.equal(checkLinearizable(registerModel, valid).ok, true);
    const wrongSuccess = history(ok(1, 0, 1, write('a')), ok(1, 2, 3, cas('x', 'b', true)));
    assert.equal(checkLinearizable(registerModel, wrongSuccess).ok, false);
    const wrongFailure = history(ok(1, 0, 1, write('a')), ok(1, 2, 3, cas('a', 'b', false)));
    assert.equal(checkLinearizable(registerModel, wrongFailure).ok, false);
  });

  test('two concurrent cas from the same expected value cannot both succeed', () => {
    const both = history(ok(1, 0, 10, cas(null, 'a', true)), ok(2, 0, 10, cas(null, 'b', true)));
    assert.equal(checkLinearizable(registerModel, both).ok, false);
    const oneWins = history(ok(1, 0, 10, cas(null, 'a', true)), ok(2, 0, 10, cas(null, 'b', false)));
    assert.equal(checkLinearizable(registerModel, oneWins).ok, true);
  });

  test('a failed-comparison cas leaves the value unchanged', () => {
    const h = history(ok(1, 0, 1, write('a')), ok(1, 2, 3, cas('b', 'c', false)), ok(1, 4, 5, read('c')));
    assert.equal(checkLinearizable(registerModel, h).ok, false);
  });

  test('describe shows cas outcomes', () => {
    assert.equal(registerModel.describe(cas('a', 'b', true).input, cas('a', 'b', true).output), 'cas("a", "b") -> ok');
    assert.equal(
      registerModel.describe(cas(null, 'b', false).input, cas(null, 'b', false).output),
      'cas(null, "b") -> failed',
    );
    assert.equal(registerModel.describe(cas(null, 'b', false).input, undefined), 'cas(null, "b") -> ?');
  });

  test('an output of the wrong type is rejected by the model', () => {
    assert.deepEqual(registerModel.step(null, { type: 'read' }, { type: 'write' }), { ok: false });
  });

  test('state keys tell null, the string "null" and strings starting with U+0000 apart', () => {
    const keys = [null, 'null', '', '\u0000', '\u0000\u0000', 'a'].map((value) => registerModel.key(value));
    assert.equal(new Set(keys).size, keys.length);
  });
});

describe('search budget and counter-examples', () => {
  test('the step budget gives unknown, deterministically; a larger one decides', () => {
    const h = history(
      ok(1, 0, 10, write('a')),
      ok(2, 0, 10, write('b')),
      ok(3, 0, 10, write('c')),
      ok(4, 11, 12, read('a')),
    );
    const small = checkLinearizable(registerModel, h, { stepsMax: 3 });
    assert.deepEqual(small, {
      ok: 'unknown',
      operations: 4,
      reason: 'search budget of 3 steps exhausted (4 operations)',
    });
    assert.deepEqual(checkLinearizable(registerModel, h, { stepsMax: 3 }), small);
    assert.equal(checkLinearizable(registerModel, h, { stepsMax: 1000 }).ok, true);
  });

  test('stepsMax must be a positive integer', () => {
    assert.throws(() => checkLinearizable(registerModel, [], { stepsMax: 0 }), RangeError);
    assert.throws(() => checkLinearizable(registerModel, [], { stepsMax: 1.5 }), RangeError);
  });

  test('long candidate lists are cut short', () => {
    const reads = Array.from({ length: 15 }, (_, client) => ok(client, 0, 10, read('x')));
    const text = counterexample(checkLinearizable(registerModel, history(...reads)));
    assert.match(text, /after linearizing 0 of 15 operations/);
    assert.match(text, /\.\.\. and 5 more/);
    assert.doesNotMatch(text, /last linearized/);
    assert.ok(text.split('\n').length <= 13, text);
  });
});
