/**
 * The real-process side of the Raft key-value service: the node (`startRaftServer`, the process entry
 * `raftNodeEntry`), its RPC interface, the TypeScript `KvClient`, and the `dsys raft` / `dsys kv`
 * command lines. Imported as `@dsys/raft/real` (the main entry stays free of sockets and files).
 */
import { fileURLToPath } from 'node:url';

export { formatStatusTable, KV_HELP, type KvCliIo, kvCli, RAFT_HELP, raftCli } from './cli.js';
export {
  type ConfChangeRequest,
  type EndpointStatus,
  KvClient,
  type KvClientOptions,
  type KvStatus,
  type ScanResult,
} from './client.js';
export { type RaftNodeRecipe, raftNodeArgs } from './cluster.js';
export { KvClientError, type KvClientErrorDetail } from './errors.js';
export {
  EtcdClient,
  type EtcdClientOptions,
  etcdBytes,
  GrpcCode,
  GrpcError,
  prefixRangeEnd,
} from './etcd/client.js';
export {
  ETCD_API_VERSION,
  type EtcdGateway,
  type EtcdGatewayOptions,
  etcdClusterId,
  startEtcdGateway,
} from './etcd/gateway.js';
export { GrpcChannel } from './etcd/grpc.js';
export { type KvAnswer, type RaftKvInterface, raftKvInterface } from './interface.js';
export {
  type EtcdFlags,
  etcdFlagsOf,
  parseRaftNodeArgs,
  RAFT_FLAGS,
  type RaftFlagsParse,
  type RaftNodeMainOptions,
  raftConfigFromFlags,
  raftStartUsage,
  runRaftNodeMain,
} from './node-main.js';
export { kvHandlers, type RaftServer, type RaftServerOptions, requestNode, startRaftServer } from './server.js';

/** Absolute path of the node's process entry (run it with tsx, as the harness's `nodeCommand` does). */
export const raftNodeEntry: string = fileURLToPath(new URL('./main.ts', import.meta.url));
