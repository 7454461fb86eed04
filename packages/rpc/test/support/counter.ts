/**
 * The service the tests share: a counter with a non-idempotent `add`, an idempotent `get`, a slow
 * procedure to exercise deadlines and cancellation, and a stream (`watch`).
 */
import { s } from '@dsys/kit';
import { AppError, type CallContext, defineInterface, type HandlersOf, stream, unary } from '../../src/index.js';

export const Counter = defineInterface({
  name: 'counter',
  version: 1,
  procedures: {
    add: unary({ args: s.struct({ delta: s.int, token: s.uint }), result: s.struct({ value: s.int }) }),
    get: unary({ args: s.struct({}), result: s.struct({ value: s.int }), idempotent: true }),
    slow: unary({ args: s.struct({ ms: s.uint }), result: s.bool }),
    fail: unary({ args: s.struct({ code: s.string({ bytesMax: 64 }) }), result: s.bool }),
    echo: unary({ args: s.bytes({ bytesMax: 1 << 20 }), result: s.bytes({ bytesMax: 1 << 20 }), idempotent: true }),
    watch: stream({
      args: s.struct({ count: s.uint, size: s.uint }),
      item: s.struct({ n: s.uint, pad: s.bytes({ bytesMax: 1 << 20 }) }),
    }),
  },
});

export interface CounterState {
  value: number;
  /** Executions per token: the at-most-once ledger. */
  readonly executions: Map<number, number>;
  slowAborted: number;
  watchEnded: string[];
}

export function counterState(): CounterState {
  return { value: 0, executions: new Map(), slowAborted: 0, watchEnded: [] };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });
}

/** Handlers over TCP (async allowed). */
export function counterHandlers(state: CounterState): HandlersOf<typeof Counter> {
  return {
    add({ delta, token }) {
      state.executions.set(token, (state.executions.get(token) ?? 0) + 1);
      state.value += delta;
      return { value: state.value };
    },
    get: () => ({ value: state.value }),
    async slow({ ms }, context: CallContext) {
      try {
        await sleep(ms, context.signal);
        return true;
      } catch (error) {
        state.slowAborted++;
        throw error;
      }
    },
    fail({ code }) {
      throw new AppError(code, `failed with ${code}`);
    },
    echo: (bytes) => bytes,
    async watch({ count, size }, sink) {
      try {
        for (let n = 0; n < count; n++) await sink.send({ n, pad: new Uint8Array(size) });
        state.watchEnded.push('done');
      } catch (error) {
        state.watchEnded.push(error instanceof Error ? error.message : String(error));
        throw error;
      }
    },
  };
}
