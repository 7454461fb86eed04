/**
 * The replicated state: ZooKeeper's DataTree (znodes by path, each with data, stat and children)
 * and the session table (owner of ephemeral nodes, password, attach counter, FIFO write chain).
 *
 * `apply(txn, zxid)` is the only mutation; it is deterministic and takes every decided value from
 * the transaction. The same class serves as the leader's *speculative view* (ZooKeeper's
 * outstandingChanges): an overlay tree with a `base` reads through to it and copies a node or a
 * session on first write, stamping it with the log index of the proposal; once the base has applied
 * that index the copy is dropped (`forget`). The leader prepares each request against the view, so
 * versions, sequence numbers and session state account for proposals still in flight.
 *
 * Overlay copies do not carry child name sets (only `numChildren`): preparation never lists children,
 * and copying a large directory on every create would make a busy parent quadratic.
 */
import { assert, DecodeFailure, type Infer, Reader, s, Writer } from '@dsys/kit';
import { childPath, isWithin, parentOf, pathProblem } from './path.js';
import type { MultiResult, Result, Txn, TxnOp } from './schema.js';
import { EventType, type NodeKind, type Stat } from './types.js';

export interface ZNode {
  data: Uint8Array;
  czxid: number;
  mzxid: number;
  pzxid: number;
  ctime: number;
  mtime: number;
  version: number;
  cversion: number;
  aversion: number;
  ephemeralOwner: number;
  kind: NodeKind;
  ttlMs: number;
  numChildren: number;
  /** Child names (insertion order); null in overlay copies. */
  children: Set<string> | null;
}

export interface Session {
  readonly id: number;
  readonly timeoutMs: number;
  readonly password: Uint8Array;
  /** Incremented by every (re)connect through the log; a connection with an older attach is stale. */
  attach: number;
  /** The connect that produced `attach` (a duplicate forward of it is recognized). */
  attachToken: number;
  /** Last write of the current attach placed in the log (ZooKeeper's per-session FIFO, made checkable). */
  lastWriteSeq: number;
  ephemerals: Set<string>;
}

/** A watch trigger produced by applying a transaction (the server's WatchManager routes it). */
export interface Trigger {
  readonly path: string;
  readonly type: number;
}

export type Applied =
  | { readonly type: 'sessionCreated'; readonly sessionId: number; readonly token: number }
  | { readonly type: 'sessionAttached'; readonly sessionId: number; readonly attach: number; readonly token: number }
  | { readonly type: 'connectRefused'; readonly token: number; readonly sessionId: number; readonly err: number }
  | {
      readonly type: 'sessionClosed';
      readonly sessionId: number;
      readonly attach: number;
      readonly writeSeq: number;
      readonly expired: boolean;
    }
  | {
      readonly type: 'write';
      readonly sessionId: number;
      readonly attach: number;
      readonly writeSeq: number;
      readonly err: number;
      readonly result: Result;
    }
  | { readonly type: 'none' };

const ROOT_CHILDREN = ['zookeeper'];
/** Paths ZooKeeper reserves: they exist from the start and cannot be deleted. */
export const SPECIAL_PATHS: ReadonlySet<string> = new Set(['/', '/zookeeper', '/zookeeper/quota', '/zookeeper/config']);

function emptyNode(kind: NodeKind = 'persistent'): ZNode {
  return {
    data: new Uint8Array(0),
    czxid: 0,
    mzxid: 0,
    pzxid: 0,
    ctime: 0,
    mtime: 0,
    version: 0,
    cversion: 0,
    aversion: 0,
    ephemeralOwner: 0,
    kind,
    ttlMs: 0,
    numChildren: 0,
    children: new Set(),
  };
}

export function statOf(node: ZNode): Stat {
  return {
    czxid: node.czxid,
    mzxid: node.mzxid,
    pzxid: node.pzxid,
    ctime: node.ctime,
    mtime: node.mtime,
    version: node.version,
    cversion: node.cversion,
    aversion: node.aversion,
    ephemeralOwner: node.ephemeralOwner,
    dataLength: node.data.length,
    numChildren: node.numChildren,
    kind: node.kind,
    ttlMs: node.ttlMs,
  };
}

const TOMBSTONE = null;

export class DataTree {
  private readonly nodes = new Map<string, ZNode | null>();
  private readonly sessions = new Map<number, Session | null>();
  readonly base: DataTree | null;
  /** Overlay only: log index of the proposal that last wrote each path / session. */
  private readonly pathStamps = new Map<string, number>();
  private readonly sessionStamps = new Map<number, number>();
  private stampIndex = 0;
  /** Base only: connect token -> session, so a duplicated connect is recognized. */
  private readonly sessionByToken = new Map<number, number>();
  /** Base only: candidates for the leader's reaper. */
  readonly containers = new Set<string>();
  readonly ttlNodes = new Set<string>();
  /** zxid of the last applied transaction. */
  lastZxid = 0;
  dataBytes = 0;
  nodeCount = 0;

  constructor(base: DataTree | null = null) {
    this.base = base;
    if (base !== null) return;
    const root = emptyNode();
    this.nodes.set('/', root);
    for (const name of ROOT_CHILDREN) root.children!.add(name);
    root.numChildren = ROOT_CHILDREN.length;
    const zk = emptyNode();
    zk.children!.add('quota');
    zk.children!.add('config');
    zk.numChildren = 2;
    this.nodes.set('/zookeeper', zk);
    this.nodes.set('/zookeeper/quota', emptyNode());
    this.nodes.set('/zookeeper/config', emptyNode());
    this.nodeCount = 4;
  }

  /** A fresh speculative view on top of this tree. */
  overlay(): DataTree {
    return new DataTree(this);
  }

  get isOverlay(): boolean {
    return this.base !== null;
  }

  node(path: string): ZNode | undefined {
    const own = this.nodes.get(path);
    if (own !== undefined) return own ?? undefined;
    return this.base?.node(path);
  }

  session(id: number): Session | undefined {
    const own = this.sessions.get(id);
    if (own !== undefined) return own ?? undefined;
    return this.base?.session(id);
  }

  sessionForToken(token: number): number | undefined {
    let tree: DataTree | null = this;
    while (tree !== null) {
      const id = tree.sessionByToken.get(token);
      if (id !== undefined) return this.session(id) === undefined ? undefined : id;
      tree = tree.base;
    }
    return undefined;
  }

  /** Every live session id (base and overlay), ascending. */
  sessionIds(): number[] {
    const ids = new Set<number>();
    for (const id of this.base?.sessionIds() ?? []) ids.add(id);
    for (const [id, session] of this.sessions) {
      if (session === TOMBSTONE) ids.delete(id);
      else ids.add(id);
    }
    return [...ids].sort((a, b) => a - b);
  }

  get sessionCount(): number {
    return this.isOverlay ? this.sessionIds().length : this.sessions.size;
  }

  /** Drops overlay copies the base has caught up with (the base applied through `index`). */
  forget(index: number): void {
    assert(this.isOverlay, 'forget: only an overlay forgets');
    for (const [path, stamp] of this.pathStamps) {
      if (stamp > index) continue;
      this.pathStamps.delete(path);
      this.nodes.delete(path);
    }
    for (const [id, stamp] of this.sessionStamps) {
      if (stamp > index) continue;
      this.sessionStamps.delete(id);
      this.sessions.delete(id);
    }
  }

  get overlaySize(): number {
    return this.nodes.size + this.sessions.size;
  }

  // ----------------------------------------------------------------------------------------------
  // Mutation helpers: copy on first write in an overlay.

  private mutableNode(path: string): ZNode {
    const own = this.nodes.get(path);
    if (this.base === null) {
      assert(own !== undefined && own !== null, `mutableNode: ${path} missing`);
      return own;
    }
    this.pathStamps.set(path, this.stampIndex);
    if (own !== undefined && own !== null) return own;
    const inherited = this.base.node(path);
    assert(inherited !== undefined, `mutableNode: ${path} missing in the view`);
    const copy: ZNode = { ...inherited, children: null };
    this.nodes.set(path, copy);
    return copy;
  }

  private putNode(path: string, node: ZNode | null): void {
    if (this.base === null) {
      if (node === null) this.nodes.delete(path);
      else this.nodes.set(path, node);
      return;
    }
    this.pathStamps.set(path, this.stampIndex);
    this.nodes.set(path, node);
  }

  private mutableSession(id: number): Session | undefined {
    const own = this.sessions.get(id);
    if (own === TOMBSTONE) return undefined;
    if (this.base === null) return own;
    const inherited = own ?? this.base.session(id);
    if (inherited === undefined) return undefined;
    this.sessionStamps.set(id, this.stampIndex);
    if (own !== undefined) return own;
    const copy: Session = { ...inherited, ephemerals: new Set(inherited.ephemerals) };
    this.sessions.set(id, copy);
    return copy;
  }

  private putSession(id: number, session: Session | null): void {
    if (this.base === null) {
      if (session === null) this.sessions.delete(id);
      else this.sessions.set(id, session);
      return;
    }
    this.sessionStamps.set(id, this.stampIndex);
    this.sessions.set(id, session);
  }

  // ----------------------------------------------------------------------------------------------
  // Apply

  /**
   * Applies one transaction at `zxid` (carried by the log entry at `index`). Watch triggers are
   * appended to `triggers` in ZooKeeper's order: the node's own event, then its parent's.
   */
  apply(txn: Txn, zxid: number, index: number, triggers: Trigger[] | null = null): Applied {
    this.stampIndex = index;
    if (!this.isOverlay) {
      assert(zxid > this.lastZxid, `apply: zxid ${zxid} not above ${this.lastZxid}`);
      this.lastZxid = zxid;
    }
    switch (txn.type) {
      case 'createSession': {
        const session: Session = {
          id: zxid,
          timeoutMs: txn.timeoutMs,
          password: txn.password,
          attach: 1,
          attachToken: txn.token,
          lastWriteSeq: 0,
          ephemerals: new Set(),
        };
        this.putSession(zxid, session);
        this.sessionByToken.set(txn.token, zxid);
        return { type: 'sessionCreated', sessionId: zxid, token: txn.token };
      }
      case 'attachSession': {
        const session = this.mutableSession(txn.sessionId);
        assert(session !== undefined, `attachSession: session ${txn.sessionId} unknown`);
        assert(txn.attach === session.attach + 1, 'attachSession: attach must follow the current one');
        session.attach = txn.attach;
        session.attachToken = txn.token;
        session.lastWriteSeq = 0;
        return { type: 'sessionAttached', sessionId: txn.sessionId, attach: txn.attach, token: txn.token };
      }
      case 'connectRefused':
        return { type: 'connectRefused', token: txn.token, sessionId: txn.sessionId, err: txn.err };
      case 'closeSession':
        this.closeSession(txn.sessionId, zxid, txn.time, triggers);
        return {
          type: 'sessionClosed',
          sessionId: txn.sessionId,
          attach: txn.attach,
          writeSeq: txn.writeSeq,
          expired: txn.expired,
        };
      case 'write':
        return this.applyWrite(txn, zxid, triggers);
      case 'error':
        this.advanceChain(txn.sessionId, txn.writeSeq);
        return {
          type: 'write',
          sessionId: txn.sessionId,
          attach: txn.attach,
          writeSeq: txn.writeSeq,
          err: txn.err,
          result:
            txn.multiErrs === null
              ? { type: 'none' }
              : { type: 'multi', results: txn.multiErrs.map((err) => ({ type: 'error' as const, err })) },
        };
      case 'reap':
        this.deleteNode(txn.path, zxid, triggers);
        return { type: 'none' };
    }
  }

  private advanceChain(sessionId: number, writeSeq: number): void {
    const session = this.mutableSession(sessionId);
    // A write can fail because its session is already gone; nothing to advance then.
    if (session !== undefined && writeSeq > session.lastWriteSeq) session.lastWriteSeq = writeSeq;
  }

  private applyWrite(txn: Extract<Txn, { type: 'write' }>, zxid: number, triggers: Trigger[] | null): Applied {
    this.advanceChain(txn.sessionId, txn.writeSeq);
    const results: MultiResult[] = [];
    for (const op of txn.ops) results.push(this.applyOp(op, txn.sessionId, txn.time, zxid, triggers));
    let result: Result;
    if (txn.multi) result = { type: 'multi', results };
    else {
      const only = results[0];
      assert(only !== undefined, 'applyWrite: a single write without an op');
      result =
        only.type === 'create'
          ? { type: 'created', path: only.path, stat: only.stat }
          : only.type === 'setData'
            ? { type: 'stat', stat: only.stat }
            : { type: 'none' };
    }
    return { type: 'write', sessionId: txn.sessionId, attach: txn.attach, writeSeq: txn.writeSeq, err: 0, result };
  }

  private applyOp(op: TxnOp, sessionId: number, time: number, zxid: number, triggers: Trigger[] | null): MultiResult {
    switch (op.type) {
      case 'create': {
        const node = this.createNode(op, sessionId, time, zxid, triggers);
        return { type: 'create', path: op.path, stat: op.withStat ? statOf(node) : null };
      }
      case 'delete':
        this.deleteNode(op.path, zxid, triggers);
        return { type: 'delete' };
      case 'setData': {
        const node = this.mutableNode(op.path);
        if (!this.isOverlay) this.dataBytes += op.data.length - node.data.length;
        node.data = op.data;
        node.version = op.version;
        node.mzxid = zxid;
        node.mtime = time;
        triggers?.push({ path: op.path, type: EventType.NODE_DATA_CHANGED });
        return { type: 'setData', stat: statOf(node) };
      }
      case 'check':
        return { type: 'check' };
    }
  }

  private createNode(
    op: Extract<TxnOp, { type: 'create' }>,
    sessionId: number,
    time: number,
    zxid: number,
    triggers: Trigger[] | null,
  ): ZNode {
    assert(this.node(op.path) === undefined, `create: ${op.path} exists`);
    const parentPath = parentOf(op.path);
    const parent = this.mutableNode(parentPath);
    parent.cversion = op.parentCversion;
    parent.pzxid = zxid;
    parent.numChildren++;
    parent.children?.add(op.path.slice(op.path.lastIndexOf('/') + 1));
    const owner = op.kind === 'ephemeral' ? sessionId : 0;
    const node: ZNode = {
      data: op.data,
      czxid: zxid,
      mzxid: zxid,
      pzxid: zxid,
      ctime: time,
      mtime: time,
      version: 0,
      cversion: 0,
      aversion: 0,
      ephemeralOwner: owner,
      kind: op.kind,
      ttlMs: op.ttlMs,
      numChildren: 0,
      children: this.isOverlay ? null : new Set(),
    };
    this.putNode(op.path, node);
    if (owner !== 0) {
      const session = this.mutableSession(owner);
      assert(session !== undefined, `create: ephemeral owner ${owner} is not a live session`);
      session.ephemerals.add(op.path);
    }
    if (!this.isOverlay) {
      this.nodeCount++;
      this.dataBytes += op.data.length;
      if (op.kind === 'container') this.containers.add(op.path);
      if (op.kind === 'ttl') this.ttlNodes.add(op.path);
    }
    triggers?.push({ path: op.path, type: EventType.NODE_CREATED });
    triggers?.push({ path: parentPath, type: EventType.NODE_CHILDREN_CHANGED });
    return node;
  }

  private deleteNode(path: string, zxid: number, triggers: Trigger[] | null): void {
    const node = this.node(path);
    assert(node !== undefined, `delete: ${path} missing`);
    assert(node.numChildren === 0, `delete: ${path} has children`);
    const parentPath = parentOf(path);
    const parent = this.mutableNode(parentPath);
    // ZooKeeper: a delete bumps the parent's cversion too, so sequence numbers never repeat.
    parent.cversion++;
    parent.pzxid = zxid;
    parent.numChildren--;
    parent.children?.delete(path.slice(path.lastIndexOf('/') + 1));
    this.putNode(path, TOMBSTONE);
    if (node.ephemeralOwner !== 0) this.mutableSession(node.ephemeralOwner)?.ephemerals.delete(path);
    if (!this.isOverlay) {
      this.nodeCount--;
      this.dataBytes -= node.data.length;
      this.containers.delete(path);
      this.ttlNodes.delete(path);
    }
    triggers?.push({ path, type: EventType.NODE_DELETED });
    triggers?.push({ path: parentPath, type: EventType.NODE_CHILDREN_CHANGED });
  }

  private closeSession(sessionId: number, zxid: number, _time: number, triggers: Trigger[] | null): void {
    const session = this.session(sessionId);
    if (session === undefined) return;
    // Deepest first, so an ephemeral's parent (never another ephemeral) is not touched before it.
    const paths = [...session.ephemerals].sort((a, b) => b.length - a.length || (a < b ? -1 : 1));
    for (const path of paths) this.deleteNode(path, zxid, triggers);
    this.putSession(sessionId, TOMBSTONE);
    if (!this.isOverlay) this.sessionByToken.delete(session.attachToken);
  }

  // ----------------------------------------------------------------------------------------------
  // Reads (base tree)

  children(path: string): string[] {
    const node = this.node(path);
    assert(node?.children !== undefined && node.children !== null, `children: ${path} has no child set`);
    return [...node.children];
  }

  ephemeralsOf(sessionId: number, prefix: string): string[] {
    const session = this.session(sessionId);
    if (session === undefined) return [];
    return [...session.ephemerals].filter((path) => isWithin(path, prefix)).sort();
  }

  /** Every descendant of `path` (ZooKeeper's getAllChildrenNumber). */
  descendantCount(path: string): number {
    let count = 0;
    const stack = [path];
    while (stack.length > 0) {
      const current = stack.pop()!;
      const node = this.node(current);
      if (node?.children === undefined || node.children === null) continue;
      for (const name of node.children) {
        count++;
        stack.push(childPath(current, name));
      }
    }
    return count;
  }

  // ----------------------------------------------------------------------------------------------
  // Snapshots (base tree): every node in parent-before-child order, then the sessions.

  snapshot(): Uint8Array {
    assert(!this.isOverlay, 'snapshot: only the base tree');
    // Sized for the data plus ~64 bytes of path and stat per node, so that it rarely grows (copies).
    const writer = new Writer(1024 + this.dataBytes + this.nodeCount * 64);
    writer.varuint(this.lastZxid);
    writer.varuint(this.nodeCount);
    // The map's insertion order already puts every parent before its children (a node is inserted
    // only under an existing parent, and a parent leaves only once childless), so the nodes go out in
    // map order: no path strings rebuilt and hashed again, which was most of the cost.
    let written = 0;
    for (const [path, node] of this.nodes) {
      if (node === null) continue;
      writeSnapshotNode(writer, path, node);
      written++;
    }
    assert(written === this.nodeCount, `snapshot: ${written} nodes written, nodeCount ${this.nodeCount}`);
    writer.varuint(this.sessions.size);
    for (const session of this.sessions.values()) {
      snapshotSessionSchema.encode(writer, {
        id: session!.id,
        timeoutMs: session!.timeoutMs,
        password: session!.password,
        attach: session!.attach,
        attachToken: session!.attachToken,
        lastWriteSeq: session!.lastWriteSeq,
      });
    }
    return writer.finish().slice();
  }

  /** Rebuilds a tree from `snapshot()` bytes; null when they do not decode (never throws on bad bytes). */
  static restore(bytes: Uint8Array): DataTree | null {
    const reader = new Reader(bytes);
    try {
      const tree = new DataTree();
      tree.lastZxid = reader.varuint('lastZxid');
      const nodeCount = reader.varuint('nodeCount');
      for (let i = 0; i < nodeCount; i++) {
        const entry = snapshotNodeSchema.read(reader, 'node');
        if (!tree.loadNode(entry)) return null;
      }
      const sessionCount = reader.varuint('sessionCount');
      for (let i = 0; i < sessionCount; i++) {
        const entry = snapshotSessionSchema.read(reader, 'session');
        tree.sessions.set(entry.id, { ...entry, ephemerals: new Set() });
        tree.sessionByToken.set(entry.attachToken, entry.id);
      }
      if (reader.remaining !== 0) return null;
      return tree.linkEphemerals() ? tree : null;
    } catch (error) {
      if (error instanceof DecodeFailure) return null;
      throw error;
    }
  }

  /** Adds one snapshot node under its (already loaded) parent; false when the structure is broken. */
  private loadNode(entry: Infer<typeof snapshotNodeSchema>): boolean {
    const path = entry.path;
    // Built field by field in createNode's shape: a rest/spread copy made every restored node a
    // slow dictionary-mode object (restore took ~10 us per znode).
    const node: ZNode = {
      data: entry.data,
      czxid: entry.czxid,
      mzxid: entry.mzxid,
      pzxid: entry.pzxid,
      ctime: entry.ctime,
      mtime: entry.mtime,
      version: entry.version,
      cversion: entry.cversion,
      aversion: entry.aversion,
      ephemeralOwner: entry.ephemeralOwner,
      kind: entry.kind,
      ttlMs: entry.ttlMs,
      numChildren: 0,
      children: new Set(),
    };
    if (path === '/' || SPECIAL_PATHS.has(path)) {
      const existing = this.nodes.get(path)!;
      Object.assign(existing, node, { numChildren: existing.numChildren, children: existing.children });
      return true;
    }
    if (pathProblem(path) !== null || this.nodes.has(path)) return false;
    const parent = this.nodes.get(parentOf(path));
    if (parent === undefined || parent === null || parent.kind === 'ephemeral') return false;
    parent.children!.add(path.slice(path.lastIndexOf('/') + 1));
    parent.numChildren = parent.children!.size;
    this.nodes.set(path, node);
    this.nodeCount++;
    this.dataBytes += entry.data.length;
    if (entry.kind === 'container') this.containers.add(path);
    if (entry.kind === 'ttl') this.ttlNodes.add(path);
    return true;
  }

  private linkEphemerals(): boolean {
    for (const [path, node] of this.nodes) {
      if (node === null || node.ephemeralOwner === 0) continue;
      const session = this.sessions.get(node.ephemeralOwner);
      if (session === undefined || session === null) return false;
      session.ephemerals.add(path);
    }
    return true;
  }
}

const NODE_KINDS = ['persistent', 'ephemeral', 'container', 'ttl'] as const satisfies readonly NodeKind[];
const NODE_KIND_INDEX = new Map<NodeKind, number>(NODE_KINDS.map((kind, index) => [kind, index]));

/**
 * `snapshotNodeSchema.encode` written out field by field: a snapshot encodes every znode on the
 * event loop (the server answers nothing meanwhile), and this runs about twice as fast as building
 * an object per node for the generic struct encoder. The bytes are the schema's (a test holds them
 * equal), so `restore` decodes them with the schema.
 */
export function writeSnapshotNode(writer: Writer, path: string, node: ZNode): void {
  writer.string(path);
  writer.varuint(node.data.length);
  writer.raw(node.data);
  writer.varuint(node.czxid);
  writer.varuint(node.mzxid);
  writer.varuint(node.pzxid);
  writeInt(writer, node.ctime);
  writeInt(writer, node.mtime);
  writeInt(writer, node.version);
  writeInt(writer, node.cversion);
  writeInt(writer, node.aversion);
  writer.varuint(node.ephemeralOwner);
  writer.varuint(NODE_KIND_INDEX.get(node.kind)!);
  writer.varuint(node.ttlMs);
}

/** `s.int`'s zigzag form. */
function writeInt(writer: Writer, value: number): void {
  writer.varuint(value >= 0 ? value * 2 : -value * 2 - 1);
}

/** The schema's encoding of one snapshot node (the test holds `writeSnapshotNode` equal to it). */
export function encodeSnapshotNodeGeneric(writer: Writer, path: string, node: ZNode): void {
  // The struct encodes its declared fields only; the node's own extra ones (children) are ignored.
  snapshotNodeSchema.encode(writer, { ...node, path });
}

const snapshotNodeSchema = s.struct({
  path: s.string({ bytesMax: 4096 }),
  data: s.bytes({ bytesMax: 1024 * 1024 }),
  czxid: s.uint,
  mzxid: s.uint,
  pzxid: s.uint,
  ctime: s.int,
  mtime: s.int,
  version: s.int,
  cversion: s.int,
  aversion: s.int,
  ephemeralOwner: s.uint,
  kind: s.enum(NODE_KINDS),
  ttlMs: s.uint,
});
const snapshotSessionSchema = s.struct({
  id: s.uint,
  timeoutMs: s.uint,
  password: s.bytes({ bytesMax: 64 }),
  attach: s.uint,
  attachToken: s.uint,
  lastWriteSeq: s.uint,
});
