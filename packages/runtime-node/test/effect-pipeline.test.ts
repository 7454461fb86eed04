// Goal: the pipeline honours kit's effect-order contract exactly. Method: a fake storage whose
// tickets become durable only when the test says so, and a trace of every executed effect.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientId, type Effect, NodeId, RequestId } from '@dsys/kit';
import { EffectPipeline, type PipelineStorage } from '../src/index.js';

type Message = string;
type Response = string;

class FakeStorage implements PipelineStorage {
  syncedTicket = 0;
  lastTicket = 0;
  readonly operations: string[] = [];
  private waiters: { ticket: number; callback: () => void }[] = [];

  append(records: readonly Uint8Array[], sync: boolean): number {
    this.operations.push(`append(${records.length},${sync ? 'sync' : 'lazy'})#${++this.lastTicket}`);
    return this.lastTicket;
  }

  compact(_snapshot: Uint8Array, records: readonly Uint8Array[]): number {
    this.operations.push(`compact(${records.length})#${++this.lastTicket}`);
    return this.lastTicket;
  }

  whenSynced(ticket: number, callback: () => void): void {
    this.waiters.push({ ticket, callback });
  }

  /** Makes everything through `ticket` durable and runs the callbacks, as the log's writer does. */
  sync(ticket: number): void {
    this.syncedTicket = ticket;
    const ready = this.waiters.filter((waiter) => waiter.ticket <= ticket);
    this.waiters = this.waiters.filter((waiter) => waiter.ticket > ticket);
    for (const waiter of ready) waiter.callback();
  }
}

function setup() {
  const storage = new FakeStorage();
  const trace: string[] = [];
  const pipeline = new EffectPipeline<Message, Response>(storage, {
    send: (to, message) => trace.push(`send ${to} ${message}`),
    reply: (client, requestId, response) => trace.push(`reply ${client}/${requestId} ${response}`),
    persisted: (ack) => trace.push(`persisted ${ack}`),
  });
  return { storage, trace, pipeline };
}

const send = (to: number, message: string): Effect<Message, Response> => ({ type: 'send', to: NodeId(to), message });
const reply = (response: string): Effect<Message, Response> => ({
  type: 'reply',
  client: ClientId(1),
  requestId: RequestId(7),
  response,
});
const persist = (sync: boolean, ack?: number): Effect<Message, Response> =>
  ack === undefined
    ? { type: 'persist', records: [new Uint8Array(1)], sync }
    : { type: 'persist', records: [], sync, ack };

test('effects before a sync persist run at once; effects after it wait for durability', () => {
  const { storage, trace, pipeline } = setup();
  pipeline.submit([send(2, 'append-entries'), persist(true), send(3, 'vote'), reply('ok')]);
  assert.deepEqual(trace, ['send 2 append-entries']);
  assert.deepEqual(storage.operations, ['append(1,sync)#1']);
  storage.sync(1);
  assert.deepEqual(trace, ['send 2 append-entries', 'send 3 vote', 'reply 1/7 ok']);
  assert.equal(pipeline.heldCount, 0);
});

test('a barrier holds the effects of later steps too, while their persists reach storage at once', () => {
  const { storage, trace, pipeline } = setup();
  pipeline.submit([persist(true), send(2, 'a')]);
  pipeline.submit([send(2, 'b'), persist(false), send(2, 'c')]);
  pipeline.submit([persist(true), send(2, 'd')]);
  assert.deepEqual(trace, []);
  // Storage sees every persist in order, so one fsync can cover both barriers (group commit).
  assert.deepEqual(storage.operations, ['append(1,sync)#1', 'append(1,lazy)#2', 'append(1,sync)#3']);
  storage.sync(1);
  assert.deepEqual(trace, ['send 2 a', 'send 2 b', 'send 2 c']);
  storage.sync(3);
  assert.deepEqual(trace, ['send 2 a', 'send 2 b', 'send 2 c', 'send 2 d']);
});

test('one fsync covering two barriers releases everything behind both, in order', () => {
  const { storage, trace, pipeline } = setup();
  pipeline.submit([persist(true), send(1, 'x'), persist(true), send(1, 'y')]);
  storage.sync(2);
  assert.deepEqual(trace, ['send 1 x', 'send 1 y']);
});

test('a lazy persist is not a barrier', () => {
  const { storage, trace, pipeline } = setup();
  pipeline.submit([persist(false), send(1, 'now'), reply('now')]);
  assert.deepEqual(trace, ['send 1 now', 'reply 1/7 now']);
  assert.deepEqual(storage.operations, ['append(1,lazy)#1']);
});

test('a barrier compact holds later sends until durable', () => {
  const { storage, trace, pipeline } = setup();
  pipeline.submit([{ type: 'compact', snapshot: new Uint8Array(2), records: [], barrier: true }, send(1, 'after')]);
  assert.deepEqual(trace, []);
  storage.sync(1);
  assert.deepEqual(trace, ['send 1 after']);
});

test('a compact without barrier lets later sends go at once and still acks once durable', () => {
  const { storage, trace, pipeline } = setup();
  pipeline.submit([
    { type: 'compact', snapshot: new Uint8Array(2), records: [], barrier: false, ack: 5 },
    send(1, 'during'),
  ]);
  assert.deepEqual(trace, ['send 1 during']);
  storage.sync(1);
  assert.deepEqual(trace, ['send 1 during', 'persisted 5']);
});

test('acks fire once durable, for lazy persists too, and in ticket order', () => {
  const { storage, trace, pipeline } = setup();
  pipeline.submit([persist(false, 10), persist(true, 11), send(1, 'm')]);
  assert.deepEqual(trace, []);
  storage.sync(1);
  assert.deepEqual(trace, ['persisted 10']);
  storage.sync(2);
  assert.deepEqual(trace, ['persisted 10', 'persisted 11', 'send 1 m']);
});

test('a long run behind barriers keeps order and drains completely', () => {
  const { storage, trace, pipeline } = setup();
  const expected: string[] = [];
  for (let i = 0; i < 5000; i++) {
    pipeline.submit([persist(i % 3 === 0), send(1, `m${i}`)]);
    expected.push(`send 1 m${i}`);
    if (i % 700 === 0) storage.sync(storage.lastTicket);
  }
  storage.sync(storage.lastTicket);
  assert.deepEqual(trace, expected);
  assert.equal(pipeline.heldCount, 0);
});
