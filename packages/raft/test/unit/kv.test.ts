/**
 * The key-value service: the state machine's semantics (get/put/delete/cas/scan), exactly-once
 * sessions (dissertation §6.3: a retried write applies once, expiry by log time), snapshots, and the
 * protocol's request handling with its bounds (typed rejections at every limit).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ClientId, type Effect, encode, NodeId, RequestId, Rng } from '@dsys/kit';
import {
  type KvCommand,
  type KvConfigInput,
  KvNode,
  type KvRequest,
  type KvResponse,
  KvStateMachine,
  kvCommandSchema,
  kvConfig,
  type RaftMessage,
  VALUE_BYTES_MAX,
} from '../../src/index.js';

const limits = { sessionTimeoutMs: 1000, sessionsMax: 3 };
const command = (value: KvCommand) => encode(kvCommandSchema, value);

describe('KvStateMachine', () => {
  test('get, put, delete, compare-and-swap', () => {
    const machine = new KvStateMachine(limits);
    machine.apply(1, command({ type: 'openSession', timeMs: 0 }));
    const write = (seq: number, op: Extract<KvCommand, { type: 'write' }>['op']) =>
      machine.apply(10 + seq, command({ type: 'write', sessionId: 1, seq, timeMs: 0, op }));
    write(1, { type: 'put', key: 'a', value: '1' });
    assert.equal(machine.get('a'), '1');
    assert.deepEqual(write(2, { type: 'cas', key: 'a', expected: '0', value: '2' }), {
      type: 'write',
      result: { type: 'cas', ok: false },
      duplicate: false,
    });
    assert.deepEqual(write(3, { type: 'cas', key: 'a', expected: '1', value: '2' }), {
      type: 'write',
      result: { type: 'cas', ok: true },
      duplicate: false,
    });
    assert.deepEqual(write(4, { type: 'cas', key: 'b', expected: null, value: 'new' }), {
      type: 'write',
      result: { type: 'cas', ok: true },
      duplicate: false,
    });
    assert.deepEqual(write(5, { type: 'delete', key: 'a' }), {
      type: 'write',
      result: { type: 'delete', existed: true },
      duplicate: false,
    });
    assert.equal(machine.get('a'), null);
    assert.deepEqual(write(6, { type: 'cas', key: 'b', expected: 'new', value: null }), {
      type: 'write',
      result: { type: 'cas', ok: true },
      duplicate: false,
    });
    assert.equal(machine.size, 0);
  });

  test('a retried write applies once and returns the first result; an older one is refused', () => {
    const machine = new KvStateMachine(limits);
    machine.apply(1, command({ type: 'openSession', timeMs: 0 }));
    const cas = command({
      type: 'write',
      sessionId: 1,
      seq: 1,
      timeMs: 0,
      op: { type: 'cas', key: 'k', expected: null, value: 'v' },
    });
    assert.deepEqual(machine.apply(2, cas), { type: 'write', result: { type: 'cas', ok: true }, duplicate: false });
    // Applied again (the same command logged twice after a leader change): not re-executed, which
    // would have answered ok=false.
    assert.deepEqual(machine.apply(3, cas), { type: 'write', result: { type: 'cas', ok: true }, duplicate: true });
    machine.apply(
      4,
      command({ type: 'write', sessionId: 1, seq: 2, timeMs: 0, op: { type: 'put', key: 'k', value: 'w' } }),
    );
    assert.deepEqual(machine.apply(5, cas), { type: 'rejected', code: 'SEQ_STALE' });
    assert.equal(machine.get('k'), 'w');
  });

  test('sessions expire by log time and the least recently active is evicted when the table is full', () => {
    const machine = new KvStateMachine(limits);
    for (const index of [1, 2, 3]) machine.apply(index, command({ type: 'openSession', timeMs: index }));
    machine.apply(
      4,
      command({ type: 'write', sessionId: 1, seq: 1, timeMs: 4, op: { type: 'put', key: 'x', value: '1' } }),
    );
    machine.apply(5, command({ type: 'openSession', timeMs: 5 })); // evicts session 2, the least recently active
    assert.equal(machine.hasSession(2), false);
    assert.equal(machine.hasSession(1), true);
    // Log time jumps past the timeout: every session idle for longer than 1000 ms goes.
    const late = machine.apply(
      6,
      command({ type: 'write', sessionId: 3, seq: 1, timeMs: 2000, op: { type: 'put', key: 'y', value: '2' } }),
    );
    assert.deepEqual(late, { type: 'rejected', code: 'SESSION_EXPIRED' });
    assert.equal(machine.sessionCount, 0);
  });

  test('scan by prefix in order, with a limit', () => {
    const machine = new KvStateMachine(limits);
    machine.apply(1, command({ type: 'openSession', timeMs: 0 }));
    const keys = ['b/2', 'a/1', 'b/1', 'b/3', 'c'];
    keys.forEach((key, i) => {
      machine.apply(
        2 + i,
        command({
          type: 'write',
          sessionId: 1,
          seq: i + 1,
          timeMs: 0,
          op: { type: 'put', key, value: key.toUpperCase() },
        }),
      );
    });
    assert.deepEqual(machine.scan('b/', 2), {
      entries: [
        { key: 'b/1', value: 'B/1' },
        { key: 'b/2', value: 'B/2' },
      ],
      more: true,
    });
    assert.deepEqual(machine.scan('b/', 10).entries.length, 3);
    assert.deepEqual(machine.scan('z', 10), { entries: [], more: false });
  });

  test('snapshot and restore give the same state; garbage gives a decode error', () => {
    const machine = new KvStateMachine(limits);
    machine.apply(1, command({ type: 'openSession', timeMs: 7 }));
    machine.apply(
      2,
      command({ type: 'write', sessionId: 1, seq: 1, timeMs: 9, op: { type: 'put', key: 'k', value: 'v' } }),
    );
    const restored = KvStateMachine.restore(machine.snapshot(), limits);
    assert.ok(restored.ok);
    assert.deepEqual(restored.value.snapshot(), machine.snapshot());
    assert.deepEqual(restored.value.cachedResult(1, 1), { type: 'put' });
    assert.equal(KvStateMachine.restore(new Uint8Array([1, 200, 3]), limits).ok, false);
  });

  test('a command that does not decode is skipped identically everywhere', () => {
    const machine = new KvStateMachine(limits);
    assert.deepEqual(machine.apply(1, new Uint8Array([99, 1])), { type: 'none' });
    assert.equal(machine.undecodable, 1);
  });
});

type Kv = Effect<RaftMessage, KvResponse>;

/** A single-node KV service whose storage acknowledges at once. */
class SingleNode {
  readonly node: KvNode;
  readonly replies = new Map<number, KvResponse>();
  private requestIdNext = 1;
  nowMs = 0;

  constructor(config: KvConfigInput = {}) {
    this.node = new KvNode({
      id: NodeId(1),
      peers: [NodeId(1)],
      config: kvConfig({ raft: { electionTicks: 10 }, ...config }),
      rng: Rng.fromSeed(1),
      durable: { snapshot: null, records: [] },
      nowMs: 0,
    });
    for (let i = 0; i < 30 && this.node.core.role !== 'leader'; i++) this.tick();
    assert.equal(this.node.core.role, 'leader');
  }

  private run(effects: Kv[]): void {
    for (const effect of effects) {
      if (effect.type === 'reply') this.replies.set(effect.requestId, effect.response);
      if ((effect.type === 'persist' || effect.type === 'compact') && effect.ack !== undefined) {
        this.run(this.node.step({ type: 'persisted', ack: effect.ack }));
      }
    }
  }

  tick(): void {
    this.nowMs += 10;
    this.run(this.node.step({ type: 'tick', nowMs: this.nowMs }));
  }

  send(request: KvRequest): number {
    const requestId = this.requestIdNext++;
    this.run(this.node.step({ type: 'request', client: ClientId(1), requestId: RequestId(requestId), request }));
    return requestId;
  }

  call(request: KvRequest): KvResponse | undefined {
    return this.replies.get(this.send(request));
  }
}

describe('kvProtocol', () => {
  test('a session, writes, a retried write answered from the session, reads', () => {
    const kv = new SingleNode();
    const opened = kv.call({ type: 'openSession' });
    assert.ok(opened?.type === 'openSession');
    const sessionId = opened.sessionId;
    assert.deepEqual(kv.call({ type: 'cas', sessionId, seq: 1, key: 'k', expected: null, value: 'v1' }), {
      type: 'cas',
      ok: true,
    });
    const lastIndex = kv.node.core.log.lastIndex();
    assert.deepEqual(kv.call({ type: 'cas', sessionId, seq: 1, key: 'k', expected: null, value: 'v1' }), {
      type: 'cas',
      ok: true,
    });
    assert.equal(kv.node.core.log.lastIndex(), lastIndex, 'the retry was answered without a new entry');
    assert.deepEqual(kv.call({ type: 'get', key: 'k' }), { type: 'get', value: 'v1' });
    assert.deepEqual(kv.call({ type: 'scan', prefix: '', limit: 10 }), {
      type: 'scan',
      entries: [{ key: 'k', value: 'v1' }],
      more: false,
    });
    assert.deepEqual(kv.call({ type: 'delete', sessionId, seq: 2, key: 'k' }), { type: 'delete', existed: true });
  });

  test('malformed requests and values over 1 MiB are refused as BAD_REQUEST', () => {
    const kv = new SingleNode();
    const big = kv.call({ type: 'put', sessionId: 1, seq: 1, key: 'k', value: 'x'.repeat(VALUE_BYTES_MAX + 1) });
    assert.ok(big?.type === 'error' && big.code === 'BAD_REQUEST');
    const nonsense = kv.call({ type: 'get', key: 42 } as unknown as KvRequest);
    assert.ok(nonsense?.type === 'error' && nonsense.code === 'BAD_REQUEST');
    const scan = kv.call({ type: 'scan', prefix: '', limit: 100_000 });
    assert.ok(scan?.type === 'error' && scan.code === 'BAD_REQUEST');
    assert.equal(kv.node.badRequests, 2);
  });

  test('a 1 MiB value is accepted', () => {
    const kv = new SingleNode();
    const opened = kv.call({ type: 'openSession' });
    assert.ok(opened?.type === 'openSession');
    const value = 'v'.repeat(VALUE_BYTES_MAX);
    assert.deepEqual(kv.call({ type: 'put', sessionId: opened.sessionId, seq: 1, key: 'big', value }), { type: 'put' });
    assert.deepEqual(kv.call({ type: 'get', key: 'big' }), { type: 'get', value });
  });

  test('pending proposals are bounded: BUSY at the limit', () => {
    const kv = new SingleNode({ pendingProposalsMax: 2 });
    // Hold the storage: nothing commits, so proposals stay pending.
    const effects: Kv[] = [];
    for (let i = 0; i < 3; i++) {
      effects.push(
        ...kv.node.step({
          type: 'request',
          client: ClientId(1),
          requestId: RequestId(100 + i),
          request: { type: 'openSession' },
        }),
      );
    }
    const replies = effects.filter((effect) => effect.type === 'reply');
    assert.equal(replies.length, 1);
    const reply = replies[0]!;
    assert.ok(
      reply.type === 'reply' &&
        reply.requestId === 102 &&
        reply.response.type === 'error' &&
        reply.response.code === 'BUSY',
    );
  });

  test('a follower answers NOT_LEADER with a hint; a status request works anywhere', () => {
    const follower = new KvNode({
      id: NodeId(2),
      peers: [NodeId(1), NodeId(2), NodeId(3)],
      config: kvConfig(),
      rng: Rng.fromSeed(2),
      durable: { snapshot: null, records: [] },
      nowMs: 0,
    });
    const effects = follower.step({
      type: 'request',
      client: ClientId(1),
      requestId: RequestId(1),
      request: { type: 'get', key: 'k' },
    });
    assert.deepEqual(effects, [
      {
        type: 'reply',
        client: 1,
        requestId: 1,
        response: { type: 'error', code: 'NOT_LEADER', leaderHint: null, message: 'n2 is not the leader' },
      },
    ]);
    const status = follower.step({
      type: 'request',
      client: ClientId(1),
      requestId: RequestId(2),
      request: { type: 'status' },
    });
    assert.ok(
      status[0]?.type === 'reply' && status[0].response.type === 'status' && status[0].response.role === 'follower',
    );
  });

  test('the log is compacted into a snapshot every snapshotEntries applied entries', () => {
    const kv = new SingleNode({ snapshotEntries: 5 });
    const opened = kv.call({ type: 'openSession' });
    assert.ok(opened?.type === 'openSession');
    for (let seq = 1; seq <= 12; seq++)
      kv.call({ type: 'put', sessionId: opened.sessionId, seq, key: `k${seq}`, value: 'v' });
    assert.ok(kv.node.core.log.snapshot.index >= 10);
    assert.ok(kv.node.core.log.allEntries().length < 5);
  });
});
