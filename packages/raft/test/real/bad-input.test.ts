// Goal: bad input never makes a Raft node serve wrong data or fall over. A node whose log was damaged
// on disk refuses to start and says which file and byte offset; garbage on the peer port or the client
// port closes that connection only, and the cluster keeps its leader and keeps committing.
// Method: real nodes (in process for the sockets, a real process for the refusal to start, since the
// exit code and the message on stderr are the contract), raw TCP sockets, and a flipped byte in the
// middle of a write-ahead log segment.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { nodeCommand, waitFor } from '@dsys/harness';
import { encode, NodeId } from '@dsys/kit';
import { raftMessageSchema } from '@dsys/raft';
import { KvClient, raftKvInterface, raftNodeArgs, raftNodeEntry } from '@dsys/raft/real';
import { connect as rpcConnect } from '@dsys/rpc';
import { encodeFrame, PEER_MAGIC, PEER_PROTOCOL_VERSION, PeerHello } from '@dsys/runtime-node';
import { startTestCluster, type TestCluster } from '../support/in-process.js';

interface Raw {
  readonly socket: Socket;
  readonly closed: Promise<void>;
}

async function raw(endpoint: { host: string; port: number }): Promise<Raw> {
  const socket = connect(endpoint);
  socket.on('error', () => undefined); // a reset is one of the expected ways to be closed
  socket.on('data', () => undefined);
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return { socket, closed };
}

function lengthPrefix(length: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32LE(length, 0);
  return out;
}

async function closedWithin(connection: Raw, what: string): Promise<void> {
  await waitFor(() => connection.socket.destroyed || connection.socket.readableEnded, {
    description: `${what}: connection closed by the node`,
    timeoutMs: 15_000,
  });
  connection.socket.destroy();
  await connection.closed;
}

describe('garbage on the ports closes only that connection', () => {
  let cluster: TestCluster;
  before(async () => {
    // Node 4 is configured as a peer but never runs: a raw socket may pass the handshake as n4
    // without displacing a real node's link.
    cluster = await startTestCluster({ nodes: 4, joining: [4] });
    await cluster.stop(4);
  });
  after(() => cluster.close());

  test('peer port: no handshake, an oversized length, and undecodable Raft messages after a valid handshake', async () => {
    const leader = await cluster.leader();
    const probe = new KvClient(cluster.endpoints);
    const term = (await probe.status(cluster.endpoints[leader - 1]!)).term;
    await probe.close();
    const target = cluster.server(leader)!.node.endpoints.peer;
    const hello = () =>
      encodeFrame(
        encode(PeerHello, {
          magic: PEER_MAGIC,
          version: PEER_PROTOCOL_VERSION,
          clusterId: 'dsys',
          from: 4,
          to: leader,
        }),
      );
    const http = await raw(target);
    http.socket.write('GET / HTTP/1.1\r\nHost: raft\r\n\r\n');
    await closedWithin(http, 'HTTP on the peer port');
    const huge = await raw(target);
    huge.socket.write(lengthPrefix(0xffff_fff0));
    await closedWithin(huge, 'a 4 GiB length prefix');
    const undecodable = await raw(target);
    undecodable.socket.write(Buffer.concat([hello(), encodeFrame(new Uint8Array([0x07, 0xff, 0xff, 0xff, 0x7f]))]));
    await closedWithin(undecodable, 'an undecodable message');
    // Well-formed bytes, but entries with a gap: the schema refuses them (Raft §5.3 log invariants).
    const gap = encode(raftMessageSchema, {
      type: 'appendEntries',
      term: term as never,
      prevIndex: 0 as never,
      prevTerm: 0 as never,
      commit: 0 as never,
      entries: [],
    });
    const gapped = Buffer.from(gap);
    gapped[gapped.length - 2] = 2; // two entries announced, none present
    const invalid = await raw(target);
    invalid.socket.write(Buffer.concat([hello(), encodeFrame(gapped)]));
    await closedWithin(invalid, 'a truncated AppendEntries');
    // The cluster did not notice: same leader, same term, links up, writes commit.
    const client = new KvClient(cluster.endpoints);
    try {
      await client.put('after-peer-garbage', 'fine');
      assert.equal(await client.get('after-peer-garbage'), 'fine');
      const status = await client.status(cluster.endpoints[leader - 1]!);
      assert.equal(status.role, 'leader');
      assert.equal(status.term, term, 'no election was caused');
      for (const id of [1, 2, 3]) {
        if (id !== leader) assert.ok(cluster.server(leader)!.node.isPeerConnected(NodeId(id)), `n${leader} -> n${id}`);
      }
    } finally {
      await client.close();
    }
  });

  test('client port: garbage and an oversized frame; a connected client carries on', async () => {
    const leader = await cluster.leader();
    const endpoint = cluster.endpoints[leader - 1]!;
    const rpc = rpcConnect(raftKvInterface, endpoint);
    try {
      assert.equal((await rpc.stub.get({ key: 'x' })).type, 'get');
      const [host, port] = endpoint.split(':') as [string, string];
      const garbage = await raw({ host, port: Number(port) });
      garbage.socket.write(Buffer.from('\x00\x00\x00\x08not an rpc frame at all'));
      await closedWithin(garbage, 'garbage on the client port');
      const huge = await raw({ host, port: Number(port) });
      huge.socket.write(lengthPrefix(0x7fff_ffff));
      await closedWithin(huge, 'an oversized client frame');
      const answer = await rpc.stub.status({});
      assert.equal(answer.type === 'status' && answer.role, 'leader');
    } finally {
      await rpc.close();
    }
  });
});

describe('a damaged log', () => {
  test('the node refuses to start, naming the file and the byte offset, and leaves the file as it was', async () => {
    const cluster = await startTestCluster({ nodes: 1 });
    const dataDir = join(cluster.dataDir, 'node-1');
    const client = new KvClient(cluster.endpoints);
    try {
      // Many batches (8 writers, 25 rounds), so the segment holds many records and its middle is not
      // the last one.
      await Promise.all(
        Array.from({ length: 8 }, async (_, writer) => {
          for (let round = 0; round < 25; round++)
            await client.put(`key-${round * 8 + writer}`, `value-${round * 8 + writer}`);
        }),
      );
    } finally {
      await client.close();
    }
    const peer = cluster.server(1)!.node.endpoints.peer;
    const clientEndpoint = cluster.endpoints[0]!;
    await cluster.stop(1);
    const segment = (await readdir(dataDir)).find((name) => /^wal-\d+\.log$/.test(name));
    assert.ok(segment !== undefined, 'a log segment');
    const path = join(dataDir, segment);
    const original = await readFile(path);
    const damaged = Buffer.from(original);
    // The middle of the records, not of the zeros preallocated after them.
    let recordsEnd = damaged.length;
    while (recordsEnd > 0 && damaged[recordsEnd - 1] === 0) recordsEnd--;
    const offset = Math.floor(recordsEnd / 2);
    damaged[offset] = damaged[offset]! ^ 0x40;
    await writeFile(path, damaged);
    const [clientHost, clientPort] = clientEndpoint.split(':') as [string, string];
    const args = raftNodeArgs({
      id: 1,
      peerAddress: peer,
      clientAddress: { host: clientHost, port: Number(clientPort) },
      dataDir,
      peers: new Map([[1, peer]]),
    });
    const refused = await runNode(args);
    assert.equal(refused.code, 1, refused.stderr);
    assert.doesNotMatch(refused.stdout, /ready:/);
    const match = /log segment (\S+) is corrupt at byte offset (\d+)/.exec(refused.stderr);
    assert.ok(match !== null, `message names the place: ${refused.stderr}`);
    assert.ok(match[1]!.endsWith(segment), match[1]);
    const reported = Number(match[2]);
    assert.ok(reported <= offset && offset - reported < 64 * 1024, `offset ${reported} is the damaged record's start`);
    assert.deepEqual(await readFile(path), damaged, 'the node left the damaged file untouched');
    // Undo the damage: the same node starts and serves every write (the refusal was about the damage).
    await writeFile(path, original);
    await cluster.start(1);
    const reader = new KvClient(cluster.endpoints);
    try {
      assert.equal(await reader.get('key-199'), 'value-199');
      assert.equal(await reader.get('key-0'), 'value-0');
    } finally {
      await reader.close();
      await cluster.close();
    }
  });
});

function runNode(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const command = nodeCommand(raftNodeEntry, args);
  return new Promise((resolve, reject) => {
    const child = spawn(command.command, command.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the node did not exit within 60 s\n${stdout}\n${stderr}`));
    }, 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
