// Goal: the simulated disk keeps exactly what was fsynced, loses the rest at a crash, and a torn
// last write is cut off by kit's real recovery routine (`scanRecords`), never mistaken for corruption.
// Method: drive SimDisk directly (append / sync / compact / crash / recover) and inspect the bytes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeRecords, RECORD_HEADER_BYTES, scanRecords } from '@dsys/kit';
import { SimDisk } from '../src/index.js';

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (records: readonly Uint8Array[]) => records.map((record) => new TextDecoder().decode(record));

test('synced records survive a crash, unsynced ones are lost', () => {
  const disk = new SimDisk();
  disk.append([bytes('a'), bytes('b')], undefined);
  disk.complete(disk.sync());
  disk.append([bytes('c')], undefined);
  assert.equal(disk.bytesUnsynced, RECORD_HEADER_BYTES + 1);
  const report = disk.crash(null);
  assert.deepEqual(report, { bytesLost: RECORD_HEADER_BYTES + 1, bytesTorn: 0 });
  const recovery = disk.recover();
  assert.deepEqual(text(recovery.durable.records), ['a', 'b']);
  assert.equal(recovery.bytesTruncated, 0);
});

test('a sync in flight at the crash makes nothing durable', () => {
  const disk = new SimDisk();
  disk.append([bytes('a')], undefined);
  disk.sync(); // issued, never completed: the crash comes first
  disk.crash(null);
  assert.deepEqual(text(disk.recover().durable.records), []);
});

test('a torn last write leaves a partial record that scanRecords truncates', () => {
  const disk = new SimDisk();
  disk.append([bytes('durable')], undefined);
  disk.complete(disk.sync());
  disk.append([bytes('torn-away')], undefined);
  const unsynced = disk.bytesUnsynced;
  const report = disk.crash((available) => {
    assert.equal(available, unsynced);
    return 5; // only the first 5 bytes of the header reached the disk
  });
  assert.deepEqual(report, { bytesLost: unsynced - 5, bytesTorn: 5 });
  const recovery = disk.recover();
  assert.deepEqual(text(recovery.durable.records), ['durable']);
  assert.equal(recovery.bytesTruncated, 5);
  // Recovery truncated the tail, so new appends follow a clean log (no "corruption" after them).
  disk.append([bytes('after')], undefined);
  disk.complete(disk.sync());
  const scan = scanRecords(disk.durableBytes());
  assert.ok(scan.ok);
  assert.deepEqual(text(scan.records), ['durable', 'after']);
});

test('complete unsynced records inside a torn prefix survive (they did reach the disk)', () => {
  const disk = new SimDisk();
  disk.append([bytes('x')], undefined);
  disk.append([bytes('y')], undefined);
  const oneRecord = RECORD_HEADER_BYTES + 1;
  disk.crash(() => oneRecord + 3);
  const recovery = disk.recover();
  assert.deepEqual(text(recovery.durable.records), ['x']);
  assert.equal(recovery.bytesTruncated, 3);
});

test('compaction is atomic: a crash before it completes leaves the old state, after it the new', () => {
  const disk = new SimDisk();
  disk.append([bytes('1'), bytes('2')], undefined);
  disk.complete(disk.sync());
  const snapshot = bytes('snap');
  disk.compact(snapshot, [bytes('3')], undefined);
  disk.crash(null);
  let recovery = disk.recover();
  assert.equal(recovery.durable.snapshot, null);
  assert.deepEqual(text(recovery.durable.records), ['1', '2']);

  const ticket = disk.compact(snapshot, [bytes('3')], undefined);
  disk.append([bytes('4')], undefined); // goes to the new log
  const sync = disk.sync();
  disk.complete(ticket);
  disk.complete(sync);
  disk.crash(null);
  recovery = disk.recover();
  assert.deepEqual(recovery.durable.snapshot, snapshot);
  assert.deepEqual(text(recovery.durable.records), ['3', '4']);
});

test('acks are reported once their bytes are durable, in order', () => {
  const disk = new SimDisk();
  disk.append([bytes('a')], 1); // not synced: waits for a later sync
  assert.deepEqual(disk.complete(disk.sync()), [1]);
  disk.append([bytes('b')], 2);
  const sync = disk.sync();
  disk.append([bytes('c')], 3); // appended after the sync was issued: not covered by it
  assert.deepEqual(disk.complete(sync), [2]);
  const compaction = disk.compact(bytes('s'), [], 4);
  assert.deepEqual(disk.complete(compaction), [3, 4], 'the compaction supersedes the older unsynced ack');
  disk.append([bytes('d')], 5);
  disk.crash(null);
  assert.deepEqual(disk.complete(disk.sync()), [], 'a crash forgets pending acks');
});

test("the on-disk bytes are exactly kit's record-log framing (encodeRecords)", () => {
  const disk = new SimDisk();
  const batches = [[bytes('one')], [bytes(''), bytes('three'), bytes('x'.repeat(300))], [bytes('four')]];
  for (const batch of batches) disk.append(batch, undefined);
  disk.complete(disk.sync());
  assert.deepEqual(disk.durableBytes(), encodeRecords(batches.flat()));
});
