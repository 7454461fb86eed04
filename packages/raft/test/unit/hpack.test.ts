/**
 * HPACK (src/real/etcd/http2/hpack.ts) against RFC 7541:
 * - the examples of Appendix C, byte for byte, with the dynamic table after each block read back
 *   through indexed references (C.3/C.4 requests, C.5/C.6 responses with a 256-byte table and evictions);
 * - the Huffman code: the table is a canonical, complete code, and every octet round-trips;
 * - every malformed block is an HpackError, and the decoder goes on working after one;
 * - the stateless encoder's output decodes back to its input.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  encodeHeaders,
  HpackDecoder,
  HpackError,
  huffmanDecode,
  huffmanEncode,
} from '../../src/real/etcd/http2/hpack.js';
import { HUFFMAN_CODES, HUFFMAN_LENGTHS } from '../../src/real/etcd/http2/huffman-table.js';

/** An RFC hex dump ("8286 8441 ...") as bytes. */
const hex = (dump: string): Buffer => Buffer.from(dump.replace(/\s+/g, ''), 'hex');

/** An integer with a prefix of `mask` bits after `flags` (section 5.1), as test input. */
function integer(flags: number, mask: number, value: number): number[] {
  if (value < mask) return [flags | value];
  const bytes = [flags | mask];
  value -= mask;
  while (value >= 0x80) {
    bytes.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  bytes.push(value);
  return bytes;
}

/** A string literal, raw or Huffman-coded. */
function str(text: string, huffman = false): number[] {
  const bytes = huffman ? huffmanEncode(text) : Buffer.from(text, 'latin1');
  return [...integer(huffman ? 0x80 : 0, 0x7f, bytes.length), ...bytes];
}

const block = (...parts: (number | number[])[]): Buffer => Buffer.from(parts.flat());

/** The decoder's dynamic table, newest first, read back with indexed fields (which change nothing). */
function dynamicTable(decoder: HpackDecoder): [string, string][] {
  const entries: [string, string][] = [];
  for (let index = 62; ; index++) {
    let list: string[];
    try {
      list = decoder.decode(block(integer(0x80, 0x7f, index)));
    } catch (error) {
      if (error instanceof HpackError) return entries;
      throw error;
    }
    entries.push([list[0]!, list[1]!]);
  }
}

const tableSize = (entries: [string, string][]): number =>
  entries.reduce((sum, [name, value]) => sum + name.length + value.length + 32, 0);

/** Asserts the decoded list of `dump`, then the table (newest first) and its size as the RFC lists them. */
function step(decoder: HpackDecoder, dump: string, list: string[], table: [string, string][], size: number): void {
  assert.deepEqual(decoder.decode(hex(dump)), list);
  const entries = dynamicTable(decoder);
  assert.deepEqual(entries, table);
  assert.equal(tableSize(entries), size);
}

/** A small deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function assertHpackError(decoder: HpackDecoder, input: Uint8Array, why: string): void {
  assert.throws(() => decoder.decode(input), HpackError, why);
}

describe('RFC 7541 C.2: single fields', () => {
  test('C.2.1 literal with indexing enters the table', () => {
    step(
      new HpackDecoder(),
      '400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572',
      ['custom-key', 'custom-header'],
      [['custom-key', 'custom-header']],
      55,
    );
  });

  test('C.2.2 literal without indexing leaves it alone', () => {
    step(new HpackDecoder(), '040c 2f73 616d 706c 652f 7061 7468', [':path', '/sample/path'], [], 0);
  });

  test('C.2.3 never-indexed literal leaves it alone', () => {
    step(new HpackDecoder(), '1008 7061 7373 776f 7264 0673 6563 7265 74', ['password', 'secret'], [], 0);
  });

  test('C.2.4 indexed field', () => {
    step(new HpackDecoder(), '82', [':method', 'GET'], [], 0);
  });
});

const REQUEST_1 = [':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'www.example.com'];
const REQUEST_2 = [...REQUEST_1, 'cache-control', 'no-cache'];
const REQUEST_3 = [
  ':method',
  'GET',
  ':scheme',
  'https',
  ':path',
  '/index.html',
  ':authority',
  'www.example.com',
  'custom-key',
  'custom-value',
];
const AUTHORITY: [string, string] = [':authority', 'www.example.com'];
const NO_CACHE: [string, string] = ['cache-control', 'no-cache'];
const CUSTOM: [string, string] = ['custom-key', 'custom-value'];

describe('RFC 7541 C.3/C.4: requests on one decoder', () => {
  test('C.3 without Huffman', () => {
    const decoder = new HpackDecoder();
    step(decoder, '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d', REQUEST_1, [AUTHORITY], 57);
    step(decoder, '8286 84be 5808 6e6f 2d63 6163 6865', REQUEST_2, [NO_CACHE, AUTHORITY], 110);
    step(
      decoder,
      '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
      REQUEST_3,
      [CUSTOM, NO_CACHE, AUTHORITY],
      164,
    );
  });

  test('C.4 with Huffman', () => {
    const decoder = new HpackDecoder();
    step(decoder, '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff', REQUEST_1, [AUTHORITY], 57);
    step(decoder, '8286 84be 5886 a8eb 1064 9cbf', REQUEST_2, [NO_CACHE, AUTHORITY], 110);
    step(
      decoder,
      '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf',
      REQUEST_3,
      [CUSTOM, NO_CACHE, AUTHORITY],
      164,
    );
  });

  test('the C.4 strings Huffman-encode to the RFC bytes', () => {
    assert.deepEqual(huffmanEncode('www.example.com'), hex('f1e3 c2e5 f23a 6ba0 ab90 f4ff'));
    assert.deepEqual(huffmanEncode('no-cache'), hex('a8eb 1064 9cbf'));
    assert.deepEqual(huffmanEncode('custom-key'), hex('25a8 49e9 5ba9 7d7f'));
    assert.deepEqual(huffmanEncode('custom-value'), hex('25a8 49e9 5bb8 e8b4 bf'));
  });
});

const DATE_21 = 'Mon, 21 Oct 2013 20:13:21 GMT';
const DATE_22 = 'Mon, 21 Oct 2013 20:13:22 GMT';
const LOCATION = 'https://www.example.com';
const COOKIE = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';
const RESPONSE_1 = [':status', '302', 'cache-control', 'private', 'date', DATE_21, 'location', LOCATION];
const RESPONSE_2 = [':status', '307', 'cache-control', 'private', 'date', DATE_21, 'location', LOCATION];
const RESPONSE_3 = [
  ':status',
  '200',
  'cache-control',
  'private',
  'date',
  DATE_22,
  'location',
  LOCATION,
  'content-encoding',
  'gzip',
  'set-cookie',
  COOKIE,
];
const TABLE_1: [string, string][] = [
  ['location', LOCATION],
  ['date', DATE_21],
  ['cache-control', 'private'],
  [':status', '302'],
];
// The second response's :status 307 pushes out the oldest entry, :status 302.
const TABLE_2: [string, string][] = [[':status', '307'], ...TABLE_1.slice(0, 3)];
// The third one's date, content-encoding and set-cookie push out all four.
const TABLE_3: [string, string][] = [
  ['set-cookie', COOKIE],
  ['content-encoding', 'gzip'],
  ['date', DATE_22],
];

describe('RFC 7541 C.5/C.6: responses with a 256-byte table, evicting', () => {
  test('C.5 without Huffman', () => {
    const decoder = new HpackDecoder({ tableSizeMax: 256 });
    step(
      decoder,
      `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32
       3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d`,
      RESPONSE_1,
      TABLE_1,
      222,
    );
    step(decoder, '4803 3330 37c1 c0bf', RESPONSE_2, TABLE_2, 222);
    step(
      decoder,
      `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970
       7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61
       6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31`,
      RESPONSE_3,
      TABLE_3,
      215,
    );
  });

  test('C.6 with Huffman', () => {
    const decoder = new HpackDecoder({ tableSizeMax: 256 });
    step(
      decoder,
      `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad
       1718 63c7 8f0b 97c8 e9ae 82ae 43d3`,
      RESPONSE_1,
      TABLE_1,
      222,
    );
    step(decoder, '4883 640e ffc1 c0bf', RESPONSE_2, TABLE_2, 222);
    step(
      decoder,
      `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2
       e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
      RESPONSE_3,
      TABLE_3,
      215,
    );
  });
});

describe('dynamic table', () => {
  test('an entry larger than the table empties it, and is not added', () => {
    const decoder = new HpackDecoder({ tableSizeMax: 100 });
    decoder.decode(block(0x40, str('a'), str('b')));
    assert.equal(dynamicTable(decoder).length, 1);
    decoder.decode(block(0x40, str('big'), str('x'.repeat(100))));
    assert.deepEqual(dynamicTable(decoder), []);
    decoder.decode(block(0x40, str('c'), str('d')));
    assert.deepEqual(dynamicTable(decoder), [['c', 'd']]);
  });

  test('a literal may name the entry its own insertion evicts', () => {
    const decoder = new HpackDecoder({ tableSizeMax: 70 });
    decoder.decode(block(0x40, str('name'), str('v1'))); // 38 bytes
    // Indexed name 62 ('name'), and a 38-byte entry that evicts the one named: the name was read first.
    assert.deepEqual(decoder.decode(block(0x7e, str('v2'))), ['name', 'v2']);
    assert.deepEqual(dynamicTable(decoder), [['name', 'v2']]);
  });

  test('size updates shrink (evicting) and regrow up to the advertised maximum', () => {
    const decoder = new HpackDecoder();
    for (let i = 0; i < 3; i++) decoder.decode(block(0x40, str(`k${i}`), str('v'))); // 35 bytes each
    assert.deepEqual(decoder.decode(block(integer(0x20, 0x1f, 80))), []);
    assert.deepEqual(dynamicTable(decoder), [
      ['k2', 'v'],
      ['k1', 'v'],
    ]);
    // Two updates in a row at the start of a block are allowed (section 4.2), then fields.
    assert.deepEqual(decoder.decode(block(0x20, integer(0x20, 0x1f, 4096), 0x40, str('k3'), str('v'), 0x82)), [
      'k3',
      'v',
      ':method',
      'GET',
    ]);
    assert.deepEqual(dynamicTable(decoder), [['k3', 'v']]);
  });

  test('an integer may carry up to five continuation bytes, even zeros (a size update to 31)', () => {
    const decoder = new HpackDecoder();
    assert.deepEqual(decoder.decode(block(0x3f, 0x80, 0x80, 0x80, 0x80, 0x00, 0x81)), [':authority', '']);
    // The largest integer, 2^31-1: 127 + 0x7fffff80 in five 7-bit groups.
    assert.throws(() => decoder.decode(block(0xff, 0x80, 0xff, 0xff, 0xff, 0x07)), /index 2147483647/);
    assert.throws(() => decoder.decode(block(0xff, 0x81, 0xff, 0xff, 0xff, 0x07)), /integer 2147483648 above 2\^31-1/);
  });

  test('a table wider than the protocol default starts at 4096 until the peer grows it', () => {
    const decoder = new HpackDecoder({ tableSizeMax: 8192 });
    const value = 'x'.repeat(3000);
    decoder.decode(block(0x40, str('a'), str(value)));
    decoder.decode(block(0x40, str('b'), str(value)));
    assert.deepEqual(dynamicTable(decoder), [['b', value]], 'two 3033-byte entries do not fit in 4096');
    decoder.decode(block(integer(0x20, 0x1f, 8192), 0x40, str('c'), str(value)));
    assert.deepEqual(dynamicTable(decoder), [
      ['c', value],
      ['b', value],
    ]);
  });

  test('the ring keeps its order across growth and wrap-around', () => {
    const decoder = new HpackDecoder({ tableSizeMax: 65_536 });
    decoder.decode(block(integer(0x20, 0x1f, 40 * 300)));
    const model: [string, string][] = [];
    for (let i = 0; i < 1000; i++) {
      const entry: [string, string] = [`n${i % 7}`, `v${i}`];
      decoder.decode(block(0x40, str(entry[0]), str(entry[1])));
      model.unshift(entry);
      while (tableSize(model) > 40 * 300) model.pop();
      if (i % 97 === 0) assert.deepEqual(dynamicTable(decoder), model);
    }
    assert.deepEqual(dynamicTable(decoder), model);
  });
});

describe('Huffman code', () => {
  test('the table is canonical and complete (Kraft sum 1), EOS 30 ones', () => {
    assert.equal(HUFFMAN_CODES.length, 257);
    assert.equal(HUFFMAN_LENGTHS.length, 257);
    assert.equal(HUFFMAN_CODES[256], 0x3fffffff);
    assert.equal(HUFFMAN_LENGTHS[256], 30);
    const order = [...HUFFMAN_LENGTHS.keys()].sort((a, b) => HUFFMAN_LENGTHS[a]! - HUFFMAN_LENGTHS[b]! || a - b);
    let code = 0;
    let length = HUFFMAN_LENGTHS[order[0]!]!;
    let kraft = 0;
    for (const symbol of order) {
      code *= 2 ** (HUFFMAN_LENGTHS[symbol]! - length);
      length = HUFFMAN_LENGTHS[symbol]!;
      assert.equal(HUFFMAN_CODES[symbol], code, `symbol ${symbol}`);
      code++;
      kraft += 2 ** -length;
    }
    assert.equal(kraft, 1);
  });

  test('every octet round-trips, alone and all together', () => {
    let all = '';
    for (let byte = 0; byte < 256; byte++) {
      const text = String.fromCharCode(byte);
      all += text;
      assert.equal(huffmanDecode(huffmanEncode(text)), text, `octet ${byte}`);
      assert.equal(huffmanDecode(huffmanEncode(text.repeat(7))), text.repeat(7), `octet ${byte} x7`);
    }
    assert.equal(huffmanDecode(huffmanEncode(all)), all);
    assert.equal(huffmanDecode(huffmanEncode([...all].reverse().join(''))), [...all].reverse().join(''));
  });

  test('random strings round-trip', () => {
    const random = prng(7541);
    const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789-_./:';
    for (let i = 0; i < 2000; i++) {
      const length = Math.floor(random() * 60);
      let text = '';
      for (let j = 0; j < length; j++) {
        text +=
          i % 2 === 0
            ? alphabet[Math.floor(random() * alphabet.length)]!
            : String.fromCharCode(Math.floor(random() * 256));
      }
      assert.equal(huffmanDecode(huffmanEncode(text)), text);
    }
  });

  test('the empty string is zero bytes', () => {
    assert.equal(huffmanEncode('').length, 0);
    assert.equal(huffmanDecode(new Uint8Array(0)), '');
  });

  test('bad padding and EOS are HpackErrors', () => {
    // 'a' is 00011: padded with 111 it is 0x1f.
    assert.equal(huffmanDecode(Uint8Array.of(0x1f)), 'a');
    assert.throws(() => huffmanDecode(Uint8Array.of(0x18)), HpackError, 'padding of zeros');
    assert.throws(() => huffmanDecode(Uint8Array.of(0x1e)), HpackError, 'padding ending in a zero');
    assert.throws(() => huffmanDecode(Uint8Array.of(0x1f, 0xff)), HpackError, 'padding of 11 bits');
    assert.throws(() => huffmanDecode(Uint8Array.of(0xff)), HpackError, 'a whole byte of padding');
    assert.throws(() => huffmanDecode(Uint8Array.of(0xff, 0xff, 0xff, 0xfc)), HpackError, 'EOS then padding');
    assert.throws(() => huffmanDecode(Uint8Array.of(0x1f, 0xff, 0xff, 0xff, 0xff)), HpackError, 'EOS after a');
    assert.throws(() => huffmanEncode('\u0100'), RangeError);
  });
});

describe('malformed blocks', () => {
  const cases: [string, Buffer][] = [
    ['index 0', block(0x80)],
    ['index past the dynamic table', block(0xbf)],
    ['index 127 (multi-byte) past the table', block(0xff, 0x00)],
    ['literal name index past the table', block(0x7f, 0x00, str('v'))],
    ['literal (without indexing) name index past the table', block(0x0f, 0x30, str('v'))],
    ['truncated integer', block(0xff)],
    ['truncated integer continuation', block(0xff, 0x80)],
    ['integer over 2^31-1', block(0xff, 0xff, 0xff, 0xff, 0xff, 0x0f)],
    ['six continuation bytes, however small the value', block(0x3f, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00)],
    ['missing value string', block(0x04)],
    ['missing name string', block(0x00)],
    ['truncated string', block(0x00, 0x05, 0x61)],
    ['truncated string length', block(0x00, 0x7f)],
    ['huge string length', block(0x00, 0x7f, 0xff, 0xff, 0xff, 0x07)],
    ['Huffman padding of zeros', block(0x00, 0x81, 0x18, str('v'))],
    ['Huffman padding over 7 bits', block(0x04, 0x82, 0x1f, 0xff)],
    ['EOS inside a Huffman string', block(0x40, str('n'), 0x84, 0xff, 0xff, 0xff, 0xff)],
    ['table size update above the maximum', block(integer(0x20, 0x1f, 4097))],
    ['table size update after a field', block(0x82, 0x20)],
    ['table size update between fields', block(integer(0x20, 0x1f, 4096), 0x82, 0x3f, 0x01)],
  ];
  for (const [why, input] of cases) {
    test(`${why} is an HpackError, and the decoder keeps working`, () => {
      const decoder = new HpackDecoder();
      decoder.decode(block(0x40, str('kept'), str('entry')));
      assertHpackError(decoder, input, why);
      assert.deepEqual(decoder.decode(hex('8286')), [':method', 'GET', ':scheme', 'http']);
      assert.deepEqual(dynamicTable(decoder)[0], ['kept', 'entry']);
    });
  }

  test('a list over headerListBytesMax is an HpackError, after the table took the whole block', () => {
    const decoder = new HpackDecoder({ headerListBytesMax: 100 });
    assert.deepEqual(decoder.decode(block(0x40, str('a'.repeat(30)), str('b'.repeat(30)))), [
      'a'.repeat(30),
      'b'.repeat(30),
    ]); // 92 bytes
    assertHpackError(decoder, block(0xbe, 0x40, str('c'), str('d')), 'over the list limit');
    assert.deepEqual(
      dynamicTable(decoder).map(([name]) => name),
      ['c', 'a'.repeat(30)],
    );
  });

  test('an indexed reference amplifying a big entry hits the list limit', () => {
    const decoder = new HpackDecoder();
    decoder.decode(block(0x40, str('n'), str('x'.repeat(4000))));
    assertHpackError(decoder, Buffer.alloc(20, 0xbe), '20 references to a 4 KB entry');
  });

  test('random and mutated blocks decode or throw HpackError, nothing else', () => {
    const random = prng(42);
    const valid = [
      hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff'),
      hex('4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad'),
      encodeHeaders([':path', '/etcdserverpb.KV/Range', 'grpc-timeout', '99m', 'x', 'y']),
    ];
    const decoder = new HpackDecoder({ tableSizeMax: 512 });
    for (let i = 0; i < 20_000; i++) {
      let input: Buffer;
      if (i % 2 === 0) {
        input = Buffer.alloc(Math.floor(random() * 24));
        for (let j = 0; j < input.length; j++) input[j] = Math.floor(random() * 256);
      } else {
        input = Buffer.from(valid[i % valid.length]!);
        const flips = 1 + Math.floor(random() * 3);
        for (let j = 0; j < flips; j++) input[Math.floor(random() * input.length)] = Math.floor(random() * 256);
      }
      try {
        const list = decoder.decode(input);
        assert.equal(list.length % 2, 0);
      } catch (error) {
        if (!(error instanceof HpackError)) throw error;
      }
    }
  });
});

describe('encodeHeaders', () => {
  const roundTrip = (headers: string[]): Buffer => {
    const encoded = encodeHeaders(headers);
    const decoder = new HpackDecoder();
    assert.deepEqual(decoder.decode(encoded), headers);
    assert.deepEqual(dynamicTable(decoder), [], 'nothing is indexed');
    return encoded;
  };

  test('an exact static match is one indexed byte', () => {
    assert.deepEqual(roundTrip([':method', 'POST', ':status', '200', ':authority', '']), hex('83 88 81'));
  });

  test('a static name match is a literal without indexing with the indexed name', () => {
    assert.deepEqual(roundTrip([':path', '/a']), hex('04 02 2f61'));
    // Index 31 does not fit the 4-bit prefix: 0x0f then 31 - 15.
    assert.deepEqual(roundTrip(['content-type', 'application/grpc']).subarray(0, 3), hex('0f 10 10'));
    // The first of several entries with one name.
    assert.deepEqual(roundTrip([':status', '418']), hex('08 03 343138'));
  });

  test('a new name is a literal without indexing with a literal name', () => {
    assert.deepEqual(roundTrip(['grpc-status', '0']), hex('00 0b 6772 7063 2d73 7461 7475 73 01 30'));
  });

  test('long values, empty values, latin1 octets', () => {
    const long = 'v'.repeat(300);
    const encoded = roundTrip(['grpc-message', long]);
    assert.deepEqual(encoded.subarray(14, 17), hex('7f ad01'), '300 = 127 + 173: a three-byte length');
    roundTrip(['x-empty', '', 'accept', '', 'te', 'trailers']);
    let octets = '';
    for (let byte = 0; byte < 256; byte++) octets += String.fromCharCode(byte);
    roundTrip(['x-bin', octets, 'x'.repeat(200), 'name over 127 bytes']);
    roundTrip([]);
  });

  test('a typical gRPC response and trailers', () => {
    roundTrip([':status', '200', 'content-type', 'application/grpc', 'grpc-accept-encoding', 'identity']);
    roundTrip(['grpc-status', '0', 'grpc-message', '']);
    // Many fields in one block outgrow the encoder's scratch buffer.
    const many: string[] = [];
    for (let i = 0; i < 200; i++) many.push(`x-field-${i}`, 'y'.repeat(i));
    roundTrip(many);
  });

  test('an odd-length list is refused', () => {
    assert.throws(() => encodeHeaders([':path']), RangeError);
  });
});

describe('a grpc-go style request block', () => {
  test('indexed references and a Huffman grpc-timeout with incremental indexing', () => {
    const decoder = new HpackDecoder();
    const first = block(
      0x83,
      0x86,
      0x44,
      str('/etcdserverpb.KV/Range', true),
      0x41,
      str('127.0.0.1:2379', true),
      0x5f,
      str('application/grpc', true),
      0x40,
      str('te', true),
      str('trailers', true),
      0x40,
      str('grpc-timeout', true),
      str('99m', true),
    );
    const expected = [
      ':method',
      'POST',
      ':scheme',
      'http',
      ':path',
      '/etcdserverpb.KV/Range',
      ':authority',
      '127.0.0.1:2379',
      'content-type',
      'application/grpc',
      'te',
      'trailers',
      'grpc-timeout',
      '99m',
    ];
    assert.deepEqual(decoder.decode(first), expected);
    // The next call: everything indexed (62 is the newest), but a new timeout with an indexed name.
    const second = block(0x83, 0x86, 0xc2, 0xc1, 0xc0, 0xbf, 0x7e, str('98m', true));
    assert.deepEqual(decoder.decode(second), [...expected.slice(0, 12), 'grpc-timeout', '98m']);
  });
});

describe('literal cache', () => {
  // Literals repeated in every request are decoded once and then found by their raw bytes; a hit
  // compares every byte, so a changed or colliding literal still decodes to its own string.
  test('a literal changed in place in the same buffer decodes to the new string', () => {
    const decoder = new HpackDecoder();
    for (const huffman of [false, true]) {
      const input = block(0x00, str('x-name', huffman), str('value-one', huffman));
      assert.deepEqual(decoder.decode(input), ['x-name', 'value-one']);
      const again = block(0x00, str('x-name', huffman), str('value-two', huffman));
      input.set(again);
      assert.deepEqual(decoder.decode(input), ['x-name', 'value-two']);
      assert.deepEqual(decoder.decode(again), ['x-name', 'value-two']);
    }
  });

  test('thousands of distinct literals, each decoded twice, raw and Huffman, interleaved', () => {
    const random = prng(7);
    const decoder = new HpackDecoder();
    const texts = Array.from({ length: 3000 }, (_, i) => {
      const length = 1 + Math.floor(random() * 70);
      let text = '';
      for (let j = 0; j < length; j++) text += String.fromCharCode(32 + Math.floor(random() * 95));
      return `${text}${i}`;
    });
    for (let round = 0; round < 2; round++) {
      for (const [i, text] of texts.entries()) {
        const huffman = i % 2 === round;
        assert.deepEqual(decoder.decode(block(0x00, str('n', huffman), str(text, huffman))), ['n', text]);
      }
    }
  });
});
