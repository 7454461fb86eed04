// Goal: the host runs a protocol for real and honours the effect-order contract on real sockets and
// files: a send placed after a sync persist reaches the peer only after the fsync completed. Also:
// graceful close flushes, a failing step stops the node, start failures clean up, /metrics parses.
// Method: in-process nodes with instrumented storage; one shared trace orders fsyncs and deliveries.
import assert from 'node:assert/strict';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { NodeId } from '@dsys/kit';
import { DurableLog, NodeError, StorageError, startNode } from '../src/index.js';
import { counterProtocol, counterSchemas } from './fixtures/counter-protocol.js';
import { startCluster, waitConnected } from './helpers/in-process.js';
import { tempDir, waitFor } from './helpers/util.js';

test('effect order: the peer sees a message sent after a sync persist only once the data is on disk', async () => {
  const trace: string[] = [];
  let holdFsync = false;
  let bReceived = false;
  const cluster = await startCluster([
    {
      storageHooks: {
        beforeSync: async () => {
          if (!holdFsync) return;
          trace.push('A fsync started');
          // Hold the fsync open. If the send were not held behind it, B would receive meanwhile: wait
          // for that (the bug) up to 300 ms, then let the fsync finish.
          await waitFor('B receives during the fsync', () => bReceived, 300).catch(() => undefined);
        },
        afterSync: () => {
          if (holdFsync) trace.push('A durable');
        },
      },
    },
    {
      onStep: (event) => {
        if (event.type === 'receive' && event.message.total === 5) {
          bReceived = true;
          trace.push('B received total=5');
        }
      },
    },
  ]);
  try {
    await waitConnected(cluster);
    holdFsync = true;
    const response = await cluster.node(1).request({ type: 'add', amount: 5, sync: true });
    trace.push('A replied');
    assert.deepEqual(response, { type: 'added', total: 5 });
    await waitFor('B receives total=5', () => bReceived);
    assert.deepEqual(trace.slice(0, 2), ['A fsync started', 'A durable']);
    assert.ok(trace.indexOf('B received total=5') > trace.indexOf('A durable'), trace.join(' | '));
    assert.ok(trace.indexOf('A replied') > trace.indexOf('A durable'), trace.join(' | '));
    assert.equal(
      cluster.node(2).inspect((state) => state.seen.get(NodeId(1))),
      5,
    );
  } finally {
    await cluster.close();
  }
});

test('lazy persists do not hold sends; acks still arrive as persisted events', async () => {
  const cluster = await startCluster([{}, {}]);
  try {
    await waitConnected(cluster);
    for (let i = 1; i <= 20; i++) await cluster.node(1).request({ type: 'add', amount: 1, sync: false });
    await waitFor('B sees 20', () => cluster.node(2).inspect((state) => state.seen.get(NodeId(1)) === 20));
    await waitFor('all 20 acks', () => cluster.node(1).inspect((state) => state.acks === 20));
  } finally {
    await cluster.close();
  }
});

test('graceful close: requests accepted before close are durable afterwards', async () => {
  const cluster = await startCluster([{}], {});
  const dir = cluster.dataDirs.get(1)!;
  try {
    const node = cluster.node(1);
    const replies = Array.from({ length: 100 }, () => node.request({ type: 'add', amount: 2, sync: false }));
    await node.close();
    await Promise.all(replies);
    const { log, durable } = await DurableLog.open({ dir });
    await log.close();
    assert.equal(durable.records.length, 100);
    await assert.rejects(node.request({ type: 'read' }), { name: 'NodeError', message: /NODE_STOPPED/ });
  } finally {
    await cluster.close();
  }
});

test('compaction through the host: state survives a restart from snapshot + log', async () => {
  const dir = await tempDir('host-compact');
  const options = {
    protocol: counterProtocol,
    schemas: counterSchemas,
    config: { gossipTicks: 1000 },
    id: NodeId(1),
    peers: new Map(),
    clusterId: 'test',
    dataDir: dir.path,
    listenPeer: { host: '127.0.0.1', port: 0 },
    listenClient: null,
    listenMetrics: null,
    tickMs: 50,
    logger: (await import('../src/index.js')).memoryLogger('warn').logger,
  };
  try {
    const first = await startNode(options);
    await first.request({ type: 'add', amount: 3, sync: true });
    assert.deepEqual(await first.request({ type: 'compact' }), { type: 'compacted', total: 3 });
    await first.request({ type: 'add', amount: 4, sync: true });
    await first.close();
    const second = await startNode(options);
    assert.equal(
      second.inspect((state) => state.total),
      7,
    );
    await second.close();
  } finally {
    await dir.remove();
  }
});

test('a step that throws stops the node: stopped rejects with STEP_FAILED, later requests fail', async () => {
  const cluster = await startCluster([{}]);
  try {
    const node = cluster.node(1);
    await node.request({ type: 'add', amount: 1, sync: true });
    const crash = node.request({ type: 'crash' }, { timeoutMs: 5_000 });
    await assert.rejects(node.stopped, (error: unknown) => {
      assert.ok(error instanceof NodeError && error.detail.code === 'STEP_FAILED');
      assert.match(error.message, /crash requested/);
      return true;
    });
    await assert.rejects(crash, /NODE_STOPPED/);
    const logged = cluster.logs.get(1)!.find((line) => line.msg === 'node stopping on a fatal error');
    assert.ok(logged !== undefined);
    // The data written before the failure is intact and the lock is released.
    const { log, durable } = await DurableLog.open({ dir: cluster.dataDirs.get(1)! });
    await log.close();
    assert.equal(durable.records.length, 1);
  } finally {
    await cluster.close();
  }
});

test('start failures: a locked data dir, a taken port (and the lock is released after)', async () => {
  const dir = await tempDir('host-start');
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const takenPort = (blocker.address() as { port: number }).port;
  const base = {
    protocol: counterProtocol,
    schemas: counterSchemas,
    config: { gossipTicks: 10 },
    id: NodeId(1),
    peers: new Map(),
    clusterId: 'test',
    dataDir: dir.path,
    listenClient: null,
    listenMetrics: null,
    tickMs: 10,
    logger: (await import('../src/index.js')).memoryLogger('error').logger,
  };
  try {
    const { log } = await DurableLog.open({ dir: dir.path });
    await assert.rejects(startNode({ ...base, listenPeer: { host: '127.0.0.1', port: 0 } }), (error: unknown) => {
      return error instanceof StorageError && error.detail.code === 'LOCKED';
    });
    await log.close();
    await assert.rejects(
      startNode({ ...base, listenPeer: { host: '127.0.0.1', port: takenPort } }),
      (error: unknown) => {
        assert.ok(error instanceof NodeError && error.detail.code === 'LISTEN_FAILED');
        assert.match(error.message, new RegExp(`127.0.0.1:${takenPort}`));
        return true;
      },
    );
    const node = await startNode({ ...base, listenPeer: { host: '127.0.0.1', port: 0 } });
    await node.close();
  } finally {
    blocker.close();
    await dir.remove();
  }
});

function fetchText(url: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, type: String(response.headers['content-type']), body }),
      );
    }).on('error', reject);
  });
}

/** A strict reader of the Prometheus text format: every line must be a comment or a sample. */
function parsePrometheus(body: string): Map<string, number> {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (\S+)$/;
  for (const line of body.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type !== null) {
      assert.ok(!types.has(type[1]!), `TYPE twice for ${type[1]}`);
      types.set(type[1]!, type[2]!);
      continue;
    }
    if (/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$/.test(line)) continue;
    const match = sample.exec(line);
    assert.ok(match !== null, `not a Prometheus sample line: ${line}`);
    const value = Number(match[3] === '+Inf' ? Number.POSITIVE_INFINITY : match[3]);
    assert.ok(!Number.isNaN(value), `bad value in ${line}`);
    const base = match[1]!.replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(match[1]!) || types.get(base) === 'histogram', `sample before its TYPE: ${line}`);
    samples.set(`${match[1]}${match[2] ?? ''}`, value);
  }
  return samples;
}

test('/metrics serves parseable Prometheus text with the runtime series and system hooks', async () => {
  const cluster = await startCluster([{}, {}], { metrics: true });
  try {
    await waitConnected(cluster);
    const node = cluster.node(1);
    node.metrics.gaugeFrom('counter_total', 'The counter of this node', () => node.inspect((state) => state.total));
    await node.request({ type: 'add', amount: 9, sync: true });
    const { host, port } = node.endpoints.metrics!;
    const response = await fetchText(`http://${host}:${port}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.type, /^text\/plain; version=0\.0\.4/);
    const samples = parsePrometheus(response.body);
    assert.equal(samples.get('counter_total'), 9);
    assert.ok(samples.get('dsys_steps_total')! >= 1);
    assert.equal(samples.get('dsys_events_total{type="request"}'), 1);
    assert.ok(samples.get('dsys_storage_fsyncs_total')! >= 1);
    assert.ok(samples.get('dsys_storage_records_appended_total')! >= 1);
    assert.equal(samples.get('dsys_storage_fsync_seconds_count'), samples.get('dsys_storage_fsyncs_total'));
    assert.ok(samples.get('dsys_frames_out_total{port="peer_out"}')! >= 1);
    assert.equal(samples.get('dsys_peer_connected{peer="2"}'), 1);
    assert.ok(samples.has('dsys_storage_group_commit_records_bucket{le="+Inf"}'));
    assert.ok(samples.has('dsys_effects_total{type="persist"}'));
    // Histogram buckets are cumulative.
    const buckets = [...samples].filter(([key]) => key.startsWith('dsys_storage_fsync_seconds_bucket'));
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]![1] >= buckets[i - 1]![1]);
    assert.equal((await fetchText(`http://${host}:${port}/nope`)).status, 404);
  } finally {
    await cluster.close();
  }
});
