/**
 * `dsys coord start`: one ensemble member as a process. The standard runtime-node flags
 * (`--id --peers --listen-peer --data-dir --tick-ms ...`), with `--listen-client` serving ZooKeeper's
 * client protocol (not runtime-node's). Prints `listening: ...` and then `ready: <client host:port>`.
 */
import { NodeId } from '@dsys/kit';
import {
  type FlagSpec,
  formatEndpoint,
  Logger,
  nodeUsage,
  parseNodeFlags,
  type RunningNode,
  startNode,
} from '@dsys/runtime-node';
import { coordConfig } from '../config.js';
import { type CoordNode, coordProtocol } from '../node.js';
import { type CoordRequest, type CoordResponse, schemas } from '../schema.js';
import { startZkServer, type ZkServer } from './zk-server.js';

export const COORD_FLAGS: readonly FlagSpec[] = [
  { name: 'election-ticks', valueName: 'N', description: 'Raft election timeout in ticks', default: '20' },
  { name: 'heartbeat-ticks', valueName: 'N', description: 'Raft heartbeat interval in ticks', default: '2' },
  {
    name: 'snapshot-entries',
    valueName: 'N',
    // ZooKeeper's snapCount default. Encoding a snapshot pauses this server (about 0.5 us per znode,
    // `npm run bench:snapshot`); the write that follows does not hold its messages. ZooKeeper takes its
    // own in a thread.
    description: 'compact the log about every N applied entries (each member draws its point in [N/2, N])',
    default: '100000',
  },
  {
    name: 'min-session-timeout-ms',
    valueName: 'MS',
    description: 'lowest negotiated session timeout',
    default: '4000',
  },
  {
    name: 'max-session-timeout-ms',
    valueName: 'MS',
    description: 'highest negotiated session timeout',
    default: '40000',
  },
];

function integerFlag(flags: ReadonlyMap<string, string>, name: string): number {
  const text = flags.get(name) ?? '';
  const value = Number(text);
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(value) || value < 1) {
    throw new Error(`--${name} must be a positive integer, got "${text}"`);
  }
  return value;
}

/** The member's flags, as `dsys coord start --help` prints them. */
export function coordStartUsage(program = 'dsys coord start'): string {
  return nodeUsage(program, COORD_FLAGS);
}

export async function runCoordMain(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const program = 'dsys coord start';
  const parsed = parseNodeFlags(argv, COORD_FLAGS);
  if (parsed.ok === 'help') {
    process.stdout.write(coordStartUsage(program));
    process.exit(0);
  }
  if (parsed.ok === false) {
    process.stderr.write(`${program}: ${parsed.error}\nrun with --help for the flags\n`);
    process.exit(2);
  }
  const flags = parsed.flags;
  let config: ReturnType<typeof coordConfig>;
  try {
    const extra = flags.extra;
    config = coordConfig({
      tickMs: flags.tickMs,
      snapshotEntries: integerFlag(extra, 'snapshot-entries'),
      minSessionTimeoutMs: integerFlag(extra, 'min-session-timeout-ms'),
      maxSessionTimeoutMs: integerFlag(extra, 'max-session-timeout-ms'),
      touchEveryTicks: Math.max(1, Math.floor(200 / flags.tickMs)),
      forwardResendTicks: Math.max(10, Math.floor(1000 / flags.tickMs)),
      noLeaderCloseTicks: Math.max(10, Math.floor(10_000 / flags.tickMs)),
      // The host fsyncs at once for an awaited write; the nudge is only a backstop.
      syncNudgeTicks: Math.max(2, Math.floor(50 / flags.tickMs)),
      reapEveryTicks: Math.max(1, Math.floor(1000 / flags.tickMs)),
      raft: {
        electionTicks: integerFlag(extra, 'election-ticks'),
        heartbeatTicks: integerFlag(extra, 'heartbeat-ticks'),
      },
    });
  } catch (error) {
    process.stderr.write(`${program}: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  }
  const logger = new Logger({ level: flags.logLevel, node: flags.id });
  let node: RunningNode<CoordNode, CoordRequest, CoordResponse>;
  let server: ZkServer;
  try {
    node = await startNode({
      protocol: coordProtocol,
      schemas,
      config,
      id: flags.id,
      peers: flags.peers,
      clusterId: flags.clusterId,
      dataDir: flags.dataDir,
      listenPeer: flags.listenPeer,
      listenClient: null,
      listenMetrics: flags.metrics,
      tickMs: flags.tickMs,
      logger,
      limits: flags.limits,
      ...(flags.seed === null ? {} : { seed: flags.seed }),
    });
    registerMetrics(node);
    server = await startZkServer({
      node,
      listen: flags.listenClient,
      logger: logger.child({ component: 'zk-port' }),
      describe: () => ({
        clientPort: server.endpoint.port,
        dataDir: flags.dataDir,
        peerPort: node.endpoints.peer.port,
        ensemble: [...flags.peers].map(([id, endpoint]) => `${id}=${formatEndpoint(endpoint)}`).join(','),
      }),
    });
  } catch (error) {
    logger.error('failed to start', { error });
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(130);
    stopping = true;
    logger.info('signal received: shutting down', { signal });
    void server
      .close()
      .then(() => node.close())
      .catch((error: unknown) => logger.error('shutdown failed', { error }));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  node.stopped.then(
    () => process.exit(0),
    () => process.exit(1),
  );
  const metrics = node.endpoints.metrics === null ? 'off' : formatEndpoint(node.endpoints.metrics);
  process.stdout.write(
    `listening: peer=${formatEndpoint(node.endpoints.peer)} client=${formatEndpoint(server.endpoint)} metrics=${metrics}\n`,
  );
  process.stdout.write(`ready: ${formatEndpoint(server.endpoint)}\n`);
}

function registerMetrics(node: RunningNode<CoordNode, CoordRequest, CoordResponse>): void {
  const read = <T>(get: (state: CoordNode) => T) => node.inspect(get);
  node.metrics.gaugeFrom('coord_znodes', 'Znodes in the tree', () => read((s) => s.tree.nodeCount));
  node.metrics.gaugeFrom('coord_sessions', 'Live sessions', () => read((s) => s.tree.sessionCount));
  node.metrics.gaugeFrom('coord_watches', 'Watches registered on this server', () => read((s) => s.watches.count));
  node.metrics.gaugeFrom('coord_reads_served', 'Reads answered locally (cumulative)', () =>
    read((s) => s.counters.readsServed),
  );
  node.metrics.gaugeFrom('coord_writes_forwarded', 'Writes sent toward the leader (cumulative)', () =>
    read((s) => s.counters.writesForwarded),
  );
  node.metrics.gaugeFrom('coord_forward_items_received', 'Forwarded items received as leader (cumulative)', () =>
    read((s) => s.counters.forwardItemsReceived),
  );
  node.metrics.gaugeFrom('coord_is_leader', '1 on the leader', () => read((s) => (s.core.role === 'leader' ? 1 : 0)));
  void NodeId;
}
