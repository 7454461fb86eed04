/**
 * Unit tests that map to sentences of the Raft paper (extended version) and the dissertation, in the
 * manner of etcd's raft_paper_test.go: each test feeds the core events and checks its output.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { NodeId, Rng } from '@dsys/kit';
import {
  EMPTY_CONF_STATE,
  LogIndex,
  RaftConfigError,
  RaftCore,
  type RaftMessage,
  Term,
  validateRaftConfig,
} from '../../src/index.js';
import { CoreCluster, entry, hard } from '../support/core-cluster.js';

const n = NodeId;

function lone(
  id: number,
  options: { voters?: number[]; log?: ReturnType<typeof entry>[]; term?: number; config?: object } = {},
): RaftCore {
  const voters = (options.voters ?? [1, 2, 3]).map(n);
  return new RaftCore({
    id: n(id),
    config: validateRaftConfig({ preVote: false, checkQuorum: false, ...options.config }),
    rng: Rng.fromSeed(id),
    hardState: hard(options.term ?? 0, null, 0),
    snapshot: null,
    entries: options.log ?? [],
    bootstrapConfig: { ...EMPTY_CONF_STATE, voters },
  });
}

function vote(term: number, lastIndex: number, lastTerm: number): RaftMessage {
  return {
    type: 'requestVote',
    term: Term(term),
    lastIndex: LogIndex(lastIndex),
    lastTerm: Term(lastTerm),
    preVote: false,
    transfer: false,
  };
}

describe('§5.1 terms', () => {
  test('a node that sees a higher term adopts it and reverts to follower', () => {
    const cluster = new CoreCluster([1, 2, 3]);
    cluster.elect(1);
    assert.equal(cluster.core(1).role, 'leader');
    cluster.core(1).step(n(2), { type: 'heartbeat', term: Term(5), commit: LogIndex(0), round: 1 });
    assert.equal(cluster.core(1).role, 'follower');
    assert.equal(cluster.core(1).term, 5);
  });

  test('a request with a stale term is rejected', () => {
    const core = lone(1, { term: 3 });
    core.step(n(2), vote(2, 9, 2));
    const ready = core.ready();
    assert.equal(core.term, 3);
    assert.equal(core.vote, null);
    assert.equal(ready.messagesAfterPersist.length + ready.messages.length, 0);
  });
});

describe('§5.2 leader election', () => {
  test('on timeout a follower increments its term, votes for itself and asks every voter', () => {
    const core = lone(1);
    for (let tick = 0; tick < 20 && core.role === 'follower'; tick++) core.tick();
    assert.equal(core.role, 'candidate');
    assert.equal(core.term, 1);
    assert.equal(core.vote, 1);
    const ready = core.ready();
    assert.deepEqual(ready.hardState, hard(1, 1, 0));
    assert.equal(ready.mustSync, true, 'term and vote must be durable');
    const targets = ready.messages.filter((m) => m.message.type === 'requestVote').map((m) => m.to);
    assert.deepEqual(targets, [2, 3]);
  });

  test('election timeouts are randomized in [T, 2T) from the seeded Rng', () => {
    const timeouts = new Set<number>();
    for (let seed = 1; seed <= 30; seed++) {
      const core = new RaftCore({
        id: n(1),
        config: validateRaftConfig({ electionTicks: 10, preVote: false, checkQuorum: false }),
        rng: Rng.fromSeed(seed),
        hardState: hard(0, null, 0),
        snapshot: null,
        entries: [],
        bootstrapConfig: { ...EMPTY_CONF_STATE, voters: [n(1), n(2), n(3)] },
      });
      let ticks = 0;
      while (core.role === 'follower') {
        core.tick();
        ticks++;
      }
      assert.ok(ticks >= 10 && ticks < 20, `timeout ${ticks} outside [10, 20)`);
      timeouts.add(ticks);
    }
    assert.ok(timeouts.size >= 5, 'timeouts should differ between seeds');
  });

  test('one vote per term, first come first served; the vote is persisted before it is sent', () => {
    const core = lone(1);
    core.step(n(2), vote(1, 0, 0));
    const first = core.ready();
    assert.deepEqual(first.hardState, hard(1, 2, 0));
    assert.equal(first.mustSync, true);
    assert.equal(first.messages.length, 0, 'nothing goes out before the write');
    assert.deepEqual(
      first.messagesAfterPersist.map((m) => [m.to, m.message]),
      [[2, { type: 'requestVoteResponse', term: 1, preVote: false, granted: true, commitIndex: 0, commitTerm: 0 }]],
    );
    core.step(n(3), vote(1, 0, 0));
    const second = core.ready();
    assert.deepEqual(
      second.messagesAfterPersist.map((m) => m.message),
      [{ type: 'requestVoteResponse', term: 1, preVote: false, granted: false, commitIndex: 0, commitTerm: 0 }],
    );
    assert.equal(core.vote, 2);
  });

  test('§5.4.1 election restriction: no vote for a candidate whose log is less up to date', () => {
    const core = lone(1, { log: [entry(1, 1), entry(2, 2)], term: 2 });
    core.step(n(2), vote(3, 5, 1)); // longer log, older last term
    core.step(n(3), vote(3, 1, 2)); // same last term, shorter log
    const answers = core.ready().messagesAfterPersist.map((m) => (m.message as { granted: boolean }).granted);
    assert.deepEqual(answers, [false, false]);
    core.step(n(2), vote(3, 2, 2)); // equal logs: up to date
    assert.equal((core.ready().messagesAfterPersist[0]!.message as { granted: boolean }).granted, true);
  });

  test('a candidate does not become leader before its own term and vote are durable', () => {
    const cluster = new CoreCluster([1, 2, 3]);
    cluster.node(1).holdWrites = true;
    cluster.core(1).campaign();
    cluster.process(1);
    cluster.stabilize();
    assert.equal(cluster.core(1).role, 'candidate', 'both votes arrived, own vote not yet durable');
    cluster.node(1).holdWrites = false;
    cluster.releaseWrites(1);
    assert.equal(cluster.core(1).role, 'leader');
  });

  test('§9.6 pre-vote: a node that cannot win does not raise its term', () => {
    const cluster = new CoreCluster([1, 2, 3], { config: { preVote: true } });
    cluster.elect(1);
    cluster.partition([1, 2], [3]);
    cluster.tick(3, 100);
    cluster.stabilize();
    assert.equal(cluster.core(3).term, 1);
    assert.equal(cluster.core(3).role, 'preCandidate');
  });
});

describe('§5.3 log replication', () => {
  test('a proposal is replicated, committed by a majority, and applied everywhere in order', () => {
    const cluster = new CoreCluster([1, 2, 3]);
    cluster.elect(1);
    for (const word of ['a', 'b', 'c']) cluster.propose(1, word);
    cluster.stabilize();
    for (const id of [1, 2, 3]) assert.deepEqual(cluster.appliedText(id), ['a', 'b', 'c']);
    assert.equal(cluster.core(2).log.committed, 4);
  });

  test('the leader counts its own log only once its storage acknowledged it (§10.2.1 parallel fsync)', () => {
    const cluster = new CoreCluster([1, 2]);
    cluster.elect(1);
    cluster.node(1).holdWrites = true;
    cluster.propose(1, 'x');
    cluster.stabilize();
    assert.equal(cluster.core(2).log.lastIndex(), 2, 'the follower got the entry before the leader synced');
    assert.equal(cluster.core(1).log.committed, 1, 'no commit: with two voters the leader must count itself');
    cluster.node(1).holdWrites = false;
    cluster.releaseWrites(1);
    assert.equal(cluster.core(1).log.committed, 2);
  });

  test('the consistency check rejects a mismatched prevIndex/prevTerm, and fast backtracking skips a term at once', () => {
    // n3 holds 40 entries of a stale term-2 leader that n1 (term 3) never had.
    const stale = [entry(1, 1), ...Array.from({ length: 40 }, (_, i) => entry(2, i + 2))];
    const cluster = new CoreCluster([1, 2, 3]);
    const n1 = cluster.node(1);
    const n3 = cluster.node(3);
    n3.durableRecords = [];
    n1.durableRecords = [];
    // Rebuild n3 with the stale log and n1 with a short log at a higher term.
    const build = (id: number, log: ReturnType<typeof entry>[], term: number) =>
      new RaftCore({
        id: n(id),
        config: cluster.config,
        rng: Rng.fromSeed(id),
        hardState: hard(term, null, 1),
        snapshot: null,
        entries: log,
        bootstrapConfig: { ...EMPTY_CONF_STATE, voters: [n(1), n(2), n(3)] },
      });
    n1.core = build(1, [entry(1, 1), entry(3, 2)], 3);
    n3.core = build(3, stale, 2);
    cluster.node(2).core = build(2, [entry(1, 1), entry(3, 2)], 3);
    cluster.elect(1);
    assert.equal(cluster.core(1).role, 'leader');
    const rejections = cluster.transcript.filter(
      (line) => line.startsWith('n3->n1 appResp') && line.includes('reject'),
    ).length;
    assert.ok(rejections <= 2, `expected at most 2 rejections with conflict hints, got ${rejections}`);
    assert.equal(cluster.core(3).log.lastIndex(), cluster.core(1).log.lastIndex());
    assert.equal(cluster.core(3).log.term(2), 3);
  });

  test('heartbeats go out every heartbeatTicks while idle', () => {
    const cluster = new CoreCluster([1, 2, 3], { config: { heartbeatTicks: 2 } });
    cluster.elect(1);
    cluster.tick(1, 4);
    const heartbeats = cluster.wire.filter((wire) => wire.message.type === 'heartbeat');
    assert.equal(heartbeats.length, 4, 'two rounds to two followers');
  });

  test('pipelining stops at maxInflightMsgs unacknowledged AppendEntries per follower', () => {
    const cluster = new CoreCluster([1, 2], { config: { maxInflightMsgs: 3 } });
    cluster.elect(1);
    for (let i = 0; i < 10; i++) cluster.propose(1, `e${i}`);
    const appends = cluster.wire.filter(
      (wire) => wire.message.type === 'appendEntries' && wire.message.entries.length > 0,
    );
    assert.equal(appends.length, 3);
    cluster.stabilize();
    assert.equal(cluster.appliedText(2).length, 10);
  });

  test('AppendEntries batch entries up to maxSizePerMsgBytes', () => {
    const cluster = new CoreCluster([1, 2], { config: { maxSizePerMsgBytes: 250, maxInflightMsgs: 1 } });
    cluster.elect(1);
    cluster.node(2).up = false;
    for (let i = 0; i < 10; i++) cluster.propose(1, 'v'.repeat(100));
    cluster.node(2).up = true;
    cluster.wire = [];
    cluster.tick(1);
    cluster.stabilize();
    const sizes = cluster.transcript
      .filter((line) => line.startsWith('n1->n2 app'))
      .map((line) => (line.match(/\d+\/\d+/g) ?? []).length - 1);
    assert.ok(
      sizes.every((count) => count <= 2),
      `batches of at most 2 entries of 116 bytes, got ${sizes}`,
    );
    assert.equal(cluster.appliedText(2).length, 10);
  });

  test('bad input is dropped and counted, never thrown', () => {
    const core = lone(2, { term: 1 });
    core.step(n(1), {
      type: 'appendEntries',
      term: Term(1),
      prevIndex: LogIndex(0),
      prevTerm: Term(0),
      entries: [entry(1, 5)],
      commit: LogIndex(0),
    });
    assert.equal(core.counters.invalidMessages, 1);
    assert.equal(core.log.lastIndex(), 0);
    core.step(n(1), {
      type: 'appendEntries',
      term: Term(1),
      prevIndex: LogIndex(0),
      prevTerm: Term(0),
      entries: [entry(7, 1)],
      commit: LogIndex(0),
    });
    assert.equal(core.counters.invalidMessages, 2, 'an entry from a future term');
    core.step(n(2), vote(9, 0, 0));
    assert.equal(core.counters.droppedMessages, 3, 'a message from itself');
  });
});

describe('limits', () => {
  test('proposals beyond maxUncommittedEntriesBytes are refused with a typed error', () => {
    const cluster = new CoreCluster([1, 2], { config: { maxUncommittedEntriesBytes: 3 * 1024 * 1024 } });
    cluster.elect(1);
    cluster.node(2).up = false;
    const big = 'x'.repeat(1024 * 1024);
    const results = [1, 2, 3, 4].map(() => cluster.propose(1, big));
    assert.deepEqual(
      results.map((result) => result.ok),
      [true, true, false, false],
    );
    const refused = results[2]!;
    assert.ok(!refused.ok && refused.error.code === 'UNCOMMITTED_LIMIT');
  });

  test('reads beyond pendingReadsMax are refused with a typed error', () => {
    const cluster = new CoreCluster([1, 2, 3], { config: { pendingReadsMax: 2 } });
    cluster.elect(1);
    const accepted = [1, 2, 3].map((id) => cluster.core(1).readIndex(id));
    assert.deepEqual(
      accepted.map((result) => result.ok),
      [true, true, false],
    );
    assert.ok(!accepted[2]!.ok && accepted[2]!.error.code === 'READS_FULL');
  });

  test('config is validated once, naming the field', () => {
    assert.throws(
      () => validateRaftConfig({ electionTicks: 5, heartbeatTicks: 5 }),
      (error: unknown) => {
        return error instanceof RaftConfigError && error.detail.field === 'heartbeatTicks';
      },
    );
    assert.throws(() => validateRaftConfig({ readOnly: 'lease', checkQuorum: false }), RaftConfigError);
    assert.throws(() => validateRaftConfig({ maxInflightMsgs: 0 }), RaftConfigError);
  });
});

describe('§6.4 reads', () => {
  test('ReadIndex waits for the new leader to commit an entry of its term, then for a heartbeat quorum', () => {
    const cluster = new CoreCluster([1, 2, 3]);
    cluster.core(1).campaign();
    cluster.process(1);
    cluster.deliver();
    cluster.deliver(); // votes in: n1 leads, its no-op is not committed yet
    assert.equal(cluster.core(1).role, 'leader');
    assert.ok(cluster.core(1).readIndex(7).ok);
    cluster.process(1);
    assert.equal(cluster.node(1).readStates.length, 0);
    cluster.stabilize();
    assert.deepEqual(cluster.node(1).readStates, [{ requestId: 7, index: 1 }]);
  });

  test('a follower forwards ReadIndex to the leader', () => {
    const cluster = new CoreCluster([1, 2, 3]);
    cluster.elect(1);
    cluster.propose(1, 'x');
    cluster.stabilize();
    assert.ok(cluster.core(2).readIndex(9).ok);
    cluster.process(2);
    cluster.stabilize();
    assert.deepEqual(cluster.node(2).readStates, [{ requestId: 9, index: 2 }]);
  });

  test('lease reads answer without a round while the lease holds', () => {
    const cluster = new CoreCluster([1, 2, 3], {
      config: { checkQuorum: true, readOnly: 'lease', electionTicks: 10, leaseMarginTicks: 2 },
    });
    cluster.elect(1);
    cluster.tickAll(1); // a heartbeat round answered by both followers dates the lease
    cluster.core(1).readIndex(3);
    cluster.process(1);
    assert.deepEqual(cluster.node(1).readStates, [{ requestId: 3, index: 1 }], 'served at once');
    assert.equal(cluster.wire.length, 0, 'no heartbeat round was needed');
    cluster.partition([1], [2, 3]);
    cluster.tick(1, 8); // more than electionTicks - margin since the last answered round
    cluster.core(1).readIndex(4);
    cluster.process(1);
    assert.equal(cluster.node(1).readStates.length, 1, 'lease expired: falls back to a round that cannot complete');
  });
});

describe('§3.10 leadership transfer', () => {
  test('only to a voter; proposals wait while it runs', () => {
    const cluster = new CoreCluster([1, 2, 3, 4], { voters: [1, 2, 3] });
    cluster.elect(1);
    const refused = cluster.core(1).transferLeader(n(4));
    assert.ok(!refused.ok && refused.error.code === 'NOT_A_VOTER');
    assert.ok(cluster.core(1).transferLeader(n(2)).ok);
    const proposal = cluster.core(1).propose(new Uint8Array([1]));
    assert.ok(!proposal.ok && proposal.error.code === 'TRANSFERRING');
    cluster.process(1);
    cluster.stabilize();
    assert.equal(cluster.core(2).role, 'leader');
    assert.equal(cluster.core(2).term, 2);
  });
});
