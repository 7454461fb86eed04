// Goal: NodeClient tells a definite failure (REJECTED) from an indeterminate one (TIMEOUT,
// CONNECTION_LOST), which is what a history checker needs. Method: a real node for rejections and
// hand-written TCP servers that never answer, hang up, or answer garbage.
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { ClientError, type Endpoint, encodeFrame, NodeClient } from '../src/index.js';
import { CounterRequest, CounterResponse } from './fixtures/counter-protocol.js';
import { startCluster } from './helpers/in-process.js';

const SCHEMAS = { request: CounterRequest, response: CounterResponse };

async function fakeServer(onSocket: (socket: Socket) => void): Promise<{ endpoint: Endpoint; server: Server }> {
  const server = createServer(onSocket);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { endpoint: { host: '127.0.0.1', port }, server };
}

function isClientError(code: string, indeterminate: boolean) {
  return (error: unknown) => {
    assert.ok(error instanceof ClientError, String(error));
    assert.equal(error.detail.code, code);
    assert.equal(error.indeterminate, indeterminate);
    return true;
  };
}

test('a server that never answers: TIMEOUT, indeterminate', async () => {
  const sockets: Socket[] = [];
  const { endpoint, server } = await fakeServer((socket) => sockets.push(socket));
  const client = await NodeClient.connect(endpoint, SCHEMAS);
  try {
    await assert.rejects(client.call({ type: 'read' }, { timeoutMs: 100 }), isClientError('TIMEOUT', true));
    assert.equal(client.outstanding, 0);
  } finally {
    await client.close();
    for (const socket of sockets) socket.destroy();
    server.close();
  }
});

test('a server that hangs up: outstanding and later calls fail with CONNECTION_LOST', async () => {
  const { endpoint, server } = await fakeServer((socket) => socket.once('data', () => socket.destroy()));
  const client = await NodeClient.connect(endpoint, SCHEMAS);
  try {
    await assert.rejects(client.call({ type: 'read' }), isClientError('CONNECTION_LOST', true));
    await assert.rejects(client.call({ type: 'read' }), isClientError('CONNECTION_LOST', true));
  } finally {
    server.close();
  }
});

test('a server that answers garbage: the connection is dropped, BAD_RESPONSE afterwards', async () => {
  const { endpoint, server } = await fakeServer((socket) =>
    socket.once('data', () => socket.write(encodeFrame(new Uint8Array([9, 9, 9])))),
  );
  const client = await NodeClient.connect(endpoint, SCHEMAS);
  try {
    await assert.rejects(client.call({ type: 'read' }), isClientError('CONNECTION_LOST', true));
    await assert.rejects(client.call({ type: 'read' }), isClientError('BAD_RESPONSE', false));
  } finally {
    server.close();
  }
});

test('nothing listening: CONNECT_FAILED', async () => {
  const { endpoint, server } = await fakeServer(() => undefined);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await assert.rejects(NodeClient.connect(endpoint, SCHEMAS), isClientError('CONNECT_FAILED', false));
});

test('a node over its in-flight limit: REJECTED, definite; the other request succeeds', async () => {
  const cluster = await startCluster([{ limits: { clientRequestsInFlightMax: 1 } }]);
  const client = await NodeClient.connect(cluster.node(1).endpoints.client!, SCHEMAS);
  try {
    const first = client.call({ type: 'add', amount: 1, sync: true });
    const second = client.call({ type: 'add', amount: 1, sync: true });
    await assert.rejects(second, isClientError('REJECTED', false));
    assert.deepEqual(await first, { type: 'added', total: 1 });
  } finally {
    await client.close();
    await cluster.close();
  }
});
