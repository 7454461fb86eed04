/**
 * @dsys/rpc: remote procedure calls in the manner of Birrell & Nelson (1984), on kit's schemas.
 * Declare an interface (`defineInterface`), serve it (`serve`), call it through the derived stub
 * (`connect(...).stub`). The same endpoints run over TCP/TLS and inside the simulator (`SimServerHost`,
 * `SimClientHost`). See README.md for the guarantees and the wire format.
 */
export {
  type BindInfo,
  type ClientEnvironment,
  type ClientOptions,
  type ClientState,
  type ClientStateEvent,
  type ClientStats,
  RpcClient,
} from './client.js';
export { type Clock, type LogFields, memoryLogger, type RpcLogger, silentLogger, type Transport } from './endpoint.js';
export {
  AppError,
  describeProblems,
  type Executed,
  type ProcedureProblem,
  RpcError,
  type RpcErrorCode,
  type RpcErrorDetail,
} from './errors.js';
export {
  type ArgsOf,
  type CallContext,
  type CallOptions,
  type ClientOf,
  defineInterface,
  type HandlersOf,
  type Interface,
  type RpcStream,
  type StreamOptions,
  type StreamProcedure,
  type StreamSink,
  stream,
  type UnaryProcedure,
  unary,
} from './interface.js';
export { rpcCli } from './real/cli.js';
export {
  type ConnectOptions,
  connect,
  RpcConnection,
  type RunningServer,
  type ServeOptions,
  serve,
  type TlsClientOptions,
  type TlsServerOptions,
} from './real/tcp.js';
export {
  RpcServer,
  type ServerConnection,
  type ServerEnvironment,
  type ServerOptions,
  type ServerStats,
} from './server.js';
export { SimClientHost, SimServerHost, VirtualClock } from './sim.js';
