/**
 * Flags of a Chord node process, parsed with node:util's parseArgs into a typed result: bad input is
 * a message naming the flag, never an exception.
 */
import { parseArgs } from 'node:util';

export interface NodeFlags {
  readonly host: string;
  readonly port: number;
  /** Members to join through; empty: create a new ring. */
  readonly join: readonly string[];
  readonly dataDir: string | null;
  readonly vnodes: number;
  readonly replicas: number;
  readonly successors: number;
  readonly tickMs: number;
  readonly logLevel: string;
  readonly help: boolean;
}

export const nodeFlagsUsage = [
  'usage: dsys chord start [--host H] [--port P] [--join HOST:PORT[,HOST:PORT...]] [--data-dir D]',
  '                        [--vnodes K] [--replicas R] [--successors N] [--tick-ms T]',
  '                        [--log-level debug|info|warn|error]',
  '',
  '  --host H         address to listen on (default 127.0.0.1)',
  '  --port P         port to listen on (default 0: any free port, or the one the data dir had)',
  '  --join LIST      join the ring through any of these members, tried in turn',
  '                   (default: create a new ring)',
  '  --data-dir D     keep items in a durable log in D (fsynced before a put is acknowledged);',
  '                   a restart on D takes back the same host:port and items (default: memory only)',
  '  --vnodes K       virtual nodes on this node (default 1, max 64)',
  '  --replicas R     copies of each key on distinct nodes (default 3)',
  '  --successors N   successor list length (default 8, at least R)',
  '  --tick-ms T      protocol tick (default 50 ms; stabilize every 4 ticks)',
  '',
  'Prints `ready: <host:port>` once it serves; stops on SIGINT/SIGTERM.',
].join('\n');

/** Members `--join` may name. */
const JOIN_SEEDS_MAX = 64;

function integer(name: string, text: string | undefined, fallback: number, min: number, max: number): number | string {
  if (text === undefined) return fallback;
  if (!/^[0-9]{1,9}$/.test(text)) return `--${name} must be an integer, got "${text}"`;
  const value = Number(text);
  if (value < min || value > max) return `--${name} must be in [${min}, ${max}], got ${value}`;
  return value;
}

export function parseNodeFlags(argv: readonly string[]): { ok: true; value: NodeFlags } | { ok: false; error: string } {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        join: { type: 'string' },
        'data-dir': { type: 'string' },
        vnodes: { type: 'string' },
        replicas: { type: 'string' },
        successors: { type: 'string' },
        'tick-ms': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message.split('\n')[0]! : String(error) };
  }
  const text = (name: string) => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
  const port = integer('port', text('port'), 0, 0, 65535);
  const vnodes = integer('vnodes', text('vnodes'), 1, 1, 64);
  const replicas = integer('replicas', text('replicas'), 3, 1, 16);
  const successors = integer('successors', text('successors'), 8, 1, 64);
  const tickMs = integer('tick-ms', text('tick-ms'), 50, 1, 60_000);
  for (const value of [port, vnodes, replicas, successors, tickMs])
    if (typeof value === 'string') return { ok: false, error: value };
  if ((successors as number) < (replicas as number)) {
    return { ok: false, error: `--successors (${successors}) must be at least --replicas (${replicas})` };
  }
  const joinText = text('join');
  const join = joinText === undefined ? [] : joinText.split(',');
  if (join.length > JOIN_SEEDS_MAX) return { ok: false, error: `--join names more than ${JOIN_SEEDS_MAX} members` };
  for (const seed of join) {
    if (!/^[^:,]+:[0-9]{1,5}$/.test(seed)) return { ok: false, error: `--join must be HOST:PORT[,...], got "${seed}"` };
  }
  const dataDir = text('data-dir') ?? null;
  if (dataDir === '') return { ok: false, error: '--data-dir must not be empty' };
  return {
    ok: true,
    value: {
      host: text('host') ?? '127.0.0.1',
      port: port as number,
      join,
      dataDir,
      vnodes: vnodes as number,
      replicas: replicas as number,
      successors: successors as number,
      tickMs: tickMs as number,
      logLevel: text('log-level') ?? 'info',
      help: values.help === true,
    },
  };
}
