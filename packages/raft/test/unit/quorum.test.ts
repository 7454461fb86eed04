/**
 * The fast quorum arithmetic (sort once, pick the quorum-th value; joint = min of both halves)
 * against a naive definition (etcd's quorum/quick_test.go): the committed index is the largest N such
 * that a majority of each voter set has match >= N; an election is won when a majority of each set
 * granted, lost when a majority of either can no longer grant.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NodeId } from '@dsys/kit';
import fc from 'fast-check';
import {
  type ConfState,
  jointCommitted,
  jointVoteResult,
  majorityCommitted,
  type VoteResult,
} from '../../src/index.js';

function naiveMajorityCommitted(voters: readonly number[], match: ReadonlyMap<number, number>): number {
  if (voters.length === 0) return Number.POSITIVE_INFINITY;
  const candidates = [0, ...voters.map((id) => match.get(id) ?? 0)].sort((a, b) => b - a);
  for (const n of candidates) {
    const holding = voters.filter((id) => (match.get(id) ?? 0) >= n).length;
    if (holding * 2 > voters.length) return n;
  }
  return 0;
}

function naiveVote(voters: readonly number[], votes: ReadonlyMap<number, boolean>): VoteResult {
  if (voters.length === 0) return 'won';
  const yes = voters.filter((id) => votes.get(id) === true).length;
  const open = voters.filter((id) => !votes.has(id)).length;
  if (yes * 2 > voters.length) return 'won';
  if ((yes + open) * 2 > voters.length) return 'pending';
  return 'lost';
}

const ids = fc.uniqueArray(fc.integer({ min: 1, max: 9 }), { maxLength: 7 }).map((list) => list.sort((a, b) => a - b));
const config = fc.record({ voters: ids, outgoing: ids });

function conf(voters: number[], outgoing: number[]): ConfState {
  return { voters: voters.map(NodeId), votersOutgoing: outgoing.map(NodeId), learners: [], autoLeave: false };
}

test('majority and joint commit index match the naive definition', () => {
  fc.assert(
    fc.property(
      config,
      fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 10, maxLength: 10 }),
      ({ voters, outgoing }, values) => {
        const match = new Map<number, number>(values.map((value, i) => [i, value]));
        const matchOf = (id: number) => match.get(id) ?? 0;
        assert.equal(majorityCommitted(voters.map(NodeId), matchOf), naiveMajorityCommitted(voters, match));
        const joint = Math.min(naiveMajorityCommitted(voters, match), naiveMajorityCommitted(outgoing, match));
        assert.equal(jointCommitted(conf(voters, outgoing), matchOf), joint);
      },
    ),
    { seed: 4242, numRuns: 2000 },
  );
});

test('joint vote result matches the naive definition', () => {
  const vote = fc.constantFrom<boolean | undefined>(true, false, undefined);
  fc.assert(
    fc.property(config, fc.array(vote, { minLength: 10, maxLength: 10 }), ({ voters, outgoing }, answers) => {
      const votes = new Map<NodeId, boolean>();
      answers.forEach((answer, id) => {
        if (answer !== undefined) votes.set(NodeId(id), answer);
      });
      const plain = new Map<number, boolean>(votes);
      const incoming = naiveVote(voters, plain);
      const old = naiveVote(outgoing, plain);
      let expected: VoteResult = 'pending';
      if (incoming === 'won' && old === 'won') expected = 'won';
      else if (incoming === 'lost' || old === 'lost') expected = 'lost';
      assert.equal(jointVoteResult(conf(voters, outgoing), votes), expected);
    }),
    { seed: 4243, numRuns: 2000 },
  );
});

test('table: a joint configuration needs both majorities', () => {
  const joint = conf([1, 2, 3, 4], [1, 2, 3]);
  const match = new Map([
    [1, 9],
    [2, 9],
    [4, 9],
    [3, 1],
  ]);
  // (1 2 4) is a majority of C_new but only (1 2) of C_old: still a majority of C_old (2 of 3).
  assert.equal(
    jointCommitted(joint, (id) => match.get(id) ?? 0),
    9,
  );
  const lagging = new Map([
    [1, 9],
    [4, 9],
    [2, 1],
    [3, 1],
  ]);
  // (1 4) is half of C_new (no majority) and one of C_old: commit falls to 1.
  assert.equal(
    jointCommitted(joint, (id) => lagging.get(id) ?? 0),
    1,
  );
});
