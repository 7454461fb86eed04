/**
 * One real Raft key-value node: `kvProtocol` hosted by `@dsys/runtime-node` (durable log with group
 * commit, peer transport, ticks from a timer) plus an `@dsys/rpc` server on the client address that
 * serves `raftKvInterface`.
 *
 * The seam for other front ends (the etcd-compatible gateway of issue 4): `server.request(kvRequest)`
 * hands one request to the hosted node and resolves with its `KvResponse`, exactly what the RPC
 * handlers do; `kvHandlers(request)` builds the RPC handlers from any such function.
 */
import { errorMessage, type NodeId } from '@dsys/kit';
import { type HandlersOf, type RunningServer, serve } from '@dsys/rpc';
import {
  type Endpoint,
  formatEndpoint,
  Logger,
  NodeError,
  type NodeLimits,
  type RunningNode,
  startNode,
} from '@dsys/runtime-node';
import { type KvConfig, type KvNode, kvProtocol } from '../kv/protocol.js';
import { type KvRequest, type KvResponse, kvRequestSchema, kvResponseSchema } from '../kv/schema.js';
import { raftMessageSchema } from '../messages.js';
import { type KvAnswer, type RaftKvInterface, raftKvInterface } from './interface.js';

export interface RaftServerOptions {
  readonly id: NodeId;
  /** Every node that may ever be a member, with the address to dial it (may be a proxy). */
  readonly peers: ReadonlyMap<NodeId, Endpoint>;
  readonly dataDir: string;
  readonly listenPeer: Endpoint;
  /** Where the RPC server listens for clients (port 0: ephemeral). */
  readonly listenClient: Endpoint;
  readonly listenMetrics?: Endpoint | null;
  readonly config: KvConfig;
  /** Real length of one Raft tick. */
  readonly tickMs: number;
  readonly clusterId?: string;
  readonly seed?: bigint | number;
  readonly logger?: Logger;
  readonly limits?: Partial<NodeLimits>;
  /** Off only for measurements (the core's invariants run after every step by default). */
  readonly checkInvariants?: boolean;
}

export interface RaftServer {
  readonly id: NodeId;
  readonly node: RunningNode<KvNode, KvRequest, KvResponse>;
  readonly rpc: RunningServer<RaftKvInterface>;
  /** The client endpoint (`host:port`), as `KvClient` and `dsys kv --endpoints` take it. */
  readonly endpoint: string;
  /** Hands one request to the node; the seam for other front ends. */
  request(request: KvRequest): Promise<KvResponse>;
  /** Stops serving clients, then stops the node gracefully (flushes the log, releases the lock). */
  close(): Promise<void>;
}

/** Local calls wait at most this long for the node's answer (the RPC deadline usually ends them sooner). */
const NODE_REQUEST_TIMEOUT_MS = 30_000;

/**
 * Sends `request` to the node. A refusal before the protocol saw the request becomes the service's
 * own BUSY (definitely not applied); a node stopping under a request becomes LEADER_CHANGED (outcome
 * unknown: the client retries elsewhere in the same session); a lost answer is thrown, so the RPC
 * layer reports an unknown outcome.
 */
export async function requestNode(
  node: RunningNode<KvNode, KvRequest, KvResponse>,
  request: KvRequest,
): Promise<KvResponse> {
  try {
    return await node.request(request, { timeoutMs: NODE_REQUEST_TIMEOUT_MS });
  } catch (error) {
    if (!(error instanceof NodeError)) throw error;
    if (error.detail.code === 'REJECTED') {
      return { type: 'error', code: 'BUSY', leaderHint: null, message: error.detail.reason.slice(0, 1000) };
    }
    if (error.detail.code === 'NODE_STOPPED') {
      return { type: 'error', code: 'LEADER_CHANGED', leaderHint: null, message: `n${node.id} is stopping` };
    }
    throw error;
  }
}

/**
 * The RPC handlers of `raftKvInterface`, each forwarding to `request`. The node answers a request
 * with its own kind of response or an error; the RPC server checks each answer against the
 * procedure's schema, so a mismatch would surface as an INTERNAL error, never as a wrong value.
 */
export function kvHandlers(request: (request: KvRequest) => Promise<KvResponse>): HandlersOf<RaftKvInterface> {
  const ask = <K extends Exclude<KvResponse['type'], 'error'>>(kvRequest: KvRequest) =>
    request(kvRequest) as Promise<KvAnswer<K>>;
  return {
    openSession: () => ask<'openSession'>({ type: 'openSession' }),
    put: (args) =>
      ask<'put'>({ type: 'put', sessionId: args.sessionId, seq: args.seq, key: args.key, value: args.value }),
    delete: (args) => ask<'delete'>({ type: 'delete', sessionId: args.sessionId, seq: args.seq, key: args.key }),
    cas: (args) =>
      ask<'cas'>({
        type: 'cas',
        sessionId: args.sessionId,
        seq: args.seq,
        key: args.key,
        expected: args.expected,
        value: args.value,
      }),
    get: (args) => ask<'get'>({ type: 'get', key: args.key }),
    scan: (args) => ask<'scan'>({ type: 'scan', prefix: args.prefix, limit: args.limit }),
    status: () => ask<'status'>({ type: 'status' }),
    changeMembership: (args) =>
      ask<'changeMembership'>({
        type: 'changeMembership',
        changes: args.changes.map((change) => ({ type: change.type, node: change.node as NodeId })),
      }),
    transferLeader: (args) => ask<'transferLeader'>({ type: 'transferLeader', to: args.to as NodeId }),
  };
}

/** Logs every change of role, with the term (who leads is the first thing an operator asks). */
function roleLogger(logger: Logger): (node: KvNode) => void {
  let role = '';
  return (node) => {
    const core = node.core;
    if (core.role === role) return;
    role = core.role;
    logger.info(`raft: now ${role}`, { term: core.term, leader: core.leader });
  };
}

/** Starts the node and its RPC server; rejects (with everything closed) if either cannot start. */
export async function startRaftServer(options: RaftServerOptions): Promise<RaftServer> {
  const logger = options.logger ?? new Logger({ level: 'info', node: options.id });
  let state: KvNode | null = null;
  const observe = roleLogger(logger);
  const node = await startNode({
    // The same protocol object, with a handle on the state so that role changes can be logged.
    protocol: {
      ...kvProtocol,
      init: (context) => {
        state = kvProtocol.init(context);
        return state;
      },
    },
    schemas: { message: raftMessageSchema, request: kvRequestSchema, response: kvResponseSchema },
    config: options.config,
    id: options.id,
    peers: options.peers,
    clusterId: options.clusterId ?? 'dsys',
    dataDir: options.dataDir,
    listenPeer: options.listenPeer,
    listenClient: null,
    listenMetrics: options.listenMetrics ?? null,
    tickMs: options.tickMs,
    logger,
    ...(options.limits === undefined ? {} : { limits: options.limits }),
    ...(options.seed === undefined ? {} : { seed: options.seed }),
    ...(options.checkInvariants === undefined ? {} : { checkInvariants: options.checkInvariants }),
    onStep: () => {
      if (state !== null) observe(state);
    },
  });
  registerMetrics(node);
  const request = (kvRequest: KvRequest) => requestNode(node, kvRequest);
  let rpc: RunningServer<RaftKvInterface>;
  try {
    rpc = await serve(raftKvInterface, kvHandlers(request), {
      host: options.listenClient.host,
      port: options.listenClient.port,
      logger: logger.child({ component: 'rpc' }),
    });
  } catch (error) {
    logger.error('client listener failed', {
      endpoint: formatEndpoint(options.listenClient),
      reason: errorMessage(error),
    });
    await node.close();
    throw error;
  }
  let closing: Promise<void> | null = null;
  return {
    id: options.id,
    node,
    rpc,
    endpoint: rpc.address,
    request,
    close: () => {
      closing ??= rpc.close().then(() => node.close());
      return closing;
    },
  };
}

function registerMetrics(node: RunningNode<KvNode, KvRequest, KvResponse>): void {
  const read = (pick: (state: KvNode) => number) => () => node.inspect(pick);
  node.metrics.gaugeFrom(
    'raft_term',
    'Current term',
    read((state) => state.core.term),
  );
  node.metrics.gaugeFrom(
    'raft_commit_index',
    'Highest log index known committed',
    read((state) => state.core.log.committed),
  );
  node.metrics.gaugeFrom(
    'raft_applied_index',
    'Highest log index applied',
    read((state) => state.appliedIndex),
  );
  node.metrics.gaugeFrom(
    'raft_is_leader',
    '1 on the leader',
    read((state) => (state.core.role === 'leader' ? 1 : 0)),
  );
  node.metrics.gaugeFrom(
    'raft_kv_keys',
    'Keys in the state machine',
    read((state) => state.machine.size),
  );
}
