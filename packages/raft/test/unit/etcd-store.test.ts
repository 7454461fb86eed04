/**
 * etcd's data model in the replicated store (`KeyValueStore`, `KvStateMachine`): revisions and
 * per-key create/mod revisions and versions, range semantics (prefix, from-key, limit with `more`,
 * count, sort, revision filters, keys only), transactions as etcd 3.4's applier runs them (compares on
 * missing keys, the path chosen before any write, nested transactions, one revision per transaction,
 * refusals that change nothing), the request checks etcd makes before the log (duplicate keys, too
 * many operations), native and etcd writes on the same keys, and snapshots keeping all of it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encode } from '@dsys/kit';
import { kvCommandSchema } from '../../src/index.js';
import type { Compare, EtcdOp, EtcdTxn, RangeQuery } from '../../src/kv/etcd-schema.js';
import { txnMayWrite } from '../../src/kv/etcd-schema.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { KeyValueStore, txnRequestProblem } from '../../src/kv/store.js';
import { bytes, put, query, text } from '../support/etcd-ops.js';

const del = (key: string, rangeEnd = '', prevKv = false): EtcdOp => ({
  type: 'deleteRange',
  key: bytes(key),
  rangeEnd: bytes(rangeEnd),
  prevKv,
});
const get = (key: string, overrides: Partial<RangeQuery> = {}): EtcdOp => ({ type: 'range', ...query(key, overrides) });
const txn = (compare: Compare[], success: EtcdOp[], failure: EtcdOp[] = []): EtcdTxn => ({ compare, success, failure });
const compare = (
  key: string,
  target: Compare['target'],
  result: Compare['result'] = 'equal',
  rangeEnd = '',
): Compare => ({ key: bytes(key), target, result, rangeEnd: bytes(rangeEnd) });

function apply(store: KeyValueStore, ...ops: EtcdOp[]) {
  const outcome = store.applyTxn(txn([], ops));
  assert.ok(outcome.ok);
  return outcome;
}

function keysOf(store: KeyValueStore, q: RangeQuery): string[] {
  const outcome = store.range(q);
  assert.ok(outcome.ok);
  return outcome.result.kvs.map((kv) => text(kv.key));
}

describe('revisions', () => {
  test('one revision per changing transaction; create, mod and version per key', () => {
    const store = new KeyValueStore();
    assert.equal(store.revision, 1, 'an empty store is at revision 1, like etcd');
    apply(store, put('a', '1'));
    apply(store, put('a', '2'), put('b', '1'));
    assert.equal(store.revision, 3);
    const a = store.lookup('a')!;
    assert.deepEqual([a.createRevision, a.modRevision, a.version, text(a.value)], [2, 3, 2, '2']);
    const b = store.lookup('b')!;
    assert.deepEqual([b.createRevision, b.modRevision, b.version], [3, 3, 1], 'same revision for a whole transaction');
    apply(store, del('zzz'));
    assert.equal(store.revision, 3, 'deleting nothing changes nothing');
    apply(store, del('a'));
    assert.equal(store.revision, 4);
    apply(store, put('a', 'again'));
    assert.deepEqual(
      [store.lookup('a')!.createRevision, store.lookup('a')!.version],
      [5, 1],
      'a re-created key starts over',
    );
  });

  test('reads at the newest revision only: older ones are compacted, later ones in the future', () => {
    const store = new KeyValueStore();
    apply(store, put('a', '1'));
    assert.ok(store.range(query('a', { revision: 2 })).ok);
    assert.deepEqual(store.range(query('a', { revision: 1 })), { ok: false, error: 'COMPACTED' });
    assert.deepEqual(store.range(query('a', { revision: 9 })), { ok: false, error: 'FUTURE_REV' });
  });
});

describe('ranges', () => {
  const store = new KeyValueStore();
  apply(store, put('a', '1'), put('b/1', 'x'), put('b/2', 'yy'), put('b/3', 'z'), put('c', '3'));
  apply(store, put('b/2', 'y2'));

  test('a key, [key, end), a prefix, and every key from one on', () => {
    assert.deepEqual(keysOf(store, query('b/2')), ['b/2']);
    assert.deepEqual(keysOf(store, query('b/1', { rangeEnd: bytes('b/3') })), ['b/1', 'b/2']);
    assert.deepEqual(keysOf(store, query('b/', { rangeEnd: bytes('b0') })), ['b/1', 'b/2', 'b/3']);
    assert.deepEqual(keysOf(store, query('b/3', { rangeEnd: new Uint8Array([0]) })), ['b/3', 'c']);
    assert.deepEqual(keysOf(store, query('nope')), []);
  });

  test('limit sets more and keeps the total count; count only; keys only', () => {
    const limited = store.range(query('b/', { rangeEnd: bytes('b0'), limit: 2 }));
    assert.ok(limited.ok);
    assert.deepEqual(
      limited.result.kvs.map((kv) => text(kv.key)),
      ['b/1', 'b/2'],
    );
    assert.equal(limited.result.more, true);
    assert.equal(limited.result.count, 3);
    const counted = store.range(query('a', { rangeEnd: new Uint8Array([0]), countOnly: true }));
    assert.ok(counted.ok);
    assert.deepEqual([counted.result.kvs.length, counted.result.count], [0, 5]);
    const keysOnly = store.range(query('c', { keysOnly: true }));
    assert.ok(keysOnly.ok);
    assert.equal(keysOnly.result.kvs[0]!.value.length, 0);
  });

  test('sort by any target, either way; revision filters before the limit', () => {
    const all = { rangeEnd: new Uint8Array([0]) };
    assert.deepEqual(keysOf(store, query('a', { ...all, sortOrder: 'descend' })), ['c', 'b/3', 'b/2', 'b/1', 'a']);
    assert.deepEqual(keysOf(store, query('a', { ...all, sortTarget: 'mod', sortOrder: 'descend', limit: 1 })), ['b/2']);
    assert.deepEqual(keysOf(store, query('a', { ...all, sortTarget: 'value' })), ['a', 'c', 'b/1', 'b/2', 'b/3']);
    assert.deepEqual(keysOf(store, query('a', { ...all, sortTarget: 'version', sortOrder: 'descend', limit: 1 })), [
      'b/2',
    ]);
    assert.deepEqual(keysOf(store, query('a', { ...all, minModRevision: 3 })), ['b/2']);
    assert.deepEqual(keysOf(store, query('a', { ...all, maxCreateRevision: 1 })), []);
  });

  test('keys order bytewise, as etcd orders them', () => {
    const binary = new KeyValueStore();
    const op = (key: Uint8Array): EtcdOp => ({ ...put('', 'v'), key }) as EtcdOp;
    apply(binary, op(new Uint8Array([0xff])), op(new Uint8Array([0x7f])), op(bytes('é')), op(new Uint8Array([1])));
    const outcome = binary.range({ ...query(''), key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]) });
    assert.ok(outcome.ok);
    assert.deepEqual(
      outcome.result.kvs.map((kv) => [...kv.key]),
      [[1], [0x7f], [0xc3, 0xa9], [0xff]],
    );
  });
});

describe('transactions', () => {
  test('compare-and-swap on value, version, create and mod revision', () => {
    const store = new KeyValueStore();
    apply(store, put('k', 'v1'));
    const swapped = store.applyTxn(
      txn([compare('k', { type: 'value', operand: bytes('v1') })], [put('k', 'v2')], [get('k')]),
    );
    assert.ok(swapped.ok && swapped.succeeded);
    const refused = store.applyTxn(
      txn([compare('k', { type: 'value', operand: bytes('v1') })], [put('k', 'v3')], [get('k')]),
    );
    assert.ok(refused.ok && !refused.succeeded);
    assert.equal(refused.responses[0]!.type, 'range');
    assert.equal(text(store.lookup('k')!.value), 'v2');
    for (const [target, result, expected] of [
      [{ type: 'version', operand: 2 }, 'equal', true],
      [{ type: 'version', operand: 1 }, 'greater', true],
      [{ type: 'mod', operand: 3 }, 'equal', true],
      [{ type: 'mod', operand: 3 }, 'less', false],
      [{ type: 'create', operand: 2 }, 'notEqual', false],
      [{ type: 'lease', operand: 0 }, 'equal', true],
    ] as const) {
      const outcome = store.readTxn(txn([compare('k', target, result)], []));
      assert.ok(outcome.ok);
      assert.equal(outcome.succeeded, expected, `${target.type} ${result} ${target.operand}`);
    }
  });

  test('a missing key: a version or revision of 0, and every value compare fails', () => {
    const store = new KeyValueStore();
    const absent = store.applyTxn(txn([compare('new', { type: 'create', operand: 0 })], [put('new', 'first')]));
    assert.ok(absent.ok && absent.succeeded, 'create_revision("new") = 0 is the create-if-absent idiom');
    const again = store.applyTxn(txn([compare('new', { type: 'create', operand: 0 })], [put('new', 'second')]));
    assert.ok(again.ok && !again.succeeded);
    for (const result of ['equal', 'notEqual', 'greater', 'less'] as const) {
      const outcome = store.readTxn(txn([compare('gone', { type: 'value', operand: bytes('') }, result)], []));
      assert.ok(outcome.ok && !outcome.succeeded, result);
    }
  });

  test('a range compare needs every key in it to match', () => {
    const store = new KeyValueStore();
    apply(store, put('r/1', 'x'), put('r/2', 'x'));
    const all = store.readTxn(txn([compare('r/', { type: 'value', operand: bytes('x') }, 'equal', 'r0')], []));
    assert.ok(all.ok && all.succeeded);
    apply(store, put('r/3', 'y'));
    const notAll = store.readTxn(txn([compare('r/', { type: 'value', operand: bytes('x') }, 'equal', 'r0')], []));
    assert.ok(notAll.ok && !notAll.succeeded);
  });

  test('ranges see earlier writes of their transaction; prev_kv; delete with prev_kvs', () => {
    const store = new KeyValueStore();
    apply(store, put('a', 'old'));
    const outcome = apply(store, put('a', 'new', { prevKv: true }), get('a'), del('a', '', true), get('a'));
    const [putResult, seen, deleted, after] = outcome.responses;
    assert.ok(putResult?.type === 'put' && putResult.prevKv !== null);
    assert.equal(text(putResult.prevKv.value), 'old');
    assert.ok(seen?.type === 'range');
    assert.equal(text(seen.kvs[0]!.value), 'new');
    assert.ok(deleted?.type === 'deleteRange' && deleted.deleted === 1);
    assert.equal(text(deleted.prevKvs[0]!.value), 'new');
    assert.ok(after?.type === 'range' && after.count === 0);
    assert.equal(outcome.revision, 3);
  });

  test('nested transactions: their compares are decided before the outer operations run', () => {
    const store = new KeyValueStore();
    const outcome = apply(store, put('x', '1'), {
      type: 'txn',
      // Against the state before the transaction, x does not exist yet.
      txn: txn([compare('x', { type: 'version', operand: 0 })], [put('y', 'nested')], [put('y', 'other')]),
    });
    const nested = outcome.responses[1];
    assert.ok(nested?.type === 'txn' && nested.succeeded);
    assert.equal(text(store.lookup('y')!.value), 'nested');
    assert.equal(store.lookup('y')!.modRevision, store.lookup('x')!.modRevision);
  });

  test('a put that keeps the value needs its key; a failed check applies nothing', () => {
    const store = new KeyValueStore();
    apply(store, put('a', 'kept'));
    const refused = store.applyTxn(txn([], [put('b', 'x'), put('missing', '', { ignoreValue: true })]));
    assert.deepEqual(refused, { ok: false, error: 'KEY_NOT_FOUND' });
    assert.equal(store.lookup('b'), undefined);
    assert.equal(store.revision, 2);
    apply(store, put('a', '', { ignoreValue: true }));
    assert.equal(text(store.lookup('a')!.value), 'kept');
    assert.equal(store.lookup('a')!.version, 2);
  });

  test('etcd refuses duplicate keys and too many operations before the log', () => {
    assert.equal(txnRequestProblem(txn([], [put('a', '1'), put('a', '2')]), 128), 'duplicate key given in txn request');
    assert.equal(txnRequestProblem(txn([], [del('a', 'c'), put('b', '2')]), 128), 'duplicate key given in txn request');
    assert.equal(txnRequestProblem(txn([], [put('a', '1')], [put('a', '2')]), 128), null, 'branches may share keys');
    const nested: EtcdOp = { type: 'txn', txn: txn([], [put('n', '1')], [put('n', '2')]) };
    assert.equal(txnRequestProblem(txn([], [nested]), 128), null, "a nested txn's branches may share keys");
    assert.equal(txnRequestProblem(txn([], [nested, put('n', '3')]), 128), 'duplicate key given in txn request');
    assert.equal(txnRequestProblem(txn([], [put('', '1')]), 128), 'key is not provided');
    const many = Array.from({ length: 3 }, (_, i) => put(`k${i}`, 'v'));
    assert.equal(txnRequestProblem(txn([], many), 2), 'too many operations in txn request');
    assert.equal(txnMayWrite(txn([], [get('a')], [{ type: 'txn', txn: txn([], [get('b')]) }])), false);
    assert.equal(txnMayWrite(txn([], [get('a')], [{ type: 'txn', txn: txn([], [del('b')]) }])), true);
  });
});

describe('KvStateMachine with both APIs', () => {
  const limits = { sessionTimeoutMs: 60_000, sessionsMax: 10 };
  const command = (value: Parameters<typeof encode<unknown>>[1]) => encode(kvCommandSchema, value as never);

  test('native writes are etcd revisions; etcd writes read back through the native API', () => {
    const machine = new KvStateMachine(limits);
    machine.apply(1, command({ type: 'openSession', timeMs: 0 }));
    machine.apply(
      2,
      command({ type: 'write', sessionId: 1, seq: 1, timeMs: 0, op: { type: 'put', key: 'ключ', value: 'значение' } }),
    );
    assert.equal(machine.revision, 2);
    const range = machine.range(query('ключ'));
    assert.ok(range.ok);
    assert.equal(text(range.result.kvs[0]!.value), 'значение', 'native strings are their UTF-8 bytes');
    const etcdPut = machine.apply(
      3,
      command({
        type: 'etcdTxn',
        timeMs: 0,
        origin: { node: 2, boot: 5, seq: 7 },
        txn: txn([], [put('e', 'from etcd')]),
      }),
    );
    assert.ok(etcdPut.type === 'etcdTxn' && etcdPut.outcome.ok);
    assert.deepEqual(etcdPut.origin, { node: 2, boot: 5, seq: 7 });
    assert.equal(machine.get('e'), 'from etcd');
    assert.deepEqual(machine.scan('', 10).entries, [
      { key: 'e', value: 'from etcd' },
      { key: 'ключ', value: 'значение' },
    ]);
    const cas = machine.apply(
      4,
      command({
        type: 'write',
        sessionId: 1,
        seq: 2,
        timeMs: 0,
        op: { type: 'cas', key: 'e', expected: 'from etcd', value: null },
      }),
    );
    assert.deepEqual(cas, { type: 'write', result: { type: 'cas', ok: true }, duplicate: false });
    assert.equal(machine.revision, 4);
  });

  test('a snapshot keeps revisions and per-key versions', () => {
    const machine = new KvStateMachine(limits);
    machine.apply(1, command({ type: 'etcdTxn', timeMs: 0, origin: null, txn: txn([], [put('a', '1')]) }));
    machine.apply(
      2,
      command({ type: 'etcdTxn', timeMs: 0, origin: null, txn: txn([], [put('a', '2'), put('b', '1')]) }),
    );
    const restored = KvStateMachine.restore(machine.snapshot(), limits);
    assert.ok(restored.ok);
    assert.equal(restored.value.revision, 3);
    assert.deepEqual(restored.value.store.lookup('a'), machine.store.lookup('a'));
    assert.equal(restored.value.store.bytesInUse, machine.store.bytesInUse);
    assert.deepEqual(restored.value.snapshot(), machine.snapshot());
  });
});
