/**
 * The real runtime's additions to the KV protocol, on three `KvNode`s wired by hand (messages are
 * delivered only when the test says so; storage acknowledges at once):
 * - batching: the requests of one turn are proposed together and leave as ONE AppendEntries per
 *   follower and one log write once the node's `localFlush` note arrives; reads of a batch share one
 *   heartbeat round; without batching every request sends its own;
 * - writes that arrive while the previous batch is uncommitted wait for it, and leave together in the
 *   step that commits it (or after two ticks, if it does not commit), with no separate commit notice;
 * - a leader that steps down with writes in flight answers them LEADER_CHANGED (outcome unknown),
 *   distinct from NOT_LEADER (refused, definitely not applied);
 * - a `localFlush` from another node is malformed input: dropped and counted, its term ignored.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { NodeId } from '@dsys/kit';
import { Term } from '../../src/index.js';
import { type Kv, Trio } from '../support/trio.js';

const appendsWithEntries = (effects: readonly Kv[]) =>
  effects.filter(
    (effect) => effect.type === 'send' && effect.message.type === 'appendEntries' && effect.message.entries.length > 0,
  );

describe('batching (batchRequests)', () => {
  test('the writes of one turn leave as one AppendEntries per follower and one log write', () => {
    const trio = new Trio(true);
    const sessionId = trio.openSession();
    const steps = [1, 2, 3].map((seq) =>
      trio.request({ type: 'put', sessionId: sessionId + seq, seq: 1, key: `k${seq}`, value: 'v' }),
    );
    // Each session must exist for the write to apply; here only the batching is looked at.
    assert.deepEqual(
      steps.map((step) => step.effects),
      [[{ type: 'send', to: 1, message: { type: 'localFlush', term: trio.leader.core.term } }], [], []],
      'the first request schedules the flush; nothing leaves before it',
    );
    const flush = trio.step(1, {
      type: 'receive',
      from: NodeId(1),
      message: { type: 'localFlush', term: trio.leader.core.term },
    });
    const appends = appendsWithEntries(flush);
    assert.equal(appends.length, 2, 'one AppendEntries per follower');
    for (const append of appends) {
      assert.ok(append.type === 'send' && append.message.type === 'appendEntries');
      assert.equal(append.message.entries.length, 3);
    }
    assert.equal(flush.filter((effect) => effect.type === 'persist').length, 1, 'one log write');
  });

  test('without batching every request sends its own AppendEntries', () => {
    const trio = new Trio(false);
    const sessionId = trio.openSession();
    const sent = [1, 2, 3].flatMap((seq) =>
      appendsWithEntries(trio.request({ type: 'put', sessionId, seq, key: 'k', value: 'v' }).effects),
    );
    assert.equal(sent.length, 6);
  });

  test('the reads of one batch share one heartbeat round, and are answered after it', () => {
    const trio = new Trio(true);
    trio.openSession();
    const reads = [trio.request({ type: 'get', key: 'a' }), trio.request({ type: 'get', key: 'b' })];
    trio.run(1, [...reads[0]!.effects, ...reads[1]!.effects]);
    trio.deliver((sent) => sent.message.type === 'localFlush');
    const heartbeats = trio.wire.filter((sent) => sent.message.type === 'heartbeat');
    assert.equal(heartbeats.length, 2, 'one round: one heartbeat per follower');
    assert.equal(trio.replies.get(reads[0]!.requestId), undefined, 'no answer before a quorum confirms');
    trio.deliver();
    assert.deepEqual(trio.replies.get(reads[0]!.requestId), { type: 'get', value: null });
    assert.deepEqual(trio.replies.get(reads[1]!.requestId), { type: 'get', value: null });
  });
});

describe('writes wait for the batch in flight', () => {
  const flushAt = (trio: Trio) =>
    trio.step(1, { type: 'receive', from: NodeId(1), message: { type: 'localFlush', term: trio.leader.core.term } });

  test('they leave together in the step that commits the batch, as one AppendEntries per follower', () => {
    const trio = new Trio(true);
    const sessionId = trio.openSession();
    const first = trio.request({ type: 'put', sessionId, seq: 1, key: 'a', value: '1' });
    trio.run(1, first.effects);
    trio.run(1, flushAt(trio));
    const later = [2, 3].map((seq) =>
      trio.request({ type: 'put', sessionId: sessionId + seq, seq: 1, key: 'b', value: 'v' }),
    );
    assert.deepEqual(
      later.map((step) => step.effects),
      [[], []],
      'no flush is scheduled: the batch in flight is not committed yet',
    );
    // The followers acknowledge the first batch; the step that commits it proposes the waiting writes.
    trio.deliver((sent) => sent.to !== 1);
    const ack = trio.wire.findIndex((sent) => sent.to === 1 && sent.message.type === 'appendEntriesResponse');
    const [sent] = trio.wire.splice(ack, 1);
    assert.ok(sent !== undefined);
    const commitStep = trio.step(1, { type: 'receive', from: NodeId(sent.from), message: sent.message });
    const appends = appendsWithEntries(commitStep);
    assert.equal(appends.length, 2, 'one AppendEntries per follower');
    for (const append of appends) {
      assert.ok(append.type === 'send' && append.message.type === 'appendEntries');
      assert.equal(append.message.entries.length, 2, 'both waiting writes');
      assert.ok(append.message.commit >= trio.leader.core.log.committed, 'with the new commit index');
    }
    const toFollowers = commitStep.filter(
      (effect) =>
        effect.type === 'send' && (effect.message.type === 'commit' || effect.message.type === 'appendEntries'),
    );
    assert.equal(
      toFollowers.length,
      2,
      'no commit notice to the follower that answered, no empty append to the other: the AppendEntries carry the commit index',
    );
    assert.ok(commitStep.some((effect) => effect.type === 'reply' && effect.requestId === first.requestId));
    trio.run(1, commitStep);
    trio.deliver();
    assert.deepEqual(trio.replies.get(first.requestId), { type: 'put' });
  });

  test('a batch that does not commit holds them two ticks at most; reads never wait', () => {
    const trio = new Trio(true);
    const sessionId = trio.openSession();
    trio.run(1, trio.request({ type: 'put', sessionId, seq: 1, key: 'a', value: '1' }).effects);
    trio.run(1, flushAt(trio));
    trio.wire.length = 0; // the followers never hear of it
    const waiting = trio.request({ type: 'put', sessionId: sessionId + 1, seq: 1, key: 'b', value: 'v' });
    assert.deepEqual(waiting.effects, []);
    const read = trio.request({ type: 'get', key: 'a' });
    assert.ok(read.effects.length > 0, 'a read is handled at once');
    trio.run(1, read.effects);
    trio.wire.length = 0;
    const proposedBefore = trio.leader.core.log.lastIndex();
    trio.tick(1);
    assert.equal(trio.leader.core.log.lastIndex(), proposedBefore, 'still waiting after one tick');
    trio.tick(1);
    assert.equal(trio.leader.core.log.lastIndex(), proposedBefore + 1, 'proposed after two');
  });
});

describe('answers when leadership ends', () => {
  test('writes in flight at a leader that steps down are LEADER_CHANGED; new ones NOT_LEADER', () => {
    const trio = new Trio(false);
    const sessionId = trio.openSession();
    const write = trio.request({ type: 'put', sessionId, seq: 1, key: 'k', value: 'v' });
    trio.run(1, write.effects);
    // A higher term from n2 deposes n1 before the write commits (its AppendEntries are still on the wire).
    const term = Term(trio.leader.core.term + 1);
    trio.run(
      1,
      trio.step(1, {
        type: 'receive',
        from: NodeId(2),
        message: { type: 'heartbeat', term, commit: trio.leader.core.log.committed, round: 1 },
      }),
    );
    const answer = trio.replies.get(write.requestId);
    assert.ok(answer?.type === 'error', JSON.stringify(answer));
    assert.equal(answer.code, 'LEADER_CHANGED');
    assert.equal(answer.leaderHint, 2);
    const refused = trio.request({ type: 'put', sessionId, seq: 2, key: 'k', value: 'w' });
    trio.run(1, refused.effects);
    const second = trio.replies.get(refused.requestId);
    assert.ok(second?.type === 'error' && second.code === 'NOT_LEADER' && second.leaderHint === 2);
  });

  test('a localFlush from another node is dropped and counted, and its term ignored', () => {
    const trio = new Trio(true);
    const term = trio.leader.core.term;
    const effects = trio.step(1, {
      type: 'receive',
      from: NodeId(3),
      message: { type: 'localFlush', term: Term(term + 50) },
    });
    assert.deepEqual(effects, []);
    assert.equal(trio.leader.core.term, term);
    assert.equal(trio.leader.core.role, 'leader');
    assert.equal(trio.leader.core.counters.invalidMessages, 1);
  });
});

describe('committed configurations', () => {
  test('a leader records a commit index covering a configuration entry (synced) before it tells anyone', () => {
    // Otherwise a crash can leave it in the old configuration while the others applied the new one
    // (sim seed 0xe02f87eec1f7983b: no leader could ever be elected again).
    const trio = new Trio(false);
    const { effects } = trio.request({ type: 'changeMembership', changes: [{ type: 'removeNode', node: NodeId(3) }] });
    const proposed = effects.find((effect) => effect.type === 'send' && effect.message.type === 'appendEntries');
    assert.ok(proposed?.type === 'send' && proposed.message.type === 'appendEntries');
    const configIndex = proposed.message.entries.find((entry) => entry.type === 'config')?.index;
    assert.ok(configIndex !== undefined, 'the joint configuration is proposed');
    trio.run(1, effects);
    let checked = 0;
    for (let rounds = 0; rounds < 1000 && trio.wire.length > 0; rounds++) {
      const sent = trio.wire.shift()!;
      const stepEffects = trio.step(sent.to, { type: 'receive', from: NodeId(sent.from), message: sent.message });
      if (sent.to === 1) {
        const telling = stepEffects.findIndex(
          (effect) =>
            effect.type === 'send' && effect.message.type === 'appendEntries' && effect.message.commit >= configIndex,
        );
        const synced = stepEffects.findIndex((effect) => effect.type === 'persist' && effect.sync);
        if (telling >= 0 && checked === 0) {
          assert.ok(synced >= 0 && synced < telling, `the commit of ${configIndex} went out before a synced write`);
          checked++;
        }
      }
      trio.run(sent.to, stepEffects);
    }
    assert.equal(checked, 1, 'the leader told the followers the new commit index');
  });
});
