// Goal: the README's end-to-end example, verbatim, so it stays true: declare an interface, serve it,
// call it, and what a binding mismatch looks like to the user.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { s } from '@dsys/kit';
import { AppError, connect, defineInterface, memoryLogger, RpcError, serve, unary } from '../src/index.js';

// 1. Declare the interface: procedures with the types of their arguments and results.
const Kv = defineInterface({
  name: 'kv',
  version: 1,
  procedures: {
    get: unary({
      args: s.struct({ key: s.string({ bytesMax: 256 }) }),
      result: s.nullable(s.bytes({ bytesMax: 65536 })),
      idempotent: true,
    }),
    put: unary({
      args: s.struct({ key: s.string({ bytesMax: 256 }), value: s.bytes({ bytesMax: 65536 }) }),
      result: s.struct({ version: s.uint }),
    }),
  },
});

test('README: declare, serve, call', async () => {
  // 2. Serve it: one handler per procedure, typed from the interface (HandlersOf<typeof Kv>).
  const store = new Map<string, Uint8Array>();
  let version = 0;
  const server = await serve(
    Kv,
    {
      get: ({ key }) => store.get(key) ?? null,
      put: ({ key, value }) => {
        if (key === '') throw new AppError('EMPTY_KEY', 'keys are not empty');
        store.set(key, value);
        return { version: ++version };
      },
    },
    { port: 0, logger: memoryLogger().logger },
  );

  // 3. Call it through the generated stub (ClientOf<typeof Kv>): typed async methods.
  const kv = connect(Kv, server.address);
  const { version: v } = await kv.stub.put({ key: 'x', value: new Uint8Array([1, 2]) });
  const value = await kv.stub.get({ key: 'x' }, { timeoutMs: 1000 });
  assert.equal(v, 1);
  assert.deepEqual(value, new Uint8Array([1, 2]));
  try {
    await kv.stub.put({ key: '', value: new Uint8Array() });
  } catch (error) {
    assert.ok(error instanceof RpcError);
    assert.equal(error.detail.code, 'APPLICATION');
    assert.equal(error.detail.appCode, 'EMPTY_KEY');
    assert.equal(error.executed, 'yes');
  }
  await kv.close();

  // 4. A client built against another version of the interface cannot bind.
  const KvNext = defineInterface({
    name: 'kv',
    version: 2,
    procedures: {
      get: Kv.procedures.get,
      put: unary({
        args: s.struct({ key: s.string({ bytesMax: 256 }), value: s.bytes({ bytesMax: 65536 }), ttlMs: s.uint }),
        result: s.struct({ version: s.uint }),
      }),
      delete: unary({ args: s.struct({ key: s.string({ bytesMax: 256 }) }), result: s.bool }),
    },
  });
  const next = connect(KvNext, server.address);
  const mismatch = await next.ready().then(
    () => assert.fail('must not bind'),
    (error: unknown) => error as RpcError,
  );
  assert.equal(mismatch.detail.code, 'BIND_MISMATCH');
  assert.equal(
    mismatch.message,
    [
      "cannot bind to service 'kv': 2 procedure(s) differ",
      '  put: differs',
      '    client: unary put(struct{key:string<=256,value:bytes<=65536,ttlMs:uint}) -> struct{version:uint}',
      '    server: unary put(struct{key:string<=256,value:bytes<=65536}) -> struct{version:uint}',
      '  delete: missing on the server (client has: unary delete(struct{key:string<=256}) -> bool)',
    ].join('\n'),
  );
  await next.close();
  await server.close();
});
