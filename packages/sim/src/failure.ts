/**
 * A failed simulation: the kind, where and when, and the seed that replays it exactly.
 */
import { DsError, formatSeed } from '@dsys/kit';

export type SimFailureCode =
  /** A node's `invariants(state)` threw. */
  | 'INVARIANT'
  /** The system's `invariantsGlobal(view)` threw. */
  | 'GLOBAL_INVARIANT'
  /** A protocol's `init` or `step` threw (a bug, or an `assert` inside it). */
  | 'STEP'
  /** A message, request or response did not survive its schema (option `wireCodec`). */
  | 'CODEC'
  /** Recovery found durable bytes damaged (the simulator never injects that, so it is a bug). */
  | 'DISK'
  /** A workload client threw. */
  | 'WORKLOAD'
  /** A scripted fault could not be applied (e.g. crashing a node that is down). */
  | 'SCRIPT'
  /** The end-of-run check (linearizability) refuted the history. */
  | 'CHECK'
  /** The liveness phase did not converge within its tick budget. */
  | 'LIVENESS'
  /** `runUntil` ran out of virtual time before its condition held. */
  | 'TIMEOUT';

export interface SimFailureDetail {
  readonly code: SimFailureCode;
  readonly system: string;
  readonly seed: bigint;
  readonly timeMs: number;
  /** The node involved, when there is one. */
  readonly node: number | null;
  readonly message: string;
}

export class SimFailure extends DsError<SimFailureDetail> {
  constructor(detail: SimFailureDetail) {
    const where = detail.node === null ? '' : ` on n${detail.node}`;
    super(
      detail,
      `${detail.code}${where} at ${detail.timeMs.toFixed(3)} ms: ${detail.message} ` +
        `(system ${detail.system}, seed ${formatSeed(detail.seed)})`,
    );
    this.name = 'SimFailure';
  }
}
