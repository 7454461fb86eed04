export { BoundedQueue } from './bounded-queue.js';
export { ClientPort, type ClientPortLimits, type ClientPortOptions } from './client-port.js';
export { type ClientWire, clientWire, type ReplyFrame, type RequestFrame } from './client-wire.js';
export {
  type CloseReason,
  COALESCE_BYTES_MAX,
  type ConnectionLimits,
  type ConnectionOptions,
  coalesceWritesDefault,
  FramedConnection,
  isBadInput,
} from './connection.js';
export {
  type CompactionStep,
  DurableLog,
  type DurableLogOptions,
  fsyncDirectory,
  INITIAL_GENERATION,
  type StorageHooks,
  segmentName,
  snapshotName,
} from './durable-log.js';
export { EffectPipeline, type PipelineStorage, type PipelineTargets } from './effect-pipeline.js';
export { type Endpoint, type EndpointParse, formatEndpoint, parseEndpoint } from './endpoint.js';
export {
  ClientError,
  type ClientErrorDetail,
  NodeError,
  type NodeErrorDetail,
  StorageError,
  type StorageErrorDetail,
} from './errors.js';
export {
  describeFrameError,
  encodeFrame,
  FRAME_BYTES_LIMIT,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  type FrameError,
  type FramePush,
  writeFrameAt,
} from './frame.js';
export { acquireDirectoryLock, type DirectoryLock, LOCK_FILE } from './lock-file.js';
export {
  isLogLevel,
  LOG_LEVELS,
  type LogFields,
  Logger,
  type LoggerOptions,
  type LogLevel,
  memoryLogger,
} from './logger.js';
export {
  Counter,
  exponentialBuckets,
  Gauge,
  Histogram,
  type Labels,
  MetricsRegistry,
  type MetricsServer,
  startMetricsServer,
} from './metrics.js';
export { NodeClient, type NodeClientOptions } from './node-client.js';
export {
  DEFAULT_LIMITS,
  type LocalClient,
  monotonicNowMs,
  type NodeEndpoints,
  type NodeLimits,
  type NodeOptions,
  type NodeSchemas,
  type RunningNode,
  startNode,
} from './node-host.js';
export {
  type FlagSpec,
  type FlagsParse,
  type NodeFlags,
  type NodeMainOptions,
  nodeUsage,
  parseNodeFlags,
  runNodeMain,
} from './node-main.js';
export {
  backoffDelayMs,
  listen,
  PEER_MAGIC,
  PEER_PROTOCOL_VERSION,
  PeerHello,
  type PeerLimits,
  PeerTransport,
  type PeerTransportOptions,
  PeerWelcome,
} from './peer-transport.js';
export { decodeSnapshotFile, encodeSnapshotFile, SNAPSHOT_MAGIC } from './snapshot-file.js';
export { type PortKind, type PortMetrics, TransportMetrics } from './transport-metrics.js';
export { modulePath, tsNodeArgs, tsxLoaderUrl } from './ts-node.js';
