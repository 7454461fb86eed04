export {
  Cluster,
  type ClusterOptions,
  DEFAULT_READY_PATTERN,
  type NodeExitEvent,
  type NodeSpec,
  startCluster,
} from './cluster.js';
export { type Endpoint, formatEndpoint, formatPeers, LOOPBACK, parseEndpoint } from './endpoint.js';
export { HarnessError, type HarnessErrorDetail } from './errors.js';
export {
  type CutMode,
  FaultProxy,
  type FaultProxyOptions,
  type FaultProxyStats,
  type LinkMode,
} from './fault-proxy.js';
export {
  type ForegroundOptions,
  type NamedCluster,
  runClusterForeground,
  runClustersForeground,
} from './foreground.js';
export {
  ClientNumbers,
  classifyErrorDefault,
  HistoryClient,
  monotonicMs,
  type Outcome,
  type Recorded,
  type RecorderLike,
  type RecordOptions,
  recordOperation,
} from './history.js';
export { nodeCommand, type ProcessCommand, tsxArgs, tsxLoader } from './node-command.js';
export { describeExit, type ExitInfo } from './node-process.js';
export { allocatePorts, assertPortsFree, BASE_PORT_PEER_OFFSET, basePortLayout, type NodePorts } from './ports.js';
export { isProcessAlive, liveChildren } from './process-registry.js';
export { type WaitForOptions, waitFor } from './wait-for.js';
