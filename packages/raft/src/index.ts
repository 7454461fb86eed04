// The consensus core (embeddable: the KV service here, the coordination service of issue 5).
export {
  DEFAULT_RAFT_CONFIG,
  type RaftConfig,
  RaftConfigError,
  type RaftConfigErrorDetail,
  type ReadOnlyMode,
  type TestOnlyBugs,
  validateRaftConfig,
} from './config.js';
// The replicated key-value service.
export {
  type KvConfig,
  KvConfigError,
  type KvConfigInput,
  KvNode,
  type KvObserver,
  kvConfig,
  kvProtocol,
} from './kv/protocol.js';
export {
  CONF_CHANGES_MAX,
  KEY_BYTES_MAX,
  KV_ERROR_CODES,
  type KvCommand,
  type KvErrorCode,
  type KvErrorResponse,
  type KvRequest,
  type KvResponse,
  type KvWriteResult,
  kvCommandSchema,
  kvRequestSchema,
  kvResponseSchema,
  kvResponseVariants,
  SCAN_LIMIT_MAX,
  VALUE_BYTES_MAX,
} from './kv/schema.js';
export { type KvApplyResult, KvStateMachine, type KvStateMachineLimits, SCAN_BYTES_MAX } from './kv/state-machine.js';
export { RaftLog } from './log.js';
export { applyConfChanges, type ConfChange, type ConfChangeOutcome, leaveJoint } from './membership.js';
export {
  APPEND_ENTRIES_MAX,
  CONFIG_NODES_MAX,
  configSchema,
  describeMessage,
  ENTRY_DATA_BYTES_MAX,
  ENTRY_OVERHEAD_BYTES,
  entrySchema,
  type Outgoing,
  type RaftMessage,
  type RaftMessageType,
  raftMessageSchema,
  SNAPSHOT_CHUNK_BYTES_MAX,
  snapshotMetaSchema,
} from './messages.js';
export { Inflights, Progress, type ProgressState } from './progress.js';
export {
  hasQuorum,
  jointCommitted,
  jointVoteResult,
  majorityCommitted,
  majorityVoteResult,
  type VoteResult,
} from './quorum.js';
export {
  type Accepted,
  type PersistAck,
  type Proposed,
  RaftCore,
  type RaftCoreInit,
  type RaftCounters,
  type RaftError,
  type RaftStatus,
  type ReadFailure,
  type ReadState,
  type Ready,
} from './raft-core.js';
export { ReadyDriver, type ReadyHooks } from './ready-driver.js';
export {
  appendReadyRecords,
  type DurableRecord,
  decodeRecord,
  decodeSnapshot,
  encodeEntriesRecord,
  encodeHardStateRecord,
  encodeSnapshot,
  hardStateSchema,
  RaftRecoveryError,
  type RaftRecoveryErrorDetail,
  type Recovered,
  type RecoveredState,
  recoverDurable,
  SNAPSHOT_FORMAT_VERSION,
} from './records.js';
// Simulator registration and checkers.
export { RaftSafetyChecker } from './sim/checker.js';
export { defineRaftSim, leaseMarginTicks, type RaftSim, type RaftSimVariant, raftSim } from './sim/system.js';
export { KvAdmin, KvClient, type KvWorkloadKnobs, type KvWorkloadShared } from './sim/workload.js';
export {
  allMembers,
  type ConfState,
  describeConfig,
  EMPTY_CONF_STATE,
  type Entry,
  type HardState,
  isJoint,
  isVoter,
  LogIndex,
  type RaftRole,
  type ReplicatedStateMachine,
  type Snapshot,
  type SnapshotMeta,
  Term,
} from './types.js';
