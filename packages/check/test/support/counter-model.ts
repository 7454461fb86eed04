/**
 * A model plugged in from outside the package, as a user would: a counter with `add(delta)` and
 * `read()`. Unlike the register it has no overwriting operations, and indeterminate adds commute,
 * so a read may need several 'info' adds applied back to back.
 */
import type { Model } from '../../src/types.js';

export type CounterInput = { type: 'add'; delta: number } | { type: 'read' };
export type CounterOutput = { type: 'add' } | { type: 'read'; value: number };

export const counterModel: Model<number, CounterInput, CounterOutput> = {
  name: 'counter',
  init: () => 0,
  step(state, input, output) {
    if (output !== undefined && output.type !== input.type) return { ok: false };
    if (input.type === 'add') return { ok: true, state: state + input.delta };
    if (output?.type === 'read' && output.value !== state) return { ok: false };
    return { ok: true, state };
  },
  key: (state) => String(state),
  readOnly: (input) => input.type === 'read',
  describe(input, output) {
    if (input.type === 'add') return `add(${input.delta}) -> ${output === undefined ? '?' : 'ok'}`;
    return `read() -> ${output?.type === 'read' ? output.value : '?'}`;
  },
};

export const add = (delta: number) => ({
  input: { type: 'add', delta } as CounterInput,
  output: { type: 'add' } as CounterOutput,
});
export const count = (value: number) => ({
  input: { type: 'read' } as CounterInput,
  output: { type: 'read', value } as CounterOutput,
});
