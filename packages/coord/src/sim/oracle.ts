/**
 * The simulator's view of the committed history, from outside the servers: it wraps raft's
 * `RaftSafetyChecker` (Raft's safety properties after every step) and replays every newly applied
 * entry, in index order, into its own `DataTree`, recording for each path the zxid of every change.
 * Clients check their reads against it: a read answered at zxid R must show exactly the state the
 * committed history had at R, and a watch set at R must fire before the client sees any zxid at or
 * past the path's first change after R.
 */
import { assert, decode, type NodeId } from '@dsys/kit';
import { type Entry, type LogIndex, RaftSafetyChecker } from '@dsys/raft';
import type { CoordObserver } from '../config.js';
import { DataTree, type Trigger } from '../data-tree.js';
import { txnSchema } from '../schema.js';
import { EventType, zxidOf } from '../types.js';

export interface PathVersion {
  readonly zxid: number;
  readonly exists: boolean;
  readonly data: string;
  readonly version: number;
}

const text = new TextDecoder();

export class CoordOracle implements CoordObserver {
  readonly raft = new RaftSafetyChecker();
  readonly tree = new DataTree();
  private appliedIndex = 0;
  /** path -> its states, by zxid (the first entry is the state at zxid 0). */
  private readonly history = new Map<string, PathVersion[]>();
  /** path -> zxids at which its child list changed. */
  private readonly childChanges = new Map<string, number[]>();
  /** session -> zxid at which it was closed. */
  readonly closedAt = new Map<number, number>();
  lastZxid = 0;
  /** session -> the attach and write sequence of its last write transaction (FIFO check). */
  private readonly chains = new Map<number, { attach: number; writeSeq: number }>();
  /** The first broken rule found (checked by the system's global invariants). */
  violation: string | null = null;

  reset(node: NodeId, index: LogIndex): void {
    this.raft.reset(node, index);
  }

  applied(node: NodeId, entry: Entry): void {
    this.raft.applied(node, entry);
    if (entry.index <= this.appliedIndex) return;
    assert(entry.index === this.appliedIndex + 1, `oracle: entry ${entry.index} after ${this.appliedIndex}`);
    this.appliedIndex = entry.index;
    if (entry.type !== 'normal' || entry.data.length === 0) return;
    const decoded = decode(txnSchema, entry.data);
    assert(decoded.ok, `oracle: entry ${entry.index} does not decode`);
    const zxid = zxidOf(entry.term, entry.index);
    const triggers: Trigger[] = [];
    const txn = decoded.value;
    if (txn.type === 'closeSession') this.closedAt.set(txn.sessionId, zxid);
    // Writes that arrive after their session closed fail with SessionExpired, outside any chain.
    const live = !('sessionId' in txn) || !this.closedAt.has(txn.sessionId) || txn.type === 'closeSession';
    if (live && (txn.type === 'write' || txn.type === 'error' || (txn.type === 'closeSession' && !txn.expired))) {
      this.checkChain(txn.sessionId, txn.attach, txn.writeSeq, zxid);
    }
    this.tree.apply(decoded.value, zxid, entry.index, triggers);
    this.lastZxid = zxid;
    for (const trigger of triggers) {
      if (trigger.type === EventType.NODE_CHILDREN_CHANGED) {
        const list = this.childChanges.get(trigger.path);
        if (list === undefined) this.childChanges.set(trigger.path, [zxid]);
        else list.push(zxid);
        continue;
      }
      const node = this.tree.node(trigger.path);
      const state: PathVersion = {
        zxid,
        exists: node !== undefined,
        data: node === undefined ? '' : text.decode(node.data),
        version: node?.version ?? -1,
      };
      const list = this.history.get(trigger.path);
      if (list === undefined) this.history.set(trigger.path, [state]);
      else if (list[list.length - 1]!.zxid === zxid) list[list.length - 1] = state;
      else list.push(state);
    }
  }

  /**
   * FIFO client order: the writes of one connection (session and attach) reach the log exactly once
   * each, in the order the client sent them, with no gap.
   */
  private checkChain(sessionId: number, attach: number, writeSeq: number, zxid: number): void {
    const last = this.chains.get(sessionId);
    const expected = last === undefined || last.attach !== attach ? 1 : last.writeSeq + 1;
    if (last !== undefined && attach < last.attach && this.violation === null) {
      this.violation = `write of session ${sessionId.toString(16)} from stale attach ${attach} at ${zxid.toString(16)}`;
    }
    if (writeSeq !== expected && this.violation === null) {
      this.violation = `write ${writeSeq} of session 0x${sessionId.toString(16)} attach ${attach} at 0x${zxid.toString(16)}, expected ${expected}`;
    }
    this.chains.set(sessionId, { attach, writeSeq });
  }

  /** The state of `path` as of `zxid`. */
  stateAt(path: string, zxid: number): PathVersion {
    const list = this.history.get(path);
    let found: PathVersion = { zxid: 0, exists: path === '/', data: '', version: path === '/' ? 0 : -1 };
    if (list === undefined) return found;
    for (const state of list) {
      if (state.zxid > zxid) break;
      found = state;
    }
    return found;
  }

  /** zxid of the first change to `path`'s data or existence after `zxid` (null: none yet). */
  firstDataChangeAfter(path: string, zxid: number): number | null {
    for (const state of this.history.get(path) ?? []) if (state.zxid > zxid) return state.zxid;
    return null;
  }

  /** zxid of the first event a child watch on `path` set at `zxid` must report (child list change or deletion). */
  firstChildEventAfter(path: string, zxid: number): number | null {
    let first: number | null = null;
    for (const change of this.childChanges.get(path) ?? []) {
      if (change > zxid) {
        first = change;
        break;
      }
    }
    for (const state of this.history.get(path) ?? []) {
      if (state.zxid > zxid && !state.exists) {
        if (first === null || state.zxid < first) first = state.zxid;
        break;
      }
    }
    return first;
  }

  /** Every node still owned by `sessionId` in the committed state. */
  ephemeralsOf(sessionId: number): string[] {
    return this.tree.ephemeralsOf(sessionId, '/');
  }
}
