/**
 * `dsys chord ...`: the command line of the Chord system (the `dsys` CLI mounts `chordCli`).
 *
 *   dsys chord start [--join HOST:PORT,...] [--data-dir D] [--vnodes K] ...   run one node in the foreground
 *   dsys chord up [--nodes N] [--base-port P] [--data-dir D] [--vnodes K]   a local ring of processes
 *   dsys chord lookup KEY [--node HOST:PORT] [--mode iterative|recursive]
 *   dsys chord put KEY VALUE [--node HOST:PORT]
 *   dsys chord get KEY [--node HOST:PORT]
 *   dsys chord ring [--node HOST:PORT]     members, ids, successors, finger health
 *   dsys chord leave [--node HOST:PORT]    graceful leave
 *
 * Exit codes: 0 success, 1 the operation failed (or `get` found nothing), 2 bad usage.
 */
import { parseArgs } from 'node:util';
import { type Cluster, runClusterForeground } from '@dsys/harness';
import { errorMessage } from '@dsys/kit';
import { connect, type RpcConnection } from '@dsys/rpc';
import { addressName } from '../address.js';
import type { ChordResponse, NodeRef, StatusResponse } from '../messages.js';
import { startChordCluster } from './cluster.js';
import { runChordNodeMain } from './main.js';
import { type ChordService, chordService } from './service.js';

const USAGE = `dsys chord: the Chord DHT (lookups, a replicated key-value store) as real processes

Usage:
  dsys chord start [--join HOST:PORT,...] [--data-dir D] [--port P] ...
                                              run one node (see 'dsys chord start --help')
  dsys chord up [--nodes N] [--base-port P] [--data-dir D] [--vnodes K]
                                              start a local ring; prints 'ready: <endpoints>'
  dsys chord lookup KEY [--mode iterative|recursive]   which node is responsible for KEY
  dsys chord put KEY VALUE                    store VALUE under KEY (replicated)
  dsys chord get KEY                          read KEY (exit 1 when not found)
  dsys chord ring                             members, identifiers, successors, finger health
  dsys chord leave                            make the node leave the ring gracefully

Common flags:
  --node HOST:PORT   the node to ask (default: $DSYS_CHORD_NODE)
  --timeout-ms T     give up after T ms (default 10000)
  -h, --help         this help

Exit codes: 0 success, 1 the operation failed or found nothing, 2 bad usage.`;

class Usage extends Error {}

interface ClientFlags {
  node: string;
  timeoutMs: number;
  mode?: 'iterative' | 'recursive';
  positionals: string[];
}

export async function chordCli(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    }
    switch (command) {
      case 'start':
        return await runChordNodeMain(rest);
      case 'up':
        return await up(rest);
      case 'lookup':
      case 'put':
      case 'get':
      case 'ring':
      case 'leave':
        return await clientCommand(command, rest);
      default:
        throw new Usage(`unknown command "${command}" (commands: start, up, lookup, put, get, ring, leave)`);
    }
  } catch (error) {
    if (error instanceof Usage) {
      process.stderr.write(`dsys chord: ${error.message}\nRun 'dsys chord --help' for usage.\n`);
      return 2;
    }
    process.stderr.write(`dsys chord: ${errorMessage(error)}\n`);
    return 1;
  }
}

function parseClientFlags(argv: string[], positionals: number): ClientFlags | 'help' {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        node: { type: 'string' },
        'timeout-ms': { type: 'string' },
        mode: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new Usage(errorMessage(error).split('\n')[0]!);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values.help === true) return 'help';
  const node = (values.node as string | undefined) ?? process.env.DSYS_CHORD_NODE;
  if (node === undefined || node === '') {
    throw new Usage('give --node HOST:PORT (an endpoint that `dsys chord up` printed) or set DSYS_CHORD_NODE');
  }
  const timeoutText = (values['timeout-ms'] as string | undefined) ?? '10000';
  if (!/^[0-9]{1,7}$/.test(timeoutText) || Number(timeoutText) < 1) {
    throw new Usage(`--timeout-ms must be a positive integer, got "${timeoutText}"`);
  }
  const mode = values.mode as string | undefined;
  if (mode !== undefined && mode !== 'iterative' && mode !== 'recursive') {
    throw new Usage(`--mode must be iterative or recursive, got "${mode}"`);
  }
  if (parsed.positionals.length !== positionals) {
    throw new Usage(`expected ${positionals} argument(s), got ${parsed.positionals.length}`);
  }
  return {
    node,
    timeoutMs: Number(timeoutText),
    ...(mode === undefined ? {} : { mode }),
    positionals: parsed.positionals,
  };
}

const ARGUMENTS: Record<string, number> = { lookup: 1, put: 2, get: 1, ring: 0, leave: 0 };

async function clientCommand(command: string, argv: string[]): Promise<number> {
  const flags = parseClientFlags(argv, ARGUMENTS[command]!);
  if (flags === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const connection = openConnection(flags.node, flags.timeoutMs);
  try {
    return await runClientCommand(command, connection, flags);
  } finally {
    await connection.close();
  }
}

function openConnection(node: string, timeoutMs: number): RpcConnection<ChordService> {
  try {
    return connect(chordService, node, { timeoutMs, bindTimeoutMs: Math.min(timeoutMs, 5_000), retriesMax: 1 });
  } catch (error) {
    throw new Usage(`--node: ${errorMessage(error)}`);
  }
}

async function runClientCommand(
  command: string,
  connection: RpcConnection<ChordService>,
  flags: ClientFlags,
): Promise<number> {
  const stub = connection.stub;
  const [first, second] = flags.positionals;
  switch (command) {
    case 'lookup': {
      const response = await stub.lookup(
        flags.mode === undefined ? { key: first! } : { key: first!, mode: flags.mode },
      );
      if (response.type !== 'lookup') return failed(response);
      process.stdout.write(
        `${first} -> ${describeRef(response.node)} (key id ${response.keyId.toString(16)}, ${response.hops} hops, ${response.timeouts} timeouts)\n`,
      );
      return 0;
    }
    case 'put': {
      const response = await stub.put({ key: first!, value: new TextEncoder().encode(second!) });
      if (response.type !== 'put') return failed(response);
      process.stdout.write(`ok: ${first} version ${response.seq}/${response.writer}, ${response.replicas} replicas\n`);
      return 0;
    }
    case 'get': {
      const response = await stub.get({ key: first! });
      if (response.type !== 'get') return failed(response);
      if (!response.found || response.value === null) {
        process.stderr.write(`${first}: not found\n`);
        return 1;
      }
      process.stdout.write(`${new TextDecoder().decode(response.value)}\n`);
      return 0;
    }
    case 'leave': {
      const response = await stub.leave({});
      if (response.type !== 'ok') return failed(response);
      process.stdout.write('left the ring\n');
      return 0;
    }
    default:
      return printRing(connection, flags);
  }
}

function failed(response: ChordResponse): number {
  if (response.type === 'error') process.stderr.write(`error ${response.code}: ${response.reason}\n`);
  else process.stderr.write(`unexpected response ${response.type}\n`);
  return 1;
}

function describeRef(ref: NodeRef): string {
  return `${addressName('ipv4', ref.addr)}#${ref.vnode} (id ${ref.id.toString(16).slice(0, 10)}…)`;
}

/** Walks the ring from `--node` along successor pointers, asking each node for its status. */
async function printRing(first: RpcConnection<ChordService>, flags: ClientFlags): Promise<number> {
  const statuses = new Map<string, StatusResponse>();
  const queue = [flags.node];
  const unreachable: string[] = [];
  while (queue.length > 0 && statuses.size < 1024) {
    const endpoint = queue.shift()!;
    if (statuses.has(endpoint) || unreachable.includes(endpoint)) continue;
    const connection = endpoint === flags.node ? first : openConnection(endpoint, flags.timeoutMs);
    try {
      const response = await connection.stub.status({});
      if (response.type !== 'status') throw new Error(`unexpected ${response.type}`);
      statuses.set(endpoint, response);
      for (const vnode of response.vnodes)
        for (const node of vnode.successors) queue.push(addressName('ipv4', node.addr));
    } catch (error) {
      unreachable.push(`${endpoint} (${errorMessage(error)})`);
    } finally {
      if (connection !== first) await connection.close();
    }
  }
  const rows: string[][] = [];
  const members = new Set<string>();
  for (const status of statuses.values()) {
    for (const vnode of status.vnodes) if (vnode.status === 'joined') members.add(`${status.name}#${vnode.self.vnode}`);
  }
  for (const status of statuses.values()) {
    for (const vnode of status.vnodes) {
      const stale = vnode.fingers.filter(
        (finger) => !members.has(`${addressName('ipv4', finger.node.addr)}#${finger.node.vnode}`),
      );
      rows.push([
        `${status.name}#${vnode.self.vnode}`,
        vnode.self.id.toString(16).padStart(40, '0').slice(0, 12),
        vnode.status,
        vnode.pred === null ? '-' : `${addressName('ipv4', vnode.pred.addr)}#${vnode.pred.vnode}`,
        vnode.successors[0] === undefined
          ? '-'
          : `${addressName('ipv4', vnode.successors[0].addr)}#${vnode.successors[0].vnode}`,
        `${vnode.fingers.length} distinct, ${stale.length} stale`,
        String(vnode.primaryItems),
      ]);
    }
  }
  rows.sort((a, b) => (a[1]! < b[1]! ? -1 : 1));
  const header = ['vnode', 'id', 'status', 'predecessor', 'successor', 'fingers', 'keys'];
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  process.stdout.write(`${line(header)}\n`);
  for (const row of rows) process.stdout.write(`${line(row)}\n`);
  process.stdout.write(`${members.size} member vnodes on ${statuses.size} nodes (ordered by identifier)\n`);
  for (const problem of unreachable) process.stdout.write(`unreachable: ${problem}\n`);
  return unreachable.length === 0 ? 0 : 1;
}

async function up(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv,
      options: {
        nodes: { type: 'string' },
        'base-port': { type: 'string' },
        'data-dir': { type: 'string' },
        vnodes: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (error) {
    throw new Usage(errorMessage(error).split('\n')[0]!);
  }
  if (values.help === true) {
    process.stdout.write('usage: dsys chord up [--nodes N (default 5)] [--base-port P] [--data-dir D] [--vnodes K]\n');
    return 0;
  }
  const count = (name: string, fallback: number, min: number, max: number): number => {
    const text = values[name] as string | undefined;
    if (text === undefined) return fallback;
    if (!/^[0-9]{1,6}$/.test(text) || Number(text) < min || Number(text) > max) {
      throw new Usage(`--${name} must be an integer in [${min}, ${max}], got "${text}"`);
    }
    return Number(text);
  };
  const nodes = count('nodes', 5, 1, 100);
  const basePort = values['base-port'] === undefined ? undefined : count('base-port', 0, 1024, 65000);
  const vnodes = count('vnodes', 1, 1, 64);
  let cluster: Cluster;
  try {
    cluster = await startChordCluster({
      nodes,
      vnodes,
      ...(basePort === undefined ? {} : { basePort }),
      ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] as string }),
    });
  } catch (error) {
    process.stderr.write(`dsys chord up: ${errorMessage(error)}\n`);
    return 1;
  }
  return runClusterForeground(cluster);
}
