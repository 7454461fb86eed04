// Goal: the reply cache stays bounded and never forgets silently: acknowledged replies are dropped by
// the floor, a session tracks at most `repliesPerSessionMax` seqs, the byte budget and the session cap
// evict whole least-recently-active sessions, and the server can tell an evicted session from one it
// never issued. Method: the SessionTable alone, with hand-made calls.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type CachedCall, SessionTable, SLAB_BYTES } from '../src/sessions.js';

function call(seq: number): CachedCall {
  return { seq, done: false, cachedBytes: 0, slab: null, payloadAt: 0, payloadBytes: 0, ownPayload: null };
}

function complete(table: SessionTable, session: ReturnType<SessionTable['open']>, seq: number, bytes = 10): CachedCall {
  const c = call(seq);
  table.begin(session, c);
  c.done = true;
  table.finish(session, c, new Uint8Array(bytes).fill(seq & 0xff), 0, bytes);
  return c;
}

const roomy = { sessionsMax: 100, replyCacheBytesMax: 10 * SLAB_BYTES, repliesPerSessionMax: 1000 };

test('the floor drops acknowledged replies; a seq below it is never tracked again', () => {
  const table = new SessionTable(roomy, 500);
  const session = table.open();
  for (let seq = 1; seq <= 10; seq++) complete(table, session, seq);
  assert.equal(session.calls.size, 10);
  const bytes = table.bytes;
  table.advanceFloor(session, 6);
  assert.equal(session.calls.size, 5);
  assert.equal(session.call(5), undefined);
  assert.equal(session.call(6)?.seq, 6);
  assert.ok(table.bytes < bytes);
  table.advanceFloor(session, 1_000_000); // a far jump drops everything, without walking a million seqs
  assert.equal(session.calls.size, 0);
  assert.equal(table.bytes, 0);
  assert.equal(table.arena.chargedBytes, 0);
});

test('a session tracks at most repliesPerSessionMax seqs', () => {
  const table = new SessionTable({ ...roomy, repliesPerSessionMax: 4 }, 1);
  const session = table.open();
  for (let seq = 1; seq <= 4; seq++) complete(table, session, seq);
  complete(table, session, 5);
  assert.equal(session.floor, 2, 'the floor moved past the oldest');
  assert.equal(session.call(1), undefined);
  assert.equal(session.calls.size, 4);
  complete(table, session, 100); // a jump far ahead forgets what is too far behind
  assert.equal(session.floor, 97);
  assert.equal(session.calls.size, 1);
});

test('the byte budget evicts the least recently active session whole', () => {
  // Each reply costs 1000 bytes plus 96 of overhead: three fit, four do not.
  const table = new SessionTable({ ...roomy, replyCacheBytesMax: 3500 }, 1);
  const a = table.open();
  const b = table.open();
  complete(table, a, 1, 1000);
  complete(table, b, 1, 1000);
  table.touch(a); // a is now the most recently active
  complete(table, b, 2, 1000);
  assert.equal(a.evicted, false);
  assert.equal(b.evicted, false);
  complete(table, a, 2, 1000); // over budget: b (least recent) goes
  assert.equal(b.evicted, true);
  assert.equal(table.get(b.id), undefined);
  assert.equal(table.issued(b.id), true, 'evicted, not unknown');
  assert.equal(table.issued(b.id + 1000), false);
  assert.equal(table.evictions, 1);
  assert.ok(table.bytes <= 3500);
});

test('the session cap evicts the oldest session; the slab memory is charged and released', () => {
  const table = new SessionTable({ ...roomy, sessionsMax: 2 }, 1);
  const first = table.open();
  complete(table, first, 1);
  assert.equal(table.arena.chargedBytes, SLAB_BYTES);
  table.open();
  table.open();
  assert.equal(first.evicted, true);
  assert.equal(table.size, 2);
  assert.equal(table.arena.chargedBytes, 0);
  assert.equal(table.bytes, 0);
});

test('a reply finished after its seq fell below the floor is not cached', () => {
  const table = new SessionTable(roomy, 1);
  const session = table.open();
  const running = call(1);
  table.begin(session, running);
  table.advanceFloor(session, 2); // the client gave up on it (deadline) while it ran
  running.done = true;
  assert.equal(table.finish(session, running, new Uint8Array(8), 0, 8), false);
  assert.equal(table.bytes, 0);
});
