// Goal: frames sent to one connection within one event-loop turn leave in one socket write, without
// changing what the remote side reads (same frames, same order), what a large frame does, or how the
// write-buffer bound and the peer send queue limit memory. Method: a real loopback socket whose
// `write` calls are recorded, a raw FrameDecoder on the other end, and two PeerTransports.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, Socket, connect as tcpConnect } from 'node:net';
import { test } from 'node:test';
import { ClientId, decode, encode, s } from '@dsys/kit';
import {
  ClientPort,
  COALESCE_BYTES_MAX,
  clientWire,
  coalesceWritesDefault,
  encodeFrame,
  FrameDecoder,
  FramedConnection,
  Logger,
  MetricsRegistry,
  TransportMetrics,
} from '../src/index.js';
import { RECEIVER, type SeqMessage, startPeerPair } from './helpers/peer-pair.js';
import { waitFor } from './helpers/util.js';

interface WiredConnection {
  readonly connection: FramedConnection;
  /** Byte length of every `socket.write` the connection made. */
  readonly writes: number[];
  /** Frames decoded on the remote end, in arrival order. */
  readonly received: Uint8Array[];
  /** The remote end's socket (pause it to play a slow consumer). */
  readonly remote: Socket;
  close(): Promise<void>;
}

async function wired(options: { coalesceWrites: boolean; writeBufferBytesMax?: number }): Promise<WiredConnection> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(typeof address === 'object' && address !== null);
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const remote = tcpConnect({ host: '127.0.0.1', port: address.port });
  const [socket] = await accepted;
  const writes: number[] = [];
  const write = socket.write.bind(socket);
  socket.write = ((chunk: Uint8Array, ...rest: never[]) => {
    writes.push(chunk.length);
    return write(chunk, ...rest);
  }) as typeof socket.write;
  const connection = new FramedConnection(socket, {
    limits: {
      frameBytesMax: 1 << 24,
      frameTimeoutMs: 5_000,
      writeBufferBytesMax: options.writeBufferBytesMax ?? 1 << 23,
    },
    logger: new Logger({ level: 'error', node: 1 }),
    metrics: new TransportMetrics(new MetricsRegistry()).port('peer_out'),
    onFrame: () => undefined,
    coalesceWrites: options.coalesceWrites,
  });
  const decoder = new FrameDecoder({ frameBytesMax: 1 << 24 });
  const received: Uint8Array[] = [];
  remote.on('data', (chunk: Buffer) => {
    const { frames, error } = decoder.push(chunk);
    assert.equal(error, null);
    for (const frame of frames) received.push(new Uint8Array(frame));
  });
  remote.on('error', () => undefined);
  return {
    connection,
    writes,
    received,
    remote,
    close: async () => {
      connection.close('SHUTDOWN', 'test done');
      remote.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A payload of `length` bytes whose content depends on `seed`, so reordering or mixing shows. */
function payload(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (seed * 31 + i) & 0xff;
  return out;
}

test('2000 frames sent in one turn leave in two writes (the first at once) and arrive in order as separate frames', async () => {
  for (const coalesceWrites of [true, false]) {
    const wire = await wired({ coalesceWrites });
    try {
      // Sizes 0..49 bytes: 2000 frames are 57 000 bytes with headers, under one coalescing buffer.
      const sent = Array.from({ length: 2000 }, (_, seq) => payload(seq, seq % 50));
      for (const frame of sent) assert.equal(wire.connection.send(frame), true);
      await waitFor('all frames', () => wire.received.length === sent.length);
      assert.deepEqual(wire.received, sent);
      const expected = coalesceWrites ? [4 + 0, 57_000 - 4] : sent.map((frame) => 4 + frame.length);
      assert.deepEqual(wire.writes, expected, `coalesceWrites=${coalesceWrites}`);
    } finally {
      await wire.close();
    }
  }
});

test('a full coalescing buffer is written at once; a larger frame goes alone, after what was pending', async () => {
  const wire = await wired({ coalesceWrites: true });
  try {
    // 1000-byte payloads are 1004-byte frames: the first leaves at once, then every 66th pending one
    // reaches COALESCE_BYTES_MAX (65 536) and the batch is written in the same turn.
    const small = Array.from({ length: 200 }, (_, seq) => payload(seq, 1000));
    for (const frame of small) wire.connection.send(frame);
    assert.deepEqual(wire.writes, [1004, 66 * 1004, 66 * 1004, 66 * 1004]);
    assert.equal(wire.connection.pendingBytes, 1004);
    const large = payload(7, 3 * COALESCE_BYTES_MAX);
    const tail = [payload(1, 10), payload(2, 0)];
    wire.connection.send(large);
    for (const frame of tail) wire.connection.send(frame);
    assert.deepEqual(wire.writes.slice(4), [1004, 4 + large.length], 'pending first, then the large frame');
    const sent = [...small, large, ...tail];
    await waitFor('all frames', () => wire.received.length === sent.length);
    assert.deepEqual(wire.writes.slice(6), [4 + 10 + 4 + 0], 'the tail leaves together at the end of the turn');
    assert.deepEqual(wire.received, sent);
  } finally {
    await wire.close();
  }
});

test('a remote that never reads: socket memory stays within the write-buffer bound plus one batch', async () => {
  const writeBufferBytesMax = 256 * 1024;
  const wire = await wired({ coalesceWrites: true, writeBufferBytesMax });
  try {
    wire.remote.pause();
    const frame = payload(3, 1000);
    let heldBytesMax = 0;
    // Sends like the peer link does: only while the socket is under its bound, then waits a turn.
    // The kernel's buffers fill first; then the bound must hold turn after turn.
    let turnsAtBound = 0;
    await waitFor('the socket stays at its bound', async () => {
      while (wire.connection.bufferedBytes < writeBufferBytesMax) assert.equal(wire.connection.send(frame), true);
      heldBytesMax = Math.max(heldBytesMax, wire.connection.bufferedBytes + wire.connection.pendingBytes);
      await new Promise((resolve) => setImmediate(resolve));
      heldBytesMax = Math.max(heldBytesMax, wire.connection.bufferedBytes + wire.connection.pendingBytes);
      turnsAtBound = wire.connection.bufferedBytes >= writeBufferBytesMax ? turnsAtBound + 1 : 0;
      return turnsAtBound >= 20;
    });
    assert.ok(heldBytesMax <= writeBufferBytesMax + COALESCE_BYTES_MAX + 1004, `held ${heldBytesMax} bytes`);
    assert.equal(wire.connection.closed, false);
    // Sending past the bound is a slow consumer, as before coalescing.
    wire.connection.send(frame);
    while (!wire.connection.closed) {
      await new Promise((resolve) => setImmediate(resolve));
      wire.connection.send(frame);
    }
    assert.equal(wire.connection.closeReason, 'SLOW_CONSUMER');
  } finally {
    await wire.close();
  }
});

test('peer transport: messages queued while the link is down arrive in order, the newest kept', async () => {
  const received: SeqMessage[] = [];
  const pair = await startPeerPair({
    limits: { sendQueueMessagesMax: 100 },
    onMessage: (message) => received.push(message),
  });
  try {
    assert.equal(pair.sender.isConnected(RECEIVER), false, 'the handshake needs I/O, so the link is not up yet');
    const body = payload(5, 100);
    for (let seq = 0; seq < 1000; seq++) pair.sender.send(RECEIVER, { seq, body });
    await waitFor('the newest 100', () => received.length === 100);
    assert.deepEqual(
      received.map((message) => message.seq),
      Array.from({ length: 100 }, (_, index) => 900 + index),
    );
    assert.deepEqual(received[0]!.body, body);
    // Then, with the link up, bursts of one turn each arrive complete and in order.
    for (let burst = 0; burst < 20; burst++) {
      for (let index = 0; index < 50; index++) pair.sender.send(RECEIVER, { seq: 1000 + burst * 50 + index, body });
      await new Promise((resolve) => setImmediate(resolve));
    }
    await waitFor('every burst', () => received.length === 1100);
    assert.deepEqual(
      received.slice(100).map((message) => message.seq),
      Array.from({ length: 1000 }, (_, index) => 1000 + index),
    );
    const rendered = pair.senderMetrics.port('peer_out').framesOut.value;
    assert.equal(rendered, 1 + 1100, 'the hello and every message that was not dropped');
  } finally {
    await pair.close();
  }
});

test('peer transport: a paused receiver makes the sender shed its oldest messages, never its order', async () => {
  const received: number[] = [];
  const pair = await startPeerPair({
    limits: { sendQueueMessagesMax: 200, writeBufferBytesMax: 128 * 1024 },
    onMessage: (message) => received.push(message.seq),
  });
  try {
    await waitFor('link up', () => pair.sender.isConnected(RECEIVER));
    pair.receiver.setPaused(true);
    const body = payload(9, 2000);
    let seq = 0;
    // Far more than the kernel buffers, the socket bound and the queue hold together.
    for (let turn = 0; turn < 200; turn++) {
      for (let index = 0; index < 100; index++) pair.sender.send(RECEIVER, { seq: seq++, body });
      await new Promise((resolve) => setImmediate(resolve));
    }
    const dropped = pair.senderMetrics.messagesDropped.child({ peer: String(RECEIVER), reason: 'queue_full' }).value;
    assert.ok(dropped > 0, 'the queue shed messages');
    assert.ok(pair.senderMetrics.peerQueueMessages.child({ peer: String(RECEIVER) }).value <= 200);
    assert.equal(pair.sender.isConnected(RECEIVER), true, 'a slow peer is shed, not disconnected');
    pair.receiver.setPaused(false);
    const last = seq - 1;
    await waitFor('the newest message', () => received.at(-1) === last);
    assert.equal(received.length + dropped, seq);
    for (let index = 1; index < received.length; index++) assert.ok(received[index]! > received[index - 1]!);
  } finally {
    await pair.close();
  }
});

test('DSYS_COALESCE_WRITES=0 turns coalescing off; anything else leaves it on', () => {
  assert.equal(coalesceWritesDefault({}), true);
  assert.equal(coalesceWritesDefault({ DSYS_COALESCE_WRITES: '1' }), true);
  assert.equal(coalesceWritesDefault({ DSYS_COALESCE_WRITES: '0' }), false);
});

test('client port: replies given in the turn of their requests leave together, in order', async () => {
  for (const coalesceWrites of [true, false]) {
    const wire = clientWire({ request: s.u32, response: s.u32 });
    let nextClient = 1;
    const metrics = new TransportMetrics(new MetricsRegistry());
    const port: ClientPort<number, number> = await ClientPort.start<number, number>({
      listen: { host: '127.0.0.1', port: 0 },
      wire,
      limits: {
        frameBytesMax: 1 << 20,
        frameTimeoutMs: 5_000,
        writeBufferBytesMax: 1 << 20,
        connectionsMax: 4,
        requestsInFlightMax: 1000,
      },
      logger: new Logger({ level: 'error', node: 1 }),
      metrics,
      allocateClientId: () => ClientId(nextClient++),
      onRequest: (client, requestId, request) => port.reply(client, requestId, request * 2),
      coalesceWrites,
    });
    const socket = tcpConnect({ host: '127.0.0.1', port: port.endpoint.port });
    let restoreWrite: () => void = () => undefined;
    try {
      await once(socket, 'connect');
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      // Counts the node's socket writes: every write in this process except the test client's own.
      const write = Socket.prototype.write;
      let nodeWrites = 0;
      Socket.prototype.write = function (this: Socket, ...args: Parameters<Socket['write']>) {
        if (this !== socket) nodeWrites++;
        return write.apply(this, args);
      } as Socket['write'];
      restoreWrite = () => {
        Socket.prototype.write = write;
      };
      const requests = Array.from({ length: 500 }, (_, requestId) =>
        encode(wire.requestFrame, { requestId, request: requestId }),
      );
      // One write, so that the node reads the 500 requests, and answers them, in one turn.
      socket.write(Buffer.concat(requests.map((request) => encodeFrame(request))));
      const decoder = new FrameDecoder({ frameBytesMax: 1 << 20 });
      const replies: number[] = [];
      await waitFor('500 replies', () => {
        for (const chunk of chunks.splice(0)) {
          for (const frame of decoder.push(chunk).frames) {
            const reply = decode(wire.replyFrame, frame);
            assert.ok(reply.ok && reply.value.type === 'response');
            assert.equal(reply.value.response, reply.value.requestId * 2);
            replies.push(reply.value.requestId);
          }
        }
        return replies.length === 500;
      });
      assert.deepEqual(
        replies,
        Array.from({ length: 500 }, (_, requestId) => requestId),
      );
      assert.equal(metrics.port('client').framesOut.value, 500);
      restoreWrite();
      // The first reply at once, the other 499 together.
      assert.equal(nodeWrites, coalesceWrites ? 2 : 500);
    } finally {
      restoreWrite();
      socket.destroy();
      await port.close();
    }
  }
});
