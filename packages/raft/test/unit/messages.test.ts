/**
 * The wire schemas: every message kind round-trips through the binary codec, and arbitrary bytes
 * decode to a typed error or a valid message, never an exception (phase 2 puts these on TCP).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decode, encode, NodeId } from '@dsys/kit';
import fc from 'fast-check';
import {
  kvRequestSchema,
  kvResponseSchema,
  LogIndex,
  type RaftMessage,
  raftMessageSchema,
  Term,
} from '../../src/index.js';
import { entry } from '../support/core-cluster.js';

const config = { voters: [NodeId(1), NodeId(2)], votersOutgoing: [NodeId(1)], learners: [NodeId(4)], autoLeave: true };
const samples: RaftMessage[] = [
  {
    type: 'appendEntries',
    term: Term(3),
    prevIndex: LogIndex(4),
    prevTerm: Term(2),
    entries: [entry(3, 5, 'x'), { type: 'config', term: Term(3), index: LogIndex(6), config }],
    commit: LogIndex(4),
  },
  {
    type: 'appendEntriesResponse',
    term: Term(3),
    index: LogIndex(9),
    reject: true,
    hintIndex: LogIndex(7),
    hintTerm: Term(2),
  },
  { type: 'requestVote', term: Term(4), lastIndex: LogIndex(9), lastTerm: Term(3), preVote: true, transfer: false },
  {
    type: 'requestVoteResponse',
    term: Term(4),
    preVote: false,
    granted: false,
    commitIndex: LogIndex(7),
    commitTerm: Term(3),
  },
  { type: 'heartbeat', term: Term(4), commit: LogIndex(8), round: 77 },
  { type: 'heartbeatResponse', term: Term(4), round: 77 },
  {
    type: 'installSnapshot',
    term: Term(4),
    meta: { index: LogIndex(100), term: Term(3), config },
    totalBytes: 10,
    offset: 4,
    chunk: new Uint8Array([1, 2, 3]),
  },
  { type: 'installSnapshotResponse', term: Term(4), index: LogIndex(100), offset: 7 },
  { type: 'timeoutNow', term: Term(5) },
  { type: 'readIndex', term: Term(5), requestId: 12 },
  { type: 'readIndexResponse', term: Term(5), requestId: 12, index: LogIndex(44), ok: true },
  { type: 'localFlush', term: Term(5) },
];

test('every message kind round-trips through the codec and passes validation', () => {
  for (const message of samples) {
    assert.equal(raftMessageSchema.check(message, '$'), null, message.type);
    const decoded = decode(raftMessageSchema, encode(raftMessageSchema, message));
    assert.ok(decoded.ok, message.type);
    assert.deepEqual(decoded.value, message);
  }
});

test('malformed structures are rejected on decode: gaps in entries, overlapping learners', () => {
  const gap: RaftMessage = {
    type: 'appendEntries',
    term: Term(1),
    prevIndex: LogIndex(0),
    prevTerm: Term(0),
    entries: [entry(1, 1), entry(1, 3)],
    commit: LogIndex(0),
  };
  assert.equal(decode(raftMessageSchema, encode(raftMessageSchema, gap)).ok, false);
  const overlap = { ...config, learners: [NodeId(1)] };
  const message: RaftMessage = {
    type: 'installSnapshot',
    term: Term(1),
    meta: { index: LogIndex(1), term: Term(1), config: overlap },
    totalBytes: 0,
    offset: 0,
    chunk: new Uint8Array(0),
  };
  assert.equal(decode(raftMessageSchema, encode(raftMessageSchema, message)).ok, false);
});

test('arbitrary bytes never throw from any decoder', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
      decode(raftMessageSchema, bytes);
      decode(kvRequestSchema, bytes);
      decode(kvResponseSchema, bytes);
    }),
    { seed: 7, numRuns: 5000 },
  );
});
