/**
 * The core's configuration: every timeout in ticks and every limit in one record, validated once
 * (etcd's `Config.validate()`); relationships between limits are checked here, not scattered.
 */
import { DsError } from '@dsys/kit';
import {
  APPEND_ENTRIES_MAX,
  ENTRY_DATA_BYTES_MAX,
  ENTRY_OVERHEAD_BYTES,
  SNAPSHOT_CHUNK_BYTES_MAX,
} from './messages.js';

export type ReadOnlyMode = 'safe' | 'lease';

export interface RaftConfig {
  /**
   * Raft §5.2: a follower that hears nothing for its election timeout starts an election. The timeout
   * is drawn uniformly from [electionTicks, 2 * electionTicks) from the node's seeded Rng each time it
   * resets, so split votes are rare and runs replay exactly.
   */
  readonly electionTicks: number;
  /** A leader sends heartbeats every `heartbeatTicks` (Raft §5.2: "during idle periods"). */
  readonly heartbeatTicks: number;
  /** Byte budget of the entries in one AppendEntries (at least one entry is always sent). */
  readonly maxSizePerMsgBytes: number;
  /** AppendEntries in flight to one follower in the replicate state (pipelining window). */
  readonly maxInflightMsgs: number;
  /** Entry bytes in flight to one follower. */
  readonly maxInflightBytes: number;
  /** A leader drops proposals while this many bytes of its log are uncommitted (etcd's limit). */
  readonly maxUncommittedEntriesBytes: number;
  /** Dissertation §6.2: a leader that has not heard from a quorum for an election timeout steps down. */
  readonly checkQuorum: boolean;
  /** Dissertation §9.6: a node first asks whether it could win before disrupting the cluster with a new term. */
  readonly preVote: boolean;
  /**
   * 'safe': linearizable reads by ReadIndex (dissertation §6.4), one heartbeat round per batch of reads.
   * 'lease': the leader answers reads without a round while its lease holds (dissertation §6.4.1);
   * correct only if tick rates on different nodes differ by less than `leaseMarginTicks / electionTicks`.
   */
  readonly readOnly: ReadOnlyMode;
  /** Ticks subtracted from the lease to absorb clock-rate differences (lease mode only). */
  readonly leaseMarginTicks: number;
  /** Bytes of snapshot per InstallSnapshot chunk. */
  readonly snapshotChunkBytes: number;
  /** Largest snapshot a follower accepts (bounds the reassembly buffer). */
  readonly snapshotBytesMax: number;
  /** A learner is promoted to voter only when at most this many entries behind the leader (dissertation §4.2.1). */
  readonly promotionLagEntriesMax: number;
  /** ReadIndex requests queued at one node; beyond it `readIndex` is refused. */
  readonly pendingReadsMax: number;
  /**
   * TEST ONLY: deliberately broken safety rules, so that tests can show the simulator's checkers catch
   * them. Never set outside tests; `validateRaftConfig` leaves them off unless given explicitly.
   */
  readonly testOnlyBugs?: TestOnlyBugs;
}

export interface TestOnlyBugs {
  /** Commit an entry of an earlier term by counting replicas: the Raft paper's Figure 8 mistake. */
  readonly commitPreviousTermByCount?: boolean;
  /** Grant a vote to every candidate of the current term, not only the first. */
  readonly voteTwicePerTerm?: boolean;
  /** Answer reads at the commit index without confirming leadership (a deposed leader reads stale data). */
  readonly readWithoutQuorum?: boolean;
}

export const DEFAULT_RAFT_CONFIG: RaftConfig = Object.freeze({
  electionTicks: 10,
  heartbeatTicks: 1,
  maxSizePerMsgBytes: 64 * 1024,
  maxInflightMsgs: 64,
  maxInflightBytes: 8 * 1024 * 1024,
  maxUncommittedEntriesBytes: 64 * 1024 * 1024,
  checkQuorum: true,
  preVote: true,
  readOnly: 'safe',
  leaseMarginTicks: 2,
  snapshotChunkBytes: 256 * 1024,
  snapshotBytesMax: 512 * 1024 * 1024,
  promotionLagEntriesMax: 64,
  pendingReadsMax: 4096,
});

export type RaftConfigErrorDetail = { code: 'INVALID_RAFT_CONFIG'; field: string; reason: string };

export class RaftConfigError extends DsError<RaftConfigErrorDetail> {
  constructor(field: string, reason: string) {
    super({ code: 'INVALID_RAFT_CONFIG', field, reason }, `raft config ${field}: ${reason}`);
  }
}

function positiveInteger(config: RaftConfig, field: keyof RaftConfig, max = Number.MAX_SAFE_INTEGER): void {
  const value = config[field];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new RaftConfigError(field, `must be an integer in [1, ${max}], got ${String(value)}`);
  }
}

/** Fills defaults and checks every field and every relationship between fields. Throws `RaftConfigError`. */
export function validateRaftConfig(partial: Partial<RaftConfig> = {}): RaftConfig {
  const config: RaftConfig = { ...DEFAULT_RAFT_CONFIG, ...partial };
  for (const field of [
    'electionTicks',
    'heartbeatTicks',
    'maxInflightMsgs',
    'maxInflightBytes',
    'maxUncommittedEntriesBytes',
    'snapshotBytesMax',
    'promotionLagEntriesMax',
    'pendingReadsMax',
  ] as const) {
    positiveInteger(config, field);
  }
  // One message's entry count is bounded by its byte budget over the per-entry cost; the wire schema
  // accepts APPEND_ENTRIES_MAX entries, so the budget must not allow more.
  positiveInteger(config, 'maxSizePerMsgBytes', (APPEND_ENTRIES_MAX - 1) * ENTRY_OVERHEAD_BYTES);
  positiveInteger(config, 'snapshotChunkBytes', SNAPSHOT_CHUNK_BYTES_MAX);
  if (config.heartbeatTicks >= config.electionTicks) {
    // Raft §5.6: broadcastTime << electionTimeout, or followers time out on a healthy leader.
    throw new RaftConfigError('heartbeatTicks', `must be below electionTicks (${config.electionTicks})`);
  }
  if (config.maxUncommittedEntriesBytes < ENTRY_DATA_BYTES_MAX + ENTRY_OVERHEAD_BYTES) {
    throw new RaftConfigError('maxUncommittedEntriesBytes', 'must admit at least one largest entry');
  }
  if (config.readOnly !== 'safe' && config.readOnly !== 'lease') {
    throw new RaftConfigError('readOnly', `must be 'safe' or 'lease', got ${String(config.readOnly)}`);
  }
  if (config.readOnly === 'lease') validateLease(config);
  if (typeof config.checkQuorum !== 'boolean') throw new RaftConfigError('checkQuorum', 'must be a boolean');
  if (typeof config.preVote !== 'boolean') throw new RaftConfigError('preVote', 'must be a boolean');
  return Object.freeze(config);
}

function validateLease(config: RaftConfig): void {
  // The lease rests on followers refusing votes for an election timeout after hearing from the leader,
  // which they only do with check-quorum on (dissertation §6.4.1).
  if (!config.checkQuorum) throw new RaftConfigError('readOnly', "'lease' requires checkQuorum");
  if (!Number.isInteger(config.leaseMarginTicks) || config.leaseMarginTicks < 0) {
    throw new RaftConfigError('leaseMarginTicks', 'must be a non-negative integer');
  }
  if (config.leaseMarginTicks >= config.electionTicks - config.heartbeatTicks) {
    throw new RaftConfigError('leaseMarginTicks', 'leaves no lease: must be below electionTicks - heartbeatTicks');
  }
}
