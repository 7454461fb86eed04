/**
 * The nouns of Raft (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm",
 * extended version, Figure 2), as branded numbers and plain records.
 */
import type { Brand, NodeId } from '@dsys/kit';

/** Raft §5.1: a logical clock; each term begins with an election. */
export type Term = Brand<number, 'Term'>;
/** Position in the replicated log; the first real entry has index 1, index 0 is the empty prefix. */
export type LogIndex = Brand<number, 'LogIndex'>;

export const Term = (value: number): Term => value as Term;
export const LogIndex = (value: number): LogIndex => value as LogIndex;

/**
 * A cluster configuration, stored absolute (never as a delta) so that a node can adopt it from a log
 * entry or a snapshot without knowing what came before (a node that joins late starts from nothing).
 * Raft §6 / dissertation §4.3: while `votersOutgoing` is non-empty the cluster is in the joint
 * configuration C_old,new, and elections and commitment need separate majorities of `voters` (C_new)
 * and `votersOutgoing` (C_old). Learners receive the log but never vote or count toward a quorum.
 * All lists are sorted ascending, without duplicates, and learners are disjoint from both voter sets.
 */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly votersOutgoing: readonly NodeId[];
  readonly learners: readonly NodeId[];
  /** Joint configurations only: the leader proposes C_new by itself once C_old,new is applied. */
  readonly autoLeave: boolean;
}

export const EMPTY_CONF_STATE: ConfState = Object.freeze({
  voters: Object.freeze([]),
  votersOutgoing: Object.freeze([]),
  learners: Object.freeze([]),
  autoLeave: false,
});

export type Entry =
  /** A command for the application state machine; empty data is the leader's no-op (Raft §8). */
  | { readonly type: 'normal'; readonly term: Term; readonly index: LogIndex; readonly data: Uint8Array }
  /** A configuration change; takes effect when applied (etcd's rule, one pending change at a time). */
  | { readonly type: 'config'; readonly term: Term; readonly index: LogIndex; readonly config: ConfState };

/** Figure 2 "persistent state on all servers", plus the commit index (persisted lazily, as etcd does). */
export interface HardState {
  readonly term: Term;
  /** candidateId that received this node's vote in `term`, or null. */
  readonly vote: NodeId | null;
  readonly commit: LogIndex;
}

/** What a snapshot replaces: the log prefix through `index`, and the configuration as of that index. */
export interface SnapshotMeta {
  readonly index: LogIndex;
  readonly term: Term;
  readonly config: ConfState;
}

/** A snapshot: its metadata and the application state machine's bytes at `meta.index`. */
export interface Snapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

export type RaftRole = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** Bytes an entry costs against the per-message and uncommitted-size limits (payload only, like etcd). */
export function entryPayloadBytes(entry: Entry): number {
  if (entry.type === 'normal') return entry.data.length;
  return 8 * (entry.config.voters.length + entry.config.votersOutgoing.length + entry.config.learners.length) + 1;
}

/** True when `node` may vote in `config` (a member of C_new or C_old). */
export function isVoter(config: ConfState, node: NodeId): boolean {
  return config.voters.includes(node) || config.votersOutgoing.includes(node);
}

export function isJoint(config: ConfState): boolean {
  return config.votersOutgoing.length > 0;
}

/** Every node that receives the log under `config`, ascending. */
export function allMembers(config: ConfState): NodeId[] {
  const members = new Set<NodeId>([...config.voters, ...config.votersOutgoing, ...config.learners]);
  return [...members].sort((a, b) => a - b);
}

export function describeConfig(config: ConfState): string {
  const list = (ids: readonly NodeId[]) => ids.map((id) => `n${id}`).join(' ');
  let text = `voters=(${list(config.voters)})`;
  if (isJoint(config)) text += `&&(${list(config.votersOutgoing)})`;
  if (config.learners.length > 0) text += ` learners=(${list(config.learners)})`;
  if (config.autoLeave) text += ' autoleave';
  return text;
}

/**
 * What an application hands to Raft (the KV map here, the coordination service's tree in issue 5):
 * deterministic application of committed commands, in log order, and snapshots of its whole state.
 * The core never calls it; the protocol that embeds the core does (`KvNode` is the worked example).
 */
export interface ReplicatedStateMachine<Result> {
  /** Applies the command of the committed entry at `index` (empty data: the leader's no-op). */
  apply(index: number, data: Uint8Array): Result;
  /** The whole state, as of the last applied index, for log compaction and InstallSnapshot. */
  snapshot(): Uint8Array;
}
