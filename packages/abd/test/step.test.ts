// Goal: the ABD step function does what the paper's two phases say, effect by effect: boot makes the
// incarnation durable before coordinating, a write queries a majority then stores a fresh unique tag
// on a majority, a read writes back the maximum before replying, a replica acks a store only once a
// tag at least that new is fsynced, and every limit answers with a typed response instead of growing.
// Method: feed events to `abdProtocol.step` directly (etcd's raft_paper_test style) and assert effects.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientId, type Durable, EMPTY_DURABLE, encode, NodeId, RequestId, Rng } from '@dsys/kit';
import {
  ABD_CONFIG_DEFAULT,
  type AbdConfig,
  AbdError,
  type AbdMessage,
  type AbdRequest,
  type AbdState,
  abdProtocol,
  recordSchema,
  TAG_ZERO,
  type Tag,
} from '../src/index.js';

type Effects = ReturnType<typeof abdProtocol.step>;
const PEERS = [NodeId(1), NodeId(2), NodeId(3)];
const CLIENT = ClientId(7);

function node(id = 1, overrides: Partial<AbdConfig> = {}, durable: Durable = EMPTY_DURABLE): AbdState {
  return abdProtocol.init({
    id: NodeId(id),
    peers: PEERS,
    config: { ...ABD_CONFIG_DEFAULT, ...overrides },
    rng: Rng.fromSeed(1),
    durable,
    nowMs: 0,
  });
}

function step(state: AbdState, event: Parameters<typeof abdProtocol.step>[1]): Effects {
  const effects = abdProtocol.step(state, event);
  abdProtocol.invariants(state);
  return effects;
}

const receive = (from: number, message: AbdMessage) => ({ type: 'receive', from: NodeId(from), message }) as const;
const request = (id: number, body: AbdRequest) =>
  ({ type: 'request', client: CLIENT, requestId: RequestId(id), request: body }) as const;
const persisted = (ack: number) => ({ type: 'persisted', ack }) as const;

function sends(effects: Effects): { to: number; message: AbdMessage }[] {
  return effects.flatMap((effect) => (effect.type === 'send' ? [{ to: effect.to, message: effect.message }] : []));
}

function replies(effects: Effects) {
  return effects.flatMap((effect) => (effect.type === 'reply' ? [effect.response] : []));
}

/** Boots a node: the first event persists the incarnation; its ack makes the node a coordinator. */
function booted(id = 1, overrides: Partial<AbdConfig> = {}): AbdState {
  const state = node(id, overrides);
  const effects = step(state, { type: 'tick', nowMs: 10 });
  assert.equal(effects.length, 1);
  const [persist] = effects;
  assert.ok(persist?.type === 'persist' && persist.sync && persist.ack === 1);
  step(state, persisted(1));
  assert.ok(state.booted);
  return state;
}

test('boot: the incarnation is fsynced first; requests wait for it', () => {
  const state = node();
  assert.equal(state.incarnation, 1);
  const effects = step(state, request(1, { type: 'read' }));
  assert.deepEqual(
    effects.map((effect) => effect.type),
    ['persist'],
    'queued: no query before the incarnation is durable',
  );
  const persist = effects[0]!;
  assert.ok(persist.type === 'persist');
  assert.deepEqual(persist.records[0], encode(recordSchema, { type: 'incarnation', incarnation: 1 }));
  const started = step(state, persisted(1));
  assert.deepEqual(
    sends(started).map((send) => [send.to, send.message.type]),
    [
      [2, 'query'],
      [3, 'query'],
    ],
  );
});

test('write: query a majority, store a fresh tag on a majority, then reply', () => {
  const state = booted(1);
  const query = sends(step(state, request(1, { type: 'write', value: 'x' })));
  assert.deepEqual(query[0]?.message, { type: 'query', incarnation: 1, seq: 1 });
  const peerTag: Tag = { counter: 4, node: 3, incarnation: 2, seq: 9 };
  // n2's answer plus our own make a majority of 3.
  const storePhase = step(state, receive(2, { type: 'queryAck', incarnation: 1, seq: 1, tag: peerTag, value: 'old' }));
  const newTag: Tag = { counter: 5, node: 1, incarnation: 1, seq: 1 };
  assert.deepEqual(
    storePhase.map((effect) => effect.type),
    ['send', 'send', 'persist'],
    'stores go out before our own fsync, which comes last and holds nothing back',
  );
  assert.deepEqual(sends(storePhase)[0]?.message, { type: 'store', incarnation: 1, seq: 1, tag: newTag, value: 'x' });
  assert.deepEqual(state.tag, newTag);
  assert.deepEqual(replies(step(state, receive(2, { type: 'storeAck', incarnation: 1, seq: 1 }))), []);
  // Our own store counts once it is durable.
  assert.deepEqual(replies(step(state, persisted(2))), [{ type: 'write' }]);
  assert.equal(state.ops.size, 0);
});

test('read: writes back the maximum it saw before replying', () => {
  const state = booted(1);
  step(state, request(1, { type: 'read' }));
  const newer: Tag = { counter: 3, node: 2, incarnation: 1, seq: 4 };
  const storePhase = step(state, receive(3, { type: 'queryAck', incarnation: 1, seq: 1, tag: newer, value: 'v' }));
  assert.deepEqual(sends(storePhase)[0]?.message, { type: 'store', incarnation: 1, seq: 1, tag: newer, value: 'v' });
  assert.deepEqual(replies(storePhase), []);
  step(state, receive(2, { type: 'storeAck', incarnation: 1, seq: 1 }));
  assert.deepEqual(replies(step(state, persisted(2))), [{ type: 'read', value: 'v' }]);
});

test('the read-without-write-back mutation replies after the query phase (a deliberate bug)', () => {
  const state = booted(1, { mutation: 'read-without-write-back' });
  step(state, request(1, { type: 'read' }));
  const tag: Tag = { counter: 3, node: 2, incarnation: 1, seq: 4 };
  const effects = step(state, receive(3, { type: 'queryAck', incarnation: 1, seq: 1, tag, value: 'v' }));
  assert.deepEqual(replies(effects), [{ type: 'read', value: 'v' }]);
  assert.deepEqual(sends(effects), []);
});

test('replica: acks a store only once a tag at least that new is durable', () => {
  const state = booted(2);
  const newer: Tag = { counter: 2, node: 1, incarnation: 1, seq: 1 };
  const older: Tag = { counter: 1, node: 3, incarnation: 1, seq: 1 };
  const stored = step(state, receive(1, { type: 'store', incarnation: 1, seq: 1, tag: newer, value: 'n' }));
  assert.deepEqual(
    stored.map((effect) => effect.type),
    ['persist'],
  );
  assert.ok(stored[0]?.type === 'persist' && stored[0].sync && stored[0].ack === 2);
  // An older store while the newer fsync is in flight: acking now would vouch for a tag a crash could lose.
  assert.deepEqual(step(state, receive(3, { type: 'store', incarnation: 1, seq: 5, tag: older, value: 'o' })), []);
  assert.equal(state.value, 'n');
  const acks = sends(step(state, persisted(2)));
  assert.deepEqual(acks, [
    { to: 1, message: { type: 'storeAck', incarnation: 1, seq: 1 } },
    { to: 3, message: { type: 'storeAck', incarnation: 1, seq: 5 } },
  ]);
  // Now durable: an old store is acked at once, and a query sees the newest value.
  assert.deepEqual(sends(step(state, receive(3, { type: 'store', incarnation: 1, seq: 6, tag: older, value: 'o' }))), [
    { to: 3, message: { type: 'storeAck', incarnation: 1, seq: 6 } },
  ]);
  assert.deepEqual(sends(step(state, receive(3, { type: 'query', incarnation: 4, seq: 8 }))), [
    { to: 3, message: { type: 'queryAck', incarnation: 4, seq: 8, tag: newer, value: 'n' } },
  ]);
});

test('tags are unique: concurrent writes at one coordinator, and across a restart', () => {
  const state = booted(1);
  step(state, request(1, { type: 'write', value: 'a' }));
  step(state, request(2, { type: 'write', value: 'b' }));
  // Both see the same maximum (counter 0) from n2: same counter, different seq.
  const first = sends(
    step(state, receive(2, { type: 'queryAck', incarnation: 1, seq: 1, tag: TAG_ZERO, value: null })),
  );
  const second = sends(
    step(state, receive(2, { type: 'queryAck', incarnation: 1, seq: 2, tag: TAG_ZERO, value: null })),
  );
  const tagOf = (effects: { message: AbdMessage }[]) => (effects[0]!.message as { tag: Tag }).tag;
  assert.deepEqual(tagOf(first), { counter: 1, node: 1, incarnation: 1, seq: 1 });
  assert.deepEqual(tagOf(second), { counter: 1, node: 1, incarnation: 1, seq: 2 });

  // After a restart the recovered incarnation is bumped, so seq 1 again still names a new tag.
  const records = [encode(recordSchema, { type: 'incarnation', incarnation: 1 })];
  const restarted = node(1, {}, { snapshot: null, records });
  assert.equal(restarted.incarnation, 2);
});

test('stale answers are ignored: another incarnation, the wrong phase, duplicates', () => {
  const state = booted(1);
  step(state, request(1, { type: 'write', value: 'x' }));
  const stale = { type: 'queryAck', incarnation: 0, seq: 1, tag: TAG_ZERO, value: null } as const;
  assert.deepEqual(step(state, receive(2, stale)), []);
  assert.deepEqual(step(state, receive(2, { type: 'storeAck', incarnation: 1, seq: 1 })), []);
  const answer = { type: 'queryAck', incarnation: 1, seq: 1, tag: TAG_ZERO, value: null } as const;
  assert.equal(sends(step(state, receive(2, answer))).length, 2);
  assert.deepEqual(step(state, receive(2, answer)), [], 'a duplicate of a phase-1 answer after phase 2 began');
});

test('limits: busy beyond opsInflightMax, invalid for an oversized value, queue bound while booting', () => {
  const state = booted(1, { opsInflightMax: 1, valueBytesMax: 4 });
  step(state, request(1, { type: 'read' }));
  assert.deepEqual(replies(step(state, request(2, { type: 'read' }))), [{ type: 'busy' }]);
  assert.deepEqual(replies(step(state, request(3, { type: 'write', value: 'too long' }))), [
    { type: 'invalid', reason: 'value over 4 bytes' },
  ]);
  const booting = node(2, { requestsQueuedMax: 1 });
  step(booting, request(1, { type: 'read' }));
  assert.deepEqual(replies(step(booting, request(2, { type: 'read' }))), [{ type: 'busy' }]);
});

test('retransmits to silent replicas every retransmitTicks; abandons after opTicksMax', () => {
  const state = booted(1, { retransmitTicks: 3, opTicksMax: 7 });
  step(state, request(1, { type: 'write', value: 'x' }));
  const resent: number[][] = [];
  for (let tick = 1; tick <= 8; tick++) {
    const effects = sends(step(state, { type: 'tick', nowMs: 10 * tick }));
    resent.push(effects.map((send) => send.to));
    if (tick === 1) step(state, receive(3, { type: 'queryAck', incarnation: 1, seq: 1, tag: TAG_ZERO, value: null }));
  }
  // Tick 1 answered by n3 moves to the store phase (sends at tick 1); resends at ticks 4 and 7 go to
  // both peers (no store acks); the operation is dropped at tick 8, silently (the client timed out).
  assert.deepEqual(resent, [[], [], [], [2, 3], [], [], [2, 3], []]);
  assert.equal(state.ops.size, 0);
});

test('the log compacts into a snapshot after recordsMax records, and recovers from it', () => {
  const state = booted(2, { recordsMax: 2 });
  const kinds: string[] = [];
  let snapshot: Uint8Array | null = null;
  const after: Uint8Array[] = [];
  for (let counter = 1; counter <= 3; counter++) {
    const tag: Tag = { counter, node: 1, incarnation: 1, seq: counter };
    const effects = step(state, receive(1, { type: 'store', incarnation: 1, seq: counter, tag, value: `v${counter}` }));
    kinds.push(effects.map((effect) => effect.type).join());
    for (const effect of effects) {
      if (effect.type === 'compact') snapshot = effect.snapshot;
      if (effect.type === 'persist' && snapshot !== null) after.push(...effect.records);
    }
    step(state, persisted(state.ackNext - 1));
  }
  // Boot record + 1 store = 2 records; the next write exceeds recordsMax and becomes a snapshot.
  assert.deepEqual(kinds, ['persist', 'compact', 'persist']);
  const recovered = node(2, {}, { snapshot, records: after });
  assert.deepEqual(recovered.tag, { counter: 3, node: 1, incarnation: 1, seq: 3 });
  assert.equal(recovered.value, 'v3');
  assert.equal(recovered.incarnation, 2, 'the snapshot kept the incarnation');
});

test('bad durable bytes and bad config are typed errors', () => {
  const corrupt: Durable = { snapshot: null, records: [new Uint8Array([9, 9, 9])] };
  assert.throws(
    () => node(1, {}, corrupt),
    (error: unknown) => error instanceof AbdError && error.code === 'DURABLE_STATE_INVALID',
  );
  assert.throws(
    () => node(1, { retransmitTicks: 0 }),
    (error: unknown) => error instanceof AbdError && error.code === 'INVALID_CONFIG',
  );
  assert.throws(() => node(1, { retransmitTicks: 600 }), /must be below opTicksMax/);
});
