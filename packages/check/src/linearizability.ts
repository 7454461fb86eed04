/**
 * `checkLinearizable`: is there a total order of the history's operations that respects real time
 * (an operation that returned before another was called comes first) and that the sequential model
 * accepts (Herlihy & Wing 1990)? Conventions follow Jepsen/Knossos/Porcupine:
 * - 'fail' operations never took effect: they are dropped;
 * - 'info' operations may have taken effect at any point after their call, with any output the
 *   model allows, or never: their return is +Infinity and the search may leave them out;
 * - the model's `partition` (P-compositionality) splits the history; parts are checked smallest
 *   first, and the first failing part (so the smallest) is the one reported;
 * - the budget (`stepsMax`) is shared by all parts; a part that exhausts it is 'unknown', and the
 *   parts after it get nothing left unless a violation elsewhere settles the answer first.
 */
import { assert, DsError } from '@dsys/kit';
import { formatCounterexample } from './counterexample.js';
import { type DeadEnd, isDeadEnd, type SearchOperation, type SearchStrategy, search } from './search.js';
import type { CheckResult, History, Model, Operation } from './types.js';

export interface CheckOptions {
  /** Search budget in steps (candidates tried plus backtracks), over all partitions. Default 50,000,000. */
  readonly stepsMax?: number;
}

/** At 0.1 to 0.3 µs a step, 5 to 15 s of searching before answering 'unknown' (README, "Complexity and limits"). */
export const CHECK_STEPS_MAX_DEFAULT = 50_000_000;
/** The 'eager' strategy's share of the budget for a part with 'info' operations (see `searchPart`). */
const EAGER_STEPS_BASE = 100_000;
const EAGER_STEPS_PER_OPERATION = 200;

export type HistoryErrorDetail = {
  readonly code: 'INVALID_HISTORY';
  readonly operation: number;
  readonly reason: string;
};

/** Thrown for a malformed history (not for a non-linearizable one: that is a `CheckResult`). */
export class HistoryError extends DsError<HistoryErrorDetail> {}

function validateOperation(operation: Operation<unknown, unknown>): void {
  const invalid = (reason: string) => new HistoryError({ code: 'INVALID_HISTORY', operation: operation.id, reason });
  if (!Number.isFinite(operation.call)) throw invalid(`call time ${operation.call} is not finite`);
  if (operation.status === 'info') return;
  if (operation.status !== 'ok' && operation.status !== 'fail') throw invalid(`unknown status ${operation.status}`);
  if (!Number.isFinite(operation.return)) throw invalid(`${operation.status} operation has return ${operation.return}`);
  if (operation.return < operation.call) throw invalid(`returns at ${operation.return} before its call`);
  if (operation.status === 'ok' && operation.output === undefined) throw invalid('ok operation without output');
}

/** The operations the search must place: 'fail' dropped, and 'info' ones that cannot change the state. */
function searchable<I, O>(model: Model<unknown, I, O>, part: History<I, O>): Operation<I, O>[] {
  const kept = part.filter((operation) => {
    if (operation.status === 'fail') return false;
    if (operation.status === 'info' && model.readOnly?.(operation.input) === true) return false;
    return true;
  });
  return kept.sort((a, b) => a.call - b.call || a.id - b.id);
}

function toSearchOperation<I, O>(operation: Operation<I, O>): SearchOperation<I, O> {
  if (operation.status === 'info')
    return { input: operation.input, output: undefined, call: operation.call, return: Number.POSITIVE_INFINITY };
  return { input: operation.input, output: operation.output, call: operation.call, return: operation.return };
}

export function checkLinearizable<S, I, O>(
  model: Model<S, I, O>,
  history: History<I, O>,
  options: CheckOptions = {},
): CheckResult {
  const stepsMax = options.stepsMax ?? CHECK_STEPS_MAX_DEFAULT;
  if (!Number.isSafeInteger(stepsMax) || stepsMax < 1)
    throw new RangeError(`checkLinearizable: stepsMax must be a positive integer, got ${stepsMax}`);
  for (const operation of history) validateOperation(operation as Operation<unknown, unknown>);
  const parts = (model.partition?.(history) ?? [history])
    .map((part) => ({ part, operations: searchable(model as Model<unknown, I, O>, part) }))
    .sort((a, b) => a.operations.length - b.operations.length);
  let stepsLeft = stepsMax;
  let budgetHit: string | null = null;
  for (const { part, operations } of parts) {
    const where = model.partition === undefined ? null : describePart(model, part);
    const outcome = searchPart(model, operations.map(toSearchOperation), stepsLeft);
    stepsLeft -= outcome.steps;
    if (outcome.kind === 'budget') budgetHit ??= where ?? `${operations.length} operations`;
    if (outcome.kind !== 'violation') continue;
    return {
      ok: false,
      operations: history.length,
      counterexample: formatCounterexample(model, operations, outcome.deadEnd, where),
    };
  }
  if (budgetHit !== null)
    return {
      ok: 'unknown',
      operations: history.length,
      reason: `search budget of ${stepsMax} steps exhausted (${budgetHit})`,
    };
  return { ok: true, operations: history.length };
}

type PartOutcome<S> =
  | { readonly kind: 'linearizable' | 'budget'; readonly steps: number }
  | { readonly kind: 'violation'; readonly steps: number; readonly deadEnd: DeadEnd<S> };

/**
 * The 'eager' search (fast on linearizable histories: about 50 steps per operation on our 10-client
 * benchmark) gets a bounded share of the budget; if it runs out and the part has 'info' operations,
 * the 'lazy' one (better at refuting) gets the rest. Both are complete, so either verdict stands.
 * On a violation, the winning strategy re-runs to its deepest dead end for the counter-example.
 */
function searchPart<S, I, O>(
  model: Model<S, I, O>,
  operations: SearchOperation<I, O>[],
  stepsMax: number,
): PartOutcome<S> {
  if (stepsMax === 0) return { kind: 'budget', steps: 0 };
  const hasInfo = operations.some((operation) => operation.return === Number.POSITIVE_INFINITY);
  const eagerShare = Math.min(stepsMax, EAGER_STEPS_BASE + EAGER_STEPS_PER_OPERATION * operations.length);
  const strategies: SearchStrategy[] = hasInfo && eagerShare < stepsMax ? ['eager', 'lazy'] : ['eager'];
  let steps = 0;
  for (const strategy of strategies) {
    const budget = strategy === 'eager' && hasInfo ? eagerShare : stepsMax - steps;
    const result = search(model, operations, strategy, budget);
    assert(!isDeadEnd(result), 'search without stopAtDepth returned a dead end');
    steps += result.steps;
    if (result.kind === 'linearizable') return { kind: 'linearizable', steps };
    if (result.kind === 'budget') continue;
    const deadEnd = search(model, operations, strategy, result.steps, result.deepest);
    assert(isDeadEnd(deadEnd), 'the deterministic re-run did not reach the deepest dead end');
    return { kind: 'violation', steps, deadEnd };
  }
  return { kind: 'budget', steps };
}

function describePart<I, O>(model: Model<unknown, I, O>, part: History<I, O>): string {
  return model.describePartition?.(part) ?? `${part.length} operations`;
}
