/**
 * A tiny notation for hand-written histories: `ok(client, call, return, write('a'))`,
 * `info(client, call, write('b'))`, `fail(client, call, return, write('c'))`, then
 * `history(...)` numbers the operations in the order given.
 */
import type { KvInput, KvOutput, RegisterInput, RegisterOutput } from '../../src/models.js';
import type { History, Operation } from '../../src/types.js';

export interface Pair<I, O> {
  readonly input: I;
  readonly output: O;
}

type Unnumbered<I, O> = Omit<Operation<I, O>, 'id'>;

export function ok<I, O>(client: number, call: number, ret: number, pair: Pair<I, O>): Unnumbered<I, O> {
  return { client, call, return: ret, status: 'ok', input: pair.input, output: pair.output };
}

export function fail<I, O>(client: number, call: number, ret: number, pair: Pair<I, O>): Unnumbered<I, O> {
  return { client, call, return: ret, status: 'fail', input: pair.input };
}

export function info<I, O>(client: number, call: number, pair: Pair<I, O>): Unnumbered<I, O> {
  return { client, call, return: Number.POSITIVE_INFINITY, status: 'info', input: pair.input };
}

export function history<I, O>(...operations: Unnumbered<I, O>[]): History<I, O> {
  return operations.map((operation, id) => ({ id, ...operation }));
}

type RegisterPair = Pair<RegisterInput, RegisterOutput>;

export const read = (value: string | null): RegisterPair => ({
  input: { type: 'read' },
  output: { type: 'read', value },
});
export const write = (value: string): RegisterPair => ({ input: { type: 'write', value }, output: { type: 'write' } });
export const cas = (expected: string | null, value: string, succeeded: boolean): RegisterPair => ({
  input: { type: 'cas', expected, value },
  output: { type: 'cas', ok: succeeded },
});

type KvPair = Pair<KvInput, KvOutput>;

export const get = (key: string, value: string | null): KvPair => ({
  input: { type: 'get', key },
  output: { type: 'get', value },
});
export const put = (key: string, value: string): KvPair => ({
  input: { type: 'put', key, value },
  output: { type: 'put' },
});
export const del = (key: string): KvPair => ({ input: { type: 'delete', key }, output: { type: 'delete' } });
export const casKey = (key: string, expected: string | null, value: string | null, succeeded: boolean): KvPair => ({
  input: { type: 'cas', key, expected, value },
  output: { type: 'cas', ok: succeeded },
});
