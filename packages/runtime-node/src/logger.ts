/**
 * Structured logs: one JSON object per line (to stderr by default), so `jq` and log shippers read
 * them without parsing prose. Core keys come first and cannot be overridden by fields:
 *   {"time":"2024-05-01T12:00:00.000Z","level":"warn","node":2,"msg":"connection closed","reason":"FRAME_TOO_LARGE",...}
 * Field values go through kit's `toJsonValue` (bytes as base64, bigint as string); errors log their message.
 */
import { toJsonValue } from '@dsys/kit';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFields = Readonly<Record<string, unknown>>;

const SEVERITY: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function isLogLevel(text: string): text is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(text);
}

export interface LoggerOptions {
  readonly level: LogLevel;
  /** The node id (or another short name of the process) on every line; null for none. */
  readonly node: number | string | null;
  /** Where lines go (without the trailing newline added); defaults to stderr. */
  readonly sink?: (line: string) => void;
  /** Fields on every line of this logger (e.g. `{ component: 'storage' }`). */
  readonly fields?: LogFields;
}

function stderrSink(line: string): void {
  process.stderr.write(`${line}\n`);
}

function jsonField(value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return code === undefined ? { message: value.message } : { message: value.message, code: String(code) };
  }
  return toJsonValue(value);
}

export class Logger {
  readonly level: LogLevel;
  private readonly threshold: number;
  private readonly node: number | string | null;
  private readonly sink: (line: string) => void;
  private readonly fields: LogFields;

  constructor(options: LoggerOptions) {
    this.level = options.level;
    this.threshold = SEVERITY[options.level];
    this.node = options.node;
    this.sink = options.sink ?? stderrSink;
    this.fields = options.fields ?? {};
  }

  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger {
    return new Logger({
      level: this.level,
      node: this.node,
      sink: this.sink,
      fields: { ...this.fields, ...fields },
    });
  }

  enabled(level: LogLevel): boolean {
    return SEVERITY[level] >= this.threshold;
  }

  debug(msg: string, fields?: LogFields): void {
    if (this.threshold <= SEVERITY.debug) this.write('debug', msg, fields);
  }

  info(msg: string, fields?: LogFields): void {
    if (this.threshold <= SEVERITY.info) this.write('info', msg, fields);
  }

  warn(msg: string, fields?: LogFields): void {
    if (this.threshold <= SEVERITY.warn) this.write('warn', msg, fields);
  }

  error(msg: string, fields?: LogFields): void {
    this.write('error', msg, fields);
  }

  private write(level: LogLevel, msg: string, fields: LogFields | undefined): void {
    const line: Record<string, unknown> = { time: new Date().toISOString(), level, node: this.node, msg };
    for (const source of [this.fields, fields ?? {}]) {
      for (const [key, value] of Object.entries(source)) {
        if (value !== undefined && !(key in line)) line[key] = jsonField(value);
      }
    }
    this.sink(JSON.stringify(line));
  }
}

/** A logger that keeps lines in memory (tests assert on logged reasons). */
export function memoryLogger(level: LogLevel = 'debug', node: number | string | null = null) {
  const lines: Record<string, unknown>[] = [];
  const logger = new Logger({ level, node, sink: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}
