/**
 * Quorum arithmetic for simple and joint configurations (etcd's `quorum` package).
 *
 * Raft §6 / dissertation §4.3: in the joint configuration C_old,new "agreement (for elections and
 * entry commitment) requires separate majorities from both the old and new configurations". An empty
 * voter set imposes no constraint, which is what makes a non-joint configuration a joint one with an
 * empty outgoing half.
 */
import type { NodeId } from '@dsys/kit';
import type { ConfState } from './types.js';

export type VoteResult = 'won' | 'lost' | 'pending';

/**
 * The largest index that a majority of `voters` has matched (`matchOf` gives each voter's match;
 * unknown voters count as 0). An empty voter set returns +Infinity so that `min` over a joint
 * configuration ignores it.
 */
export function majorityCommitted(voters: readonly NodeId[], matchOf: (id: NodeId) => number): number {
  const count = voters.length;
  if (count === 0) return Number.POSITIVE_INFINITY;
  if (count === 1) return matchOf(voters[0]!);
  const matches = new Float64Array(count);
  for (let i = 0; i < count; i++) matches[i] = matchOf(voters[i]!);
  matches.sort();
  // Ascending order: the (count - quorum)-th smallest value is held by at least `quorum` voters.
  const quorum = Math.floor(count / 2) + 1;
  return matches[count - quorum]!;
}

/** Commit index of a possibly joint configuration: the smaller of the two majorities' indexes. */
export function jointCommitted(config: ConfState, matchOf: (id: NodeId) => number): number {
  const incoming = majorityCommitted(config.voters, matchOf);
  const outgoing = majorityCommitted(config.votersOutgoing, matchOf);
  return Math.min(incoming, outgoing);
}

/** Outcome of an election among `voters` given the answers so far (missing voters may still answer). */
export function majorityVoteResult(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  if (voters.length === 0) return 'won';
  let granted = 0;
  let missing = 0;
  for (const voter of voters) {
    const vote = votes.get(voter);
    if (vote === undefined) missing++;
    else if (vote) granted++;
  }
  const quorum = Math.floor(voters.length / 2) + 1;
  if (granted >= quorum) return 'won';
  if (granted + missing >= quorum) return 'pending';
  return 'lost';
}

export function jointVoteResult(config: ConfState, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const incoming = majorityVoteResult(config.voters, votes);
  const outgoing = majorityVoteResult(config.votersOutgoing, votes);
  if (incoming === 'won' && outgoing === 'won') return 'won';
  if (incoming === 'lost' || outgoing === 'lost') return 'lost';
  return 'pending';
}

/** True when the nodes in `active` include a quorum of the (possibly joint) configuration. */
export function hasQuorum(config: ConfState, active: ReadonlySet<NodeId>): boolean {
  const votes = new Map<NodeId, boolean>();
  for (const id of [...config.voters, ...config.votersOutgoing]) votes.set(id, active.has(id));
  return jointVoteResult(config, votes) === 'won';
}
