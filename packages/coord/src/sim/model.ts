/**
 * The sequential specification of znode writes, for @dsys/check: each key is a znode directly under
 * the root, absent (null) or holding a value and a version. Writes only: ZooKeeper's reads are
 * sequentially consistent, not linearizable (a follower may answer from the past), so the simulator
 * checks reads separately against the committed state at the zxid they report (`oracle.ts`).
 */
import type { History, Model } from '@dsys/check';
import { Err } from '../types.js';

export interface ZnodeState {
  readonly value: string;
  readonly version: number;
}

export type ZnodeInput =
  | { readonly type: 'create'; readonly key: string; readonly value: string }
  | { readonly type: 'delete'; readonly key: string; readonly version: number }
  /** setData, or (multi) check(version) + setData: the same outcome space. */
  | {
      readonly type: 'set';
      readonly key: string;
      readonly value: string;
      readonly version: number;
      readonly multi: boolean;
    };

export type ZnodeOutput =
  | { readonly type: 'ok'; readonly version: number }
  | { readonly type: 'err'; readonly code: number };

type Step = { ok: true; state: ZnodeState | null } | { ok: false };
const REJECT: { ok: false } = Object.freeze({ ok: false });

function outcome(state: ZnodeState | null, input: ZnodeInput): { next: ZnodeState | null; output: ZnodeOutput } {
  switch (input.type) {
    case 'create':
      if (state !== null) return { next: state, output: { type: 'err', code: Err.NODE_EXISTS } };
      return { next: { value: input.value, version: 0 }, output: { type: 'ok', version: 0 } };
    case 'delete':
      if (state === null) return { next: state, output: { type: 'err', code: Err.NO_NODE } };
      if (input.version !== -1 && input.version !== state.version) {
        return { next: state, output: { type: 'err', code: Err.BAD_VERSION } };
      }
      return { next: null, output: { type: 'ok', version: -1 } };
    case 'set': {
      if (state === null) return { next: state, output: { type: 'err', code: Err.NO_NODE } };
      if (input.version !== -1 && input.version !== state.version) {
        return { next: state, output: { type: 'err', code: Err.BAD_VERSION } };
      }
      const version = state.version + 1;
      return { next: { value: input.value, version }, output: { type: 'ok', version } };
    }
  }
}

export const znodeModel: Model<ZnodeState | null, ZnodeInput, ZnodeOutput> = {
  name: 'znode',
  init: () => null,
  step(state, input, output): Step {
    const { next, output: expected } = outcome(state, input);
    if (output === undefined) return { ok: true, state: next };
    if (output.type !== expected.type) return REJECT;
    if (output.type === 'ok' && expected.type === 'ok' && output.version !== expected.version) return REJECT;
    if (output.type === 'err' && expected.type === 'err' && output.code !== expected.code) return REJECT;
    return { ok: true, state: next };
  },
  key: (state) => (state === null ? '\u0000' : `${state.version}\u0001${state.value}`),
  partition(history) {
    const byKey = new Map<string, History<ZnodeInput, ZnodeOutput>[number][]>();
    for (const operation of history) {
      const part = byKey.get(operation.input.key);
      if (part === undefined) byKey.set(operation.input.key, [operation]);
      else part.push(operation);
    }
    return [...byKey.values()];
  },
  describePartition: (history) => `znode ${history[0]?.input.key ?? '?'}`,
  describe(input, output) {
    const args =
      input.type === 'create'
        ? `${input.key}, ${JSON.stringify(input.value)}`
        : input.type === 'delete'
          ? `${input.key}, v${input.version}`
          : `${input.key}, ${JSON.stringify(input.value)}, v${input.version}${input.multi ? ', multi' : ''}`;
    const result = output === undefined ? '?' : output.type === 'ok' ? `ok v${output.version}` : `err ${output.code}`;
    return `${input.type}(${args}) -> ${result}`;
  },
  describeState: (state) => (state === null ? 'absent' : `${JSON.stringify(state.value)} v${state.version}`),
};
