/**
 * Raft's messages (Figure 2 RPCs plus the extensions of the dissertation and etcd/raft), declared once
 * as kit schemas: the TypeScript types, the binary wire format, and validation of untrusted values all
 * come from these declarations. A message never carries its sender: the transport's envelope does
 * (kit's `receive` event has `from`), so a node cannot claim to be another by writing a field.
 *
 * Every count and length has a maximum checked before allocation when decoding (STYLE §2).
 */
import { type Infer, NodeId, type Schema, s } from '@dsys/kit';
import { type ConfState, type Entry, LogIndex, type SnapshotMeta, Term } from './types.js';

/** Most nodes a configuration may name (voters, outgoing voters and learners each). */
export const CONFIG_NODES_MAX = 64;
/** Largest entry payload: a 1 MiB value, its key and the command framing fit with room to spare. */
export const ENTRY_DATA_BYTES_MAX = 2 * 1024 * 1024;
/**
 * Fixed cost charged per entry against `maxSizePerMsgBytes`, so that empty entries (no-ops) still
 * count and a message's entry count is bounded by its byte budget.
 */
export const ENTRY_OVERHEAD_BYTES = 16;
/** Most entries one AppendEntries may carry (the byte budget's bound divided by the per-entry cost, plus one). */
export const APPEND_ENTRIES_MAX = 65_537;
/** Largest InstallSnapshot chunk on the wire. */
export const SNAPSHOT_CHUNK_BYTES_MAX = 4 * 1024 * 1024;

const uint = s.uint;
export const termSchema: Schema<Term> = s.map(uint, Term, (value) => value, 'term');
export const indexSchema: Schema<LogIndex> = s.map(uint, LogIndex, (value) => value, 'index');
export const nodeIdSchema: Schema<NodeId> = s.map(uint, NodeId, (value) => value, 'node');

function sortedUnique(ids: readonly number[]): boolean {
  for (let i = 1; i < ids.length; i++) if (ids[i - 1]! >= ids[i]!) return false;
  return true;
}

/** Why a decoded configuration is malformed, or null when it is well formed. */
export function configProblem(config: ConfState): string | null {
  for (const list of [config.voters, config.votersOutgoing, config.learners]) {
    if (!sortedUnique(list)) return 'node list not sorted and unique';
  }
  for (const learner of config.learners) {
    if (config.voters.includes(learner) || config.votersOutgoing.includes(learner)) {
      return `node ${learner} is both learner and voter`;
    }
  }
  if (config.autoLeave && config.votersOutgoing.length === 0) return 'autoLeave outside a joint configuration';
  return null;
}

const nodeList = s.array(nodeIdSchema, { itemsMax: CONFIG_NODES_MAX });
const configWire = s.struct({ voters: nodeList, votersOutgoing: nodeList, learners: nodeList, autoLeave: s.bool });

export const configSchema: Schema<ConfState> = s.map(
  configWire,
  (config): ConfState | { invalid: string } => {
    const problem = configProblem(config);
    return problem === null ? config : { invalid: problem };
  },
  (config) => ({
    voters: [...config.voters],
    votersOutgoing: [...config.votersOutgoing],
    learners: [...config.learners],
    autoLeave: config.autoLeave,
  }),
  'config',
);

const entryWire = s.union('type', {
  normal: s.struct({ term: termSchema, index: indexSchema, data: s.bytes({ bytesMax: ENTRY_DATA_BYTES_MAX }) }),
  config: s.struct({ term: termSchema, index: indexSchema, config: configSchema }),
});
export const entrySchema: Schema<Entry> = entryWire as Schema<Entry>;

/** Entries must be contiguous and their terms non-decreasing (Raft §5.3 log invariants). */
export function entriesProblem(entries: readonly Entry[]): string | null {
  for (let i = 1; i < entries.length; i++) {
    const previous = entries[i - 1]!;
    const entry = entries[i]!;
    if (entry.index !== previous.index + 1) return `entry ${entry.index} does not follow ${previous.index}`;
    if (entry.term < previous.term) return `entry ${entry.index} has term ${entry.term} below ${previous.term}`;
  }
  if (entries.length > 0 && entries[0]!.index < 1) return 'entry index 0';
  return null;
}

const entryList = s.map(
  s.array(entrySchema, { itemsMax: APPEND_ENTRIES_MAX }),
  (entries): Entry[] | { invalid: string } => {
    const problem = entriesProblem(entries);
    return problem === null ? entries : { invalid: problem };
  },
  (entries) => entries,
  'entries',
);

/** Most proposals one forwarded `propose` message carries. */
export const PROPOSE_ENTRIES_MAX = 4096;
const proposalData = s.bytes({ bytesMax: ENTRY_DATA_BYTES_MAX });

export const snapshotMetaSchema: Schema<SnapshotMeta> = s.struct({
  index: indexSchema,
  term: termSchema,
  config: configSchema,
});

export const raftMessageSchema = s.union('type', {
  /** Figure 2 AppendEntries RPC (also the heartbeat's carrier of entries). */
  appendEntries: s.struct({
    term: termSchema,
    prevIndex: indexSchema,
    prevTerm: termSchema,
    entries: entryList,
    commit: indexSchema,
  }),
  /**
   * On success `index` is the last index now known to match the leader. On rejection `index` is the
   * rejected `prevIndex` (so a stale rejection is recognised) and the hints say where the follower's
   * log may diverge (fast backtracking, Raft §5.3 "optimization", etcd's findConflictByTerm).
   */
  appendEntriesResponse: s.struct({
    term: termSchema,
    index: indexSchema,
    reject: s.bool,
    hintIndex: indexSchema,
    hintTerm: termSchema,
  }),
  /** Figure 2 RequestVote; `preVote` asks "would you vote?" without changing terms (dissertation §9.6). */
  requestVote: s.struct({
    term: termSchema,
    lastIndex: indexSchema,
    lastTerm: termSchema,
    preVote: s.bool,
    /** Set by a leadership transfer: voters skip their leader lease (dissertation §3.10). */
    transfer: s.bool,
  }),
  /**
   * `commitIndex`/`commitTerm`: the responder's commit point as far as the candidate's log reaches
   * (0/0: none). Entry (commitIndex, commitTerm) is committed, so a candidate holding that same entry
   * may commit through it (Log Matching). It unsticks a candidate that missed the commit of a
   * configuration change and still counts the vote of a member the change removed (`commitHintFor`).
   */
  requestVoteResponse: s.struct({
    term: termSchema,
    preVote: s.bool,
    granted: s.bool,
    commitIndex: indexSchema,
    commitTerm: termSchema,
  }),
  /** Empty AppendEntries in etcd's form: carries commit and a round number for ReadIndex and leases. */
  heartbeat: s.struct({ term: termSchema, commit: indexSchema, round: uint }),
  heartbeatResponse: s.struct({ term: termSchema, round: uint }),
  /**
   * A new commit index for a follower that already has every entry sent to it: what an empty
   * AppendEntries would say, without an answer (it would carry nothing the leader does not know).
   * `commit` is at most the follower's match, as in a heartbeat.
   */
  commit: s.struct({ term: termSchema, commit: indexSchema }),
  /** Dissertation §5.3 / Figure 13 InstallSnapshot, sent in chunks of `snapshotChunkBytes`. */
  installSnapshot: s.struct({
    term: termSchema,
    meta: snapshotMetaSchema,
    totalBytes: uint,
    offset: uint,
    chunk: s.bytes({ bytesMax: SNAPSHOT_CHUNK_BYTES_MAX }),
  }),
  /** The follower's next expected offset of snapshot `index` (it may ask the leader to rewind). */
  installSnapshotResponse: s.struct({ term: termSchema, index: indexSchema, offset: uint }),
  /** Dissertation §3.10: start an election now (leadership transfer). */
  timeoutNow: s.struct({ term: termSchema }),
  /** A follower asks the leader for a read index on behalf of its own client (etcd MsgReadIndex). */
  readIndex: s.struct({ term: termSchema, requestId: uint }),
  readIndexResponse: s.struct({ term: termSchema, requestId: uint, index: indexSchema, ok: s.bool }),
  /**
   * A follower's proposals for the leader (etcd's forwarded MsgProp): appended like the leader's own,
   * or dropped if the receiver does not lead or refuses them; the proposer finds out by applying.
   */
  propose: s.struct({ term: termSchema, entries: s.array(proposalData, { itemsMax: PROPOSE_ENTRIES_MAX }) }),
  /**
   * A node's note to itself, never sent to another node (the core drops one from elsewhere): the
   * client requests of this turn are all in, so hand them to the core's next Ready as one batch
   * (`KvConfig.batchRequests`).
   */
  localFlush: s.struct({ term: termSchema }),
});

export type RaftMessage = Infer<typeof raftMessageSchema>;
export type RaftMessageType = RaftMessage['type'];

/** A message with its destination, as the core emits it. */
export interface Outgoing {
  readonly to: NodeId;
  readonly message: RaftMessage;
}

export function describeMessage(message: RaftMessage): string {
  switch (message.type) {
    case 'appendEntries': {
      const entries = message.entries.map((e) => `${e.term}/${e.index}${e.type === 'config' ? 'C' : ''}`).join(',');
      return `app t${message.term} prev=${message.prevTerm}/${message.prevIndex} commit=${message.commit} [${entries}]`;
    }
    case 'appendEntriesResponse':
      return message.reject
        ? `appResp t${message.term} reject ${message.index} hint=${message.hintTerm}/${message.hintIndex}`
        : `appResp t${message.term} ok ${message.index}`;
    case 'requestVote':
      return `${message.preVote ? 'preVote' : 'vote'} t${message.term} last=${message.lastTerm}/${message.lastIndex}${message.transfer ? ' transfer' : ''}`;
    case 'requestVoteResponse':
      return `${message.preVote ? 'preVoteResp' : 'voteResp'} t${message.term} ${message.granted ? 'granted' : 'rejected'}`;
    case 'heartbeat':
      return `hb t${message.term} commit=${message.commit} round=${message.round}`;
    case 'commit':
      return `commit t${message.term} commit=${message.commit}`;
    case 'heartbeatResponse':
      return `hbResp t${message.term} round=${message.round}`;
    case 'installSnapshot':
      return `snap t${message.term} ${message.meta.term}/${message.meta.index} ${message.offset}+${message.chunk.length}/${message.totalBytes}`;
    case 'installSnapshotResponse':
      return `snapResp t${message.term} ${message.index} offset=${message.offset}`;
    case 'timeoutNow':
      return `timeoutNow t${message.term}`;
    case 'readIndex':
      return `readIndex t${message.term} id=${message.requestId}`;
    case 'readIndexResponse':
      return `readIndexResp t${message.term} id=${message.requestId} ${message.ok ? `index=${message.index}` : 'rejected'}`;
    case 'propose':
      return `propose t${message.term} x${message.entries.length}`;
    case 'localFlush':
      return `localFlush t${message.term}`;
  }
}
