// Goal: `KvClient` against a real 3-node cluster (TCP, durable logs, RPC) does what its contract says:
// every operation, leader discovery from any node, exactly-once writes across a leader change, and
// typed errors that say whether an operation may have taken effect.
// Method: an in-process cluster (test/support/in-process.ts); a "crash" is a graceful stop here, the
// kill -9 runs are in processes.test.ts. The session mechanism is also driven directly over RPC, so a
// retry with the same sequence number is shown to be answered from the session, not applied again.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { allocatePorts, waitFor } from '@dsys/harness';
import { KvClient, KvClientError, raftKvInterface } from '@dsys/raft/real';
import { connect } from '@dsys/rpc';
import { startTestCluster, type TestCluster } from '../support/in-process.js';

describe('KvClient on a 3-node cluster', () => {
  let cluster: TestCluster;
  let client: KvClient;
  before(async () => {
    cluster = await startTestCluster({ nodes: 3 });
    client = new KvClient(cluster.endpoints, { timeoutMs: 20_000 });
  });
  after(async () => {
    await client.close();
    await cluster.close();
  });

  test('put, get, delete, cas and scan; a missing key reads null', async () => {
    assert.equal(await client.get('missing'), null);
    await client.put('fruit/apple', 'red');
    await client.put('fruit/banana', 'yellow');
    await client.put('vegetable/leek', 'green');
    assert.equal(await client.get('fruit/apple'), 'red');
    assert.equal(await client.cas('fruit/apple', 'green', 'blue'), false, 'cas with a wrong expected value');
    assert.equal(await client.get('fruit/apple'), 'red');
    assert.equal(await client.cas('fruit/apple', 'red', 'green'), true);
    assert.equal(await client.cas('fruit/cherry', null, 'dark red'), true, 'cas expecting absence');
    assert.equal(await client.cas('fruit/cherry', null, 'again'), false);
    const scan = await client.scan('fruit/', 2);
    assert.deepEqual(scan, {
      entries: [
        { key: 'fruit/apple', value: 'green' },
        { key: 'fruit/banana', value: 'yellow' },
      ],
      more: true,
    });
    assert.equal((await client.scan('fruit/', 10)).entries.length, 3);
    assert.equal(await client.delete('fruit/banana'), true);
    assert.equal(await client.delete('fruit/banana'), false);
    assert.equal(await client.get('fruit/banana'), null);
    assert.equal(await client.cas('fruit/cherry', 'dark red', null), true, 'cas to null deletes');
    assert.equal(await client.get('fruit/cherry'), null);
  });

  test('finds and follows the leader whichever node it asks first', async () => {
    const leader = await cluster.leader();
    for (const first of cluster.ids) {
      // Put `first` at the head of the list: the client starts somewhere and must be redirected.
      const endpoints = [cluster.endpoints[first - 1]!, ...cluster.endpoints.filter((_, i) => i !== first - 1)];
      const fresh = new KvClient(endpoints);
      try {
        await fresh.put(`follow/${first}`, 'x');
        assert.equal(await fresh.get(`follow/${first}`), 'x');
        assert.equal(fresh.leaderEndpoint, cluster.endpoints[leader - 1]);
      } finally {
        await fresh.close();
      }
    }
    const statuses = await client.statusAll();
    assert.equal(statuses.length, 3);
    for (const entry of statuses) {
      assert.ok(entry.ok, `status of ${entry.endpoint}`);
      assert.equal(entry.status.leader, leader);
      assert.deepEqual(entry.status.voters, [1, 2, 3]);
    }
  });

  test('a retried write is answered from its session, never applied twice', async () => {
    const leader = await cluster.leader();
    const rpc = connect(raftKvInterface, cluster.endpoints[leader - 1]!);
    try {
      const opened = await rpc.stub.openSession({});
      assert.equal(opened.type, 'openSession');
      const sessionId = opened.type === 'openSession' ? opened.sessionId : 0;
      const cas = { sessionId, seq: 1, key: 'once', expected: null, value: 'first' };
      assert.deepEqual(await rpc.stub.cas(cas), { type: 'cas', ok: true });
      // Applied again, this compare-and-swap would fail (the key is no longer absent): the session
      // answers the retry with the first result instead.
      assert.deepEqual(await rpc.stub.cas(cas), { type: 'cas', ok: true });
      // The same after the leadership moved: the session table is replicated state.
      const next = cluster.ids.find((id) => id !== leader)!;
      await client.transferLeader(next);
      await waitFor(async () => (await cluster.leader()) === next, { description: `n${next} leads` });
      const moved = connect(raftKvInterface, cluster.endpoints[next - 1]!);
      try {
        assert.deepEqual(await moved.stub.cas(cas), { type: 'cas', ok: true });
        assert.deepEqual(await moved.stub.put({ sessionId, seq: 2, key: 'once', value: 'second' }), { type: 'put' });
        const stale = await moved.stub.cas(cas);
        assert.equal(stale.type === 'error' && stale.code, 'SEQ_STALE', 'an older sequence number is refused');
        const expired = await moved.stub.put({ sessionId: 999_999_999, seq: 1, key: 'once', value: 'x' });
        assert.equal(expired.type === 'error' && expired.code, 'SESSION_EXPIRED');
      } finally {
        await moved.close();
      }
      assert.equal(await client.get('once'), 'second');
    } finally {
      await rpc.close();
    }
  });

  test('writes in flight while the leader stops are applied exactly once', async () => {
    // Each worker advances its own counter by compare-and-swap from the value it last wrote. A retry
    // that were applied a second time would fail its compare (the value moved on): every answer must
    // be true and every counter must end at exactly the number of steps.
    const workers = 6;
    const steps = 40;
    const counters = Array.from({ length: workers }, () => 0);
    const run = async (worker: number) => {
      for (let i = 0; i < steps; i++) {
        const expected = i === 0 ? null : String(i);
        assert.equal(
          await client.cas(`counter/${worker}`, expected, String(i + 1)),
          true,
          `worker ${worker} step ${i}`,
        );
        counters[worker] = i + 1;
      }
    };
    const running = Promise.all(Array.from({ length: workers }, (_, worker) => run(worker)));
    await waitFor(() => counters.every((count) => count >= 5), { description: 'workers under way', timeoutMs: 30_000 });
    const leader = await cluster.leader();
    await cluster.stop(leader);
    await waitFor(() => counters.every((count) => count >= 25), {
      description: 'progress under a new leader',
      timeoutMs: 30_000,
    });
    await cluster.start(leader);
    await running;
    for (let worker = 0; worker < workers; worker++) {
      assert.equal(await client.get(`counter/${worker}`), String(steps));
    }
  });
});

describe('KvClient errors', () => {
  test('UNAVAILABLE when no node answers: definitely not applied', async () => {
    const ports = await allocatePorts(2);
    const client = new KvClient(
      ports.map((port) => `127.0.0.1:${port}`),
      { timeoutMs: 600, attemptTimeoutMs: 200 },
    );
    try {
      await assert.rejects(client.put('k', 'v'), (error: unknown) => {
        assert.ok(error instanceof KvClientError);
        assert.equal(error.detail.code, 'UNAVAILABLE');
        assert.equal(error.indeterminate, false);
        return true;
      });
      await assert.rejects(client.get('k'), (error: unknown) => error instanceof KvClientError && !error.indeterminate);
    } finally {
      await client.close();
    }
  });

  test('REJECTED for a request over a limit; INDETERMINATE when a leader took a write it cannot commit', async () => {
    const cluster = await startTestCluster({ nodes: 3 });
    // Short enough for a quick test, long enough for the session to open on a loaded machine.
    const client = new KvClient(cluster.endpoints, { timeoutMs: 4_000, attemptTimeoutMs: 1_000 });
    try {
      await assert.rejects(client.put('big', 'x'.repeat(1024 * 1024 + 1)), (error: unknown) => {
        assert.ok(error instanceof KvClientError);
        assert.equal(error.detail.code, 'REJECTED');
        assert.equal(error.indeterminate, false);
        return true;
      });
      // Open the client's session while the cluster can commit, then leave the leader alone.
      await client.put('before', 'ok');
      const leader = await cluster.leader();
      for (const id of cluster.ids) if (id !== leader) await cluster.stop(id);
      await assert.rejects(client.put('after', 'maybe'), (error: unknown) => {
        assert.ok(error instanceof KvClientError, String(error));
        assert.equal(error.detail.code, 'INDETERMINATE', error.message);
        assert.equal(error.indeterminate, true);
        return true;
      });
      // It was in the leader's log: once a majority is back it commits (the outcome really was unknown).
      for (const id of cluster.ids) if (id !== leader) await cluster.start(id);
      const reader = new KvClient(cluster.endpoints, { timeoutMs: 20_000 });
      try {
        const value = await reader.get('after');
        assert.ok(value === 'maybe' || value === null, `after: ${value}`);
      } finally {
        await reader.close();
      }
    } finally {
      await client.close();
      await cluster.close();
    }
  });
});
