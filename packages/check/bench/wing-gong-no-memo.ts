/**
 * The benchmark's peer: Wing & Gong's backtracking search as Porcupine lays it out (a linked list
 * of call and return events; linearize the first call the model accepts, lift it, restart; on a
 * return that is not linearized, backtrack), but without Lowe's memoization of configurations and
 * without our pruning rules. Same per-step cost as ours (typed-array lists), so the ratio measures
 * the search, not the data structures. 'info' operations return at +Infinity, and reaching such a
 * return means every completed operation is linearized.
 */
import type { History, Model } from '../src/types.js';

export type NoMemoResult = { ok: boolean | 'unknown'; steps: number };

export function checkWingGongNoMemo<S, I, O>(
  model: Model<S, I, O>,
  history: History<I, O>,
  stepsMax: number,
): NoMemoResult {
  const operations = history.filter((op) => op.status !== 'fail');
  const count = operations.length;
  const returnOf = (i: number) => (operations[i]!.status === 'info' ? Number.POSITIVE_INFINITY : operations[i]!.return);
  const time = (node: number) => ((node & 1) === 0 ? operations[node >> 1]!.call : returnOf(node >> 1));
  const nodes = Array.from({ length: 2 * count }, (_, i) => i).sort(
    (a, b) => time(a) - time(b) || (a & 1) - (b & 1) || a - b,
  );
  const head = 2 * count;
  const next = new Int32Array(2 * count + 2);
  const prev = new Int32Array(2 * count + 2);
  let last = head;
  for (const node of nodes) {
    next[last] = node;
    prev[node] = last;
    last = node;
  }
  next[last] = head + 1;
  prev[head + 1] = last;
  const unlink = (node: number) => {
    next[prev[node]!] = next[node]!;
    prev[next[node]!] = prev[node]!;
  };
  const relink = (node: number) => {
    next[prev[node]!] = node;
    prev[next[node]!] = node;
  };
  const stack: number[] = [];
  const states: S[] = [model.init()];
  let steps = 0;
  let node = next[head]!;
  while (node !== head + 1) {
    if (++steps > stepsMax) return { ok: 'unknown', steps };
    const operation = operations[node >> 1]!;
    if ((node & 1) === 0) {
      const output = operation.status === 'ok' ? operation.output : undefined;
      const result = model.step(states[states.length - 1]!, operation.input, output);
      if (!result.ok) {
        node = next[node]!;
        continue;
      }
      stack.push(node);
      states.push(result.state);
      unlink(node);
      unlink(node + 1);
      node = next[head]!;
      continue;
    }
    if (operation.status === 'info') break;
    const top = stack.pop();
    if (top === undefined) return { ok: false, steps };
    states.pop();
    relink(top + 1);
    relink(top);
    node = next[top]!;
  }
  return { ok: true, steps };
}
