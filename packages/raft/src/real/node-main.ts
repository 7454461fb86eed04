/**
 * The process entry of a real Raft node (`dsys raft start`, `src/real/main.ts`): runtime-node's
 * standard flags plus Raft's own, the node and its RPC client server, `listening:` and `ready:` lines
 * on stdout, and a graceful stop on SIGINT/SIGTERM.
 *
 * It follows runtime-node's `runNodeMain` conventions (exit 0 after a clean stop, 1 for a failed
 * start or a fatal error, 2 for bad flags; a second signal exits 130) but puts the RPC server on the
 * client address instead of runtime-node's plain client port, so that the `ready:` endpoints are the
 * ones `KvClient` and `dsys kv --endpoints` take.
 */
import { NodeId } from '@dsys/kit';
import {
  type Endpoint,
  type FlagSpec,
  formatEndpoint,
  Logger,
  type NodeFlags,
  nodeUsage,
  parseEndpoint,
  parseNodeFlags,
} from '@dsys/runtime-node';
import type { ReadOnlyMode } from '../config.js';
import { type KvConfig, kvConfig } from '../kv/protocol.js';
import { type EtcdGateway, startEtcdGateway } from './etcd/gateway.js';
import { type RaftServer, startRaftServer } from './server.js';

/** Raft's own flags; runtime-node's standard ones (`--id`, `--peers`, `--data-dir`, ...) come first. */
export const RAFT_FLAGS: readonly FlagSpec[] = [
  {
    name: 'election-ticks',
    valueName: 'N',
    description: 'election timeout in ticks, randomized in [N, 2N)',
    default: '30',
  },
  { name: 'heartbeat-ticks', valueName: 'N', description: 'leader heartbeat interval in ticks', default: '3' },
  {
    name: 'snapshot-entries',
    valueName: 'N',
    description: 'snapshot the state machine and compact the log every N applied entries (etcd: 100000)',
    default: '100000',
  },
  {
    name: 'max-inflight-msgs',
    valueName: 'N',
    description: 'AppendEntries in flight per follower; proposals arriving meanwhile share the next one',
    default: '8',
  },
  { name: 'max-size-per-msg', valueName: 'BYTES', description: 'entry bytes per AppendEntries', default: '1048576' },
  {
    name: 'read-mode',
    valueName: 'MODE',
    description: "'safe' (ReadIndex: a heartbeat round per read batch) or 'lease' (assumes bounded tick-rate drift)",
    default: 'safe',
  },
  {
    name: 'lease-margin-ticks',
    valueName: 'N',
    description:
      'lease mode: ticks subtracted from the lease for clock-rate differences (default: a third of the election timeout)',
  },
  {
    name: 'initial-voters',
    valueName: 'LIST',
    description: 'voters of a new cluster, e.g. 1,2,3 (default: every node in --peers)',
  },
  {
    name: 'join',
    valueName: 'BOOL',
    description:
      'start outside the configuration and wait to be added (`dsys raft member add`); a bare --join means true',
    default: 'false',
  },
  {
    name: 'session-timeout-ms',
    valueName: 'MS',
    description: 'client sessions idle this long (in log time) expire',
    default: '60000',
  },
  {
    name: 'etcd-listen',
    valueName: 'HOST:PORT',
    description: 'serve the etcd v3 API (gRPC: KV, Maintenance.Status, Cluster.MemberList) here, e.g. for etcdctl',
  },
  {
    name: 'etcd-endpoints',
    valueName: 'LIST',
    description: "the members' etcd addresses for MemberList, e.g. 1=127.0.0.1:7250,2=127.0.0.1:7251",
  },
];

/** The etcd gateway's settings from `--etcd-listen` and `--etcd-endpoints` (null: no gateway). */
export interface EtcdFlags {
  readonly listen: Endpoint;
  readonly endpoints: ReadonlyMap<NodeId, string>;
}

/** Parses the etcd flags; throws an Error naming the flag. */
export function etcdFlagsOf(flags: NodeFlags): EtcdFlags | null {
  const listenText = flags.extra.get('etcd-listen');
  const listText = flags.extra.get('etcd-endpoints');
  if (listenText === undefined) {
    if (listText !== undefined) throw new Error('--etcd-endpoints needs --etcd-listen');
    return null;
  }
  const listen = parseEndpoint(listenText, { allowPortZero: true });
  if (!listen.ok) throw new Error(`--etcd-listen: ${listen.error}`);
  const endpoints = new Map<NodeId, string>();
  for (const part of listText === undefined ? [] : listText.split(',')) {
    const match = /^\s*([0-9]+)=(.+)$/.exec(part);
    const endpoint = match === null ? null : parseEndpoint(match[2]!);
    if (match === null || endpoint === null || !endpoint.ok) {
      throw new Error(`--etcd-endpoints: expected id=host:port,..., got "${listText}"`);
    }
    endpoints.set(NodeId(Number(match[1])), formatEndpoint(endpoint.value));
  }
  return { listen: listen.value, endpoints };
}

function integerFlag(flags: NodeFlags, name: string, min: number): number {
  const text = flags.extra.get(name);
  if (text === undefined) throw new Error(`--${name} is required`);
  if (!/^[0-9]+$/.test(text) || Number(text) < min || !Number.isSafeInteger(Number(text))) {
    throw new Error(`--${name}: expected an integer >= ${min}, got "${text}"`);
  }
  return Number(text);
}

function nodeList(flags: NodeFlags, name: string): NodeId[] | null {
  const text = flags.extra.get(name);
  if (text === undefined) return null;
  const ids = text.split(',').map((part) => part.trim());
  const list: NodeId[] = [];
  for (const id of ids) {
    if (!/^[0-9]+$/.test(id) || Number(id) < 1)
      throw new Error(`--${name}: expected node ids like 1,2,3, got "${text}"`);
    const node = NodeId(Number(id));
    if (!flags.peers.has(node)) throw new Error(`--${name}: node ${id} is not listed in --peers`);
    list.push(node);
  }
  return list;
}

function booleanFlag(flags: NodeFlags, name: string): boolean {
  const text = flags.extra.get(name);
  if (text === 'true') return true;
  if (text === 'false' || text === undefined) return false;
  throw new Error(`--${name}: expected true or false, got "${text}"`);
}

/** Builds and validates the node's config from its flags; throws an Error naming the flag. */
export function raftConfigFromFlags(flags: NodeFlags): KvConfig {
  const readOnly = flags.extra.get('read-mode');
  if (readOnly !== 'safe' && readOnly !== 'lease')
    throw new Error(`--read-mode: expected safe or lease, got "${readOnly}"`);
  const electionTicks = integerFlag(flags, 'election-ticks', 2);
  const leaseMargin = flags.extra.has('lease-margin-ticks')
    ? integerFlag(flags, 'lease-margin-ticks', 0)
    : Math.ceil(electionTicks / 3);
  let initialVoters = nodeList(flags, 'initial-voters') ?? [...flags.peers.keys()];
  // A joining node starts with an empty configuration: it is not one of the initial voters.
  if (booleanFlag(flags, 'join')) initialVoters = initialVoters.filter((id) => id !== flags.id);
  if (initialVoters.length === 0) throw new Error('--initial-voters: a cluster needs at least one voter');
  return kvConfig({
    raft: {
      electionTicks,
      heartbeatTicks: integerFlag(flags, 'heartbeat-ticks', 1),
      maxInflightMsgs: integerFlag(flags, 'max-inflight-msgs', 1),
      maxSizePerMsgBytes: integerFlag(flags, 'max-size-per-msg', 1),
      readOnly: readOnly as ReadOnlyMode,
      leaseMarginTicks: leaseMargin,
    },
    initialVoters,
    batchRequests: true,
    // An unacknowledged log write gets an explicit sync after ~50 ms (runtime-node syncs at once anyway).
    syncNudgeTicks: Math.max(2, Math.floor(50 / flags.tickMs)),
    snapshotEntries: integerFlag(flags, 'snapshot-entries', 1),
    sessionTimeoutMs: integerFlag(flags, 'session-timeout-ms', 1),
  });
}

/** runtime-node's flags all take a value; `--join` alone reads better, so it becomes `--join=true`. */
function normalizeArgv(argv: readonly string[]): string[] {
  return argv.map((arg, i) => {
    const next = argv[i + 1];
    return arg === '--join' && (next === undefined || next.startsWith('--')) ? '--join=true' : arg;
  });
}

/** The flag list of a node (`dsys raft start --help`). */
export function raftStartUsage(program = 'dsys raft start', extraFlags: readonly FlagSpec[] = []): string {
  return nodeUsage(program, [...RAFT_FLAGS, ...extraFlags]);
}

export type RaftFlagsParse =
  | { ok: true; flags: NodeFlags; config: KvConfig; etcd: EtcdFlags | null }
  | { ok: false; error: string }
  | { ok: 'help'; usage: string };

/** Parses a node's command line (never throws on bad input). */
export function parseRaftNodeArgs(
  argv: readonly string[],
  program = 'dsys raft start',
  extraFlags: readonly FlagSpec[] = [],
): RaftFlagsParse {
  const parsed = parseNodeFlags(normalizeArgv(argv), [...RAFT_FLAGS, ...extraFlags]);
  if (parsed.ok === 'help') return { ok: 'help', usage: raftStartUsage(program, extraFlags) };
  if (parsed.ok === false) return parsed;
  try {
    const config = raftConfigFromFlags(parsed.flags);
    return { ok: true, flags: parsed.flags, config, etcd: etcdFlagsOf(parsed.flags) };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}

export interface RaftNodeMainOptions {
  /** Shown in messages and `--help`. */
  readonly program?: string;
  /** More flags (e.g. a gateway's port); their values are in `flags.extra`. */
  readonly flags?: readonly FlagSpec[];
  /**
   * Runs once the node serves and before the `ready:` line: start more front ends next to the RPC
   * server (they call `server.request`). A throw is a failed start (exit 1).
   */
  onStart?(server: RaftServer, flags: NodeFlags): void | Promise<void>;
}

/**
 * Runs one node in this process. Resolves once it serves (after the `ready:` line); the process then
 * lives until SIGINT/SIGTERM (exit 0) or a fatal error (exit 1). Bad flags exit 2, a failed start 1.
 */
export async function runRaftNodeMain(argv: readonly string[], options: RaftNodeMainOptions = {}): Promise<void> {
  const program = options.program ?? 'dsys raft start';
  const parsed = parseRaftNodeArgs(argv, program, options.flags);
  if (parsed.ok === 'help') {
    process.stdout.write(parsed.usage);
    process.exit(0);
  }
  if (parsed.ok === false) {
    process.stderr.write(`${program}: ${parsed.error}\nrun with --help for the flags\n`);
    process.exit(2);
  }
  const { flags, config, etcd } = parsed;
  const logger = new Logger({ level: flags.logLevel, node: flags.id });
  let server: RaftServer;
  try {
    server = await startRaftServer({
      id: flags.id,
      peers: flags.peers,
      dataDir: flags.dataDir,
      listenPeer: flags.listenPeer,
      listenClient: flags.listenClient,
      listenMetrics: flags.metrics,
      config,
      tickMs: flags.tickMs,
      clusterId: flags.clusterId,
      logger,
      limits: flags.limits,
      ...(flags.seed === null ? {} : { seed: flags.seed }),
    });
  } catch (error) {
    logger.error('failed to start', { error });
    process.stderr.write(`${program}: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
  let gateway: EtcdGateway | null = null;
  try {
    if (etcd !== null) {
      gateway = await startEtcdGateway({
        server,
        listen: etcd.listen,
        clusterId: flags.clusterId,
        peers: flags.peers,
        clientEndpoints: etcd.endpoints,
        logger: logger.child({ component: 'etcd' }),
      });
    }
    await options.onStart?.(server, flags);
  } catch (error) {
    logger.error('failed to start', { error });
    await gateway?.close();
    await server.close().catch((closeError: unknown) => logger.error('cleanup failed', { error: closeError }));
    process.stderr.write(`${program}: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
  handleSignals(server, gateway, logger);
  server.node.stopped.then(
    () => process.exit(0),
    () => process.exit(1),
  );
  const { peer, metrics } = server.node.endpoints;
  const metricsText = metrics === null ? 'off' : formatEndpoint(metrics);
  const etcdText = gateway === null ? '' : ` etcd=${formatEndpoint(gateway.endpoint)}`;
  process.stdout.write(
    `listening: peer=${formatEndpoint(peer)} client=${server.endpoint} metrics=${metricsText}${etcdText}\n`,
  );
  process.stdout.write(`ready: ${server.endpoint}\n`);
}

function handleSignals(server: RaftServer, gateway: EtcdGateway | null, logger: Logger): void {
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      logger.warn('second signal: exiting without a clean shutdown', { signal });
      process.exit(130);
    }
    signalled = true;
    logger.info('signal received: shutting down', { signal });
    // `node.stopped` settles with the outcome and exits (0 clean, 1 on error).
    const closed = gateway === null ? Promise.resolve() : gateway.close();
    closed.then(() => server.close()).catch((error: unknown) => logger.error('shutdown failed', { error }));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
