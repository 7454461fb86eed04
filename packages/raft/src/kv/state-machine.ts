/**
 * The replicated key-value state machine: deterministic, so every replica that applies the same log
 * holds the same map and the same session table (Raft §1: replicated state machines).
 *
 * Sessions (dissertation §6.3): each session remembers its last sequence number and that write's
 * result. A retried write (same sequence number) returns the cached result without applying again; an
 * older one is refused. Sessions expire by *log time* (the largest leader timestamp among applied
 * commands), never by a replica's own clock, so every replica expires the same sessions at the same
 * index; when the table is full, opening a session evicts the least recently active one.
 *
 * The map itself is `KeyValueStore` (bytes keys and values with etcd's revisions): the native
 * commands (put, delete, cas on UTF-8 strings) and etcd transactions change the same keys, so
 * `etcdctl get k` reads what `dsys kv put k v` wrote and the other way round.
 */
import { assert, type Decoded, decode, encode, s } from '@dsys/kit';
import type { ReplicatedStateMachine } from '../types.js';
import { binaryOf, binaryOfText, bytesOfBinary, equalBytes, textOfBinary, textOfBytes, utf8Bytes } from './bytes.js';
import type { EtcdTxn, RangeQuery } from './etcd-schema.js';
import { KEY_BYTES_MAX, VALUE_BYTES_MAX } from './limits.js';
import {
  type KvCommand,
  type KvWriteOp,
  type KvWriteResult,
  kvCommandSchema,
  kvWriteResultSchema,
  type Origin,
} from './schema.js';
import { KeyValueStore, type RangeOutcome, type TxnOutcome } from './store.js';

/** Largest scan response, in key and value bytes; a longer scan stops early with `more`. */
export const SCAN_BYTES_MAX = 4 * 1024 * 1024;
/** Most keys or sessions a snapshot may hold (bounds decoding). */
export const SNAPSHOT_ITEMS_MAX = 50_000_000;

export interface KvStateMachineLimits {
  /** Sessions idle for longer than this (in log time) expire. */
  readonly sessionTimeoutMs: number;
  readonly sessionsMax: number;
}

interface Session {
  lastSeq: number;
  result: KvWriteResult | null;
  lastActiveMs: number;
}

export type KvApplyResult =
  | { readonly type: 'openSession'; readonly sessionId: number }
  | { readonly type: 'write'; readonly result: KvWriteResult; readonly duplicate: boolean }
  | { readonly type: 'rejected'; readonly code: 'SESSION_EXPIRED' | 'SEQ_STALE' }
  | { readonly type: 'etcdTxn'; readonly outcome: TxnOutcome; readonly origin: Origin | null }
  /** The leader's no-op, or a command that does not decode (counted; identical on every replica). */
  | { readonly type: 'none' };

const snapshotSchema = s.struct({
  version: s.u8,
  clockMs: s.uint,
  revision: s.uint,
  pairs: s.array(
    s.struct({
      key: s.bytes({ bytesMax: KEY_BYTES_MAX }),
      value: s.bytes({ bytesMax: VALUE_BYTES_MAX }),
      createRevision: s.uint,
      modRevision: s.uint,
      version: s.uint,
    }),
    { itemsMax: SNAPSHOT_ITEMS_MAX },
  ),
  sessions: s.array(
    s.struct({ id: s.uint, lastSeq: s.uint, lastActiveMs: s.uint, result: s.nullable(kvWriteResultSchema) }),
    { itemsMax: SNAPSHOT_ITEMS_MAX },
  ),
});
/** 2: bytes keys and values with revisions (1 held strings). */
const SNAPSHOT_VERSION = 2;

export class KvStateMachine implements ReplicatedStateMachine<KvApplyResult> {
  readonly store = new KeyValueStore();
  /** In least-recently-active order (a touched session is moved to the end). */
  private readonly sessions = new Map<number, Session>();
  /** Log time: the largest command timestamp applied so far. */
  private clockMs = 0;
  /** Commands that did not decode (identical on every replica). */
  undecodable = 0;

  constructor(private readonly limits: KvStateMachineLimits) {}

  get size(): number {
    return this.store.size;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** etcd's store revision (see etcd-schema.ts). */
  get revision(): number {
    return this.store.revision;
  }

  /** Applies the command of the entry at `index` (the session id of an openSession is its index). */
  apply(index: number, bytes: Uint8Array): KvApplyResult {
    if (bytes.length === 0) return { type: 'none' };
    const decoded = decode(kvCommandSchema, bytes);
    if (!decoded.ok) {
      this.undecodable++;
      return { type: 'none' };
    }
    const command = decoded.value;
    this.advanceClock(command.timeMs);
    switch (command.type) {
      case 'openSession':
        return this.openSession(index);
      case 'write':
        return this.applyWrite(command);
      case 'etcdTxn':
        return { type: 'etcdTxn', outcome: this.store.applyTxn(command.txn), origin: command.origin };
    }
  }

  private advanceClock(timeMs: number): void {
    if (timeMs <= this.clockMs) return;
    this.clockMs = timeMs;
    for (const [id, session] of this.sessions) {
      if (session.lastActiveMs + this.limits.sessionTimeoutMs >= this.clockMs) break;
      this.sessions.delete(id);
    }
  }

  private openSession(index: number): KvApplyResult {
    if (this.sessions.size >= this.limits.sessionsMax) {
      const oldest = this.sessions.keys().next();
      assert(oldest.done !== true, 'openSession: a full table has an oldest session');
      this.sessions.delete(oldest.value);
    }
    this.sessions.set(index, { lastSeq: 0, result: null, lastActiveMs: this.clockMs });
    return { type: 'openSession', sessionId: index };
  }

  private applyWrite(command: Extract<KvCommand, { type: 'write' }>): KvApplyResult {
    const session = this.sessions.get(command.sessionId);
    if (session === undefined) return { type: 'rejected', code: 'SESSION_EXPIRED' };
    this.touch(command.sessionId, session);
    if (command.seq === session.lastSeq && session.result !== null) {
      return { type: 'write', result: session.result, duplicate: true };
    }
    if (command.seq <= session.lastSeq) return { type: 'rejected', code: 'SEQ_STALE' };
    const result = this.applyOp(command.op);
    session.lastSeq = command.seq;
    session.result = result;
    return { type: 'write', result, duplicate: false };
  }

  private touch(id: number, session: Session): void {
    session.lastActiveMs = this.clockMs;
    this.sessions.delete(id);
    this.sessions.set(id, session);
  }

  private applyOp(op: KvWriteOp): KvWriteResult {
    const key = binaryOfText(op.key);
    switch (op.type) {
      case 'put':
        this.store.put(key, utf8Bytes(op.value));
        return { type: 'put' };
      case 'delete':
        return { type: 'delete', existed: this.store.delete(key) };
      case 'cas': {
        const current = this.store.lookup(key)?.value ?? null;
        const expected = op.expected === null ? null : utf8Bytes(op.expected);
        const matches = current === null || expected === null ? current === expected : equalBytes(current, expected);
        if (!matches) return { type: 'cas', ok: false };
        if (op.value === null) this.store.delete(key);
        else this.store.put(key, utf8Bytes(op.value));
        return { type: 'cas', ok: true };
      }
    }
  }

  /**
   * The cached answer for a retried write, if the session's last write had this sequence number.
   * A leader may answer from it without logging again: that write was applied already.
   */
  cachedResult(sessionId: number, seq: number): KvWriteResult | null {
    const session = this.sessions.get(sessionId);
    if (session === undefined || session.lastSeq !== seq) return null;
    return session.result;
  }

  hasSession(sessionId: number): boolean {
    return this.sessions.has(sessionId);
  }

  /** The value of a native (UTF-8) key as text; bytes that are not UTF-8 read as U+FFFD. */
  get(key: string): string | null {
    const record = this.store.lookup(binaryOfText(key));
    return record === undefined ? null : textOfBytes(record.value);
  }

  /** Keys with `prefix`, ascending, at most `limit`, within SCAN_BYTES_MAX. */
  scan(prefix: string, limit: number): { entries: { key: string; value: string }[]; more: boolean } {
    const entries: { key: string; value: string }[] = [];
    let bytes = 0;
    for (const key of this.store.keysWithPrefix(binaryOfText(prefix))) {
      const value = this.store.lookup(key)!.value;
      bytes += key.length + value.length;
      if (entries.length >= limit || (entries.length > 0 && bytes > SCAN_BYTES_MAX)) return { entries, more: true };
      entries.push({ key: textOfBinary(key), value: textOfBytes(value) });
    }
    return { entries, more: false };
  }

  /** An etcd range against the applied state (the caller decides whether that read is linearizable). */
  range(query: RangeQuery): RangeOutcome {
    return this.store.range(query);
  }

  /** A read-only etcd transaction against the applied state. */
  readTxn(txn: EtcdTxn): TxnOutcome {
    return this.store.readTxn(txn);
  }

  snapshot(): Uint8Array {
    const pairs = this.store.entries().map(({ key, record }) => ({
      key: bytesOfBinary(key),
      value: record.value,
      createRevision: record.createRevision,
      modRevision: record.modRevision,
      version: record.version,
    }));
    const sessions = [...this.sessions].map(([id, session]) => ({
      id,
      lastSeq: session.lastSeq,
      lastActiveMs: session.lastActiveMs,
      result: session.result,
    }));
    return encode(snapshotSchema, {
      version: SNAPSHOT_VERSION,
      clockMs: this.clockMs,
      revision: this.store.revision,
      pairs,
      sessions,
    });
  }

  /** Rebuilds a state machine from `snapshot()` bytes; bad bytes give a decode error, never a throw. */
  static restore(bytes: Uint8Array, limits: KvStateMachineLimits): Decoded<KvStateMachine> {
    const machine = new KvStateMachine(limits);
    if (bytes.length === 0) return { ok: true, value: machine };
    const decoded = decode(snapshotSchema, bytes);
    if (!decoded.ok) return decoded;
    const value = decoded.value;
    if (value.version !== SNAPSHOT_VERSION) {
      return { ok: false, error: { code: 'INVALID', reason: `kv snapshot version ${value.version}`, at: '$.version' } };
    }
    machine.clockMs = value.clockMs;
    machine.store.revision = value.revision;
    for (const { key, ...record } of value.pairs) {
      if (record.version < 1 || record.modRevision > value.revision || record.createRevision > record.modRevision) {
        return { ok: false, error: { code: 'INVALID', reason: 'key revisions out of order', at: '$.pairs' } };
      }
      machine.store.restoreRecord(binaryOf(key), record);
    }
    for (const session of value.sessions) {
      machine.sessions.set(session.id, {
        lastSeq: session.lastSeq,
        result: session.result ?? null,
        lastActiveMs: session.lastActiveMs,
      });
    }
    return { ok: true, value: machine };
  }
}
