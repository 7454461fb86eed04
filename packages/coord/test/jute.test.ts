/**
 * The jute codec: golden bytes written out by hand from zookeeper.jute's layouts (big-endian ints and
 * longs, int-length-prefixed strings and buffers), round trips through our encoder and decoder, and
 * fuzzing: no byte sequence makes a decoder throw.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  decodeConnectRequest,
  decodeReply,
  decodeRequest,
  encodeConnectResponse,
  encodeNotification,
  encodeReply,
  encodeRequest,
  fourLetterWord,
  type Op,
  OpCode,
} from '../src/index.js';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const from = (text: string) => new Uint8Array(Buffer.from(text.replace(/\s+/g, ''), 'hex'));

describe('jute golden bytes', () => {
  test('ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId, passwd, readOnly', () => {
    const frame = from(`00000000 0000000000000005 00007530 0000000100000002 00000002 abcd 00`);
    const decoded = decodeConnectRequest(frame);
    assert.ok(decoded.ok);
    assert.deepEqual(decoded.value, {
      protocolVersion: 0,
      lastZxidSeen: 5,
      timeoutMs: 30_000,
      sessionId: 2 ** 32 + 2,
      password: new Uint8Array([0xab, 0xcd]),
      readOnly: false,
    });
    // Old clients (node-zookeeper-client) omit readOnly.
    const old = decodeConnectRequest(frame.subarray(0, frame.length - 1));
    assert.ok(old.ok && old.value.readOnly === null);
  });

  test('ConnectResponse, with the readOnly flag echoed only when the client sent it', () => {
    const response = { timeoutMs: 4000, sessionId: 7, password: new Uint8Array([1, 2]), readOnly: null };
    assert.equal(
      hex(encodeConnectResponse(response)),
      '00000016' + '00000000' + '00000fa0' + '0000000000000007' + '00000002' + '0102',
    );
    assert.equal(hex(encodeConnectResponse({ ...response, readOnly: false })).slice(0, 8), '00000017');
  });

  test('a create request: header, path, data, ACL vector, flags', () => {
    const frame = encodeRequest(1, {
      type: 'create',
      path: '/a',
      data: new Uint8Array([0x78]),
      mode: 1,
      ttlMs: 0,
      withStat: false,
    });
    assert.equal(
      hex(frame),
      '00000032' + // 50 bytes follow
        '00000001' +
        '00000001' + // xid 1, create
        '00000002' +
        '2f61' + // "/a"
        '00000001' +
        '78' + // data "x"
        '00000001' +
        '0000001f' +
        '00000005' +
        '776f726c64' +
        '00000006' +
        '616e796f6e65' + // [31, world:anyone]
        '00000001', // EPHEMERAL
    );
    const decoded = decodeRequest(frame.subarray(4));
    assert.ok(decoded.ok && decoded.value.kind === 'op');
    assert.deepEqual(decoded.value.op, {
      type: 'create',
      path: '/a',
      data: new Uint8Array([0x78]),
      mode: 1,
      ttlMs: 0,
      withStat: false,
    });
  });

  test('a getData reply: header then data and the 11-field stat; errors carry the header only', () => {
    const stat = {
      czxid: 1,
      mzxid: 2,
      pzxid: 3,
      ctime: 4,
      mtime: 5,
      version: 6,
      cversion: 7,
      aversion: 0,
      ephemeralOwner: 0,
      dataLength: 1,
      numChildren: 0,
      kind: 'persistent' as const,
      ttlMs: 0,
    };
    const frame = encodeReply(9, 0x100000002, 0, OpCode.GET_DATA, { type: 'data', data: new Uint8Array([0x7a]), stat });
    assert.equal(
      hex(frame),
      '00000059' +
        '00000009' +
        '0000000100000002' +
        '00000000' +
        '00000001' +
        '7a' +
        '0000000000000001' +
        '0000000000000002' +
        '0000000000000004' +
        '0000000000000005' +
        '00000006' +
        '00000007' +
        '00000000' +
        '0000000000000000' +
        '00000001' +
        '00000000' +
        '0000000000000003',
    );
    assert.equal(
      hex(encodeReply(9, 1, -101, OpCode.GET_DATA, { type: 'none' })),
      '00000010' + '00000009' + '0000000000000001' + 'ffffff9b',
    );
    const decoded = decodeReply(frame.subarray(4), () => OpCode.GET_DATA);
    assert.ok(decoded.ok && decoded.value.result.type === 'data');
    assert.deepEqual(decoded.value.result.stat, stat);
  });

  test('containers and TTL nodes in ephemeralOwner, as ZooKeeper encodes them', () => {
    const base = {
      czxid: 0,
      mzxid: 0,
      pzxid: 0,
      ctime: 0,
      mtime: 0,
      version: 0,
      cversion: 0,
      aversion: 0,
      ephemeralOwner: 0,
      dataLength: 0,
      numChildren: 0,
      ttlMs: 0,
    };
    const owner = (stat: typeof base & { kind: 'container' | 'ttl' }) =>
      hex(encodeReply(1, 1, 0, OpCode.EXISTS, { type: 'stat', stat }).subarray(20 + 44, 20 + 52));
    assert.equal(owner({ ...base, kind: 'container' }), '8000000000000000');
    assert.equal(owner({ ...base, kind: 'ttl', ttlMs: 500 }), 'ff000000000001f4');
  });

  test('a notification: xid -1, zxid -1, err 0, then type, state, path', () => {
    assert.equal(
      hex(encodeNotification({ type: 3, state: 3, path: '/a' })),
      '0000001e' + 'ffffffff' + 'ffffffffffffffff' + '00000000' + '00000003' + '00000003' + '00000002' + '2f61',
    );
  });

  test('four-letter words are recognized from the first four bytes', () => {
    assert.equal(fourLetterWord(new TextEncoder().encode('ruok')), 'ruok');
    assert.equal(fourLetterWord(new Uint8Array([0, 0, 0, 44])), null);
  });
});

describe('jute round trips and fuzzing', () => {
  test('every request our client encodes decodes to the same operation', () => {
    const ops: Op[] = [
      { type: 'delete', path: '/x', version: 3 },
      { type: 'exists', path: '/x', watch: true },
      { type: 'getChildren', path: '/', watch: false, withStat: true },
      { type: 'sync', path: '/' },
      { type: 'addWatch', path: '/x', mode: 1 },
      { type: 'removeWatches', path: '/x', watcherType: 3, checkOnly: false },
      { type: 'getEphemerals', prefix: '/' },
      { type: 'getAllChildrenNumber', path: '/x' },
      {
        type: 'setWatches',
        relativeZxid: 12,
        data: ['/a'],
        exist: ['/b'],
        child: [],
        persistent: ['/p'],
        persistentRecursive: [],
      },
      {
        type: 'multi',
        ops: [
          { type: 'check', path: '/a', version: 1 },
          { type: 'setData', path: '/a', data: new Uint8Array([1]), version: -1 },
          { type: 'delete', path: '/b', version: -1 },
        ],
      },
    ];
    for (const op of ops) {
      const decoded = decodeRequest(encodeRequest(5, op).subarray(4));
      assert.ok(decoded.ok && decoded.value.kind === 'op', op.type);
      assert.deepEqual(decoded.value.op, op);
    }
  });

  test('random bytes never make a decoder throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        decodeRequest(bytes);
        decodeConnectRequest(bytes);
        decodeReply(bytes, () => OpCode.MULTI);
        decodeReply(bytes, () => OpCode.GET_DATA);
      }),
      { seed: 42, numRuns: 3000 },
    );
  });

  test('absurd lengths are refused before allocating', () => {
    const frame = from('00000001 00000004 7fffffff');
    const decoded = decodeRequest(frame);
    assert.equal(decoded.ok, false);
    const vector = decodeRequest(from('fffffff8 00000065 0000000000000000 7fffffff'));
    assert.equal(vector.ok, false);
  });
});
