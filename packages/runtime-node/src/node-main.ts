/**
 * The process entry of a real node, so that each system's `src/real/main.ts` is a few lines:
 *
 *   await runNodeMain({ protocol, schemas: { message, request, response }, configFrom: () => config });
 *
 * It parses the standard flags (`nodeUsage()` lists them), starts the node, prints
 * `ready: <client host:port>` on stdout once every port listens (the cluster harness and `dsys up`
 * wait for that line; a `listening:` line before it names all ports), and stops gracefully on
 * SIGINT/SIGTERM with exit code 0. Bad flags exit 2 with a message; a failed start or a fatal error
 * (corrupt log, failed fsync, broken invariant) exits 1.
 */
import { type NodeId, type Protocol, parseSeed, NodeId as toNodeId } from '@dsys/kit';
import { type Endpoint, formatEndpoint, parseEndpoint } from './endpoint.js';
import { isLogLevel, LOG_LEVELS, Logger, type LogLevel } from './logger.js';
import { type NodeLimits, type NodeSchemas, type RunningNode, startNode } from './node-host.js';
import { CLUSTER_ID_BYTES_MAX } from './peer-transport.js';

/** A flag of the system itself (e.g. `--election-ticks`), declared so typos are errors. */
export interface FlagSpec {
  readonly name: string;
  readonly description: string;
  readonly valueName?: string;
  readonly default?: string;
}

export interface NodeFlags {
  readonly id: NodeId;
  readonly peers: ReadonlyMap<NodeId, Endpoint>;
  readonly listenPeer: Endpoint;
  readonly listenClient: Endpoint;
  readonly dataDir: string;
  readonly tickMs: number;
  readonly logLevel: LogLevel;
  readonly metrics: Endpoint | null;
  readonly clusterId: string;
  readonly seed: bigint | null;
  readonly limits: Partial<NodeLimits>;
  /** Values of the system's own flags (declared with `FlagSpec`), defaults applied. */
  readonly extra: ReadonlyMap<string, string>;
}

export type FlagsParse = { ok: true; flags: NodeFlags } | { ok: false; error: string } | { ok: 'help' };

interface StandardFlag {
  readonly name: string;
  readonly valueName: string;
  readonly description: string;
}

const STANDARD_FLAGS: readonly StandardFlag[] = [
  { name: 'id', valueName: 'N', description: 'this node id (a positive integer listed in --peers); required' },
  {
    name: 'peers',
    valueName: 'LIST',
    description: 'every node and where to dial it, e.g. 1=127.0.0.1:7001,2=127.0.0.1:7002; required',
  },
  {
    name: 'listen-peer',
    valueName: 'HOST:PORT',
    description: "peer listener (default: this node's own entry in --peers)",
  },
  {
    name: 'listen-client',
    valueName: 'HOST:PORT',
    description: 'client listener (default 127.0.0.1:0, an ephemeral port)',
  },
  { name: 'data-dir', valueName: 'DIR', description: 'durable log and snapshots (locked while running); required' },
  { name: 'tick-ms', valueName: 'MS', description: 'real length of one protocol tick (default 10)' },
  { name: 'log-level', valueName: 'LEVEL', description: `${LOG_LEVELS.join('|')} (default info)` },
  {
    name: 'metrics-port',
    valueName: 'PORT',
    description: 'serve Prometheus /metrics on this port (0: ephemeral; default off)',
  },
  { name: 'metrics-host', valueName: 'HOST', description: 'metrics listener host (default 127.0.0.1)' },
  { name: 'cluster-id', valueName: 'ID', description: 'peers with another cluster id are refused (default dsys)' },
  {
    name: 'seed',
    valueName: 'SEED',
    description: 'seed of the protocol Rng, decimal or 0x-hex (default random, logged)',
  },
  { name: 'frame-bytes-max', valueName: 'BYTES', description: 'largest frame accepted (default 16777216)' },
  {
    name: 'frame-timeout-ms',
    valueName: 'MS',
    description: 'a started frame must complete within this (default 10000)',
  },
];

export function nodeUsage(program: string, extraFlags: readonly FlagSpec[] = []): string {
  const rows = [
    ...STANDARD_FLAGS.map((flag) => [`--${flag.name} ${flag.valueName}`, flag.description]),
    ...extraFlags.map((flag) => [
      `--${flag.name} ${flag.valueName ?? 'VALUE'}`,
      flag.default === undefined ? flag.description : `${flag.description} (default ${flag.default})`,
    ]),
    ['--help', 'print this help'],
  ];
  const width = Math.max(...rows.map(([left]) => left!.length));
  const lines = rows.map(([left, right]) => `  ${left!.padEnd(width)}  ${right}`);
  return `usage: ${program} [flags]\n\nflags:\n${lines.join('\n')}\n`;
}

function positiveInteger(name: string, text: string, max = Number.MAX_SAFE_INTEGER): number | string {
  if (!/^[0-9]+$/.test(text)) return `--${name}: expected a positive integer, got "${text}"`;
  const value = Number(text);
  if (value < 1 || value > max) return `--${name}: ${value} out of range 1..${max}`;
  return value;
}

function parsePeers(text: string): Map<NodeId, Endpoint> | string {
  const peers = new Map<NodeId, Endpoint>();
  for (const part of text.split(',')) {
    const match = /^([0-9]+)=(.+)$/.exec(part.trim());
    if (match === null) return `--peers: expected ID=HOST:PORT, got "${part}"`;
    const id = positiveInteger('peers', match[1]!, 0xffff_ffff);
    if (typeof id === 'string') return id;
    const endpoint = parseEndpoint(match[2]!);
    if (!endpoint.ok) return `--peers: node ${id}: ${endpoint.error}`;
    if (peers.has(toNodeId(id))) return `--peers: node ${id} listed twice`;
    peers.set(toNodeId(id), endpoint.value);
  }
  return peers;
}

/** Splits `--name value` / `--name=value` pairs; every flag takes a value except --help. */
function splitArgs(argv: readonly string[], known: ReadonlySet<string>): Map<string, string> | string | 'help' {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return 'help';
    const match = /^--([a-z0-9-]+)(?:=(.*))?$/.exec(arg);
    if (match === null) return `unexpected argument "${arg}"`;
    const name = match[1]!;
    if (!known.has(name)) return `unknown flag --${name}`;
    let value = match[2];
    if (value === undefined) {
      value = argv[i + 1];
      if (value === undefined || value.startsWith('--')) return `--${name} needs a value`;
      i++;
    }
    if (values.has(name)) return `--${name} given twice`;
    values.set(name, value);
  }
  return values;
}

/** Parses the standard node flags plus the system's own; never throws on bad input. */
export function parseNodeFlags(argv: readonly string[], extraFlags: readonly FlagSpec[] = []): FlagsParse {
  const known = new Set([...STANDARD_FLAGS.map((flag) => flag.name), ...extraFlags.map((flag) => flag.name)]);
  const values = splitArgs(argv, known);
  if (values === 'help') return { ok: 'help' };
  if (typeof values === 'string') return { ok: false, error: values };
  const result = buildFlags(values, extraFlags);
  return typeof result === 'string' ? { ok: false, error: result } : { ok: true, flags: result };
}

function buildFlags(values: ReadonlyMap<string, string>, extraFlags: readonly FlagSpec[]): NodeFlags | string {
  for (const required of ['id', 'peers', 'data-dir']) {
    if (!values.has(required)) return `--${required} is required`;
  }
  const id = positiveInteger('id', values.get('id')!, 0xffff_ffff);
  if (typeof id === 'string') return id;
  const peers = parsePeers(values.get('peers')!);
  if (typeof peers === 'string') return peers;
  const own = peers.get(toNodeId(id));
  if (own === undefined) return `--id ${id} is not listed in --peers`;
  const endpoint = (name: string, fallback: Endpoint): Endpoint | string => {
    const text = values.get(name);
    if (text === undefined) return fallback;
    const parsed = parseEndpoint(text, { allowPortZero: true });
    return parsed.ok ? parsed.value : `--${name}: ${parsed.error}`;
  };
  const listenPeer = endpoint('listen-peer', own);
  if (typeof listenPeer === 'string') return listenPeer;
  const listenClient = endpoint('listen-client', { host: '127.0.0.1', port: 0 });
  if (typeof listenClient === 'string') return listenClient;
  const dataDir = values.get('data-dir')!;
  if (dataDir.trim() === '') return '--data-dir must not be empty';
  const tickMs = positiveInteger('tick-ms', values.get('tick-ms') ?? '10', 60_000);
  if (typeof tickMs === 'string') return tickMs;
  const logLevel = values.get('log-level') ?? 'info';
  if (!isLogLevel(logLevel)) return `--log-level: expected one of ${LOG_LEVELS.join('|')}, got "${logLevel}"`;
  let metrics: Endpoint | null = null;
  const metricsPort = values.get('metrics-port');
  if (metricsPort !== undefined) {
    const parsed = parseEndpoint(`${values.get('metrics-host') ?? '127.0.0.1'}:${metricsPort}`, {
      allowPortZero: true,
    });
    if (!parsed.ok) return `--metrics-port: ${parsed.error}`;
    metrics = parsed.value;
  }
  const clusterId = values.get('cluster-id') ?? 'dsys';
  if (clusterId === '' || new TextEncoder().encode(clusterId).length > CLUSTER_ID_BYTES_MAX) {
    return `--cluster-id must be 1..${CLUSTER_ID_BYTES_MAX} bytes`;
  }
  let seed: bigint | null = null;
  const seedText = values.get('seed');
  if (seedText !== undefined) {
    try {
      seed = parseSeed(seedText);
    } catch (error) {
      return `--seed: ${(error as Error).message}`;
    }
  }
  const limits: { frameBytesMax?: number; frameTimeoutMs?: number } = {};
  for (const [flag, key] of [
    ['frame-bytes-max', 'frameBytesMax'],
    ['frame-timeout-ms', 'frameTimeoutMs'],
  ] as const) {
    const text = values.get(flag);
    if (text === undefined) continue;
    const value = positiveInteger(flag, text, 0xffff_ffff);
    if (typeof value === 'string') return value;
    limits[key] = value;
  }
  const extra = new Map<string, string>();
  for (const flag of extraFlags) {
    const value = values.get(flag.name) ?? flag.default;
    if (value !== undefined) extra.set(flag.name, value);
  }
  return {
    id: toNodeId(id),
    peers,
    listenPeer,
    listenClient,
    dataDir,
    tickMs,
    logLevel,
    metrics,
    clusterId,
    seed,
    limits,
    extra,
  };
}

export interface NodeMainOptions<State, Message, Request, Response, Config> {
  readonly protocol: Protocol<State, Message, Request, Response, Config>;
  readonly schemas: NodeSchemas<Message, Request, Response>;
  /** Builds (and validates) the protocol config; throw an Error with a clear message to exit 2. */
  configFrom(flags: NodeFlags): Config;
  readonly flags?: readonly FlagSpec[];
  /** Runs after the node listens and before `ready:` (register metrics, start extra servers). */
  onStart?(node: RunningNode<State, Request, Response>, flags: NodeFlags): void | Promise<void>;
  /** Defaults to `process.argv.slice(2)`. */
  readonly argv?: readonly string[];
  /** Shown in `--help`; defaults to the protocol name. */
  readonly program?: string;
}

/** Exits the process with 2 after printing a flag error. */
function exitBadFlags(program: string, message: string): never {
  process.stderr.write(`${program}: ${message}\nrun with --help for the flags\n`);
  process.exit(2);
}

export async function runNodeMain<State, Message, Request, Response, Config>(
  options: NodeMainOptions<State, Message, Request, Response, Config>,
): Promise<void> {
  const program = options.program ?? `dsys-${options.protocol.name}`;
  const parsed = parseNodeFlags(options.argv ?? process.argv.slice(2), options.flags);
  if (parsed.ok === 'help') {
    process.stdout.write(nodeUsage(program, options.flags));
    process.exit(0);
  }
  if (parsed.ok === false) exitBadFlags(program, parsed.error);
  const flags = parsed.flags;
  let config: Config;
  try {
    config = options.configFrom(flags);
  } catch (error) {
    exitBadFlags(program, error instanceof Error ? error.message : String(error));
  }
  const logger = new Logger({ level: flags.logLevel, node: flags.id });
  let node: RunningNode<State, Request, Response>;
  try {
    node = await startNode({
      protocol: options.protocol,
      schemas: options.schemas,
      config,
      id: flags.id,
      peers: flags.peers,
      clusterId: flags.clusterId,
      dataDir: flags.dataDir,
      listenPeer: flags.listenPeer,
      listenClient: flags.listenClient,
      listenMetrics: flags.metrics,
      tickMs: flags.tickMs,
      logger,
      limits: flags.limits,
      ...(flags.seed === null ? {} : { seed: flags.seed }),
    });
    await options.onStart?.(node, flags);
  } catch (error) {
    logger.error('failed to start', { error });
    process.exit(1);
  }
  handleSignals(node, logger);
  node.stopped.then(
    () => process.exit(0),
    () => process.exit(1),
  );
  const { peer, client, metrics } = node.endpoints;
  const metricsText = metrics === null ? 'off' : formatEndpoint(metrics);
  process.stdout.write(
    `listening: peer=${formatEndpoint(peer)} client=${formatEndpoint(client!)} metrics=${metricsText}\n`,
  );
  process.stdout.write(`ready: ${formatEndpoint(client!)}\n`);
}

function handleSignals(node: RunningNode<unknown, unknown, unknown>, logger: Logger): void {
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      logger.warn('second signal: exiting without a clean shutdown', { signal });
      process.exit(130);
    }
    signalled = true;
    logger.info('signal received: shutting down', { signal });
    // `node.stopped` settles with the outcome and exits (0 clean, 1 on error).
    node.close().catch((error: unknown) => logger.error('shutdown failed', { error }));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
