// Goal: the same service over TLS, with and without client certificates (mutual TLS).
// Method: test certificates from test/fixtures/tls (a test CA, a server cert for 127.0.0.1, a client
// cert it signed, and a self-signed stranger); a client the server must reject never binds.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { connect, memoryLogger, RpcError, serve } from '../src/index.js';
import { Counter, counterHandlers, counterState } from './support/counter.js';
import { waitFor } from './support/net.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'tls');
const read = (name: string) => readFileSync(join(dir, name), 'utf8');
const ca = read('ca.crt');

test('calls over TLS, the server verified against its CA', async () => {
  const server = await serve(Counter, counterHandlers(counterState()), {
    tls: { key: read('server.key'), cert: read('server.crt') },
    logger: memoryLogger().logger,
  });
  const client = connect(Counter, server.address, { tls: { ca } });
  try {
    assert.deepEqual(await client.stub.add({ delta: 3, token: 1 }), { value: 3 });
  } finally {
    await client.close();
    await server.close();
  }
});

test('mutual TLS: a client certificate signed by the CA binds, a stranger never does', async () => {
  const { logger, entries } = memoryLogger();
  const server = await serve(Counter, counterHandlers(counterState()), {
    tls: { key: read('server.key'), cert: read('server.crt'), ca, requireClientCert: true },
    logger,
  });
  const trusted = connect(Counter, server.address, { tls: { ca, cert: read('client.crt'), key: read('client.key') } });
  const stranger = connect(Counter, server.address, {
    tls: { ca, cert: read('stranger.crt'), key: read('stranger.key') },
    reconnectBackoffMaxMs: 50,
  });
  try {
    assert.deepEqual(await trusted.stub.get({}), { value: 0 });
    const error = await stranger.stub.get({}, { timeoutMs: 300 }).then(
      () => assert.fail('the stranger must not get an answer'),
      (caught: unknown) => caught,
    );
    assert.ok(error instanceof RpcError);
    assert.equal(error.detail.code, 'DEADLINE_EXCEEDED');
    assert.equal(error.executed, 'no');
    assert.match(error.message, /not bound to the server/);
    await waitFor(() => entries.some((entry) => entry.msg === 'rpc: TLS handshake failed'), 'the logged rejection');
  } finally {
    await trusted.close();
    await stranger.close();
    await server.close();
  }
});
