/**
 * Real processes on loopback (a small ring for the normal suite): 5 node processes over TCP form a
 * ring; puts, gets and lookups work through any node; `dsys chord ring` sees every member; garbage
 * bytes on a node's port do not hurt it; one node killed with SIGKILL loses no acknowledged key.
 */
import assert from 'node:assert/strict';
import { connect as tcpConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type Cluster, waitFor } from '@dsys/harness';
import { connect, type RpcConnection } from '@dsys/rpc';
import type { ChordResponse, NodeRef } from '../src/messages.js';
import { startChordCluster } from '../src/real/cluster.js';
import { type ChordService, chordService } from '../src/real/service.js';

const text = new TextEncoder();
let cluster: Cluster;
const clients = new Map<string, RpcConnection<ChordService>>();

function client(endpoint: string): RpcConnection<ChordService> {
  let connection = clients.get(endpoint);
  if (connection === undefined) {
    connection = connect(chordService, endpoint, { timeoutMs: 5_000, retriesMax: 1 });
    clients.set(endpoint, connection);
  }
  return connection;
}

async function ringSize(endpoint: string): Promise<number> {
  const seen = new Set<string>();
  let next: string | null = endpoint;
  while (next !== null && !seen.has(next) && seen.size < 32) {
    seen.add(next);
    const status: ChordResponse = await client(next).stub.status({});
    if (status.type !== 'status') return -1;
    const successor: NodeRef | undefined = status.vnodes[0]?.successors[0];
    if (successor === undefined) return -1;
    const port: number = successor.addr % 65536;
    next = `127.0.0.1:${port}`;
  }
  return seen.size;
}

describe('chord as real processes', () => {
  before(async () => {
    cluster = await startChordCluster({ nodes: 5, tickMs: 20 });
  });

  after(async () => {
    await Promise.all([...clients.values()].map((connection) => connection.close()));
    await cluster?.stopAll();
  });

  it('forms one ring of 5', async () => {
    await waitFor(async () => (await ringSize(cluster.endpoint(3))) === 5, {
      timeoutMs: 20_000,
      intervalMs: 200,
      description: 'ring of 5',
    });
  });

  it('puts, gets and lookups through any node', async () => {
    const writer = client(cluster.endpoint(2)).stub;
    for (let i = 0; i < 20; i++) {
      const response = await writer.put({ key: `key-${i}`, value: text.encode(`value-${i}`) });
      assert.equal(response.type, 'put');
      if (response.type === 'put') assert.equal(response.replicas, 3);
    }
    const reader = client(cluster.endpoint(4)).stub;
    for (let i = 0; i < 20; i++) {
      const response = await reader.get({ key: `key-${i}` });
      assert.ok(response.type === 'get' && response.found, `key-${i} found`);
      assert.equal(new TextDecoder().decode(response.value!), `value-${i}`);
    }
    const lookup = await reader.lookup({ key: 'key-3', mode: 'recursive' });
    assert.equal(lookup.type, 'lookup');
  });

  it('garbage on a node port is rejected and the node keeps serving', async () => {
    const [host, port] = cluster.endpoint(1).split(':');
    await new Promise<void>((resolve) => {
      const socket = tcpConnect({ host: host!, port: Number(port) }, () => {
        socket.write(Buffer.from('GET / HTTP/1.1\r\n\r\n\u0000\u00ff\u00ff\u00ff garbage'), () => socket.destroy());
      });
      socket.on('close', () => resolve());
      socket.on('error', () => resolve());
    });
    const response = await client(cluster.endpoint(1)).stub.get({ key: 'key-1' });
    assert.ok(response.type === 'get' && response.found);
  });

  it('kill -9 of one node loses no acknowledged key', async () => {
    await cluster.kill(5);
    const reader = client(cluster.endpoint(1)).stub;
    await waitFor(async () => (await ringSize(cluster.endpoint(1))) === 4, {
      timeoutMs: 20_000,
      intervalMs: 200,
      description: 'ring of 4',
    });
    for (let i = 0; i < 20; i++) {
      const response = await reader.get({ key: `key-${i}` });
      assert.ok(response.type === 'get' && response.found, `key-${i} found after the kill`);
    }
  });
});
