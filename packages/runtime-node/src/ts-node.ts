/**
 * How to start a TypeScript entry point as a child process without a build step:
 *   spawn(process.execPath, [...tsNodeArgs(), '/abs/path/main.ts', ...flags])
 * tsx is resolved from this package's location, not the child's cwd, so it works from any directory.
 */
import { fileURLToPath } from 'node:url';

let tsxLoader: string | null = null;

/** The absolute `file:` URL of tsx's ESM loader. */
export function tsxLoaderUrl(): string {
  tsxLoader ??= import.meta.resolve('tsx');
  return tsxLoader;
}

/** Node arguments that make the child run `.ts` files: `['--import', <tsx loader URL>]`. */
export function tsNodeArgs(): string[] {
  return ['--import', tsxLoaderUrl()];
}

/** Absolute path of a module next to `base` (pass `import.meta.url`), for spawning it. */
export function modulePath(base: string, relative: string): string {
  return fileURLToPath(new URL(relative, base));
}
