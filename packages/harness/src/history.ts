/**
 * Recording client histories against a real cluster, for @dsys/check.
 *
 * Each operation is timed with the harness process's monotonic clock (`performance.now()`): all
 * clients run in this one process, so their call/return times are comparable, and wall-clock jumps
 * cannot reorder them. Outcomes map onto the history contract:
 * - the call resolved with a result the caller accepts             -> 'ok' with an output;
 * - it definitely did not take effect (caller's classifier says so) -> 'fail';
 * - anything else: timeout, connection lost, unknown error           -> 'info' (indeterminate).
 * 'info' is the safe default: claiming 'fail' for a write that did take effect would make the checker
 * reject a correct system. Only errors that prove the request never reached a server are 'fail' by
 * default (ECONNREFUSED: no connection was ever made).
 *
 * After an 'info' the client is retired (Jepsen's process model, enforced by `HistoryRecorder`):
 * `HistoryClient` continues under a fresh client number automatically.
 */
import type { HistoryRecorder, OperationStatus } from '@dsys/check';

/** The part of `HistoryRecorder` this module uses. */
export type RecorderLike<Input, Output> = Pick<HistoryRecorder<Input, Output>, 'invoke' | 'ok' | 'fail' | 'info'>;

export type Outcome<Output> =
  | { readonly status: 'ok'; readonly output: Output }
  | { readonly status: 'fail' }
  | { readonly status: 'info' };

export interface RecordOptions<Result, Output> {
  /** Give up waiting after this long and record 'info'; a later settlement is ignored. Default: wait forever. */
  readonly timeoutMs?: number;
  /** Maps a resolved result to an outcome (e.g. a "not leader" reply to 'fail'). Default: 'ok' with the result. */
  readonly classifyResult?: (result: Result) => Outcome<Output>;
  /** Maps a rejection to 'fail' or 'info'. Default: `classifyErrorDefault`. */
  readonly classifyError?: (error: unknown) => 'fail' | 'info';
  /** Time source in ms; default the monotonic `performance.now()`. */
  readonly clock?: () => number;
}

/** What happened, for the caller to continue its workload. */
export interface Recorded<Result> {
  /** The operation id in the history. */
  readonly id: number;
  readonly status: OperationStatus;
  /** Set when `run()` resolved. */
  readonly result?: Result;
  /** Set when `run()` rejected. */
  readonly error?: unknown;
  /** True when `timeoutMs` passed before `run()` settled. */
  readonly timedOut: boolean;
}

/** Only a refused connection is a definite failure; every other error may hide an applied operation. */
export function classifyErrorDefault(error: unknown): 'fail' | 'info' {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ECONNREFUSED' ? 'fail' : 'info';
}

export function monotonicMs(): number {
  return performance.now();
}

const TIMED_OUT: unique symbol = Symbol('timed out');

/**
 * Runs one operation and records it: `invoke` before `run()` starts, then exactly one of ok/fail/info.
 * Never throws for the operation's own failure (that is recorded); returns what happened.
 */
export async function recordOperation<Input, Output, Result = Output>(
  recorder: RecorderLike<Input, Output>,
  client: number,
  input: Input,
  run: () => Promise<Result>,
  options: RecordOptions<Result, Output> = {},
): Promise<Recorded<Result>> {
  const clock = options.clock ?? monotonicMs;
  const classifyResult =
    options.classifyResult ?? ((result: Result) => ({ status: 'ok', output: result as unknown as Output }) as const);
  const classifyError = options.classifyError ?? classifyErrorDefault;
  const id = recorder.invoke(client, input, clock());
  let timer: NodeJS.Timeout | undefined;
  try {
    const pending = run();
    const settled =
      options.timeoutMs === undefined
        ? await pending
        : await Promise.race([
            pending,
            new Promise<typeof TIMED_OUT>((resolve) => {
              timer = setTimeout(() => resolve(TIMED_OUT), options.timeoutMs);
            }),
          ]);
    if (settled === TIMED_OUT) {
      // The operation is still in flight; its eventual result (or rejection) no longer matters.
      pending.then(
        () => undefined,
        () => undefined,
      );
      recorder.info(id);
      return { id, status: 'info', timedOut: true };
    }
    const outcome = classifyResult(settled);
    if (outcome.status === 'ok') recorder.ok(id, outcome.output, clock());
    else if (outcome.status === 'fail') recorder.fail(id, clock());
    else recorder.info(id);
    return { id, status: outcome.status, result: settled, timedOut: false };
  } catch (error) {
    const status = classifyError(error);
    if (status === 'fail') recorder.fail(id, clock());
    else recorder.info(id);
    return { id, status, error, timedOut: false };
  } finally {
    clearTimeout(timer);
  }
}

/** Hands out client numbers that are never reused (retired clients stay retired). */
export class ClientNumbers {
  private next: number;

  constructor(first = 0) {
    this.next = first;
  }

  take(): number {
    return this.next++;
  }
}

/**
 * One logical client of a workload: sequential operations, recorded; after an 'info' outcome it
 * continues under a fresh client number, as the history contract requires.
 */
export class HistoryClient<Input, Output> {
  private clientNumber: number;

  constructor(
    private readonly recorder: RecorderLike<Input, Output>,
    private readonly numbers: ClientNumbers,
  ) {
    this.clientNumber = numbers.take();
  }

  get client(): number {
    return this.clientNumber;
  }

  async run<Result = Output>(
    input: Input,
    operation: () => Promise<Result>,
    options: RecordOptions<Result, Output> = {},
  ): Promise<Recorded<Result>> {
    const recorded = await recordOperation(this.recorder, this.clientNumber, input, operation, options);
    if (recorded.status === 'info') this.clientNumber = this.numbers.take();
    return recorded;
  }
}
