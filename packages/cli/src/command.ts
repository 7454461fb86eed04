/**
 * A small command tree on node:util's parseArgs: `--help` at every level, unknown flags and
 * missing values rejected with a usage error (exit 2), and help text generated from the same
 * declarations that parse the flags, so the two cannot drift apart.
 */
import { parseArgs } from 'node:util';
import { DsError } from '@dsys/kit';

export interface FlagSpec {
  type: 'string' | 'boolean';
  description: string;
  short?: string;
  default?: string | boolean;
  /** Placeholder in help text, e.g. `N` for `--nodes N`. */
  value?: string;
  multiple?: boolean;
}

export type Flags = Record<string, string | boolean | string[] | undefined>;

export interface Command {
  name: string;
  summary: string;
  /** Extra help text after the flag list (examples, exit codes). */
  details?: string;
  /** Positional arguments, for help only, e.g. `<key> [value]`. */
  positionals?: string;
  flags?: Record<string, FlagSpec>;
  subcommands?: Command[];
  /** Takes the parsed flags and positionals; returns the exit code. */
  run?: (flags: Flags, positionals: string[]) => Promise<number> | number;
  /** Pass raw argv to `run` untouched (for commands that parse their own flags). */
  rawArgs?: (argv: string[]) => Promise<number> | number;
  /**
   * Exit code for a usage error (default 2). Client commands whose exit code 2 means "outcome
   * unknown" (`dsys kv`) use 64 (EX_USAGE) so a script can tell the two apart.
   */
  usageExitCode?: number;
}

export class UsageError extends DsError<{ code: 'USAGE'; command: string }> {
  exitCode = 2;
  constructor(command: string, message: string) {
    super({ code: 'USAGE', command }, message);
  }
}

export function helpText(command: Command, path: string[]): string {
  const name = path.join(' ');
  const lines: string[] = [];
  const hasSub = (command.subcommands?.length ?? 0) > 0;
  const usage = [name, hasSub ? '<command>' : '', command.positionals ?? '', '[flags]'].filter(Boolean).join(' ');
  lines.push(`${name}: ${command.summary}`, '', `Usage: ${usage}`);
  if (hasSub) {
    lines.push('', 'Commands:');
    const width = Math.max(...command.subcommands!.map((c) => c.name.length));
    for (const sub of command.subcommands!) lines.push(`  ${sub.name.padEnd(width)}  ${sub.summary}`);
  }
  const flags = Object.entries(command.flags ?? {});
  lines.push('', 'Flags:');
  const rendered = flags.map(([flag, spec]) => {
    const short = spec.short ? `-${spec.short}, ` : '';
    const value = spec.type === 'string' ? ` ${spec.value ?? 'VALUE'}` : '';
    const fallback = spec.default !== undefined && spec.default !== false ? ` (default: ${String(spec.default)})` : '';
    return [`${short}--${flag}${value}`, `${spec.description}${fallback}`] as const;
  });
  rendered.push(['-h, --help', 'show this help']);
  const width = Math.max(...rendered.map(([left]) => left.length));
  for (const [left, right] of rendered) lines.push(`  ${left.padEnd(width)}  ${right}`);
  if (hasSub) lines.push('', `Run '${name} <command> --help' for a command's flags.`);
  if (command.details) lines.push('', command.details.trim());
  return `${lines.join('\n')}\n`;
}

/** Runs the command tree on argv; prints usage errors to stderr and returns the exit code. */
export async function runCommand(command: Command, argv: string[], path: string[] = [command.name]): Promise<number> {
  try {
    return await dispatch(command, argv, path);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(
        `${error.detail.command}: ${error.message}\nRun '${error.detail.command} --help' for usage.\n`,
      );
      return error.exitCode;
    }
    throw error;
  }
}

async function dispatch(command: Command, argv: string[], path: string[]): Promise<number> {
  try {
    return await dispatchInner(command, argv, path);
  } catch (error) {
    if (error instanceof UsageError && command.usageExitCode !== undefined && error.exitCode === 2) {
      error.exitCode = command.usageExitCode;
    }
    throw error;
  }
}

async function dispatchInner(command: Command, argv: string[], path: string[]): Promise<number> {
  const name = path.join(' ');
  const first = argv[0];
  if (command.subcommands && first !== undefined && !first.startsWith('-')) {
    const sub = command.subcommands.find((c) => c.name === first);
    if (sub === undefined) {
      throw new UsageError(
        name,
        `unknown command '${first}' (commands: ${command.subcommands.map((c) => c.name).join(', ')})`,
      );
    }
    return dispatch(sub, argv.slice(1), [...path, sub.name]);
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(helpText(command, path));
    return 0;
  }
  if (command.rawArgs) return command.rawArgs(argv);
  if (!command.run) {
    if (argv.length === 0) {
      process.stdout.write(helpText(command, path));
      return 2;
    }
    throw new UsageError(name, `unexpected argument '${argv[0]}'`);
  }
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [flag, spec] of Object.entries(command.flags ?? {})) {
    options[flag] = {
      type: spec.type,
      ...(spec.short ? { short: spec.short } : {}),
      ...(spec.multiple ? { multiple: true } : {}),
    };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(name, error instanceof Error ? error.message.split('\n')[0]! : String(error));
  }
  const flags: Flags = {};
  for (const [flag, spec] of Object.entries(command.flags ?? {})) {
    flags[flag] = (parsed.values[flag] as Flags[string]) ?? spec.default;
  }
  return command.run(flags, parsed.positionals);
}

// Flag readers: each names the flag in its error, so the user knows what to fix.

export function stringFlag(flags: Flags, name: string, command: string): string {
  const value = flags[name];
  if (typeof value !== 'string' || value === '') throw new UsageError(command, `--${name} is required`);
  return value;
}

export function optionalString(flags: Flags, name: string): string | undefined {
  const value = flags[name];
  return typeof value === 'string' ? value : undefined;
}

export function intFlag(flags: Flags, name: string, command: string, range: { min: number; max: number }): number {
  const raw = flags[name];
  if (raw === undefined) throw new UsageError(command, `--${name} is required`);
  const value = Number(raw);
  if (typeof raw !== 'string' || !/^-?\d+$/.test(raw) || !Number.isSafeInteger(value)) {
    throw new UsageError(command, `--${name} must be an integer, got '${String(raw)}'`);
  }
  if (value < range.min || value > range.max) {
    throw new UsageError(command, `--${name} must be between ${range.min} and ${range.max}, got ${value}`);
  }
  return value;
}
