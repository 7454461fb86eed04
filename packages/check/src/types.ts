/**
 * The contract of @dsys/check: what a history is and what a model is. (Written first so that the
 * simulator and every system can record histories while the checker is built behind it.)
 */

/**
 * How an operation ended, from the client's point of view:
 * - 'ok': it took effect, with `output`;
 * - 'fail': it definitely did not take effect (rejected before being applied);
 * - 'info': indeterminate (timed out, connection lost): it may or may not have taken effect, at any
 *   time after its call. The checker treats it as possibly happening with any output the model allows,
 *   or never.
 */
export type OperationStatus = 'ok' | 'fail' | 'info';

export interface Operation<Input, Output> {
  /** Sequential id in invocation order, assigned by the recorder. */
  readonly id: number;
  /** The client (process) that issued it; a client has at most one operation outstanding. */
  readonly client: number;
  readonly input: Input;
  /** Invocation time (virtual or real ms; only the order matters). */
  readonly call: number;
  /** Completion time; `Infinity` for 'info' operations. */
  readonly return: number;
  readonly status: OperationStatus;
  /** Present when status is 'ok'. */
  readonly output?: Output;
}

export type History<Input, Output> = readonly Operation<Input, Output>[];

/**
 * A sequential specification. `step` says whether applying `input` in `state` may produce `output`,
 * and the state after. For 'info' operations the checker calls `step` with `output` undefined,
 * meaning "any output": the model must accept it and return the state after the operation.
 */
export interface Model<State, Input, Output> {
  readonly name: string;
  init(): State;
  step(state: State, input: Input, output: Output | undefined): { ok: true; state: State } | { ok: false };
  /** A string identifying the state, for memoization (Lowe's cache of (linearized set, state)). */
  key(state: State): string;
  /** Splits a history into independent sub-histories (e.g. per key), checked separately (P-compositionality). */
  partition?(history: History<Input, Output>): History<Input, Output>[];
  /** One line describing an operation, for counter-examples: `put(x, 3) -> ok`. */
  describe(input: Input, output: Output | undefined): string;
  /**
   * Optional: true when `input` never changes the state (a read). Such operations that ended 'info'
   * constrain nothing (any output, same state), so the checker drops them before searching.
   */
  readOnly?(input: Input): boolean;
  /**
   * Optional: true when the outcome of `step` for `input` does not depend on the state (accepted in
   * every state with the same resulting state, like a blind write). Lets the search skip orders of
   * indeterminate operations that cannot matter; never changes the verdict.
   */
  overwrites?(input: Input): boolean;
  /** Optional: names a sub-history returned by `partition` for counter-examples, e.g. `key "x"`. */
  describePartition?(history: History<Input, Output>): string;
  /** Optional: a short readable state for counter-examples (defaults to `key(state)`). */
  describeState?(state: State): string;
}

export type CheckResult =
  | { readonly ok: true; readonly operations: number }
  | {
      readonly ok: false;
      readonly operations: number;
      /** Short human-readable explanation: the smallest sub-history and where linearization got stuck. */
      readonly counterexample: string;
    }
  /** The search hit its step budget (deterministic, not wall time); neither proven nor refuted. */
  | { readonly ok: 'unknown'; readonly operations: number; readonly reason: string };
