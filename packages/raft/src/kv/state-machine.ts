/**
 * The replicated key-value state machine: deterministic, so every replica that applies the same log
 * holds the same map and the same session table (Raft §1: replicated state machines).
 *
 * Sessions (dissertation §6.3): each session remembers its last sequence number and that write's
 * result. A retried write (same sequence number) returns the cached result without applying again; an
 * older one is refused. Sessions expire by *log time* (the largest leader timestamp among applied
 * commands), never by a replica's own clock, so every replica expires the same sessions at the same
 * index; when the table is full, opening a session evicts the least recently active one.
 */
import { assert, type Decoded, decode, encode, s } from '@dsys/kit';
import type { ReplicatedStateMachine } from '../types.js';
import {
  KEY_BYTES_MAX,
  type KvCommand,
  type KvWriteOp,
  type KvWriteResult,
  kvCommandSchema,
  kvWriteResultSchema,
  VALUE_BYTES_MAX,
} from './schema.js';

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
  /** The leader's no-op, or a command that does not decode (counted; identical on every replica). */
  | { readonly type: 'none' };

const snapshotSchema = s.struct({
  version: s.u8,
  clockMs: s.uint,
  pairs: s.array(
    s.struct({ key: s.string({ bytesMax: KEY_BYTES_MAX }), value: s.string({ bytesMax: VALUE_BYTES_MAX }) }),
    {
      itemsMax: SNAPSHOT_ITEMS_MAX,
    },
  ),
  sessions: s.array(
    s.struct({ id: s.uint, lastSeq: s.uint, lastActiveMs: s.uint, result: s.nullable(kvWriteResultSchema) }),
    { itemsMax: SNAPSHOT_ITEMS_MAX },
  ),
});
const SNAPSHOT_VERSION = 1;

export class KvStateMachine implements ReplicatedStateMachine<KvApplyResult> {
  private readonly data = new Map<string, string>();
  /** Sorted keys for scans, rebuilt lazily after a key is added or removed. */
  private sortedKeys: string[] | null = null;
  /** In least-recently-active order (a touched session is moved to the end). */
  private readonly sessions = new Map<number, Session>();
  /** Log time: the largest command timestamp applied so far. */
  private clockMs = 0;
  /** Commands that did not decode (identical on every replica). */
  undecodable = 0;

  constructor(private readonly limits: KvStateMachineLimits) {}

  get size(): number {
    return this.data.size;
  }

  get sessionCount(): number {
    return this.sessions.size;
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
    if (command.type === 'openSession') return this.openSession(index);
    return this.applyWrite(command);
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
    switch (op.type) {
      case 'put':
        this.set(op.key, op.value);
        return { type: 'put' };
      case 'delete':
        return { type: 'delete', existed: this.remove(op.key) };
      case 'cas': {
        const current = this.data.get(op.key) ?? null;
        if (current !== op.expected) return { type: 'cas', ok: false };
        if (op.value === null) this.remove(op.key);
        else this.set(op.key, op.value);
        return { type: 'cas', ok: true };
      }
    }
  }

  private set(key: string, value: string): void {
    if (!this.data.has(key)) this.sortedKeys = null;
    this.data.set(key, value);
  }

  private remove(key: string): boolean {
    const existed = this.data.delete(key);
    if (existed) this.sortedKeys = null;
    return existed;
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

  get(key: string): string | null {
    return this.data.get(key) ?? null;
  }

  /** Keys with `prefix`, ascending, at most `limit`, within SCAN_BYTES_MAX. */
  scan(prefix: string, limit: number): { entries: { key: string; value: string }[]; more: boolean } {
    const keys = this.keysSorted();
    let at = lowerBound(keys, prefix);
    const entries: { key: string; value: string }[] = [];
    let bytes = 0;
    for (; at < keys.length; at++) {
      const key = keys[at]!;
      if (!key.startsWith(prefix)) return { entries, more: false };
      const value = this.data.get(key)!;
      bytes += key.length + value.length;
      if (entries.length >= limit || (entries.length > 0 && bytes > SCAN_BYTES_MAX)) return { entries, more: true };
      entries.push({ key, value });
    }
    return { entries, more: false };
  }

  private keysSorted(): string[] {
    if (this.sortedKeys === null) this.sortedKeys = [...this.data.keys()].sort(compareStrings);
    return this.sortedKeys;
  }

  snapshot(): Uint8Array {
    const pairs = this.keysSorted().map((key) => ({ key, value: this.data.get(key)! }));
    const sessions = [...this.sessions].map(([id, session]) => ({
      id,
      lastSeq: session.lastSeq,
      lastActiveMs: session.lastActiveMs,
      result: session.result,
    }));
    return encode(snapshotSchema, { version: SNAPSHOT_VERSION, clockMs: this.clockMs, pairs, sessions });
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
    for (const pair of value.pairs) machine.data.set(pair.key, pair.value);
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

/** Code-unit order, the same on every replica (no locale). */
function compareStrings(a: string, b: string): number {
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
