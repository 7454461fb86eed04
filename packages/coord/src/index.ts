// The deterministic protocol: data tree, preparation, sessions, watches, the node.
export {
  type CoordConfig,
  CoordConfigError,
  type CoordConfigInput,
  type CoordObserver,
  type CoordTestOnlyBugs,
  coordConfig,
} from './config.js';
export { type Applied, DataTree, type Session, SPECIAL_PATHS, statOf, type Trigger, type ZNode } from './data-tree.js';
export {
  type ConnectRequest,
  type ConnectResponse,
  decodeConnectRequest,
  decodeConnectResponse,
  decodeReply,
  decodeRequest,
  encodeConnectRequest,
  encodeConnectResponse,
  encodeNotification,
  encodeReply,
  encodeRequest,
  FOUR_LETTER_WORDS,
  fourLetterWord,
  JuteReader,
  JuteWriter,
  OpCode,
  type WatcherEvent,
  type WireRequest,
  Xid,
} from './jute.js';
export { type CoordCounters, CoordNode, coordProtocol } from './node.js';
export { baseName, childPath, parentOf, pathProblem, sequenceSuffix } from './path.js';
export { type Prepared, prepare, reapable, TTL_MS_MAX } from './prep.js';
export {
  DoubleBarrier,
  ensurePath,
  LeaderElection,
  Lock,
  ReadyConfig,
  type RecipeClient,
  type RecipeEvent,
} from './recipes/recipes.js';
export {
  type CoordMessage,
  type CoordRequest,
  type CoordResponse,
  coordMessageSchema,
  coordRequestSchema,
  coordResponseSchema,
  type ForwardItem,
  type MultiOp,
  type MultiResult,
  type Op,
  type Result,
  type ServerStatus,
  schemas,
  type Txn,
  txnSchema,
} from './schema.js';
export { type ZnodeInput, type ZnodeOutput, znodeModel } from './sim/model.js';
export { CoordOracle } from './sim/oracle.js';
export { type CoordSim, coordSim, defineCoordSim } from './sim/system.js';
export { CoordSimClient, type CoordWorkloadShared } from './sim/workload.js';
export {
  AddWatchMode,
  CreateMode,
  DATA_BYTES_MAX,
  Err,
  EventType,
  errName,
  formatZxid,
  KeeperState,
  type NodeKind,
  type Stat,
  WatcherType,
  zxidOf,
} from './types.js';
export { WatchManager } from './watches.js';
