/**
 * The test oracle: Wing & Gong's search ("Testing and verifying concurrent objects", 1993, §4) in
 * its plainest recursive form: at each point try every operation that may go next (called no later
 * than the earliest pending return), recurse, backtrack on failure; no memoization, no pruning.
 * Same conventions as `checkLinearizable` ('fail' dropped, 'info' may happen at any time after its
 * call or never, touching intervals count as concurrent), written independently of it, for small
 * histories only (exponential, and O(n) per step).
 */
import type { History, Model, Operation } from '../../src/types.js';

export type ExhaustiveResult = { ok: boolean; steps: number } | { ok: 'unknown'; steps: number };

class BudgetExhausted extends Error {}

export function checkExhaustive<S, I, O>(
  model: Model<S, I, O>,
  history: History<I, O>,
  stepsMax = Number.POSITIVE_INFINITY,
): ExhaustiveResult {
  let steps = 0;
  const parts = model.partition?.(history) ?? [history];
  const explore = (remaining: readonly Operation<I, O>[], state: S): boolean => {
    const pendingOk = remaining.filter((operation) => operation.status === 'ok');
    if (pendingOk.length === 0) return true; // Whatever is left is 'info' and may never have happened.
    const earliestReturn = Math.min(...pendingOk.map((operation) => operation.return));
    for (const operation of remaining) {
      if (operation.call > earliestReturn) continue;
      if (++steps > stepsMax) throw new BudgetExhausted();
      const result = model.step(state, operation.input, operation.status === 'ok' ? operation.output : undefined);
      if (
        result.ok &&
        explore(
          remaining.filter((other) => other !== operation),
          result.state,
        )
      )
        return true;
    }
    return false;
  };
  try {
    for (const part of parts) {
      const operations = part.filter((operation) => operation.status !== 'fail');
      if (!explore(operations, model.init())) return { ok: false, steps };
    }
  } catch (error) {
    if (error instanceof BudgetExhausted) return { ok: 'unknown', steps };
    throw error;
  }
  return { ok: true, steps };
}
