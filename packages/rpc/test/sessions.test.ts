// Goal: the reply cache stays bounded and never forgets silently: acknowledged replies are dropped by
// the floor, a session tracks at most `repliesPerSessionMax` seqs, the byte budget and the session cap
// evict whole least-recently-active sessions, and the server can tell an evicted session from one it
// never issued. Method: the SessionTable alone, with hand-made calls.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type CachedCall, cachedPayload, SessionTable, SLAB_BYTES, SPARE_SLABS_MAX } from '../src/sessions.js';

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

test('a steady pipeline refills a few slabs instead of allocating new ones', () => {
  // 4 KiB replies, the client's floor 128 seqs behind (64 calls in flight): ~9 slabs hold live replies.
  const table = new SessionTable({ ...roomy, replyCacheBytesMax: 64 * SLAB_BYTES }, 1);
  const session = table.open();
  const slabs = new Set<unknown>();
  for (let seq = 1; seq <= 20_000; seq++) {
    if (seq > 128) table.advanceFloor(session, seq - 128);
    const c = complete(table, session, seq, 4096);
    slabs.add(c.slab);
    assert.ok(table.arena.chargedBytes + table.arena.spareSlabs * SLAB_BYTES <= 64 * SLAB_BYTES);
  }
  assert.ok(slabs.size <= 12, `${slabs.size} slabs for 20,000 replies`);
  // The cached bytes are the replies' own, whichever slab they landed in.
  assert.deepEqual(cachedPayload(session.call(20_000)!), new Uint8Array(4096).fill(20_000 & 0xff));
  assert.deepEqual(cachedPayload(session.call(19_900)!), new Uint8Array(4096).fill(19_900 & 0xff));
  table.advanceFloor(session, 20_001);
  assert.equal(table.arena.chargedBytes, 0);
  assert.ok(table.arena.spareSlabs <= SPARE_SLABS_MAX);
});

test('spare slabs never raise the memory held above the byte budget', () => {
  const budget = 3 * SLAB_BYTES;
  const table = new SessionTable({ ...roomy, replyCacheBytesMax: budget }, 1);
  const sessions = [table.open(), table.open(), table.open()];
  for (let seq = 1; seq <= 2_000; seq++) {
    const session = sessions[seq % 3]!;
    if (session.evicted) continue;
    if (seq % 7 === 0) table.advanceFloor(session, seq - 20);
    complete(table, session, seq, 4000 + (seq % 500));
    const held = table.arena.chargedBytes + table.arena.spareSlabs * SLAB_BYTES;
    assert.ok(held <= budget + SLAB_BYTES, `held ${held} bytes at seq ${seq}`);
  }
});

test('a session the client ended drops its replies at once and is answered as expired', () => {
  const table = new SessionTable(roomy, 1);
  const ended = table.open();
  const other = table.open();
  for (let seq = 1; seq <= 20; seq++) complete(table, ended, seq, 4096);
  complete(table, other, 1, 100);
  const otherBytes = other.bytes;
  table.end(ended);
  assert.equal(ended.evicted, true);
  assert.equal(ended.calls.size, 0);
  assert.equal(table.get(ended.id), undefined);
  assert.equal(table.issued(ended.id), true, 'expired, not unknown');
  assert.equal(table.bytes, otherBytes);
  assert.equal(table.evictions, 0, 'an ended session is not an eviction');
  assert.equal(other.call(1)?.seq, 1);
  table.end(ended); // twice is harmless
  assert.equal(table.size, 1);
});
