/**
 * The data tree and the leader's preparation, without any network: each operation and its error
 * codes (ZooKeeper's order of checks), multi atomicity with per-op results, sequential naming,
 * containers and TTL nodes, session close deleting ephemerals, snapshots, and the speculative view
 * agreeing with the tree it overlays.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Rng, Writer } from '@dsys/kit';
import { encodeSnapshotNodeGeneric, writeSnapshotNode } from '../src/data-tree.js';
import { CreateMode, DataTree, Err, type ForwardItem, type Op, prepare, reapable, type Txn } from '../src/index.js';

const rng = Rng.fromSeed(7);
const bytes = (text: string) => new TextEncoder().encode(text);

/** A leader in miniature: prepares against an overlay, then applies to the base, like CoordNode. */
class Harness {
  tree = new DataTree();
  view = this.tree.overlay();
  index = 0;
  sessionId = 0;
  writeSeq = 0;

  run(item: ForwardItem): Txn | 'duplicate' | 'reject' {
    const prepared = prepare(item, { view: this.view, nowMs: 1000 + this.index, rng });
    if (prepared.type !== 'txn') return prepared.type;
    this.index++;
    const zxid = 2 ** 32 + this.index;
    this.view.apply(prepared.txn, zxid, this.index);
    this.tree.apply(prepared.txn, zxid, this.index);
    this.view.forget(this.index);
    return prepared.txn;
  }

  connect(): number {
    const txn = this.run({
      kind: 'connect',
      token: this.index + 100,
      sessionId: 0,
      password: new Uint8Array(0),
      timeoutMs: 5000,
    });
    assert.ok(typeof txn === 'object' && txn.type === 'createSession');
    this.sessionId = 2 ** 32 + this.index;
    this.writeSeq = 0;
    return this.sessionId;
  }

  write(op: Op): Txn {
    const txn = this.run({ kind: 'write', sessionId: this.sessionId, attach: 1, writeSeq: ++this.writeSeq, op });
    assert.ok(typeof txn === 'object');
    return txn;
  }

  err(op: Op): number {
    const txn = this.write(op);
    return txn.type === 'error' ? txn.err : Err.OK;
  }
}

const create = (path: string, mode: number = CreateMode.PERSISTENT, ttlMs = 0): Op => ({
  type: 'create',
  path,
  data: bytes('d'),
  mode,
  ttlMs,
  withStat: false,
});

describe('preparation and apply', () => {
  test('create: NoNode parent, NodeExists, NoChildrenForEphemerals, BadArguments', () => {
    const h = new Harness();
    h.connect();
    assert.equal(h.err(create('/a')), Err.OK);
    assert.equal(h.err(create('/a')), Err.NODE_EXISTS);
    assert.equal(h.err(create('/x/y')), Err.NO_NODE);
    assert.equal(h.err(create('/e', CreateMode.EPHEMERAL)), Err.OK);
    assert.equal(h.err(create('/e/child')), Err.NO_CHILDREN_FOR_EPHEMERALS);
    assert.equal(h.err(create('/')), Err.BAD_ARGUMENTS);
    assert.equal(h.err(create('/a/')), Err.BAD_ARGUMENTS);
    assert.equal(h.err(create('/a/./b')), Err.BAD_ARGUMENTS);
    assert.equal(h.err(create('/t', CreateMode.PERSISTENT_WITH_TTL, 0)), Err.BAD_ARGUMENTS);
    assert.equal(h.err(create('/t', CreateMode.PERSISTENT, 10)), Err.BAD_ARGUMENTS);
    assert.equal(h.err(create('/m', 9)), Err.BAD_ARGUMENTS);
    const node = h.tree.node('/a')!;
    assert.equal(node.version, 0);
    assert.equal(node.czxid, node.mzxid);
    assert.equal(h.tree.node('/e')!.ephemeralOwner, h.sessionId);
  });

  test('sequential names use the parent cversion, zero-padded to 10 digits, never reused after deletes', () => {
    const h = new Harness();
    h.connect();
    h.write(create('/q'));
    const names: string[] = [];
    for (let i = 0; i < 3; i++) {
      const txn = h.write(create('/q/n-', CreateMode.PERSISTENT_SEQUENTIAL));
      assert.ok(txn.type === 'write' && txn.ops[0]?.type === 'create');
      names.push(txn.ops[0].path);
    }
    assert.deepEqual(names, ['/q/n-0000000000', '/q/n-0000000001', '/q/n-0000000002']);
    h.write({ type: 'delete', path: '/q/n-0000000002', version: -1 });
    const next = h.write(create('/q/', CreateMode.PERSISTENT_SEQUENTIAL));
    assert.ok(next.type === 'write' && next.ops[0]?.type === 'create');
    assert.equal(next.ops[0].path, '/q/0000000004', 'a delete bumps cversion too');
    assert.equal(h.tree.node('/q')!.cversion, 5);
  });

  test('delete and setData: versions, NotEmpty, NoNode, special paths', () => {
    const h = new Harness();
    h.connect();
    h.write(create('/a'));
    h.write(create('/a/b'));
    assert.equal(h.err({ type: 'delete', path: '/a', version: -1 }), Err.NOT_EMPTY);
    assert.equal(h.err({ type: 'delete', path: '/a/b', version: 3 }), Err.BAD_VERSION);
    assert.equal(h.err({ type: 'setData', path: '/a/b', data: bytes('x'), version: 1 }), Err.BAD_VERSION);
    assert.equal(h.err({ type: 'setData', path: '/a/b', data: bytes('x'), version: 0 }), Err.OK);
    assert.equal(h.tree.node('/a/b')!.version, 1);
    assert.equal(h.err({ type: 'setData', path: '/none', data: bytes('x'), version: -1 }), Err.NO_NODE);
    assert.equal(h.err({ type: 'delete', path: '/a/b', version: 1 }), Err.OK);
    assert.equal(h.err({ type: 'delete', path: '/a/b', version: -1 }), Err.NO_NODE);
    assert.equal(h.err({ type: 'delete', path: '/zookeeper', version: -1 }), Err.BAD_ARGUMENTS);
  });

  test('multi is all or nothing: OK before the failure, its code, RuntimeInconsistency after', () => {
    const h = new Harness();
    h.connect();
    const failed = h.write({
      type: 'multi',
      ops: [
        { type: 'create', path: '/m', data: bytes(''), mode: 0, ttlMs: 0, withStat: false },
        { type: 'check', path: '/m', version: 3 },
        { type: 'create', path: '/m/x', data: bytes(''), mode: 0, ttlMs: 0, withStat: false },
      ],
    });
    assert.ok(failed.type === 'error');
    assert.deepEqual(failed.multiErrs, [Err.OK, Err.BAD_VERSION, Err.RUNTIME_INCONSISTENCY]);
    assert.equal(h.tree.node('/m'), undefined);
    const ok = h.write({
      type: 'multi',
      ops: [
        { type: 'create', path: '/m', data: bytes(''), mode: 0, ttlMs: 0, withStat: false },
        { type: 'create', path: '/m/x', data: bytes(''), mode: 0, ttlMs: 0, withStat: false },
        { type: 'check', path: '/m/x', version: 0 },
        { type: 'setData', path: '/m', data: bytes('p'), version: 0 },
        { type: 'delete', path: '/m/x', version: -1 },
      ],
    });
    assert.ok(ok.type === 'write' && ok.multi);
    assert.equal(h.tree.node('/m')!.version, 1);
    assert.equal(h.tree.node('/m/x'), undefined);
  });

  test('the FIFO chain: duplicates are recognized, gaps and stale attaches refused', () => {
    const h = new Harness();
    h.connect();
    h.write(create('/a'));
    assert.equal(
      h.run({ kind: 'write', sessionId: h.sessionId, attach: 1, writeSeq: 1, op: create('/b') }),
      'duplicate',
    );
    assert.equal(h.run({ kind: 'write', sessionId: h.sessionId, attach: 1, writeSeq: 3, op: create('/b') }), 'reject');
    assert.equal(h.run({ kind: 'write', sessionId: h.sessionId, attach: 2, writeSeq: 2, op: create('/b') }), 'reject');
    const dead = h.run({ kind: 'write', sessionId: 12345, attach: 1, writeSeq: 1, op: create('/b') });
    assert.ok(typeof dead === 'object' && dead.type === 'error' && dead.err === Err.SESSION_EXPIRED);
  });

  test('closing a session deletes its ephemerals (and later writes of it fail SessionExpired)', () => {
    const h = new Harness();
    const owner = h.connect();
    h.write(create('/p'));
    h.write(create('/p/e1', CreateMode.EPHEMERAL));
    h.write(create('/p/e2-', CreateMode.EPHEMERAL_SEQUENTIAL));
    assert.equal(h.tree.ephemeralsOf(owner, '/').length, 2);
    h.write({ type: 'close' });
    assert.equal(h.tree.session(owner), undefined);
    assert.equal(h.tree.node('/p')!.numChildren, 0);
    assert.equal(h.err(create('/p/e3', CreateMode.EPHEMERAL)), Err.SESSION_EXPIRED);
  });

  test('reconnects: a wrong password is refused like an expired session; a duplicate connect is recognized', () => {
    const h = new Harness();
    const id = h.connect();
    const password = h.tree.session(id)!.password;
    const bad = h.run({ kind: 'connect', token: 1, sessionId: id, password: new Uint8Array(16), timeoutMs: 5000 });
    assert.ok(typeof bad === 'object' && bad.type === 'connectRefused' && bad.err === Err.SESSION_EXPIRED);
    const good = h.run({ kind: 'connect', token: 2, sessionId: id, password, timeoutMs: 5000 });
    assert.ok(typeof good === 'object' && good.type === 'attachSession' && good.attach === 2);
    assert.equal(h.run({ kind: 'connect', token: 2, sessionId: id, password, timeoutMs: 5000 }), 'duplicate');
  });

  test('containers are reaped once emptied; TTL nodes once idle past their TTL and childless', () => {
    const h = new Harness();
    h.connect();
    h.write(create('/c', CreateMode.CONTAINER));
    assert.equal(reapable(h.view, '/c', 10_000), false, 'never had a child');
    h.write(create('/c/x'));
    assert.equal(reapable(h.view, '/c', 10_000), false);
    h.write({ type: 'delete', path: '/c/x', version: -1 });
    assert.equal(reapable(h.view, '/c', 10_000), true);
    h.write(create('/t', CreateMode.PERSISTENT_WITH_TTL, 500));
    const mtime = h.tree.node('/t')!.mtime;
    assert.equal(reapable(h.view, '/t', mtime + 400), false);
    assert.equal(reapable(h.view, '/t', mtime + 501), true);
    assert.deepEqual([...h.tree.containers], ['/c']);
    assert.deepEqual([...h.tree.ttlNodes], ['/t']);
  });

  test('snapshot round trip; corrupt snapshots are refused without throwing', () => {
    const h = new Harness();
    h.connect();
    h.write(create('/a'));
    h.write(create('/a/e', CreateMode.EPHEMERAL));
    h.write({ type: 'setData', path: '/a', data: bytes('hello'), version: -1 });
    const snapshot = h.tree.snapshot();
    const restored = DataTree.restore(snapshot);
    assert.ok(restored !== null);
    assert.deepEqual(restored.snapshot(), snapshot);
    assert.equal(restored.node('/a/e')!.ephemeralOwner, h.sessionId);
    assert.deepEqual(restored.ephemeralsOf(h.sessionId, '/'), ['/a/e']);
    for (let cut = 0; cut < snapshot.length; cut += 7) assert.equal(DataTree.restore(snapshot.subarray(0, cut)), null);
    const r = Rng.fromSeed(3);
    for (let i = 0; i < 200; i++) DataTree.restore(r.bytes(r.between(0, 200)));
  });

  test('snapshot after churn: parents deleted and re-created, every kind of node; bytes, order and children survive', () => {
    const h = new Harness();
    h.connect();
    const r = Rng.fromSeed(5);
    const paths = ['/a', '/a/b', '/a/b/c', '/d', '/d/e', '/a/f', '/g'];
    const modes = [
      CreateMode.PERSISTENT,
      CreateMode.EPHEMERAL,
      CreateMode.CONTAINER,
      CreateMode.PERSISTENT_WITH_TTL,
      CreateMode.PERSISTENT_SEQUENTIAL,
    ];
    for (let i = 0; i < 400; i++) {
      const path = r.pick(paths);
      const mode = r.pick(modes);
      const op: Op =
        r.int(2) === 0
          ? create(path, mode, mode === CreateMode.PERSISTENT_WITH_TTL ? 1000 : 0)
          : r.int(2) === 0
            ? { type: 'delete', path, version: -1 }
            : { type: 'setData', path, data: bytes(String(i)), version: -1 };
      h.write(op);
    }
    // The hand-written node encoder writes exactly the schema's bytes.
    let compared = 0;
    for (const path of ['/', ...paths, ...h.tree.children('/a').map((name) => `/a/${name}`)]) {
      const node = h.tree.node(path);
      if (node === undefined) continue;
      const fast = new Writer();
      const generic = new Writer();
      writeSnapshotNode(fast, path, node);
      encodeSnapshotNodeGeneric(generic, path, node);
      assert.deepEqual(fast.finish(), generic.finish(), path);
      compared++;
    }
    assert.ok(compared >= 4, `only ${compared} nodes compared`);
    const snapshot = h.tree.snapshot();
    const restored = DataTree.restore(snapshot);
    assert.ok(restored !== null, 'the snapshot restores (every parent precedes its children)');
    assert.deepEqual(restored.snapshot(), snapshot);
    let parents = 0;
    for (const path of ['/', ...paths]) {
      if (h.tree.node(path) === undefined) {
        assert.equal(restored.node(path), undefined, path);
        continue;
      }
      assert.deepEqual(restored.children(path), h.tree.children(path), path);
      parents++;
    }
    assert.ok(parents >= 3, `only ${parents} nodes left to compare children`);
  });

  test('the speculative view agrees with the tree it overlays after every step', () => {
    const h = new Harness();
    h.connect();
    const r = Rng.fromSeed(11);
    const paths = ['/a', '/a/b', '/c', '/c/d', '/e'];
    for (let i = 0; i < 300; i++) {
      const path = r.pick(paths);
      const op: Op =
        r.int(3) === 0
          ? create(path, r.pick([CreateMode.PERSISTENT, CreateMode.EPHEMERAL]))
          : r.int(2) === 0
            ? { type: 'delete', path, version: -1 }
            : { type: 'setData', path, data: bytes(String(i)), version: -1 };
      h.write(op);
      for (const p of ['/', ...paths]) {
        const a = h.tree.node(p);
        const b = h.view.node(p);
        assert.equal(a?.version, b?.version, p);
        assert.equal(a?.cversion, b?.cversion, p);
        assert.equal(a?.numChildren, b?.numChildren, p);
      }
    }
    assert.equal(h.view.overlaySize, 0, 'everything applied: nothing left in the overlay');
  });
});
