// Goal: the node runs for real as separate processes: peers find each other through proxies (not
// their listen addresses), acknowledged synced writes survive kill -9, the restarted node rejoins,
// SIGTERM exits 0 with the log flushed, a flipped byte in the middle of the log stops the process
// with the file and offset, and bad flags exit 2. Method: the counter fixture's main as child
// processes; every peer address is a TCP forwarder the test points at the node once it is ready.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { ClientError, DurableLog, NodeClient, StorageError, segmentName } from '../src/index.js';
import { CounterRequest, CounterResponse } from './fixtures/counter-protocol.js';
import { NodeProcess, TcpForwarder, tempDir, waitFor } from './helpers/util.js';

const MAIN = new URL('./fixtures/counter-main.ts', import.meta.url).pathname;
const CLIENT = { request: CounterRequest, response: CounterResponse };

interface ProcessCluster {
  readonly forwarders: Map<number, TcpForwarder>;
  readonly dirs: Map<number, string>;
  readonly processes: Map<number, NodeProcess>;
  start(id: number): Promise<NodeProcess>;
  client(id: number): Promise<NodeClient<CounterRequest, CounterResponse>>;
  close(): Promise<void>;
}

async function processCluster(size: number): Promise<ProcessCluster> {
  const ids = Array.from({ length: size }, (_, i) => i + 1);
  const forwarders = new Map<number, TcpForwarder>();
  for (const id of ids) forwarders.set(id, await TcpForwarder.start());
  const peersFlag = ids.map((id) => `${id}=127.0.0.1:${forwarders.get(id)!.endpoint.port}`).join(',');
  const temps = await Promise.all(ids.map((id) => tempDir(`proc-${id}`)));
  const dirs = new Map(ids.map((id, i) => [id, temps[i]!.path]));
  const processes = new Map<number, NodeProcess>();
  const clients: NodeClient<CounterRequest, CounterResponse>[] = [];
  return {
    forwarders,
    dirs,
    processes,
    async start(id) {
      // --listen-peer on an ephemeral port: peers reach this node only through its forwarder.
      const node = new NodeProcess(MAIN, [
        ...['--id', String(id), '--peers', peersFlag, '--listen-peer', '127.0.0.1:0'],
        ...['--data-dir', dirs.get(id)!, '--tick-ms', '10', '--gossip-ticks', '5', '--cluster-id', 'proc-test'],
      ]);
      processes.set(id, node);
      await node.ready();
      forwarders.get(id)!.target = node.listening('peer');
      return node;
    },
    async client(id) {
      const client = await NodeClient.connect(await processes.get(id)!.ready(), CLIENT);
      clients.push(client);
      return client;
    },
    async close() {
      for (const client of clients) await client.close();
      for (const node of processes.values()) {
        node.kill('SIGKILL');
        await node.exited;
      }
      for (const forwarder of forwarders.values()) await forwarder.close();
      for (const temp of temps) await temp.remove();
    },
  };
}

async function readState(client: NodeClient<CounterRequest, CounterResponse>) {
  const response = await client.call({ type: 'read' });
  assert.equal(response.type, 'state');
  return response as Extract<CounterResponse, { type: 'state' }>;
}

test('kill -9 after acknowledged synced writes: they survive the restart, and the node rejoins', async () => {
  const cluster = await processCluster(3);
  try {
    await Promise.all([1, 2, 3].map((id) => cluster.start(id)));
    const client2 = await cluster.client(2);
    let acknowledged = 0;
    for (let amount = 1; amount <= 20; amount++) {
      const response = await client2.call({ type: 'add', amount, sync: true });
      acknowledged += amount;
      assert.deepEqual(response, { type: 'added', total: acknowledged });
    }
    // Writes in flight at the moment of the kill may or may not survive; acknowledged ones must.
    const inFlight = Array.from({ length: 10 }, () => client2.call({ type: 'add', amount: 1000, sync: true }));
    const client1 = await cluster.client(1);
    await waitFor('node 1 hears node 2', async () => (await readState(client1)).seen.some((s) => s.node === 2));

    // Another process cannot open the data dir of a running node.
    await assert.rejects(DurableLog.open({ dir: cluster.dirs.get(2)! }), (error: unknown) => {
      assert.ok(error instanceof StorageError && error.detail.code === 'LOCKED');
      assert.equal(error.detail.pid, cluster.processes.get(2)!.pid);
      return true;
    });

    const victim = cluster.processes.get(2)!;
    victim.kill('SIGKILL');
    assert.deepEqual(await victim.exited, { code: null, signal: 'SIGKILL' });
    const outcomes = await Promise.allSettled(inFlight);
    const survivedAtMost = outcomes.length * 1000;
    for (const outcome of outcomes) {
      if (outcome.status === 'rejected') {
        assert.ok(outcome.reason instanceof ClientError && outcome.reason.indeterminate, String(outcome.reason));
      }
    }

    await cluster.start(2);
    const restarted = await cluster.client(2);
    const total = (await readState(restarted)).total;
    assert.ok(total >= acknowledged && total <= acknowledged + survivedAtMost, `total ${total}`);
    assert.equal((total - acknowledged) % 1000, 0);
    // The restarted node and its peers reconnect (node 1 dials 2 again with backoff) and gossip.
    await waitFor('node 1 sees the recovered total', async () =>
      (await readState(client1)).seen.some((s) => s.node === 2 && s.total === total),
    );
    await waitFor('restarted node 2 hears node 3', async () =>
      (await readState(restarted)).seen.some((s) => s.node === 3),
    );
  } finally {
    await cluster.close();
  }
});

test('SIGTERM exits 0 with the log flushed; a flipped byte in the middle then stops the restart', async () => {
  const cluster = await processCluster(1);
  try {
    const node = await cluster.start(1);
    const client = await cluster.client(1);
    const replies = await Promise.all(
      Array.from({ length: 50 }, () => client.call({ type: 'add', amount: 3, sync: false })),
    );
    assert.equal(replies.length, 50);
    node.kill('SIGTERM');
    assert.deepEqual(await node.exited, { code: 0, signal: null });
    assert.ok(node.logs.some((line) => line.msg === 'stopped'));

    const restarted = await cluster.start(1);
    const again = await cluster.client(1);
    assert.equal((await readState(again)).total, 150);
    restarted.kill('SIGTERM');
    assert.equal((await restarted.exited).code, 0);

    // Flip one byte of the second record: durable data changed, so the node must refuse to start.
    const file = join(cluster.dirs.get(1)!, segmentName(1));
    const bytes = Buffer.from(await readFile(file));
    const recordBytes = 12 + 1; // header + a one-byte varuint amount
    bytes[recordBytes + 12]! ^= 0x01;
    await writeFile(file, bytes);
    const broken = new NodeProcess(MAIN, ['--id', '1', '--peers', '1=127.0.0.1:1', '--data-dir', cluster.dirs.get(1)!]);
    assert.deepEqual(await broken.exited, { code: 1, signal: null });
    const failure = broken.logs.find((line) => line.msg === 'failed to start');
    const message = String((failure?.error as { message?: string } | undefined)?.message);
    assert.match(message, new RegExp(`log segment ${file} is corrupt at byte offset ${recordBytes}`));
  } finally {
    await cluster.close();
  }
});

test('bad flags exit 2 with a message naming the flag', async () => {
  const node = new NodeProcess(MAIN, [
    '--id',
    '1',
    '--peers',
    '1=127.0.0.1:7001',
    '--data-dir',
    '/tmp/x',
    '--tick-ms',
    '0',
  ]);
  let stderr = '';
  node.child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  assert.deepEqual(await node.exited, { code: 2, signal: null });
  assert.match(stderr + JSON.stringify(node.logs), /--tick-ms: 0 out of range 1..60000/);
});
