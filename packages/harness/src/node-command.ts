/**
 * How to run a TypeScript entry point as a child process without a build step:
 * `process.execPath --import <tsx loader URL> file.ts ...args`.
 *
 * The tsx loader is resolved from this package's own location (import.meta.resolve), not from the
 * child's cwd, so the command works whatever directory a test or the CLI runs in. An absolute file URL
 * is accepted by `--import` on every platform.
 */
import { isAbsolute, resolve } from 'node:path';

export interface ProcessCommand {
  readonly command: string;
  readonly args: readonly string[];
  /** Added to (and overriding) the parent's environment; `undefined` removes a variable. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string;
}

let tsxLoaderUrl: string | null = null;

/** The file URL of tsx's ESM loader, as `--import` takes it. */
export function tsxLoader(): string {
  tsxLoaderUrl ??= import.meta.resolve('tsx');
  return tsxLoaderUrl;
}

/** Node flags that make a child process run TypeScript: `['--import', <tsx loader URL>]`. */
export function tsxArgs(): string[] {
  return ['--import', tsxLoader()];
}

/** The command that runs the TypeScript file `file` (absolute, or relative to the current directory). */
export function nodeCommand(file: string, args: readonly string[] = []): ProcessCommand {
  const path = isAbsolute(file) ? file : resolve(file);
  return { command: process.execPath, args: [...tsxArgs(), path, ...args] };
}
