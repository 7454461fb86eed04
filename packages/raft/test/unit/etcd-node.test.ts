/**
 * The etcd requests in `KvNode`, on three nodes wired by hand (support/trio.ts):
 * - any member takes writes: a follower forwards them to the leader in one `propose` message per
 *   batch and answers its client once the entry applies locally (etcd's proposal forwarding and wait
 *   registry); a forwarded write that never shows up is answered TIMED_OUT after the timeout;
 * - linearizable reads at a follower ask the leader for a read index; serializable ones answer at once
 *   from the follower's own state (and may be stale);
 * - with batching, the linearizable reads of one turn at a follower share ONE forwarded read index;
 * - a request etcd would refuse before the log (duplicate keys) is BAD_REQUEST.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { EtcdTxn } from '../../src/kv/etcd-schema.js';
import { put, query, text } from '../support/etcd-ops.js';
import { Trio } from '../support/trio.js';

const putTxn = (key: string, value: string): EtcdTxn => ({ compare: [], success: [put(key, value)], failure: [] });

describe('etcd writes at any member', () => {
  test('a follower forwards its batch in one message and answers once the write applied there', () => {
    const trio = new Trio(true);
    const writes = [1, 2].map((i) =>
      trio.request({ type: 'etcdTxn', txn: putTxn(`k${i}`, `v${i}`), serializable: false }, 2),
    );
    for (const write of writes) trio.run(2, write.effects);
    trio.deliver((sent) => sent.message.type === 'localFlush');
    const proposals = trio.wire.filter((sent) => sent.message.type === 'propose');
    assert.equal(proposals.length, 1, 'the batch leaves as one message');
    assert.ok(proposals[0]!.to === 1 && proposals[0]!.message.type === 'propose');
    assert.equal(proposals[0]!.message.entries.length, 2);
    trio.deliver();
    for (const [i, write] of writes.entries()) {
      const reply = trio.replies.get(write.requestId);
      assert.ok(reply?.type === 'etcdTxn', JSON.stringify(reply));
      assert.equal(reply.revision, i + 2, 'each put its own revision, as the leader ordered them');
    }
    assert.equal(text(trio.nodes[1]!.machine.store.lookup('k2')!.value), 'v2');
    assert.equal(trio.leader.machine.revision, 3);
  });

  test('a forwarded write that never shows up is TIMED_OUT (outcome unknown)', () => {
    const trio = new Trio(false, { forwardTimeoutTicks: 5 });
    const write = trio.request({ type: 'etcdTxn', txn: putTxn('lost', 'x'), serializable: false }, 3);
    trio.run(3, write.effects);
    const dropped = trio.wire.findIndex((sent) => sent.message.type === 'propose');
    assert.ok(dropped >= 0);
    trio.wire.splice(dropped, 1);
    for (let i = 0; i < 4; i++) trio.tick(3);
    assert.equal(trio.replies.get(write.requestId), undefined, 'still waiting');
    trio.tick(3);
    const reply = trio.replies.get(write.requestId);
    assert.ok(reply?.type === 'error' && reply.code === 'TIMED_OUT', JSON.stringify(reply));
  });

  test('the leader answers its own etcd writes; a duplicate key is refused before the log', () => {
    const trio = new Trio(false);
    const write = trio.request({ type: 'etcdTxn', txn: putTxn('a', '1'), serializable: false });
    trio.run(1, write.effects);
    trio.deliver();
    assert.equal(trio.replies.get(write.requestId)?.type, 'etcdTxn');
    const duplicate: EtcdTxn = { compare: [], success: [put('a', '1'), put('a', '2')], failure: [] };
    const refused = trio.request({ type: 'etcdTxn', txn: duplicate, serializable: false }, 2);
    trio.run(2, refused.effects);
    const reply = trio.replies.get(refused.requestId);
    assert.ok(reply?.type === 'error' && reply.code === 'BAD_REQUEST');
    assert.equal(reply.message, 'duplicate key given in txn request');
  });
});

describe('etcd reads at any member', () => {
  test('a linearizable read at a follower waits for the leader; a serializable one answers at once', () => {
    const trio = new Trio(false);
    const write = trio.request({ type: 'etcdTxn', txn: putTxn('k', 'v'), serializable: false });
    trio.run(1, write.effects);
    // Commit at the leader only: the followers have the entry but not yet the commit index.
    trio.deliver((sent) => sent.message.type !== 'heartbeat' && sent.to !== 1);
    trio.deliver((sent) => sent.to === 1);
    assert.equal(trio.leader.machine.revision, 2);
    assert.equal(trio.nodes[2]!.machine.revision, 1, 'n3 has not applied the put yet');
    const stale = trio.request({ type: 'etcdRange', query: query('k'), serializable: true }, 3);
    trio.run(3, stale.effects);
    const staleReply = trio.replies.get(stale.requestId);
    assert.ok(staleReply?.type === 'etcdRange' && staleReply.result.count === 0, 'serializable: local and stale');
    const fresh = trio.request({ type: 'etcdRange', query: query('k'), serializable: false }, 3);
    trio.run(3, fresh.effects);
    assert.ok(trio.wire.some((sent) => sent.from === 3 && sent.message.type === 'readIndex'));
    assert.equal(trio.replies.get(fresh.requestId), undefined);
    trio.deliver();
    const freshReply = trio.replies.get(fresh.requestId);
    assert.ok(freshReply?.type === 'etcdRange', JSON.stringify(freshReply));
    assert.equal(text(freshReply.result.kvs[0]!.value), 'v', 'linearizable: sees the committed put');
    assert.equal(freshReply.revision, 2);
  });

  test('the linearizable reads of one turn at a follower share one forwarded read index', () => {
    const trio = new Trio(true);
    const write = trio.request({ type: 'etcdTxn', txn: putTxn('k', 'v'), serializable: false });
    trio.run(1, write.effects);
    trio.deliver();
    const reads = ['k', 'k', 'x'].map((key) =>
      trio.request({ type: 'etcdRange', query: query(key), serializable: false }, 3),
    );
    for (const read of reads) trio.run(3, read.effects);
    trio.deliver((sent) => sent.message.type === 'localFlush');
    const forwarded = trio.wire.filter((sent) => sent.from === 3 && sent.message.type === 'readIndex');
    assert.equal(forwarded.length, 1, 'one read index request for the batch');
    trio.deliver();
    const answers = reads.map((read) => trio.replies.get(read.requestId));
    for (const answer of answers) assert.ok(answer?.type === 'etcdRange', JSON.stringify(answer));
    assert.deepEqual(
      answers.map((answer) => (answer?.type === 'etcdRange' ? answer.result.count : -1)),
      [1, 1, 0],
    );
  });
});
