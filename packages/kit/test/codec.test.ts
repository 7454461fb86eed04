// Goal: schemas round-trip, reject bad bytes with typed errors (never throw), check lengths before
// allocating, validate untrusted JS values with a path, and describe themselves canonically.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decode, encode, fromJsonValue, type Infer, s, toJsonValue, validate, Writer } from '../src/index.js';

const Message = s.union('type', {
  put: s.struct({ key: s.string({ bytesMax: 64 }), value: s.bytes({ bytesMax: 1024 }), ttl: s.optional(s.uint) }),
  get: s.struct({ key: s.string({ bytesMax: 64 }) }),
  batch: s.struct({ ids: s.array(s.u32, { itemsMax: 8 }), flag: s.bool, big: s.u64, n: s.int, f: s.f64 }),
  pick: s.struct({ color: s.enum(['red', 'green']), maybe: s.nullable(s.i32), lit: s.literal('x') }),
});
type Message = Infer<typeof Message>;

const samples: Message[] = [
  { type: 'put', key: 'k', value: new Uint8Array([1, 2]), ttl: 5 },
  { type: 'put', key: 'ключ-🔑', value: new Uint8Array(0) },
  { type: 'get', key: '' },
  { type: 'batch', ids: [0, 1, 0xffff_ffff], flag: true, big: 2n ** 64n - 1n, n: -123456789012, f: 0.5 },
  { type: 'pick', color: 'green', maybe: null, lit: 'x' },
  { type: 'pick', color: 'red', maybe: -5, lit: 'x' },
];

test('round trips', () => {
  for (const sample of samples) {
    const decoded = decode(Message, encode(Message, sample));
    assert.ok(decoded.ok, decoded.ok ? '' : decoded.error.code);
    assert.deepEqual(decoded.value, sample);
  }
});

test('varuint boundaries', () => {
  for (const value of [0, 127, 128, 16383, 16384, 2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
    const decoded = decode(s.uint, encode(s.uint, value));
    assert.deepEqual(decoded, { ok: true, value });
  }
  for (const value of [0, -1, 1, -(2 ** 40), -(2 ** 52), 2 ** 52 - 1]) {
    assert.deepEqual(decode(s.int, encode(s.int, value)), { ok: true, value });
  }
});

test('typed errors for bad bytes', () => {
  const bytes = encode(Message, samples[0]!);
  const truncated = decode(Message, bytes.subarray(0, bytes.length - 1));
  assert.equal(truncated.ok, false);
  if (!truncated.ok) assert.equal(truncated.error.code, 'TRUNCATED');
  const unknown = decode(Message, new Uint8Array([9]));
  assert.deepEqual(unknown.ok ? null : unknown.error.code, 'UNKNOWN_TAG');
  const trailing = decode(Message, new Uint8Array([...bytes, 0]));
  assert.deepEqual(trailing.ok ? null : trailing.error.code, 'TRAILING_BYTES');
  const badBool = decode(s.bool, new Uint8Array([2]));
  assert.deepEqual(badBool.ok ? null : badBool.error.code, 'INVALID');
  const badUtf8 = decode(s.string({ bytesMax: 10 }), new Uint8Array([2, 0xc3, 0x28]));
  assert.deepEqual(badUtf8.ok ? null : badUtf8.error.code, 'INVALID');
});

test('lengths are checked against the maximum before allocating', () => {
  // A 4 GiB length prefix on a 6-byte input must fail fast as TOO_LARGE, not allocate.
  const w = new Writer();
  w.varuint(0);
  w.varuint(2 ** 32);
  const result = decode(Message, w.finish());
  assert.equal(result.ok, false);
  if (!result.ok) assert.equal(result.error.code, 'TOO_LARGE');
  const tooMany = new Writer();
  tooMany.varuint(2);
  tooMany.varuint(1_000_000);
  const arrayResult = decode(Message, tooMany.finish());
  assert.deepEqual(arrayResult.ok ? null : arrayResult.error.code, 'TOO_LARGE');
});

test('any bytes decode to a value or a typed error, never a throw', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      const result = decode(Message, bytes);
      if (result.ok) assert.deepEqual(decode(Message, encode(Message, result.value)), result);
    }),
    { seed: 2, numRuns: 5000 },
  );
});

test('validate reports the path of the first problem', () => {
  assert.ok(validate(Message, samples[0]).ok);
  const wrongType = validate(Message, { type: 'put', key: 5, value: new Uint8Array(0) });
  assert.deepEqual(wrongType, { ok: false, error: '$.key: expected string, got number' });
  const missing = validate(Message, { type: 'get' });
  assert.deepEqual(missing, { ok: false, error: '$.key: missing' });
  const unknownTag = validate(Message, { type: 'nope' });
  assert.equal(unknownTag.ok, false);
  const extra = validate(Message, { type: 'get', key: 'a', extra: 1 });
  assert.deepEqual(extra, { ok: false, error: '$.extra: unknown field' });
  const tooLong = validate(s.string({ bytesMax: 3 }), 'héllo');
  assert.equal(tooLong.ok, false);
  const badRange = validate(s.u8, 256);
  assert.equal(badRange.ok, false);
});

test('describe is canonical and changes when the wire format changes', () => {
  const a = s.struct({ x: s.u32, y: s.string({ bytesMax: 8 }) });
  const b = s.struct({ x: s.u32, y: s.string({ bytesMax: 8 }) });
  const c = s.struct({ y: s.string({ bytesMax: 8 }), x: s.u32 });
  assert.equal(a.describe(), b.describe());
  assert.notEqual(a.describe(), c.describe());
  assert.match(Message.describe(), /^union\(type\)\{put:struct\{key:string<=64/);
});

test('JSON bridging keeps bytes and bigints', () => {
  const value = { a: new Uint8Array([1, 255]), b: 10n ** 30n, c: ['x', { d: 1 }] };
  assert.deepEqual(fromJsonValue(JSON.parse(JSON.stringify(toJsonValue(value)))), value);
});
