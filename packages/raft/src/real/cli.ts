/**
 * The command lines `dsys kv` (get, put, del, cas, scan through `KvClient`) and `dsys raft` (start a
 * node, status, membership, leadership transfer), mounted by the CLI package. `dsys raft up` is the
 * CLI package's generic local-cluster runner.
 *
 * `dsys kv` exit codes (a script must be able to tell "no" from "don't know"):
 *   0  the operation took effect (a get of a missing key prints null and exits 0);
 *   1  it definitely did not (a compare-and-swap whose expected value differed, a rejected request, no
 *      leader reachable before the deadline);
 *   2  its outcome is unknown (a timeout after the request reached a leader: it may or may not apply);
 *  64  bad usage.
 */
import { parseArgs } from 'node:util';
import { errorMessage } from '@dsys/kit';
import { parseEndpoint } from '@dsys/runtime-node';
import { type EndpointStatus, KvClient } from './client.js';
import { KvClientError } from './errors.js';
import { runRaftNodeMain } from './node-main.js';

export interface KvCliIo {
  out(text: string): void;
  err(text: string): void;
}

const processIo: KvCliIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

const EXIT_OK = 0;
const EXIT_NOT_DONE = 1;
const EXIT_UNKNOWN = 2;
const EXIT_USAGE = 64;

export const KV_HELP = `dsys kv: read and write a Raft key-value cluster (linearizable, exactly-once writes)

Usage:
  dsys kv --endpoints LIST get <key>
  dsys kv --endpoints LIST put <key> <value>
  dsys kv --endpoints LIST del <key>
  dsys kv --endpoints LIST cas <key> (--expect OLD | --expect-absent) (<new> | --delete)
  dsys kv --endpoints LIST scan <prefix> [--limit N]

Flags:
  --endpoints LIST   node client endpoints, as printed on the ready: line (host:port,...)
  --timeout MS       deadline of the operation, retries included (default 10000)
  --json             print one JSON object (results and errors)
  -h, --help         show this help

Output: get prints the value (null when absent; use --json to tell a missing key from the value
"null"), put prints OK, del prints deleted or absent, cas prints swapped or not swapped, scan prints
key<TAB>value lines.

Exit codes: 0 the operation took effect (a get of a missing key prints null and exits 0); 1 it
definitely did not (a cas whose expected value differed, a rejected request, no leader before the
deadline); 2 its outcome is unknown (a timeout after a leader took the write: it may or may not
have been applied); 64 bad usage.

Example:
  dsys kv --endpoints 127.0.0.1:7200,127.0.0.1:7201,127.0.0.1:7202 put greeting hello
`;

export const RAFT_HELP = `dsys raft: run and administer a Raft key-value cluster

Usage:
  dsys raft up [--nodes N] [--base-port P]   a local cluster of real processes (prints ready: <endpoints>)
  dsys raft start --id N --peers LIST --data-dir DIR [--listen-client HOST:PORT] [flags]
                                             one node in the foreground (--help lists every flag)
  dsys raft status --endpoints LIST [--json] role, term, commit and applied index, members of every node
  dsys raft member add <id> --endpoints LIST       add node <id> as a learner (it receives the log)
  dsys raft member promote <id> --endpoints LIST   make learner <id> a voter (once caught up)
  dsys raft member remove <id> --endpoints LIST    remove node <id> (voter or learner)
  dsys raft transfer-leader <id> --endpoints LIST  hand leadership to voter <id>

Flags of the client commands:
  --endpoints LIST   node client endpoints (host:port,...)
  --timeout MS       deadline (default 10000)
  --json             machine-readable output

Exit codes of the client commands: 0 done, 1 not done (refused, unreachable), 2 outcome unknown,
64 bad usage. status exits 1 when some endpoint did not answer.
`;

class UsageError extends Error {}

interface ClientFlags {
  readonly endpoints: string[];
  readonly timeoutMs: number;
  readonly json: boolean;
}

const CLIENT_OPTIONS = {
  endpoints: { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function parse<const O extends Record<string, { type: 'string' | 'boolean'; short?: string }>>(
  argv: readonly string[],
  options: O,
) {
  try {
    return parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(errorMessage(error).split('\n')[0]);
  }
}

function clientFlags(values: { endpoints?: string; timeout?: string; json?: boolean }): ClientFlags {
  const list = (values.endpoints ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  if (list.length === 0) throw new UsageError('--endpoints is required (host:port,... as printed on the ready: line)');
  for (const endpoint of list) {
    const parsed = parseEndpoint(endpoint);
    if (!parsed.ok) throw new UsageError(`--endpoints: ${parsed.error}`);
  }
  const timeoutText = values.timeout ?? '10000';
  if (!/^[0-9]+$/.test(timeoutText) || Number(timeoutText) < 1) {
    throw new UsageError(`--timeout must be a positive number of ms, got '${timeoutText}'`);
  }
  return { endpoints: list, timeoutMs: Number(timeoutText), json: values.json === true };
}

function expectArgs(positionals: readonly string[], count: number, usage: string): void {
  if (positionals.length !== count) throw new UsageError(`expected: ${usage}`);
}

function clientFor(flags: ClientFlags): KvClient {
  return new KvClient(flags.endpoints, {
    timeoutMs: flags.timeoutMs,
    attemptTimeoutMs: Math.min(2_000, flags.timeoutMs),
  });
}

/** Prints a failed operation and returns its exit code (2 only when it may have taken effect). */
function reportError(io: KvCliIo, json: boolean, program: string, error: unknown): number {
  if (!(error instanceof KvClientError)) throw error;
  const code = error.indeterminate ? EXIT_UNKNOWN : EXIT_NOT_DONE;
  if (json) {
    io.out(
      `${JSON.stringify({ error: { code: error.detail.code, indeterminate: error.indeterminate, message: error.message } })}\n`,
    );
  }
  const note = error.indeterminate ? ' (outcome unknown: it may or may not have been applied)' : '';
  io.err(`${program}: ${error.message}${note}\n`);
  return code;
}

async function withClient(
  io: KvCliIo,
  flags: ClientFlags,
  program: string,
  run: (client: KvClient) => Promise<number>,
): Promise<number> {
  const client = clientFor(flags);
  try {
    return await run(client);
  } catch (error) {
    return reportError(io, flags.json, program, error);
  } finally {
    await client.close();
  }
}

// ---------------------------------------------------------------------------------------------
// dsys kv

/** Runs `dsys kv ...` (argv after `kv`); returns the exit code. */
export async function kvCli(argv: readonly string[], io: KvCliIo = processIo): Promise<number> {
  try {
    const { values, positionals } = parse(argv, {
      ...CLIENT_OPTIONS,
      expect: { type: 'string' },
      'expect-absent': { type: 'boolean' },
      delete: { type: 'boolean' },
      limit: { type: 'string' },
    });
    if (values.help === true || positionals.length === 0) {
      io.out(KV_HELP);
      return values.help === true ? EXIT_OK : EXIT_USAGE;
    }
    const [command, ...args] = positionals as [string, ...string[]];
    const flags = clientFlags(values);
    const run = kvCommand(command, args, values, flags.json, io);
    return await withClient(io, flags, `dsys kv ${command}`, run);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.err(`dsys kv: ${error.message}\nRun 'dsys kv --help' for usage.\n`);
    return EXIT_USAGE;
  }
}

type KvValues = { expect?: string; 'expect-absent'?: boolean; delete?: boolean; limit?: string };

/** Validates a command's arguments (usage errors before any connection) and returns its action. */
function kvCommand(
  command: string,
  args: readonly string[],
  values: KvValues,
  json: boolean,
  io: KvCliIo,
): (client: KvClient) => Promise<number> {
  const print = (text: string, object: unknown) => io.out(`${json ? JSON.stringify(object) : text}\n`);
  switch (command) {
    case 'get': {
      expectArgs(args, 1, 'get <key>');
      const key = args[0]!;
      return async (client) => {
        const value = await client.get(key);
        print(value ?? 'null', { key, value });
        return EXIT_OK;
      };
    }
    case 'put': {
      expectArgs(args, 2, 'put <key> <value>');
      const [key, value] = args as [string, string];
      return async (client) => {
        await client.put(key, value);
        print('OK', { ok: true });
        return EXIT_OK;
      };
    }
    case 'del':
    case 'delete': {
      expectArgs(args, 1, 'del <key>');
      const key = args[0]!;
      return async (client) => {
        const existed = await client.delete(key);
        print(existed ? 'deleted' : 'absent', { existed });
        return EXIT_OK;
      };
    }
    case 'cas':
      return casCommand(args, values, print);
    case 'scan': {
      expectArgs(args, 1, 'scan <prefix> [--limit N]');
      const prefix = args[0]!;
      const limitText = values.limit ?? '100';
      if (!/^[0-9]+$/.test(limitText) || Number(limitText) < 1 || Number(limitText) > 1000) {
        throw new UsageError(`--limit must be between 1 and 1000, got '${limitText}'`);
      }
      return async (client) => {
        const result = await client.scan(prefix, Number(limitText));
        if (json) print('', result);
        else {
          for (const entry of result.entries) io.out(`${entry.key}\t${entry.value}\n`);
          if (result.more) io.err(`(more keys match '${prefix}'; raise --limit or scan from a longer prefix)\n`);
        }
        return EXIT_OK;
      };
    }
    default:
      throw new UsageError(`unknown command '${command}' (commands: get, put, del, cas, scan)`);
  }
}

function casCommand(
  args: readonly string[],
  values: KvValues,
  print: (text: string, object: unknown) => void,
): (client: KvClient) => Promise<number> {
  const usage = 'cas <key> (--expect OLD | --expect-absent) (<new> | --delete)';
  if ((values.expect === undefined) === (values['expect-absent'] !== true)) {
    throw new UsageError(`give exactly one of --expect OLD and --expect-absent; ${usage}`);
  }
  const deleting = values.delete === true;
  expectArgs(args, deleting ? 1 : 2, usage);
  const key = args[0]!;
  const expected = values.expect ?? null;
  const value = deleting ? null : args[1]!;
  return async (client) => {
    const swapped = await client.cas(key, expected, value);
    print(swapped ? 'swapped' : 'not swapped: the current value differs from the expected one', { swapped });
    return swapped ? EXIT_OK : EXIT_NOT_DONE;
  };
}

// ---------------------------------------------------------------------------------------------
// dsys raft

/** Runs `dsys raft ...` (argv after `raft`, except `up`, which the CLI package runs); returns the exit code. */
export async function raftCli(argv: readonly string[], io: KvCliIo = processIo): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'start') {
    // The node parses its own flags (exit 2 on bad ones) and runs until a signal.
    await runRaftNodeMain(rest, { program: 'dsys raft start' });
    return await new Promise<number>(() => undefined);
  }
  try {
    const { values, positionals } = parse(rest, CLIENT_OPTIONS);
    if (command === undefined || command === '--help' || command === '-h' || values.help === true) {
      io.out(RAFT_HELP);
      return command === undefined ? EXIT_USAGE : EXIT_OK;
    }
    const flags = clientFlags(values);
    switch (command) {
      case 'status':
        expectArgs(positionals, 0, 'status --endpoints LIST');
        return await withClient(io, flags, 'dsys raft status', (client) => statusCommand(client, flags.json, io));
      case 'member':
        return await memberCommand(positionals, flags, io);
      case 'transfer-leader': {
        expectArgs(positionals, 1, 'transfer-leader <id> --endpoints LIST');
        const to = nodeIdArg(positionals[0]!);
        return await withClient(io, flags, 'dsys raft transfer-leader', (client) =>
          transferCommand(client, to, flags, io),
        );
      }
      default:
        throw new UsageError(`unknown command '${command}' (commands: up, start, status, member, transfer-leader)`);
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.err(`dsys raft: ${error.message}\nRun 'dsys raft --help' for usage.\n`);
    return EXIT_USAGE;
  }
}

function nodeIdArg(text: string): number {
  if (!/^[0-9]+$/.test(text) || Number(text) < 1 || Number(text) > 0xffff_ffff) {
    throw new UsageError(`expected a node id (a positive integer), got '${text}'`);
  }
  return Number(text);
}

async function statusCommand(client: KvClient, json: boolean, io: KvCliIo): Promise<number> {
  const statuses = await client.statusAll();
  if (json) {
    io.out(`${JSON.stringify(statuses.map(statusJson))}\n`);
  } else {
    io.out(formatStatusTable(statuses));
  }
  return statuses.every((entry) => entry.ok) ? EXIT_OK : EXIT_NOT_DONE;
}

function statusJson(entry: EndpointStatus): unknown {
  if (!entry.ok) return { endpoint: entry.endpoint, error: entry.error };
  const { type: _, ...status } = entry.status;
  return { endpoint: entry.endpoint, ...status };
}

const list = (ids: readonly number[]) => (ids.length === 0 ? '-' : ids.join(','));

/** One row per node: role, term, leader, commit index, applied index, members. */
export function formatStatusTable(statuses: readonly EndpointStatus[]): string {
  const header = ['node', 'endpoint', 'role', 'term', 'leader', 'commit', 'applied', 'voters', 'learners'];
  const rows = statuses.map((entry) => {
    if (!entry.ok) return ['?', entry.endpoint, `unreachable: ${entry.error}`];
    const status = entry.status;
    const voters =
      status.votersOutgoing.length > 0
        ? `${list(status.voters)} (joint with ${list(status.votersOutgoing)})`
        : list(status.voters);
    return [
      String(status.node),
      entry.endpoint,
      status.role,
      String(status.term),
      status.leader === null ? '-' : String(status.leader),
      String(status.commit),
      String(status.applied),
      voters,
      list(status.learners),
    ];
  });
  const widths = header.map((title, i) =>
    Math.max(title.length, ...rows.map((row) => (row.length > 3 ? row[i]!.length : 0))),
  );
  const line = (cells: readonly string[]) =>
    `${cells
      .map((cell, i) => (i < cells.length - 1 ? cell.padEnd(widths[i]!) : cell))
      .join('  ')
      .trimEnd()}\n`;
  return [line(header), ...rows.map(line)].join('');
}

async function memberCommand(positionals: readonly string[], flags: ClientFlags, io: KvCliIo): Promise<number> {
  const usage = 'member add|promote|remove <id> --endpoints LIST';
  expectArgs(positionals, 2, usage);
  const [action, idText] = positionals as [string, string];
  const node = nodeIdArg(idText);
  const types = { add: 'addLearner', promote: 'addVoter', remove: 'removeNode' } as const;
  const type = types[action as keyof typeof types];
  if (type === undefined) throw new UsageError(`unknown member action '${action}'; ${usage}`);
  return withClient(io, flags, `dsys raft member ${action}`, async (client) => {
    const index = await client.changeMembership([{ type, node }]);
    const text = `${action === 'add' ? 'added learner' : action === 'promote' ? 'promoted to voter' : 'removed'} n${node} (log index ${index})`;
    io.out(`${flags.json ? JSON.stringify({ ok: true, change: type, node, index }) : text}\n`);
    return EXIT_OK;
  });
}

/** Starts the transfer, then waits (within the deadline) until `to` reports itself leader. */
async function transferCommand(client: KvClient, to: number, flags: ClientFlags, io: KvCliIo): Promise<number> {
  const deadlineMs = performance.now() + flags.timeoutMs;
  await client.transferLeader(to);
  for (let delayMs = 10; performance.now() < deadlineMs; delayMs = Math.min(200, delayMs * 2)) {
    const statuses = await client.statusAll();
    const leader = statuses.find((entry) => entry.ok && entry.status.role === 'leader');
    if (leader?.ok === true && leader.status.node === to) {
      io.out(
        `${flags.json ? JSON.stringify({ ok: true, leader: to, term: leader.status.term }) : `n${to} leads (term ${leader.status.term})`}\n`,
      );
      return EXIT_OK;
    }
    await new Promise((resolve) => setTimeout(resolve, delayMs));
  }
  const message = `the transfer to n${to} started but n${to} was not seen leading before the deadline`;
  io.out(flags.json ? `${JSON.stringify({ error: { code: 'INDETERMINATE', message } })}\n` : '');
  io.err(`dsys raft transfer-leader: ${message}\n`);
  return EXIT_UNKNOWN;
}
