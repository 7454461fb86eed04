/**
 * The replicated map under both APIs: bytes keys and values with etcd's revisions (see etcd-schema.ts),
 * deterministic so that every replica applying the same commands holds the same store.
 *
 * Transactions follow etcd 3.4's applier (etcdserver/apply.go): the path through the compares
 * (nested transactions included) is chosen against the state *before* any operation runs; the chosen
 * path is checked (a put that keeps the value or lease needs its key; a range at another revision is
 * refused) and refused as a whole on failure; then its operations run in order, every write at the
 * same new revision, and a range sees the writes before it. A range follows etcd's `Range`: `count`
 * is every key in the range, the revision filters and the sort apply before the limit, `more` says
 * the limit cut the list.
 */
import { assert } from '@dsys/kit';
import { binaryOf, bytesOfBinary, compareBytes } from './bytes.js';
import type {
  Compare,
  DeleteRangeOp,
  EtcdOp,
  EtcdOpResult,
  EtcdTxn,
  EtcdTxnError,
  KeyValue,
  PutOp,
  RangeQuery,
  RangeResult,
} from './etcd-schema.js';

export interface KeyRecord {
  readonly value: Uint8Array;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
}

export type TxnOutcome =
  | { readonly ok: true; readonly revision: number; readonly succeeded: boolean; readonly responses: EtcdOpResult[] }
  | { readonly ok: false; readonly error: EtcdTxnError };

export type RangeOutcome =
  | { readonly ok: true; readonly revision: number; readonly result: RangeResult }
  | { readonly ok: false; readonly error: EtcdTxnError };

/** The compares' verdicts along the path a transaction will take, decided before it runs. */
interface TxnPlan {
  readonly succeeded: boolean;
  readonly ops: readonly EtcdOp[];
  /** The plan of each nested transaction among `ops`, in order. */
  readonly nested: readonly TxnPlan[];
}

/** A range's bounds as binary strings: `end` null is the key alone, '' every key from `start` on. */
interface KeyInterval {
  readonly start: string;
  readonly end: string | null;
}

export function intervalOf(key: Uint8Array, rangeEnd: Uint8Array): KeyInterval {
  const start = binaryOf(key);
  if (rangeEnd.length === 0) return { start, end: null };
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { start, end: '' };
  return { start, end: binaryOf(rangeEnd) };
}

export class KeyValueStore {
  /** etcd's store revision: 1 when empty, +1 per transaction that changed something. */
  revision = 1;
  /** Key and value bytes held (etcd's "db size in use", roughly). */
  bytesInUse = 0;
  private readonly data = new Map<string, KeyRecord>();
  /** Sorted keys for ranges and scans, rebuilt lazily after a key is added or removed. */
  private sortedKeys: string[] | null = null;

  get size(): number {
    return this.data.size;
  }

  lookup(key: string): KeyRecord | undefined {
    return this.data.get(key);
  }

  // ----------------------------------------------------------------------------------------------
  // Single writes (the native API), each its own revision when it changes something

  put(key: string, value: Uint8Array): void {
    this.set(key, value, this.revision + 1);
    this.revision++;
  }

  delete(key: string): boolean {
    if (!this.remove(key)) return false;
    this.revision++;
    return true;
  }

  // ----------------------------------------------------------------------------------------------
  // etcd transactions

  /** Runs `txn` (it may write): the whole of it or, on a failed check, nothing. */
  applyTxn(txn: EtcdTxn): TxnOutcome {
    const plan = this.plan(txn);
    const refused = this.checkPlan(plan);
    if (refused !== null) return { ok: false, error: refused };
    const writeRevision = this.revision + 1;
    const run = { writeRevision, wrote: false };
    const responses = this.runPlan(plan, run);
    if (run.wrote) this.revision = writeRevision;
    return { ok: true, revision: this.revision, succeeded: plan.succeeded, responses };
  }

  /** Evaluates a transaction that cannot write (`txnMayWrite` false), for the read path. */
  readTxn(txn: EtcdTxn): TxnOutcome {
    const plan = this.plan(txn);
    const refused = this.checkPlan(plan);
    if (refused !== null) return { ok: false, error: refused };
    const run = { writeRevision: this.revision + 1, wrote: false };
    const responses = this.runPlan(plan, run);
    assert(!run.wrote, 'readTxn: a read-only transaction wrote');
    return { ok: true, revision: this.revision, succeeded: plan.succeeded, responses };
  }

  range(query: RangeQuery): RangeOutcome {
    const refused = this.checkRevision(query.revision);
    if (refused !== null) return { ok: false, error: refused };
    return { ok: true, revision: this.revision, result: this.rangeNow(query) };
  }

  private plan(txn: EtcdTxn): TxnPlan {
    const succeeded = txn.compare.every((compare) => this.compare(compare));
    const ops = succeeded ? txn.success : txn.failure;
    const nested: TxnPlan[] = [];
    for (const op of ops) if (op.type === 'txn') nested.push(this.plan(op.txn));
    return { succeeded, ops, nested };
  }

  private checkPlan(plan: TxnPlan): EtcdTxnError | null {
    let nested = 0;
    for (const op of plan.ops) {
      if (op.type === 'put' && (op.ignoreValue || op.ignoreLease) && !this.data.has(binaryOf(op.key))) {
        return 'KEY_NOT_FOUND';
      }
      if (op.type === 'range') {
        const refused = this.checkRevision(op.revision);
        if (refused !== null) return refused;
      }
      if (op.type === 'txn') {
        const refused = this.checkPlan(plan.nested[nested++]!);
        if (refused !== null) return refused;
      }
    }
    return null;
  }

  private checkRevision(revision: number): EtcdTxnError | null {
    if (revision === 0 || revision === this.revision) return null;
    return revision > this.revision ? 'FUTURE_REV' : 'COMPACTED';
  }

  private runPlan(plan: TxnPlan, run: { writeRevision: number; wrote: boolean }): EtcdOpResult[] {
    const responses: EtcdOpResult[] = [];
    let nested = 0;
    for (const op of plan.ops) {
      switch (op.type) {
        case 'range':
          responses.push({ type: 'range', ...this.rangeNow(op) });
          break;
        case 'put':
          responses.push(this.runPut(op, run));
          break;
        case 'deleteRange':
          responses.push(this.runDelete(op, run));
          break;
        case 'txn': {
          const inner = plan.nested[nested++]!;
          responses.push({ type: 'txn', succeeded: inner.succeeded, responses: this.runPlan(inner, run) });
          break;
        }
      }
    }
    return responses;
  }

  private runPut(op: PutOp, run: { writeRevision: number; wrote: boolean }): EtcdOpResult {
    const key = binaryOf(op.key);
    const previous = this.data.get(key);
    // Checked before the transaction ran; an earlier operation of it may have deleted the key since.
    const value = op.ignoreValue && previous !== undefined ? previous.value : op.value;
    this.set(key, value, run.writeRevision);
    run.wrote = true;
    return { type: 'put', prevKv: op.prevKv && previous !== undefined ? keyValue(op.key, previous) : null };
  }

  private runDelete(op: DeleteRangeOp, run: { writeRevision: number; wrote: boolean }): EtcdOpResult {
    const keys = this.keysIn(intervalOf(op.key, op.rangeEnd));
    const prevKvs: KeyValue[] = [];
    for (const key of keys) {
      const record = this.data.get(key)!;
      if (op.prevKv) prevKvs.push(keyValue(bytesOfBinary(key), record));
      this.remove(key);
    }
    if (keys.length > 0) run.wrote = true;
    return { type: 'deleteRange', deleted: keys.length, prevKvs };
  }

  /** etcd's applyCompare: every key in the range must match; a missing key has zero revisions and no value. */
  private compare(compare: Compare): boolean {
    const keys = this.keysIn(intervalOf(compare.key, compare.rangeEnd));
    if (keys.length === 0) {
      // etcd: "always fail if comparing a value on a key/keys that doesn't exist".
      if (compare.target.type === 'value') return false;
      return verdict(compare, compareTarget(compare, undefined));
    }
    for (const key of keys) {
      if (!verdict(compare, compareTarget(compare, this.data.get(key)!))) return false;
    }
    return true;
  }

  private rangeNow(query: RangeQuery): RangeResult {
    const interval = intervalOf(query.key, query.rangeEnd);
    if (interval.end === null) return this.rangeOne(query, interval.start);
    const keys = this.keysIn(interval);
    const count = keys.length;
    if (query.countOnly) return { kvs: [], more: false, count };
    let records = keys.map((key) => ({ key, record: this.data.get(key)! }));
    records = records.filter(({ record }) => passesFilters(query, record));
    const order = query.sortOrder === 'none' && query.sortTarget !== 'key' ? 'ascend' : query.sortOrder;
    if (order !== 'none') sortRecords(records, query.sortTarget, order);
    let more = false;
    if (query.limit > 0 && records.length > query.limit) {
      records = records.slice(0, query.limit);
      more = true;
    }
    const kvs = records.map(({ key, record }) => keyValue(bytesOfBinary(key), record, query.keysOnly));
    return { kvs, more, count };
  }

  /** The common single-key range, without building the sorted key list. */
  private rangeOne(query: RangeQuery, key: string): RangeResult {
    const record = this.data.get(key);
    if (record === undefined) return { kvs: [], more: false, count: 0 };
    if (query.countOnly || !passesFilters(query, record)) return { kvs: [], more: false, count: 1 };
    return { kvs: [keyValue(query.key, record, query.keysOnly)], more: false, count: 1 };
  }

  /** Keys in `interval`, ascending. */
  keysIn(interval: KeyInterval): string[] {
    if (interval.end === null) return this.data.has(interval.start) ? [interval.start] : [];
    const keys = this.keysSorted();
    const out: string[] = [];
    for (let at = lowerBound(keys, interval.start); at < keys.length; at++) {
      const key = keys[at]!;
      if (interval.end !== '' && key >= interval.end) break;
      out.push(key);
    }
    return out;
  }

  /** Keys with `prefix`, ascending, from the first (for the native scan). */
  *keysWithPrefix(prefix: string): Generator<string> {
    const keys = this.keysSorted();
    for (let at = lowerBound(keys, prefix); at < keys.length; at++) {
      const key = keys[at]!;
      if (!key.startsWith(prefix)) return;
      yield key;
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Records

  private set(key: string, value: Uint8Array, revision: number): void {
    const previous = this.data.get(key);
    if (previous === undefined) {
      this.sortedKeys = null;
      this.bytesInUse += key.length + value.length;
      this.data.set(key, { value, createRevision: revision, modRevision: revision, version: 1 });
      return;
    }
    this.bytesInUse += value.length - previous.value.length;
    this.data.set(key, {
      value,
      createRevision: previous.createRevision,
      modRevision: revision,
      version: previous.version + 1,
    });
  }

  private remove(key: string): boolean {
    const previous = this.data.get(key);
    if (previous === undefined) return false;
    this.data.delete(key);
    this.sortedKeys = null;
    this.bytesInUse -= key.length + previous.value.length;
    return true;
  }

  private keysSorted(): string[] {
    if (this.sortedKeys === null) this.sortedKeys = [...this.data.keys()].sort(compareStrings);
    return this.sortedKeys;
  }

  /** Every key and record, ascending by key (for snapshots). */
  entries(): { key: string; record: KeyRecord }[] {
    return this.keysSorted().map((key) => ({ key, record: this.data.get(key)! }));
  }

  /** Restores one record from a snapshot (the caller sets `revision`). */
  restoreRecord(key: string, record: KeyRecord): void {
    this.sortedKeys = null;
    this.bytesInUse += key.length + record.value.length;
    this.data.set(key, record);
  }
}

function keyValue(key: Uint8Array, record: KeyRecord, keysOnly = false): KeyValue {
  return {
    key,
    value: keysOnly ? EMPTY : record.value,
    createRevision: record.createRevision,
    modRevision: record.modRevision,
    version: record.version,
  };
}

const EMPTY = new Uint8Array(0);

function passesFilters(query: RangeQuery, record: KeyRecord): boolean {
  if (query.maxModRevision !== 0 && record.modRevision > query.maxModRevision) return false;
  if (query.minModRevision !== 0 && record.modRevision < query.minModRevision) return false;
  if (query.maxCreateRevision !== 0 && record.createRevision > query.maxCreateRevision) return false;
  if (query.minCreateRevision !== 0 && record.createRevision < query.minCreateRevision) return false;
  return true;
}

/** Stable, with key order among equals, so that every replica answers alike. */
function sortRecords(
  records: { key: string; record: KeyRecord }[],
  target: RangeQuery['sortTarget'],
  order: 'ascend' | 'descend',
): void {
  const by = (a: { key: string; record: KeyRecord }, b: { key: string; record: KeyRecord }): number => {
    switch (target) {
      case 'key':
        return compareStrings(a.key, b.key);
      case 'version':
        return a.record.version - b.record.version;
      case 'create':
        return a.record.createRevision - b.record.createRevision;
      case 'mod':
        return a.record.modRevision - b.record.modRevision;
      case 'value':
        return compareBytes(a.record.value, b.record.value);
    }
  };
  const sign = order === 'ascend' ? 1 : -1;
  records.sort((a, b) => sign * by(a, b) || compareStrings(a.key, b.key));
}

/** compareKV's three-way result of the key's field against the operand. */
function compareTarget(compare: Compare, record: KeyRecord | undefined): number {
  const target = compare.target;
  switch (target.type) {
    case 'value':
      assert(record !== undefined, 'compareTarget: a value compare on a missing key');
      return compareBytes(record.value, target.operand);
    case 'version':
      return Math.sign((record?.version ?? 0) - target.operand);
    case 'create':
      return Math.sign((record?.createRevision ?? 0) - target.operand);
    case 'mod':
      return Math.sign((record?.modRevision ?? 0) - target.operand);
    case 'lease':
      // No leases: every key's lease is 0.
      return Math.sign(0 - target.operand);
  }
}

function verdict(compare: Compare, difference: number): boolean {
  switch (compare.result) {
    case 'equal':
      return difference === 0;
    case 'notEqual':
      return difference !== 0;
    case 'greater':
      return difference > 0;
    case 'less':
      return difference < 0;
  }
}

/** Code-unit order: on binary strings, bytewise order, the same on every replica (no locale). */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function lowerBound(keys: readonly string[], target: string): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (keys[middle]! < target) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * Why etcd would refuse `txn` before it reaches the log (etcd's checkTxnRequest and checkIntervals),
 * or null: too many operations, an empty key, or two operations writing the same key (a put twice,
 * or a put inside a deleted range; a nested transaction counts with both its branches).
 */
export function txnRequestProblem(txn: EtcdTxn, opsMax: number): string | null {
  if (txn.compare.length > opsMax || txn.success.length > opsMax || txn.failure.length > opsMax) {
    return 'too many operations in txn request';
  }
  for (const branch of [txn.success, txn.failure]) {
    const problem = branchProblem(branch, opsMax);
    if (problem !== null) return problem;
  }
  return null;
}

interface Writes {
  readonly puts: Set<string>;
  readonly deletes: KeyInterval[];
}

function branchProblem(ops: readonly EtcdOp[], opsMax: number): string | null {
  const writes: Writes = { puts: new Set(), deletes: [] };
  return collectWrites(ops, writes, opsMax);
}

function collectWrites(ops: readonly EtcdOp[], writes: Writes, opsMax: number): string | null {
  for (const op of ops) {
    switch (op.type) {
      case 'range':
      case 'deleteRange':
        if (op.key.length === 0) return 'key is not provided';
        if (op.type === 'deleteRange') writes.deletes.push(intervalOf(op.key, op.rangeEnd));
        break;
      case 'put': {
        if (op.key.length === 0) return 'key is not provided';
        const key = binaryOf(op.key);
        if (writes.puts.has(key)) return 'duplicate key given in txn request';
        writes.puts.add(key);
        break;
      }
      case 'txn': {
        const problem = txnRequestProblem(op.txn, opsMax);
        if (problem !== null) return problem;
        // etcd merges both branches of a nested transaction into the enclosing branch's writes; the
        // two branches may share keys (only one of them runs).
        const then: Writes = { puts: new Set(), deletes: [] };
        const otherwise: Writes = { puts: new Set(), deletes: [] };
        collectWrites(op.txn.success, then, opsMax);
        collectWrites(op.txn.failure, otherwise, opsMax);
        for (const key of then.puts) if (writes.puts.has(key)) return 'duplicate key given in txn request';
        for (const key of otherwise.puts) {
          if (writes.puts.has(key) && !then.puts.has(key)) return 'duplicate key given in txn request';
        }
        for (const key of [...then.puts, ...otherwise.puts]) writes.puts.add(key);
        writes.deletes.push(...then.deletes, ...otherwise.deletes);
        break;
      }
    }
  }
  for (const key of writes.puts) {
    for (const interval of writes.deletes) {
      if (contains(interval, key)) return 'duplicate key given in txn request';
    }
  }
  return null;
}

function contains(interval: KeyInterval, key: string): boolean {
  if (interval.end === null) return key === interval.start;
  return key >= interval.start && (interval.end === '' || key < interval.end);
}
