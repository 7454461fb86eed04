// Goal: bad input on a real socket closes only that connection, with a structured log line naming
// the reason and a count in /metrics, while the node keeps serving everyone else. Method: raw TCP
// sockets send garbage, oversized lengths, undecodable frames, bad handshakes, nothing at all, and
// valid frames one byte at a time, to the client port and the peer port of an in-process node.
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { decode, encode, NodeId } from '@dsys/kit';
import {
  clientWire,
  type Endpoint,
  encodeFrame,
  NodeClient,
  PEER_MAGIC,
  PEER_PROTOCOL_VERSION,
  PeerHello,
  PeerWelcome,
} from '../src/index.js';
import { CounterRequest, CounterResponse, counterSchemas } from './fixtures/counter-protocol.js';
import { type InProcessCluster, startCluster, waitConnected } from './helpers/in-process.js';
import { waitFor } from './helpers/util.js';

interface RawConnection {
  readonly socket: Socket;
  readonly received: Buffer[];
  readonly closed: Promise<void>;
}

async function raw(endpoint: Endpoint): Promise<RawConnection> {
  const socket = connect({ host: endpoint.host, port: endpoint.port });
  const received: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => received.push(chunk));
  socket.on('error', () => undefined); // a reset from the node is one of the expected outcomes
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return { socket, received, closed };
}

function header(length: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, length, true);
  return out;
}

/** Writes `bytes` one at a time, `intervalMs` apart, until the socket closes. */
function trickle(connection: RawConnection, bytes: Uint8Array, intervalMs: number): void {
  let index = 0;
  const timer = setInterval(() => {
    if (connection.socket.destroyed || index >= bytes.length) clearInterval(timer);
    else connection.socket.write(bytes.subarray(index, ++index));
  }, intervalMs);
  void connection.closed.then(() => clearInterval(timer));
}

function badInputReasons(cluster: InProcessCluster, id: number): string[] {
  return cluster.logs
    .get(id)!
    .filter((line) => line.msg === 'closing connection: bad input')
    .map((line) => String(line.reason));
}

const LIMITS = { frameBytesMax: 4096, frameTimeoutMs: 300, handshakeTimeoutMs: 400 };

test('client port: each bad connection is closed with a logged reason; other clients keep being served', async () => {
  const cluster = await startCluster([{ limits: LIMITS }]);
  const node = cluster.node(1);
  const endpoint = node.endpoints.client!;
  const wire = clientWire(counterSchemas);
  const good = await NodeClient.connect(endpoint, { request: CounterRequest, response: CounterResponse });
  try {
    assert.deepEqual(await good.call({ type: 'add', amount: 1, sync: true }), { type: 'added', total: 1 });

    const oversized = await raw(endpoint);
    oversized.socket.write(header(0xffff_ffff));
    await oversized.closed;

    const http = await raw(endpoint);
    http.socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
    await http.closed;

    const undecodable = await raw(endpoint);
    undecodable.socket.write(encodeFrame(new Uint8Array([0xff, 0xff, 0xff, 0x01])));
    await undecodable.closed;

    const truncated = await raw(endpoint);
    truncated.socket.end(
      encodeFrame(encode(wire.requestFrame, { requestId: 1, request: { type: 'read' } })).subarray(0, 5),
    );
    await truncated.closed;

    // Valid frame, one byte every 100 ms: the frame deadline (300 ms) closes it.
    const slow = await raw(endpoint);
    trickle(slow, encodeFrame(encode(wire.requestFrame, { requestId: 1, request: { type: 'read' } })), 100);
    // Meanwhile the good client is served.
    assert.deepEqual(await good.call({ type: 'add', amount: 2, sync: true }), { type: 'added', total: 3 });
    await slow.closed;

    assert.deepEqual(badInputReasons(cluster, 1).sort(), [
      'DECODE_ERROR',
      'FRAME_TIMEOUT',
      'FRAME_TOO_LARGE',
      'FRAME_TOO_LARGE',
      'FRAME_TRUNCATED',
    ]);
    const logged = cluster.logs.get(1)!.find((line) => line.reason === 'FRAME_TOO_LARGE')!;
    assert.equal(logged.level, 'warn');
    assert.equal(logged.node, 1);
    assert.match(String(logged.detail), /4294967295 bytes exceeds the maximum of 4096/);
    const metrics = node.metrics.render();
    assert.match(metrics, /dsys_frames_rejected_total\{port="client",reason="FRAME_TOO_LARGE"\} 2/);
    assert.match(metrics, /dsys_frames_rejected_total\{port="client",reason="FRAME_TIMEOUT"\} 1/);

    // The good connection and new ones still work.
    assert.deepEqual(await good.call({ type: 'read' }), { type: 'state', total: 3, seen: [] });
    const fresh = await NodeClient.connect(endpoint, { request: CounterRequest, response: CounterResponse });
    assert.deepEqual(await fresh.call({ type: 'add', amount: 4, sync: false }), { type: 'added', total: 7 });
    await fresh.close();
  } finally {
    await good.close();
    await cluster.close();
  }
});

test('client port: a duplicate in-flight requestId and too many in flight are refused', async () => {
  const cluster = await startCluster([{ limits: { clientRequestsInFlightMax: 2 } }]);
  const endpoint = cluster.node(1).endpoints.client!;
  const wire = clientWire(counterSchemas);
  try {
    // Frames sent in one write are decoded in one go. Each `add` with sync is answered only after its
    // fsync, so the first two are still in flight when the third (or a repeated id) arrives.
    const frame = (requestId: number) =>
      encodeFrame(encode(wire.requestFrame, { requestId, request: { type: 'add', amount: 1, sync: true } }));
    const tooMany = await raw(endpoint);
    tooMany.socket.write(Buffer.concat([frame(1), frame(2), frame(3)]));
    await waitFor('three replies', () => countReplies(tooMany) === 3);
    const replies = decodeReplies(tooMany);
    assert.deepEqual(
      replies.map((reply) => [reply.requestId, reply.type]),
      [
        [3, 'rejected'],
        [1, 'response'],
        [2, 'response'],
      ],
    );
    tooMany.socket.destroy();

    const duplicate = await raw(endpoint);
    duplicate.socket.write(Buffer.concat([frame(9), frame(9)]));
    await duplicate.closed;
    assert.ok(badInputReasons(cluster, 1).includes('DUPLICATE_REQUEST'));
  } finally {
    await cluster.close();
  }

  function decodeReplies(connection: RawConnection) {
    const bytes = Buffer.concat(connection.received);
    const replies = [];
    for (let offset = 0; offset < bytes.length; ) {
      const length = bytes.readUInt32LE(offset);
      const reply = decode(wire.replyFrame, bytes.subarray(offset + 4, offset + 4 + length));
      assert.ok(reply.ok);
      replies.push(reply.value);
      offset += 4 + length;
    }
    return replies;
  }
  function countReplies(connection: RawConnection): number {
    const bytes = Buffer.concat(connection.received);
    let count = 0;
    for (let offset = 0; offset + 4 <= bytes.length; count++) offset += 4 + bytes.readUInt32LE(offset);
    return count;
  }
});

test('peer port: bad frames and handshakes are closed with a logged reason; real peers keep talking', async () => {
  // Node 3 is in everyone's peer list but never runs, so a test socket can claim to be it.
  // The handshake deadline is longer than the frame deadline, so the trickled hello meets the latter.
  const limits = { ...LIMITS, handshakeTimeoutMs: 700 };
  const cluster = await startCluster([{ limits }, { limits }, { start: false }]);
  try {
    await waitFor('1 -> 2 link up', () => cluster.node(1).isPeerConnected(NodeId(2)));
    const endpoint = cluster.node(1).endpoints.peer;
    const hello = (fields: Partial<{ clusterId: string; from: number; to: number }>) =>
      encodeFrame(
        encode(PeerHello, {
          magic: PEER_MAGIC,
          version: PEER_PROTOCOL_VERSION,
          clusterId: 'test',
          from: 3,
          to: 1,
          ...fields,
        }),
      );

    const oversized = await raw(endpoint);
    oversized.socket.write(header(50_000));
    await oversized.closed;

    const garbage = await raw(endpoint);
    garbage.socket.write(encodeFrame(new TextEncoder().encode('hello, I am a peer, trust me')));
    await garbage.closed;

    const wrongCluster = await raw(endpoint);
    wrongCluster.socket.write(hello({ clusterId: 'other' }));
    await wrongCluster.closed;
    const rejection = decode(PeerWelcome, Buffer.concat(wrongCluster.received).subarray(4));
    assert.ok(rejection.ok && rejection.value.type === 'reject');
    assert.match(rejection.value.reason, /cluster id "other", expected "test"/);

    const impostor = await raw(endpoint);
    impostor.socket.write(hello({ from: 99 }));
    await impostor.closed;

    const badMessage = await raw(endpoint);
    badMessage.socket.write(hello({}));
    await waitFor('welcome', () => Buffer.concat(badMessage.received).length > 0);
    const welcome = decode(PeerWelcome, Buffer.concat(badMessage.received).subarray(4));
    assert.deepEqual(welcome, { ok: true, value: { type: 'accept', magic: PEER_MAGIC, nodeId: 1 } });
    badMessage.socket.write(encodeFrame(new Uint8Array([0x7f])));
    await badMessage.closed;

    const silent = await raw(endpoint);
    await silent.closed;

    const slow = await raw(endpoint);
    trickle(slow, hello({}), 100);
    await slow.closed;

    assert.deepEqual(badInputReasons(cluster, 1).sort(), [
      'BAD_HANDSHAKE',
      'BAD_HANDSHAKE',
      'BAD_HANDSHAKE',
      'DECODE_ERROR',
      'FRAME_TIMEOUT',
      'FRAME_TOO_LARGE',
      'HANDSHAKE_TIMEOUT',
    ]);
    assert.match(
      cluster.node(1).metrics.render(),
      /dsys_frames_rejected_total\{port="peer_in",reason="BAD_HANDSHAKE"\} 3/,
    );
    // The real peers never noticed.
    await waitConnected(cluster);
    await cluster.node(1).request({ type: 'add', amount: 11, sync: true });
    await cluster.node(2).request({ type: 'add', amount: 22, sync: true });
    await waitFor('both see each other', () => {
      const seenBy2 = cluster.node(2).inspect((state) => state.seen.get(NodeId(1)));
      const seenBy1 = cluster.node(1).inspect((state) => state.seen.get(NodeId(2)));
      return seenBy2 === 11 && seenBy1 === 22;
    });
  } finally {
    await cluster.close();
  }
});
