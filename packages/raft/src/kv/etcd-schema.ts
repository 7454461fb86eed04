/**
 * etcd's v3 key-value model as kit schemas: the range queries, compares and transactions that the
 * etcd-compatible gateway (`src/real/etcd/`) turns its protobuf requests into, and that the log
 * carries. Field meanings follow etcd's `etcdserverpb.RangeRequest`, `Compare`, `RequestOp` and
 * `TxnRequest` (api/etcdserverpb/rpc.proto) and `mvccpb.KeyValue`; keys and values are bytes.
 *
 * Revisions (etcd's MVCC model, without the history): the store has one revision, 1 when empty, raised
 * by one for every transaction that changes anything (a put, or a delete that removed a key); every
 * key records the revision that created it, the one that last modified it, and its version (1 on
 * creation, +1 per modification; a deleted key starts again from 1). Only the newest revision is kept:
 * a read at an older revision is refused as compacted, as etcd does after a compaction.
 *
 * Nesting: a transaction may hold transactions (etcd 3.3+) up to `TXN_DEPTH_MAX` levels, a bound that
 * also keeps decoding a hostile entry from recursing without limit.
 */
import { DecodeFailure, type Infer, type Schema, s } from '@dsys/kit';
import { KEY_BYTES_MAX, VALUE_BYTES_MAX } from './limits.js';

/** etcd's default `--max-txn-ops`: compares, and operations per branch. */
export const TXN_OPS_MAX = 128;
/** Levels of transactions inside transactions. */
export const TXN_DEPTH_MAX = 4;
/** Most key-value pairs one range answer may list (and so decode). */
export const RANGE_ITEMS_MAX = 10_000_000;

const keyBytes = s.bytes({ bytesMax: KEY_BYTES_MAX });
const valueBytes = s.bytes({ bytesMax: VALUE_BYTES_MAX });

export const SORT_ORDERS = ['none', 'ascend', 'descend'] as const;
export type SortOrder = (typeof SORT_ORDERS)[number];
export const SORT_TARGETS = ['key', 'version', 'create', 'mod', 'value'] as const;
export type SortTarget = (typeof SORT_TARGETS)[number];
export const COMPARE_RESULTS = ['equal', 'greater', 'less', 'notEqual'] as const;
export type CompareResult = (typeof COMPARE_RESULTS)[number];

/**
 * `[key, rangeEnd)`: an empty `rangeEnd` means the key alone, a single zero byte every key from `key`
 * on. `revision` 0 reads the newest; `limit` 0 is no limit; the four bounds filter on revisions
 * (0: no bound).
 */
export const rangeQuerySchema = s.struct({
  key: keyBytes,
  rangeEnd: keyBytes,
  limit: s.uint,
  revision: s.uint,
  sortOrder: s.enum(SORT_ORDERS),
  sortTarget: s.enum(SORT_TARGETS),
  keysOnly: s.bool,
  countOnly: s.bool,
  minModRevision: s.uint,
  maxModRevision: s.uint,
  minCreateRevision: s.uint,
  maxCreateRevision: s.uint,
});
export type RangeQuery = Infer<typeof rangeQuerySchema>;

/** What a compare inspects, with its operand (etcd's `target` and `target_union`). */
const compareTargetSchema = s.union('type', {
  version: s.struct({ operand: s.int }),
  create: s.struct({ operand: s.int }),
  mod: s.struct({ operand: s.int }),
  value: s.struct({ operand: valueBytes }),
  lease: s.struct({ operand: s.int }),
});

export const compareSchema = s.struct({
  result: s.enum(COMPARE_RESULTS),
  target: compareTargetSchema,
  key: keyBytes,
  rangeEnd: keyBytes,
});
export type Compare = Infer<typeof compareSchema>;

export const putOpSchema = s.struct({
  key: keyBytes,
  value: valueBytes,
  prevKv: s.bool,
  /** Keep the current value (the key must exist). */
  ignoreValue: s.bool,
  /** Keep the current lease (the key must exist); there are no leases, so only the existence check remains. */
  ignoreLease: s.bool,
});
export type PutOp = Infer<typeof putOpSchema>;

export const deleteRangeOpSchema = s.struct({ key: keyBytes, rangeEnd: keyBytes, prevKv: s.bool });
export type DeleteRangeOp = Infer<typeof deleteRangeOpSchema>;

export type EtcdOp =
  | ({ type: 'range' } & RangeQuery)
  | ({ type: 'put' } & PutOp)
  | ({ type: 'deleteRange' } & DeleteRangeOp)
  | { type: 'txn'; txn: EtcdTxn };

export interface EtcdTxn {
  compare: Compare[];
  success: EtcdOp[];
  failure: EtcdOp[];
}

/** A schema that refuses every value: the transaction variant below the deepest allowed level. */
function tooDeep<T>(): Schema<T> {
  return {
    encode() {
      throw new RangeError(`transactions nested deeper than ${TXN_DEPTH_MAX} levels`);
    },
    read(_reader, at) {
      throw new DecodeFailure({ code: 'INVALID', reason: `transactions nested deeper than ${TXN_DEPTH_MAX}`, at });
    },
    check: (_value, path) => `${path}: transactions nested deeper than ${TXN_DEPTH_MAX} levels`,
    describe: () => 'tooDeep',
  };
}

function txnSchemaAt(depth: number): Schema<EtcdTxn> {
  const inner = depth <= 1 ? tooDeep<EtcdTxn>() : txnSchemaAt(depth - 1);
  const op = s.union('type', {
    range: rangeQuerySchema,
    put: putOpSchema,
    deleteRange: deleteRangeOpSchema,
    txn: s.struct({ txn: inner }),
  }) as Schema<EtcdOp>;
  return s.struct({
    compare: s.array(compareSchema, { itemsMax: TXN_OPS_MAX }),
    success: s.array(op, { itemsMax: TXN_OPS_MAX }),
    failure: s.array(op, { itemsMax: TXN_OPS_MAX }),
  }) as Schema<EtcdTxn>;
}

export const etcdTxnSchema: Schema<EtcdTxn> = txnSchemaAt(TXN_DEPTH_MAX);

// ------------------------------------------------------------------------------------------------
// Results

export const keyValueSchema = s.struct({
  key: keyBytes,
  value: valueBytes,
  createRevision: s.uint,
  modRevision: s.uint,
  version: s.uint,
});
/** etcd's `mvccpb.KeyValue` (no leases: its lease is always 0). */
export type KeyValue = Infer<typeof keyValueSchema>;

export const rangeResultSchema = s.struct({
  kvs: s.array(keyValueSchema, { itemsMax: RANGE_ITEMS_MAX }),
  more: s.bool,
  count: s.uint,
});
export type RangeResult = Infer<typeof rangeResultSchema>;

export type EtcdOpResult =
  | ({ type: 'range' } & RangeResult)
  | { type: 'put'; prevKv: KeyValue | null }
  | { type: 'deleteRange'; deleted: number; prevKvs: KeyValue[] }
  | { type: 'txn'; succeeded: boolean; responses: EtcdOpResult[] };

function opResultSchemaAt(depth: number): Schema<EtcdOpResult> {
  const inner =
    depth <= 1 ? tooDeep<EtcdOpResult[]>() : s.array(opResultSchemaAt(depth - 1), { itemsMax: TXN_OPS_MAX });
  return s.union('type', {
    range: rangeResultSchema,
    put: s.struct({ prevKv: s.nullable(keyValueSchema) }),
    deleteRange: s.struct({ deleted: s.uint, prevKvs: s.array(keyValueSchema, { itemsMax: RANGE_ITEMS_MAX }) }),
    txn: s.struct({ succeeded: s.bool, responses: inner }),
  }) as Schema<EtcdOpResult>;
}

export const etcdOpResultsSchema: Schema<EtcdOpResult[]> = s.array(opResultSchemaAt(TXN_DEPTH_MAX), {
  itemsMax: TXN_OPS_MAX,
});

/** Why a transaction was refused as a whole when it applied (nothing of it took effect). */
export const ETCD_TXN_ERRORS = [
  /** A put with ignore_value or ignore_lease on a missing key (etcd's ErrKeyNotFound). */
  'KEY_NOT_FOUND',
  /** A range at a revision older than the newest (only the newest is kept: etcd's ErrCompacted). */
  'COMPACTED',
  /** A range at a revision not reached yet (etcd's ErrFutureRev). */
  'FUTURE_REV',
] as const;
export type EtcdTxnError = (typeof ETCD_TXN_ERRORS)[number];

/** True when some branch of `txn` (nested ones included) may change the store. */
export function txnMayWrite(txn: EtcdTxn): boolean {
  return opsMayWrite(txn.success) || opsMayWrite(txn.failure);
}

function opsMayWrite(ops: readonly EtcdOp[]): boolean {
  for (const op of ops) {
    if (op.type === 'put' || op.type === 'deleteRange') return true;
    if (op.type === 'txn' && txnMayWrite(op.txn)) return true;
  }
  return false;
}
