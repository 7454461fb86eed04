// Goal: interface modules: names are validated, canonical texts and fingerprints are stable and change
// with anything that changes the wire format or the retry contract (idempotency), and a schema rebuilt
// from its text describes itself identically (which is what lets the CLI call any procedure).
// Method: fixed examples, then a fast-check property over generated schemas.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Schema, s } from '@dsys/kit';
import fc from 'fast-check';
import { parseProcedure, parseType } from '../src/describe-parser.js';
import { defineInterface, hex, stream, unary } from '../src/interface.js';

const args = s.struct({ key: s.string({ bytesMax: 64 }) });

test('canonical texts and fingerprints', () => {
  const kv = defineInterface({
    name: 'kv',
    version: 3,
    procedures: {
      get: unary({ args, result: s.optional(s.bytes({ bytesMax: 1024 })), idempotent: true }),
      put: unary({
        args: s.struct({ key: s.string({ bytesMax: 64 }), value: s.bytes({ bytesMax: 1024 }) }),
        result: s.bool,
      }),
      watch: stream({ args, item: s.u64 }),
    },
  });
  assert.deepEqual(kv.descriptions, [
    'unary get(struct{key:string<=64}) -> optional(bytes<=1024) idempotent',
    'unary put(struct{key:string<=64,value:bytes<=1024}) -> bool',
    'stream watch(struct{key:string<=64}) -> u64',
  ]);
  assert.equal(kv.fingerprints[0]!.length, 16);
  // Idempotency is part of the contract, so it is part of the fingerprint.
  const flipped = defineInterface({
    name: 'kv',
    version: 3,
    procedures: { get: unary({ args, result: s.optional(s.bytes({ bytesMax: 1024 })) }) },
  });
  assert.notEqual(hex(flipped.fingerprints[0]!), hex(kv.fingerprints[0]!));
  // Order of declaration does not change the interface fingerprint; versions do not either.
  const reordered = defineInterface({
    name: 'kv',
    version: 4,
    procedures: { watch: kv.procedures.watch, put: kv.procedures.put, get: kv.procedures.get },
  });
  assert.equal(hex(reordered.fingerprint), hex(kv.fingerprint));
});

test('names are validated', () => {
  const procedures = { ok: unary({ args, result: s.bool }) };
  assert.throws(() => defineInterface({ name: 'no spaces', version: 1, procedures }), TypeError);
  assert.throws(() => defineInterface({ name: 'kv', version: -1, procedures }), RangeError);
  assert.throws(
    () => defineInterface({ name: 'kv', version: 1, procedures: { 'bad name': unary({ args, result: s.bool }) } }),
    TypeError,
  );
});

test('procedure texts parse back', () => {
  const parsed = parseProcedure('unary put(struct{key:string<=64,value:bytes<=1024}) -> bool');
  assert.ok(parsed.ok);
  assert.equal(parsed.value.name, 'put');
  assert.equal(parsed.value.procedure.kind, 'unary');
  assert.equal(parsed.value.procedure.args.describe(), 'struct{key:string<=64,value:bytes<=1024}');
  const watched = parseProcedure('stream watch(struct{}) -> u64');
  assert.ok(watched.ok && watched.value.procedure.kind === 'stream');
  for (const bad of [
    'unary x(lazy) -> bool',
    'unary x(NodeId) -> bool',
    'stream x(u8) -> u8 idempotent',
    'rpc x(u8) -> u8',
    'unary x(u8) -> u8 extra',
  ]) {
    assert.equal(parseProcedure(bad).ok, false, bad);
  }
});

/** Generated schemas of every combinator the parser supports. */
const schemas: fc.Arbitrary<Schema<unknown>> = fc.letrec<{ schema: Schema<unknown> }>((tie) => ({
  schema: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom<Schema<unknown>>(s.u8, s.u16, s.u32, s.i32, s.uint, s.int, s.f64, s.u64, s.i64, s.bool),
    fc.nat({ max: 5000 }).map((bytesMax) => s.string({ bytesMax })),
    fc.nat({ max: 5000 }).map((bytesMax) => s.bytes({ bytesMax })),
    fc
      .oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean())
      .map((value) => s.literal(value) as Schema<unknown>),
    fc
      .uniqueArray(fc.stringMatching(/^[a-z][a-z0-9_]{0,6}$/), { minLength: 1, maxLength: 4 })
      .map((values) => s.enum(values as [string, ...string[]]) as Schema<unknown>),
    fc
      .tuple(tie('schema'), fc.nat({ max: 100 }))
      .map(([item, itemsMax]) => s.array(item, { itemsMax }) as Schema<unknown>),
    tie('schema').map((item) => s.optional(item) as Schema<unknown>),
    tie('schema').map((item) => s.nullable(item) as Schema<unknown>),
    fc
      .uniqueArray(fc.tuple(fc.stringMatching(/^[a-z][a-zA-Z0-9_]{0,6}$/), tie('schema')), {
        maxLength: 4,
        selector: ([name]) => name,
      })
      .map((fields) => s.struct(Object.fromEntries(fields)) as Schema<unknown>),
    fc
      .uniqueArray(
        fc.tuple(
          fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/),
          fc.uniqueArray(fc.tuple(fc.stringMatching(/^[a-z]{1,5}$/), tie('schema')), {
            maxLength: 3,
            selector: ([name]) => name,
          }),
        ),
        { minLength: 1, maxLength: 3, selector: ([name]) => name },
      )
      .map(
        (variants) =>
          s.union(
            'kind',
            Object.fromEntries(
              variants.map(([name, fields]) => [
                name,
                s.struct(Object.fromEntries(fields.filter(([f]) => f !== 'kind'))),
              ]),
            ),
          ) as Schema<unknown>,
      ),
  ),
})).schema;

test('any schema rebuilt from its description describes itself identically', () => {
  fc.assert(
    fc.property(schemas, (schema) => {
      const text = schema.describe();
      const parsed = parseType(text);
      assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
      assert.equal(parsed.value.describe(), text);
    }),
    { seed: 0x5eed, numRuns: 300 },
  );
});
