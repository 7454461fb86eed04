/**
 * One server's watch table (ZooKeeper's WatchManager): watches live on the server the client is
 * connected to, keyed by session, and die with the connection (the client re-registers them on its
 * next server with SetWatches). Standard watches are one-shot; persistent and persistent-recursive
 * ones (ZooKeeper 3.6 addWatch) stay until removed. One trigger notifies a session at most once, even
 * when several of its watches match (ZooKeeper collects watchers into a set per trigger).
 */
import { assert } from '@dsys/kit';
import type { Trigger } from './data-tree.js';
import { parentOf } from './path.js';
import { EventType, WatcherType } from './types.js';

export type WatchKind = 'data' | 'child' | 'persistent' | 'recursive';

export interface Notification {
  readonly sessionId: number;
  readonly path: string;
  readonly type: number;
}

const KINDS: readonly WatchKind[] = ['data', 'child', 'persistent', 'recursive'];

export class WatchManager {
  private readonly tables: Record<WatchKind, Map<string, Set<number>>> = {
    data: new Map(),
    child: new Map(),
    persistent: new Map(),
    recursive: new Map(),
  };
  private readonly bySession = new Map<number, Record<WatchKind, Set<string>>>();
  private recursiveCount = 0;
  count = 0;

  add(sessionId: number, kind: WatchKind, path: string): void {
    let watchers = this.tables[kind].get(path);
    if (watchers === undefined) {
      watchers = new Set();
      this.tables[kind].set(path, watchers);
    }
    if (watchers.has(sessionId)) return;
    watchers.add(sessionId);
    this.count++;
    if (kind === 'recursive') this.recursiveCount++;
    let own = this.bySession.get(sessionId);
    if (own === undefined) {
      own = { data: new Set(), child: new Set(), persistent: new Set(), recursive: new Set() };
      this.bySession.set(sessionId, own);
    }
    own[kind].add(path);
  }

  has(sessionId: number, kind: WatchKind, path: string): boolean {
    return this.tables[kind].get(path)?.has(sessionId) ?? false;
  }

  private remove(sessionId: number, kind: WatchKind, path: string): boolean {
    const watchers = this.tables[kind].get(path);
    if (watchers === undefined || !watchers.delete(sessionId)) return false;
    if (watchers.size === 0) this.tables[kind].delete(path);
    this.bySession.get(sessionId)?.[kind].delete(path);
    this.count--;
    if (kind === 'recursive') this.recursiveCount--;
    return true;
  }

  /** removeWatches / checkWatches: which of the session's watches on `path` match `watcherType`. */
  matching(sessionId: number, path: string, watcherType: number): WatchKind[] {
    const kinds: WatchKind[] = [];
    const want = (kind: WatchKind): boolean => {
      if (watcherType === WatcherType.ANY) return true;
      if (watcherType === WatcherType.DATA) return kind === 'data' || kind === 'persistent' || kind === 'recursive';
      if (watcherType === WatcherType.CHILDREN)
        return kind === 'child' || kind === 'persistent' || kind === 'recursive';
      return false;
    };
    for (const kind of KINDS) if (want(kind) && this.has(sessionId, kind, path)) kinds.push(kind);
    return kinds;
  }

  removeKinds(sessionId: number, path: string, kinds: readonly WatchKind[]): void {
    for (const kind of kinds) this.remove(sessionId, kind, path);
  }

  /** Drops every watch of a session (its connection ended). */
  dropSession(sessionId: number): void {
    const own = this.bySession.get(sessionId);
    if (own === undefined) return;
    for (const kind of KINDS) for (const path of [...own[kind]]) this.remove(sessionId, kind, path);
    this.bySession.delete(sessionId);
  }

  /** The notifications one trigger causes, in session order; one-shot watches are consumed. */
  trigger(trigger: Trigger, out: Notification[]): void {
    const notified = new Set<number>();
    const fire = (sessionId: number): void => {
      if (notified.has(sessionId)) return;
      notified.add(sessionId);
      out.push({ sessionId, path: trigger.path, type: trigger.type });
    };
    const { path, type } = trigger;
    const oneShot: WatchKind[] =
      type === EventType.NODE_CHILDREN_CHANGED
        ? ['child']
        : type === EventType.NODE_DELETED
          ? ['data', 'child']
          : ['data'];
    for (const kind of oneShot) {
      const watchers = this.tables[kind].get(path);
      if (watchers === undefined) continue;
      for (const sessionId of [...watchers]) {
        this.remove(sessionId, kind, path);
        fire(sessionId);
      }
    }
    for (const sessionId of this.tables.persistent.get(path) ?? []) fire(sessionId);
    // Recursive watches see creations, deletions and data changes below them, never child-list events.
    if (this.recursiveCount > 0 && type !== EventType.NODE_CHILDREN_CHANGED) {
      let current = path;
      for (;;) {
        for (const sessionId of this.tables.recursive.get(current) ?? []) fire(sessionId);
        if (current === '/') break;
        current = parentOf(current);
      }
    }
  }

  invariants(): void {
    let total = 0;
    for (const kind of KINDS) for (const watchers of this.tables[kind].values()) total += watchers.size;
    assert(total === this.count, `watches: count ${this.count} != ${total}`);
  }
}
