/**
 * `dsys rpc`: call any procedure of a running service from the command line, like grpcurl.
 *
 *   dsys rpc list <host:port> [--json]
 *   dsys rpc call <host:port> <procedure> '<json args>' [--timeout ms] [--json]
 *
 * The CLI knows no interface at compile time: it first binds in reflection mode (the server sends its
 * procedure texts), rebuilds each schema from its text (describe-parser.ts), then binds again with that
 * interface, fingerprints and all, and calls through the ordinary client. Arguments are JSON, with
 * bytes as {"$bytes":"<base64>"} and 64-bit integers as {"$bigint":"..."} (kit's toJsonValue).
 *
 * Exit codes: 0 ok, 1 the procedure returned an application error, 2 usage (bad flags, unknown
 * procedure, arguments that do not match the schema), 3 transport, timeout or bind failure.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { errorMessage, fromJsonValue, toJsonValue } from '@dsys/kit';
import { parseEndpoint } from '@dsys/runtime-node';
import { parseProcedure } from '../describe-parser.js';
import { RpcError } from '../errors.js';
import { type AnyProcedure, defineInterface, describeProcedure, hex, type Interface } from '../interface.js';
import { connect, type TlsClientOptions } from './tcp.js';

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

const processIo: CliIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

const HELP = `dsys rpc: call procedures of a running dsys service

Usage:
  dsys rpc list <host:port> [flags]
  dsys rpc call <host:port> <procedure> '<json args>' [flags]

Flags:
  --timeout MS   deadline of the whole command (default: 5000)
  --json         machine-readable output (one JSON value per line)
  --ca FILE      TLS: CA certificate that signed the server's certificate
  --cert FILE    TLS: client certificate (for servers that require one)
  --key FILE     TLS: client private key
  -h, --help     show this help

Arguments are JSON; bytes are {"$bytes":"<base64>"}, 64-bit integers {"$bigint":"123"}.
A stream procedure prints one item per line until the server ends it.

Exit codes: 0 ok, 1 application error, 2 usage, 3 transport, timeout or bind failure.

Examples:
  dsys rpc list 127.0.0.1:7000
  dsys rpc call 127.0.0.1:7000 add '{"delta":1,"token":7}'
`;

const EXIT_OK = 0;
const EXIT_APPLICATION = 1;
const EXIT_USAGE = 2;
const EXIT_TRANSPORT = 3;

class UsageError extends Error {}

interface Flags {
  timeoutMs: number;
  json: boolean;
  tls: TlsClientOptions | undefined;
}

/** Runs `dsys rpc ...` with `argv` (after `rpc`); returns the exit code. */
export async function rpcCli(argv: string[], io: CliIo = processIo): Promise<number> {
  let parsed: ReturnType<typeof parseCommand>;
  try {
    parsed = parseCommand(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.err(`dsys rpc: ${error.message}\nRun 'dsys rpc --help' for usage.\n`);
    return EXIT_USAGE;
  }
  if (parsed === 'help') {
    io.out(HELP);
    return EXIT_OK;
  }
  try {
    if (parsed.command === 'list') return await list(parsed.address, parsed.flags, io);
    return await call(parsed.address, parsed.procedure, parsed.argsJson, parsed.flags, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`dsys rpc: ${error.message}\n`);
      return EXIT_USAGE;
    }
    if (error instanceof RpcError) return reportRpcError(error, parsed.flags, io);
    throw error;
  }
}

type Command =
  | { command: 'list'; address: string; flags: Flags }
  | { command: 'call'; address: string; procedure: string; argsJson: string; flags: Flags };

function parseCommand(argv: string[]): Command | 'help' {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        timeout: { type: 'string' },
        json: { type: 'boolean' },
        ca: { type: 'string' },
        cert: { type: 'string' },
        key: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw new UsageError(errorMessage(error).split('\n')[0]!);
  }
  if (values.help === true || positionals.length === 0) return 'help';
  const flags = parseFlags(values);
  const [command, address, ...rest] = positionals;
  if (address === undefined) throw new UsageError(`${command} needs <host:port>`);
  const endpoint = parseEndpoint(address);
  if (!endpoint.ok) throw new UsageError(endpoint.error);
  if (command === 'list') {
    if (rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]}'`);
    return { command, address, flags };
  }
  if (command === 'call') {
    const [procedure, argsJson, ...extra] = rest;
    if (procedure === undefined) throw new UsageError('call needs <procedure>');
    if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
    return { command, address, procedure, argsJson: argsJson ?? '{}', flags };
  }
  throw new UsageError(`unknown command '${command}' (commands: list, call)`);
}

function parseFlags(values: Record<string, string | boolean | undefined>): Flags {
  let timeoutMs = 5000;
  if (typeof values.timeout === 'string') {
    if (!/^\d+$/.test(values.timeout) || Number(values.timeout) < 1) {
      throw new UsageError(`--timeout must be a positive integer (ms), got '${values.timeout}'`);
    }
    timeoutMs = Number(values.timeout);
  }
  const read = (flag: string): string | undefined => {
    const path = values[flag];
    if (typeof path !== 'string') return undefined;
    try {
      return readFileSync(path, 'utf8');
    } catch (error) {
      throw new UsageError(`--${flag}: cannot read ${path}: ${errorMessage(error)}`);
    }
  };
  const ca = read('ca');
  const cert = read('cert');
  const key = read('key');
  const tls =
    ca === undefined && cert === undefined
      ? undefined
      : {
          ...(ca === undefined ? {} : { ca }),
          ...(cert === undefined ? {} : { cert }),
          ...(key === undefined ? {} : { key }),
        };
  return { timeoutMs, json: values.json === true, tls };
}

/** An interface with no procedures and no name: binds to whatever service is there (reflection). */
const ANY_SERVICE: Interface = Object.freeze({
  name: '',
  version: 0,
  procedures: {},
  names: [],
  descriptions: [],
  fingerprints: [],
  fingerprint: new Uint8Array(16),
});

interface Described {
  service: string;
  version: number;
  fingerprint: string;
  incarnation: string;
  procedures: { name: string; description: string }[];
}

async function describe(address: string, flags: Flags): Promise<Described> {
  const connection = connect(ANY_SERVICE, address, {
    reflect: true,
    bindTimeoutMs: flags.timeoutMs,
    reconnectBackoffMaxMs: 500,
    ...(flags.tls === undefined ? {} : { tls: flags.tls }),
  });
  try {
    const info = await withTimeout(connection.ready(), flags.timeoutMs, address);
    return {
      service: info.service,
      version: info.version,
      fingerprint: hex(info.fingerprint),
      incarnation: info.incarnation.toString(16),
      procedures: [...(info.reflection ?? [])],
    };
  } finally {
    await connection.close();
  }
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, address: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new RpcError({ code: 'UNAVAILABLE', executed: 'no' }, `could not bind to ${address} within ${timeoutMs} ms`),
        ),
      timeoutMs,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function list(address: string, flags: Flags, io: CliIo): Promise<number> {
  const described = await describe(address, flags);
  if (flags.json) {
    io.out(`${JSON.stringify(described)}\n`);
    return EXIT_OK;
  }
  const lines = [
    `service ${described.service} v${described.version}  fingerprint ${described.fingerprint.slice(0, 16)}  incarnation ${described.incarnation}`,
    ...described.procedures.map((p) => `  ${p.description}`),
  ];
  io.out(`${lines.join('\n')}\n`);
  return EXIT_OK;
}

/**
 * Rebuilds the interface from the server's texts. A procedure is kept only if its rebuilt schemas
 * describe themselves exactly as the server's (then the fingerprints match and binding checks them).
 */
function rebuild(described: Described): Interface {
  const procedures: Record<string, AnyProcedure> = {};
  for (const { name, description } of described.procedures) {
    const parsed = parseProcedure(description);
    if (parsed.ok && describeProcedure(name, parsed.value.procedure) === description)
      procedures[name] = parsed.value.procedure;
  }
  return defineInterface({ name: described.service, version: described.version, procedures });
}

async function call(
  address: string,
  procedureName: string,
  argsJson: string,
  flags: Flags,
  io: CliIo,
): Promise<number> {
  const startedMs = performance.now();
  const described = await describe(address, flags);
  const known = described.procedures.find((p) => p.name === procedureName);
  if (known === undefined) {
    const names = described.procedures.map((p) => p.name).join(', ');
    throw new UsageError(`service ${described.service} has no procedure '${procedureName}' (it has: ${names})`);
  }
  const iface = rebuild(described);
  const procedure = iface.procedures[procedureName];
  if (procedure === undefined)
    throw new UsageError(`cannot rebuild the schema of ${procedureName} from '${known.description}'`);
  let args: unknown;
  try {
    args = fromJsonValue(JSON.parse(argsJson));
  } catch (error) {
    throw new UsageError(`arguments are not valid JSON: ${errorMessage(error)}`);
  }
  const problem = procedure.args.check(args, '$');
  if (problem !== null) throw new UsageError(`arguments do not match ${procedureName}: ${problem}`);
  const remainingMs = Math.max(1, Math.round(flags.timeoutMs - (performance.now() - startedMs)));
  const connection = connect(iface, address, {
    bindTimeoutMs: remainingMs,
    timeoutMs: remainingMs,
    ...(flags.tls === undefined ? {} : { tls: flags.tls }),
  });
  const stub = connection.stub as Record<string, (args: unknown, options: { timeoutMs: number }) => unknown>;
  try {
    if (procedure.kind === 'stream') {
      const items = stub[procedureName]!(args, { timeoutMs: remainingMs }) as AsyncIterable<unknown>;
      for await (const item of items) io.out(`${JSON.stringify(toJsonValue(item))}\n`);
      return EXIT_OK;
    }
    const result = await (stub[procedureName]!(args, { timeoutMs: remainingMs }) as Promise<unknown>);
    const json = toJsonValue(result);
    io.out(`${flags.json ? JSON.stringify(json) : JSON.stringify(json, null, 2)}\n`);
    return EXIT_OK;
  } finally {
    await connection.close();
  }
}

function reportRpcError(error: RpcError, flags: Flags, io: CliIo): number {
  const detail = error.detail;
  const code =
    detail.code === 'APPLICATION' ? EXIT_APPLICATION : detail.code === 'INVALID_ARGUMENT' ? EXIT_USAGE : EXIT_TRANSPORT;
  if (flags.json) {
    io.out(`${JSON.stringify({ error: { ...(toJsonValue(detail) as object), message: error.message } })}\n`);
  } else {
    const app = detail.appCode === undefined ? '' : ` [${detail.appCode}]`;
    io.err(`dsys rpc: ${detail.code}${app}: ${error.message} (executed: ${detail.executed})\n`);
  }
  return code;
}
