/**
 * Polling for a condition with a deadline: the only way harness tests wait on real processes (never a
 * fixed sleep). The predicate may be async and may throw while the condition is not met yet (a
 * connection refused while a node restarts); the last such error is quoted if time runs out.
 */
import { errorMessage } from '@dsys/kit';
import { HarnessError } from './errors.js';

export interface WaitForOptions {
  /** What is awaited, for the timeout message: `'node 2 serves again'`. */
  readonly description: string;
  /** Default 10 s. */
  readonly timeoutMs?: number;
  /** Pause between attempts; default 25 ms. */
  readonly intervalMs?: number;
}

/**
 * Calls `predicate` until it returns a value other than `false`, `null` or `undefined`, and returns
 * that value. Throws `HarnessError` WAIT_TIMEOUT when `timeoutMs` passes first.
 */
export async function waitFor<T>(
  predicate: () => T | false | null | undefined | Promise<T | false | null | undefined>,
  options: WaitForOptions,
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 25;
  const deadlineMs = performance.now() + timeoutMs;
  let lastError: unknown = null;
  for (;;) {
    try {
      const value = await predicate();
      if (value !== false && value !== null && value !== undefined) return value;
      lastError = null;
    } catch (error) {
      lastError = error;
    }
    const leftMs = deadlineMs - performance.now();
    if (leftMs <= 0) {
      const lastAttempt = lastError === null ? null : errorMessage(lastError);
      const detail = { code: 'WAIT_TIMEOUT' as const, description: options.description, timeoutMs, lastAttempt };
      throw new HarnessError(detail, [], lastError ?? undefined);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(intervalMs, leftMs)));
  }
}
