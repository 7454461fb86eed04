// Goal: recovery tells a torn tail (truncate, nothing lost that was complete) from corruption in
// the middle (refuse, naming the offset), for every cut point and every flipped byte.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeRecords, RECORD_HEADER_BYTES, scanRecords } from '../src/index.js';

const payloads = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array(100).fill(7), new Uint8Array([9])];
const file = encodeRecords(payloads);

test('round trip', () => {
  const scan = scanRecords(file);
  assert.ok(scan.ok);
  assert.deepEqual(scan.records, payloads);
  assert.equal(scan.tornBytes, 0);
  assert.equal(scan.validBytes, file.length);
});

test('a tail cut at any offset keeps exactly the complete records', () => {
  const ends: number[] = [];
  let offset = 0;
  for (const payload of payloads) {
    offset += RECORD_HEADER_BYTES + payload.length;
    ends.push(offset);
  }
  for (let cut = 0; cut <= file.length; cut++) {
    const scan = scanRecords(file.subarray(0, cut));
    assert.ok(scan.ok, `cut ${cut}`);
    const complete = ends.filter((end) => end <= cut).length;
    assert.equal(scan.records.length, complete, `cut ${cut}`);
    assert.equal(scan.validBytes + scan.tornBytes, cut);
  }
});

test('garbage appended after the last record is a torn tail', () => {
  const withGarbage = new Uint8Array(file.length + 9);
  withGarbage.set(file);
  withGarbage.set([0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5], file.length);
  const scan = scanRecords(withGarbage);
  assert.ok(scan.ok);
  assert.equal(scan.records.length, payloads.length);
  assert.equal(scan.tornBytes, 9);
});

test('a flipped byte in any record but the last is reported as corruption at that record', () => {
  const lastStart = file.length - (RECORD_HEADER_BYTES + 1);
  for (let at = 0; at < lastStart; at++) {
    const damaged = file.slice();
    damaged[at]! ^= 0x10;
    const scan = scanRecords(damaged);
    assert.equal(scan.ok, false, `flip at ${at} not detected`);
    if (!scan.ok) assert.ok(scan.corruptAt <= at, `flip at ${at} reported at ${scan.corruptAt}`);
  }
});

test('zeros after the records (preallocated space) are a torn tail of zeros; a record after them is still found', () => {
  const zeros = 4 * 1024 * 1024;
  const preallocated = new Uint8Array(file.length + zeros);
  preallocated.set(file);
  const scan = scanRecords(preallocated);
  assert.ok(scan.ok);
  assert.deepEqual(scan.records, payloads);
  assert.deepEqual([scan.validBytes, scan.tornBytes], [file.length, zeros]);

  // A valid record far into the zeros: damage before it is corruption, not a torn tail. The record is
  // empty, so its header starts with 8 zero bytes (length, crc32c of nothing): the search that skips
  // runs of zeros must not jump over it.
  const lone = encodeRecords([new Uint8Array(0)]);
  assert.deepEqual([...lone.subarray(0, 8)], [0, 0, 0, 0, 0, 0, 0, 0]);
  for (const at of [
    file.length + 1,
    file.length + RECORD_HEADER_BYTES,
    file.length + 4096 + 3,
    preallocated.length - lone.length,
  ]) {
    const hole = preallocated.slice();
    hole.set(lone, at);
    hole.fill(0, RECORD_HEADER_BYTES + 3, file.length); // every record after the first, zeroed
    const damaged = scanRecords(hole);
    assert.equal(damaged.ok, false, `record at ${at} not found after the zeros`);
    if (!damaged.ok) assert.equal(damaged.corruptAt, RECORD_HEADER_BYTES + 3);
  }
});
