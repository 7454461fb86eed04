/**
 * Sequential specifications for the checker: a single register (read / write / compare-and-set)
 * and a key-value map, which is P-compositional (Herlihy & Wing 1990, §3.3 "locality"): a history
 * is linearizable iff its sub-history for every key is, so `kvModel.partition` splits by key and each
 * part is checked as a register. Within a part the state is the key's value (`null` = absent).
 */
import type { History, Model } from './types.js';

export type RegisterInput =
  | { type: 'read' }
  | { type: 'write'; value: string }
  | { type: 'cas'; expected: string | null; value: string };

export type RegisterOutput = { type: 'read'; value: string | null } | { type: 'write' } | { type: 'cas'; ok: boolean };

export type KvInput =
  | { type: 'get'; key: string }
  | { type: 'put'; key: string; value: string }
  | { type: 'delete'; key: string }
  | { type: 'cas'; key: string; expected: string | null; value: string | null };

export type KvOutput =
  | { type: 'get'; value: string | null }
  | { type: 'put' }
  | { type: 'delete' }
  | { type: 'cas'; ok: boolean };

type Step<State> = { ok: true; state: State } | { ok: false };

const REJECT: { ok: false } = Object.freeze({ ok: false });

/**
 * Memo key of a register value. Injective without building strings on the hot path: `null` is the
 * single character U+0000, a value that starts with U+0000 gets one more U+0000 in front, any other
 * value is its own key.
 */
function valueKey(value: string | null): string {
  if (value === null) return '\u0000';
  return value.charCodeAt(0) === 0 ? `\u0000${value}` : value;
}

function show(value: string | null): string {
  return value === null ? 'null' : JSON.stringify(value);
}

/** A read of `state` that returned `observed` (`undefined`: unknown, any value allowed). */
function stepRead(state: string | null, observed: string | null | undefined): Step<string | null> {
  if (observed !== undefined && observed !== state) return REJECT;
  return { ok: true, state };
}

/** Compare-and-set: `succeeded` undefined means unknown, in which case the state decides the outcome. */
function stepCas(
  state: string | null,
  expected: string | null,
  value: string | null,
  succeeded: boolean | undefined,
): Step<string | null> {
  const matches = state === expected;
  if (succeeded !== undefined && succeeded !== matches) return REJECT;
  return { ok: true, state: matches ? value : state };
}

export const registerModel: Model<string | null, RegisterInput, RegisterOutput> = {
  name: 'register',
  init: () => null,
  step(state, input, output) {
    if (output !== undefined && output.type !== input.type) return REJECT;
    switch (input.type) {
      case 'read':
        return stepRead(state, output?.type === 'read' ? output.value : undefined);
      case 'write':
        return { ok: true, state: input.value };
      case 'cas':
        return stepCas(state, input.expected, input.value, output?.type === 'cas' ? output.ok : undefined);
    }
  },
  key: valueKey,
  readOnly: (input) => input.type === 'read',
  overwrites: (input) => input.type === 'write',
  describeState: show,
  describe(input, output) {
    switch (input.type) {
      case 'read':
        return `read() -> ${output?.type === 'read' ? show(output.value) : '?'}`;
      case 'write':
        return `write(${show(input.value)}) -> ${output === undefined ? '?' : 'ok'}`;
      case 'cas':
        return `cas(${show(input.expected)}, ${show(input.value)}) -> ${describeCasOutcome(output)}`;
    }
  },
};

function describeCasOutcome(output: { type: string; ok?: boolean } | undefined): string {
  if (output === undefined) return '?';
  return output.ok === true ? 'ok' : 'failed';
}

export const kvModel: Model<string | null, KvInput, KvOutput> = {
  name: 'kv',
  init: () => null,
  step(state, input, output) {
    if (output !== undefined && output.type !== input.type) return REJECT;
    switch (input.type) {
      case 'get':
        return stepRead(state, output?.type === 'get' ? output.value : undefined);
      case 'put':
        return { ok: true, state: input.value };
      case 'delete':
        return { ok: true, state: null };
      case 'cas':
        return stepCas(state, input.expected, input.value, output?.type === 'cas' ? output.ok : undefined);
    }
  },
  key: valueKey,
  readOnly: (input) => input.type === 'get',
  overwrites: (input) => input.type === 'put' || input.type === 'delete',
  partition(history) {
    const byKey = new Map<string, History<KvInput, KvOutput>[number][]>();
    for (const operation of history) {
      const part = byKey.get(operation.input.key);
      if (part === undefined) byKey.set(operation.input.key, [operation]);
      else part.push(operation);
    }
    return [...byKey.values()];
  },
  describePartition: (history) => (history.length === 0 ? 'empty' : `key ${JSON.stringify(history[0]!.input.key)}`),
  describeState: show,
  describe(input, output) {
    const key = input.key;
    switch (input.type) {
      case 'get':
        return `get(${key}) -> ${output?.type === 'get' ? show(output.value) : '?'}`;
      case 'put':
        return `put(${key}, ${show(input.value)}) -> ${output === undefined ? '?' : 'ok'}`;
      case 'delete':
        return `delete(${key}) -> ${output === undefined ? '?' : 'ok'}`;
      case 'cas':
        return `cas(${key}, ${show(input.expected)}, ${show(input.value)}) -> ${describeCasOutcome(output)}`;
    }
  },
};
