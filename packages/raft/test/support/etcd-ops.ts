/** Builders for etcd requests in tests (every field spelled out once, defaults as etcdctl sends them). */
import type { EtcdOp, RangeQuery } from '../../src/kv/etcd-schema.js';

export const bytes = (text: string) => new TextEncoder().encode(text);
export const text = (value: Uint8Array) => new TextDecoder().decode(value);

export function query(key: string, overrides: Partial<RangeQuery> = {}): RangeQuery {
  return {
    key: bytes(key),
    rangeEnd: new Uint8Array(0),
    limit: 0,
    revision: 0,
    sortOrder: 'none',
    sortTarget: 'key',
    keysOnly: false,
    countOnly: false,
    minModRevision: 0,
    maxModRevision: 0,
    minCreateRevision: 0,
    maxCreateRevision: 0,
    ...overrides,
  };
}

export const put = (key: string, value: string, extra: Partial<Extract<EtcdOp, { type: 'put' }>> = {}): EtcdOp => ({
  type: 'put',
  key: bytes(key),
  value: bytes(value),
  prevKv: false,
  ignoreValue: false,
  ignoreLease: false,
  ...extra,
});
