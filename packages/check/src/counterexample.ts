/**
 * Turns the deepest dead end of a failed search into a short, readable counter-example: how many
 * operations could be linearized (the longest linearizable prefix the search found), the state
 * after them, the last few of them, and the operations that were next in real-time order (called
 * before the earliest pending return), none of which leads to a full linearization. For example:
 *
 *   not linearizable (key "x"): after linearizing 3 of 7 operations, none of these can go next:
 *     client 2  [t=10..t=15]  read() -> "b"
 *   state after the prefix: "a"
 *   last linearized (3 of 3):
 *     client 1  [t=0..t=5]  write("a") -> ok
 */
import type { DeadEnd } from './search.js';
import type { Model, Operation } from './types.js';

/** Enough lines to see the conflict without drowning it. */
const CANDIDATES_SHOWN_MAX = 10;
const PREFIX_SHOWN_MAX = 5;

function formatTime(time: number): string {
  return time === Number.POSITIVE_INFINITY ? '∞' : String(time);
}

function formatOperation<S, I, O>(model: Model<S, I, O>, operation: Operation<I, O>, clientWidth: number): string {
  const client = `client ${String(operation.client).padEnd(clientWidth)}`;
  const end = operation.status === 'info' ? Number.POSITIVE_INFINITY : operation.return;
  const output = operation.status === 'ok' ? operation.output : undefined;
  return `  ${client}  [t=${formatTime(operation.call)}..t=${formatTime(end)}]  ${model.describe(operation.input, output)}`;
}

export function formatCounterexample<S, I, O>(
  model: Model<S, I, O>,
  operations: readonly Operation<I, O>[],
  deadEnd: DeadEnd<S>,
  where: string | null,
): string {
  const clientWidth = Math.max(...operations.map((operation) => String(operation.client).length));
  const line = (index: number) => formatOperation(model, operations[index]!, clientWidth);
  const place = where === null ? '' : ` (${where})`;
  const done = deadEnd.linearized.length;
  const lines = [
    `not linearizable${place}: after linearizing ${done} of ${operations.length} operations, none of these can go next:`,
  ];
  // Most candidates are refused by the model. One it accepts was pruned: the configuration it leads
  // to is one the search already refuted (possibly with fewer indeterminate operations applied).
  const refused: number[] = [];
  const pruned: number[] = [];
  let prunedInfo = 0;
  for (const index of deadEnd.candidates) {
    const operation = operations[index]!;
    const output = operation.status === 'ok' ? operation.output : undefined;
    if (!model.step(deadEnd.state, operation.input, output).ok) refused.push(index);
    else if (operation.status === 'ok') pruned.push(index);
    else prunedInfo++;
  }
  const listed = [...refused, ...pruned];
  for (const index of listed.slice(0, CANDIDATES_SHOWN_MAX))
    lines.push(refused.includes(index) ? line(index) : `${line(index)}  (applies, but leads nowhere)`);
  const hidden = listed.length - CANDIDATES_SHOWN_MAX;
  if (hidden > 0) lines.push(`  ... and ${hidden} more`);
  if (prunedInfo > 0)
    lines.push(`  (${prunedInfo} indeterminate operations could also take effect here; none leads anywhere)`);
  const state = model.describeState?.(deadEnd.state) ?? model.key(deadEnd.state);
  lines.push(`state after the prefix: ${state}`);
  if (done > 0) {
    const shown = Math.min(done, PREFIX_SHOWN_MAX);
    lines.push(`last linearized (${shown} of ${done}):`);
    for (const index of deadEnd.linearized.slice(done - shown)) lines.push(line(index));
  }
  return lines.join('\n');
}
