/**
 * The whole `dsys sim` command line as a function, so the CLI package stays a thin wrapper and each
 * system package can offer the same thing from `npm run sim`:
 *
 *   dsys sim --list                         registered systems, one a line
 *   dsys sim <system> --seed N [--trace]    one swarm run; last line `trace-hash: <hex>`
 *   dsys sim <system> --seeds N [--from S]  a campaign over seeds derived from indexes S.. S+N-1
 *
 * Exit codes: 0 all runs passed, 1 a run failed (an invariant, the checker, liveness), 2 bad usage.
 */
import { errorMessage, formatSeed, parseSeed } from '@dsys/kit';
import { describeResult, runSwarm, type SimRunResult } from './run.js';
import type { SimSystem } from './system.js';

export interface SimCliIo {
  /** Standard output lines (default console.log). */
  readonly out?: (line: string) => void;
  /** Error lines (default console.error). */
  readonly err?: (line: string) => void;
  /** A wall clock in ms, for speed in campaign summaries; the simulator itself never reads one. */
  readonly wallClockMs?: () => number;
  /** A fresh seed when neither --seed nor --seeds is given (FoundationDB: no seed = pick and print one). */
  readonly randomSeed?: () => bigint;
  /** The command that `reproduce:` lines start with; default `npx dsys sim`. */
  readonly command?: string;
}

interface ParsedArgs {
  system: string | null;
  seed: bigint | null;
  seeds: number | null;
  from: number;
  trace: boolean;
  list: boolean;
  help: boolean;
}

class UsageError extends Error {}

const USAGE = [
  'usage: dsys sim --list',
  '       dsys sim <system> [--seed N] [--trace]',
  '       dsys sim <system> --seeds COUNT [--from INDEX]',
  '',
  '  --list         print the registered systems, one a line',
  '  --seed N       run one seeded swarm run (decimal or 0x hex); prints its options, status lines,',
  '                 and as the last line `trace-hash: <hex>`',
  '  --trace        also print every event, one a line (the trace hash does not change)',
  '  --seeds COUNT  run COUNT seeds derived from indexes INDEX.., stop at the first failure',
  '  --from INDEX   first index of a campaign (default 0)',
  '  --help         this text',
  '',
  'Exit status: 0 passed, 1 a run failed (printed with a `reproduce:` line), 2 bad usage.',
];

/** Runs the `sim` command over `systems` with `argv` (the arguments after `sim`). */
export async function runSimCli(
  systems: readonly SimSystem[],
  argv: readonly string[],
  io: SimCliIo = {},
): Promise<number> {
  const out = io.out ?? ((line: string) => console.log(line));
  const err = io.err ?? ((line: string) => console.error(line));
  let args: ParsedArgs;
  try {
    args = parseArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    err(`dsys sim: ${error.message}`);
    err(`run "dsys sim --help" for usage`);
    return 2;
  }
  if (args.help) {
    for (const line of USAGE) out(line);
    out('');
    out('systems:');
    for (const system of systems) out(`  ${system.name.padEnd(16)} ${system.description}`);
    return 0;
  }
  if (args.list) {
    for (const system of systems) out(system.name);
    return 0;
  }
  const problem = checkArgs(args, systems, io);
  if (problem !== null) {
    err(`dsys sim: ${problem}`);
    return 2;
  }
  const system = systems.find((candidate) => candidate.name === args.system)!;
  const command = io.command ?? 'npx dsys sim';
  if (args.seeds !== null) return campaign(system, args.seeds, args.from, { out, err, command, clock: io.wallClockMs });
  const seed = args.seed ?? io.randomSeed!();
  return single(system, seed, args.trace, { out, command });
}

/**
 * For a system package's own script (`npm run sim -w @dsys/abd -- --seeds 1000`): the same CLI with
 * the system preselected, so `argv` need not name it.
 */
export async function runSystemCli(system: SimSystem, argv: readonly string[], io: SimCliIo = {}): Promise<number> {
  const named = argv[0] === system.name ? argv : [system.name, ...argv];
  const wantsListOrHelp = argv.includes('--list') || argv.includes('--help') || argv.includes('-h');
  return runSimCli([system], wantsListOrHelp ? argv : named, io);
}

function parseArgs(argv: readonly string[]): ParsedArgs {
  const args: ParsedArgs = { system: null, seed: null, seeds: null, from: 0, trace: false, list: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i]!;
    const equals = raw.startsWith('--') ? raw.indexOf('=') : -1;
    const flag = equals >= 0 ? raw.slice(0, equals) : raw;
    const inline = equals >= 0 ? raw.slice(equals + 1) : undefined;
    const value = (): string => {
      if (inline !== undefined) return inline;
      const next = argv[++i];
      if (next === undefined) throw new UsageError(`${flag} needs a value`);
      return next;
    };
    switch (flag) {
      case '--help':
      case '-h':
        args.help = true;
        break;
      case '--list':
        args.list = true;
        break;
      case '--trace':
        args.trace = true;
        break;
      case '--seed':
        args.seed = parseSeedArg(value());
        break;
      case '--seeds':
        args.seeds = parseCount('--seeds', value(), 1);
        break;
      case '--from':
        args.from = parseCount('--from', value(), 0);
        break;
      default:
        if (flag.startsWith('-')) throw new UsageError(`unknown option ${flag}`);
        if (args.system !== null)
          throw new UsageError(`unexpected argument "${raw}" (system already "${args.system}")`);
        args.system = raw;
    }
  }
  return args;
}

function parseSeedArg(text: string): bigint {
  try {
    return parseSeed(text);
  } catch (error) {
    throw new UsageError(`--seed: ${errorMessage(error)}`);
  }
}

function parseCount(flag: string, text: string, min: number): number {
  if (!/^[0-9]{1,15}$/.test(text) || Number(text) < min)
    throw new UsageError(`${flag} must be an integer >= ${min}, got "${text}"`);
  return Number(text);
}

function checkArgs(args: ParsedArgs, systems: readonly SimSystem[], io: SimCliIo): string | null {
  if (args.system === null) return 'name a system (see --list)';
  if (!systems.some((system) => system.name === args.system)) {
    return `unknown system "${args.system}"; registered: ${systems.map((system) => system.name).join(', ') || 'none'}`;
  }
  if (args.seed !== null && args.seeds !== null) return '--seed and --seeds exclude each other';
  if (args.seeds !== null && args.trace) return '--trace needs a single --seed';
  if (args.seeds === null && args.from !== 0) return '--from needs --seeds';
  if (args.seed === null && args.seeds === null && io.randomSeed === undefined) return 'give --seed N or --seeds COUNT';
  return null;
}

function reproduceLine(command: string, system: string, seed: bigint): string {
  return `reproduce: ${command} ${system} --seed ${formatSeed(seed)}`;
}

function single(
  system: SimSystem,
  seed: bigint,
  trace: boolean,
  io: { out: (line: string) => void; command: string },
): number {
  const { out } = io;
  out(`dsys sim ${system.name} --seed ${formatSeed(seed)}`);
  const result = runSwarm(system, seed, { out, ...(trace ? { trace: out } : {}) });
  out(describeResult(result));
  if (!result.ok) out(reproduceLine(io.command, system.name, seed));
  out(`trace-hash: ${result.traceHash}`);
  return result.ok ? 0 : 1;
}

/** The seed of campaign run `index`: splitmix64, so consecutive indexes give unrelated seeds. */
export function seedForIndex(index: number): bigint {
  if (!Number.isSafeInteger(index) || index < 0) throw new RangeError(`seedForIndex: bad index ${index}`);
  const mask = (1n << 64n) - 1n;
  let z = (BigInt(index) + 0x9e3779b97f4a7c15n) & mask;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & mask;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & mask;
  return z ^ (z >> 31n);
}

function campaign(
  system: SimSystem,
  count: number,
  from: number,
  io: {
    out: (line: string) => void;
    err: (line: string) => void;
    command: string;
    clock: (() => number) | undefined;
  },
): number {
  const { out } = io;
  const started = io.clock?.();
  const progressEvery = Math.max(1, Math.ceil(count / 20));
  out(`dsys sim ${system.name} --seeds ${count} --from ${from}`);
  let events = 0;
  let simulatedMs = 0;
  let unknown = 0;
  for (let index = from; index < from + count; index++) {
    const seed = seedForIndex(index);
    const result = runSwarm(system, seed);
    events += result.stats?.events ?? 0;
    simulatedMs += result.simulatedMs;
    if (result.check?.ok === 'unknown') unknown++;
    if (!result.ok) return reportCampaignFailure(system, index, result, io);
    const done = index - from + 1;
    if (done % progressEvery === 0 || done === count) {
      out(
        `[${String(done).padStart(String(count).length)}/${count}] index ${index} seed ${formatSeed(seed)} ${describeResult(result)}`,
      );
    }
  }
  const wallMs = started === undefined ? null : io.clock!() - started;
  const speed = wallMs === null || wallMs <= 0 ? '' : `, ${Math.round(events / (wallMs / 1000))} events/s wall`;
  const undecided = unknown === 0 ? '' : ` (${unknown} checks undecided: search budget)`;
  out(`${count} seeds passed${undecided}: ${events} events, ${(simulatedMs / 1000).toFixed(1)} s virtual${speed}`);
  return 0;
}

function reportCampaignFailure(
  system: SimSystem,
  index: number,
  result: SimRunResult,
  io: { out: (line: string) => void; command: string },
): number {
  const { out } = io;
  out(`index ${index} seed ${formatSeed(result.seed)} ${describeResult(result)}`);
  out(reproduceLine(io.command, system.name, result.seed));
  return 1;
}
