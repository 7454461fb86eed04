/**
 * Membership changes by joint consensus (Raft §6, dissertation §4.3): a change of voters first moves
 * the cluster to C_old,new (`voters` = C_new, `votersOutgoing` = C_old), where every decision needs a
 * majority of both, and only then to C_new. Learners (dissertation §4.2.1, non-voting members that
 * catch up before promotion) are added and removed in one step, since they never count in a quorum.
 */
import type { NodeId } from '@dsys/kit';
import { type ConfState, isJoint } from './types.js';

export type ConfChange =
  | { readonly type: 'addVoter'; readonly node: NodeId }
  | { readonly type: 'addLearner'; readonly node: NodeId }
  | { readonly type: 'removeNode'; readonly node: NodeId };

export type ConfChangeOutcome = { ok: true; config: ConfState } | { ok: false; reason: string };

const ascending = (a: number, b: number) => a - b;

function sameMembers(a: ReadonlySet<NodeId>, b: readonly NodeId[]): boolean {
  return a.size === b.length && b.every((id) => a.has(id));
}

/**
 * The configuration that results from `changes` on top of `config`: joint when the voter set changes,
 * simple otherwise. Demoting a voter to learner is refused (remove it, then add it as a learner).
 */
export function applyConfChanges(config: ConfState, changes: readonly ConfChange[]): ConfChangeOutcome {
  if (isJoint(config)) return { ok: false, reason: 'the cluster is in a joint configuration; leave it first' };
  if (changes.length === 0) return { ok: false, reason: 'no changes' };
  const voters = new Set<NodeId>(config.voters);
  const learners = new Set<NodeId>(config.learners);
  for (const change of changes) {
    switch (change.type) {
      case 'addVoter':
        learners.delete(change.node);
        voters.add(change.node);
        break;
      case 'addLearner':
        if (config.voters.includes(change.node)) return { ok: false, reason: `n${change.node} is a voter` };
        voters.delete(change.node);
        learners.add(change.node);
        break;
      case 'removeNode':
        voters.delete(change.node);
        learners.delete(change.node);
        break;
    }
  }
  if (voters.size === 0) return { ok: false, reason: 'a configuration needs at least one voter' };
  const learnerList = [...learners].sort(ascending);
  if (sameMembers(voters, config.voters)) {
    return { ok: true, config: { voters: config.voters, votersOutgoing: [], learners: learnerList, autoLeave: false } };
  }
  return {
    ok: true,
    config: {
      voters: [...voters].sort(ascending),
      votersOutgoing: config.voters,
      learners: learnerList,
      autoLeave: true,
    },
  };
}

/** C_new after C_old,new. */
export function leaveJoint(config: ConfState): ConfState {
  return { voters: config.voters, votersOutgoing: [], learners: config.learners, autoLeave: false };
}
