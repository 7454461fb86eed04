/**
 * Wire compatibility: three real `dsys coord` processes (harness, loopback) driven by the unmodified
 * npm `node-zookeeper-client` through every operation it has, and by our own jute client (`ZkClient`)
 * for those it lacks (sync, containers, TTL, addWatch, getEphemerals, getAllChildrenNumber). Checks
 * results, stats, error codes, sequential naming (zero-padded to 10 digits), watches (once, in order),
 * ephemeral cleanup on close and on session expiry, a session surviving a move to another server,
 * four-letter words, and bad input on a real socket. The recipes run here too, across processes'
 * sessions: the lock is never held twice, survives a holder's crash, and a release wakes one waiter.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type Cluster, nodeCommand, startCluster, waitFor } from '@dsys/harness';
import zookeeper from 'node-zookeeper-client';
import { CreateMode, DoubleBarrier, Err, EventType, LeaderElection, Lock, ReadyConfig } from '../src/index.js';
import { coordNodeEntry, ZkClient, ZkError } from '../src/real/index.js';

type NzkClient = ReturnType<typeof zookeeper.createClient>;

let cluster: Cluster;
let connectString: string;

function nzk(servers = connectString, sessionTimeout = 15_000): Promise<NzkClient> {
  const client = zookeeper.createClient(servers, { sessionTimeout, spinDelay: 100, retries: 0 });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('node-zookeeper-client did not connect')), 15_000);
    client.once('connected', () => {
      clearTimeout(timer);
      resolve(client);
    });
    client.connect();
  });
}

/** Promisifies a node-zookeeper-client call: resolves with [error, ...results]. */
function call<T extends unknown[]>(
  invoke: (callback: (error: unknown, ...rest: T) => void) => void,
): Promise<[number, ...T]> {
  return new Promise((resolve) => {
    invoke((error, ...rest) => {
      const code = error === null || error === undefined ? 0 : ((error as { getCode(): number }).getCode?.() ?? -999);
      resolve([code, ...rest]);
    });
  });
}

/** Waits until `path` exists as seen by `client`'s server (reads are local and may lag). */
async function visible(client: NzkClient, path: string): Promise<void> {
  await waitFor(async () => (await call((cb) => client.exists(path, cb)))[1] !== null, {
    description: `${path} visible`,
    timeoutMs: 5000,
  });
}

async function zk(options: { servers?: string; timeoutMs?: number } = {}): Promise<ZkClient> {
  return ZkClient.connect({
    connectString: options.servers ?? connectString,
    sessionTimeoutMs: options.timeoutMs ?? 4000,
  });
}

before(async () => {
  cluster = await startCluster({
    nodes: 3,
    proxies: false,
    readyTimeoutMs: 30_000,
    command: (node) =>
      nodeCommand(coordNodeEntry, [
        '--id',
        String(node.id),
        '--peers',
        [...node.peers].map(([id, endpoint]) => `${id}=${endpoint.host}:${endpoint.port}`).join(','),
        '--listen-peer',
        `${node.peerAddress.host}:${node.peerAddress.port}`,
        '--listen-client',
        `${node.clientAddress.host}:${node.clientAddress.port}`,
        '--data-dir',
        node.dataDir,
        '--min-session-timeout-ms',
        '1000',
        '--log-level',
        'warn',
      ]),
  });
  connectString = cluster.endpoints().join(',');
  // Wait for a leader: a write through any server succeeds.
  await waitFor(
    async () => {
      try {
        const client = await zk();
        await client.create('/ready-probe').catch((error: unknown) => {
          if (!(error instanceof ZkError && error.err === Err.NODE_EXISTS)) throw error;
        });
        await client.close();
        return true;
      } catch {
        return false;
      }
    },
    { description: 'the ensemble accepts writes', timeoutMs: 30_000, intervalMs: 200 },
  );
});

after(async () => {
  await cluster?.stopAll();
});

describe('node-zookeeper-client against dsys coord', { timeout: 120_000 }, () => {
  test('create, getData, setData, exists, getChildren, delete with stats and error codes', async () => {
    const client = await nzk();
    try {
      const [created, path] = await call<[string]>((cb) => client.create('/nzk', Buffer.from('v0'), cb));
      assert.equal(created, 0);
      assert.equal(path, '/nzk');
      assert.equal((await call((cb) => client.create('/nzk', Buffer.from('x'), cb)))[0], Err.NODE_EXISTS);
      assert.equal((await call((cb) => client.create('/missing/child', Buffer.from('x'), cb)))[0], Err.NO_NODE);
      const [got, data, stat] = await call<[Buffer, { version: number; dataLength: number }]>((cb) =>
        client.getData('/nzk', cb),
      );
      assert.equal(got, 0);
      assert.equal(data.toString(), 'v0');
      assert.equal(stat.version, 0);
      assert.equal(stat.dataLength, 2);
      const [set, setStat] = await call<[{ version: number }]>((cb) =>
        client.setData('/nzk', Buffer.from('v1'), 0, cb),
      );
      assert.equal(set, 0);
      assert.equal(setStat.version, 1);
      assert.equal((await call((cb) => client.setData('/nzk', Buffer.from('v2'), 0, cb)))[0], Err.BAD_VERSION);
      assert.equal((await call((cb) => client.setData('/nope', Buffer.from('v2'), -1, cb)))[0], Err.NO_NODE);
      const [existsCode, existsStat] = await call<[{ version: number } | null]>((cb) => client.exists('/nzk', cb));
      assert.equal(existsCode, 0);
      assert.equal(existsStat?.version, 1);
      const [absentCode, absent] = await call<[unknown]>((cb) => client.exists('/nope', cb));
      assert.equal(absentCode, 0);
      assert.equal(absent, null);
      assert.equal((await call((cb) => client.create('/nzk/a', Buffer.from(''), cb)))[0], 0);
      const [lsCode, children, parentStat] = await call<[string[], { numChildren: number; cversion: number }]>((cb) =>
        client.getChildren('/nzk', cb),
      );
      assert.equal(lsCode, 0);
      assert.deepEqual(children, ['a']);
      assert.equal(parentStat.numChildren, 1);
      assert.equal((await call((cb) => client.remove('/nzk', -1, cb)))[0], Err.NOT_EMPTY);
      assert.equal((await call((cb) => client.remove('/nzk/a', 7, cb)))[0], Err.BAD_VERSION);
      assert.equal((await call((cb) => client.remove('/nzk/a', 0, cb)))[0], 0);
      assert.equal((await call((cb) => client.remove('/nzk', -1, cb)))[0], 0);
      assert.equal((await call((cb) => client.getData('/nzk', cb)))[0], Err.NO_NODE);
    } finally {
      client.close();
    }
  });

  test('sequential nodes are named with a 10-digit zero-padded counter; ephemerals cannot have children', async () => {
    const client = await nzk();
    try {
      await call((cb) => client.create('/seq', Buffer.from(''), cb));
      const names: string[] = [];
      for (let i = 0; i < 3; i++) {
        const [code, path] = await call<[string]>((cb) =>
          client.create('/seq/item-', Buffer.from(''), zookeeper.CreateMode.PERSISTENT_SEQUENTIAL, cb),
        );
        assert.equal(code, 0);
        names.push(path);
      }
      assert.deepEqual(names, ['/seq/item-0000000000', '/seq/item-0000000001', '/seq/item-0000000002']);
      const [ephCode, eph] = await call<[string]>((cb) =>
        client.create('/seq/e-', Buffer.from(''), zookeeper.CreateMode.EPHEMERAL_SEQUENTIAL, cb),
      );
      assert.equal(ephCode, 0);
      assert.match(eph, /^\/seq\/e-\d{10}$/);
      assert.equal(
        (await call((cb) => client.create(`${eph}/child`, Buffer.from(''), cb)))[0],
        Err.NO_CHILDREN_FOR_EPHEMERALS,
      );
    } finally {
      client.close();
    }
  });

  test('multi (transaction) is all or nothing, with per-op results', async () => {
    const client = await nzk();
    try {
      const [ok, results] = await call<[{ type: number }[]]>((cb) =>
        client
          .transaction()
          .create('/tx')
          .create('/tx/a', Buffer.from('1'))
          .setData('/tx', Buffer.from('p'), 0)
          .check('/tx/a', 0)
          .commit(cb),
      );
      assert.equal(ok, 0);
      assert.equal(results.length, 4);
      const [failed, failedResults] = await call<[{ err?: number }[]]>((cb) =>
        client.transaction().create('/tx/b').remove('/tx/missing').create('/tx/c').commit(cb),
      );
      assert.equal(failed, Err.NO_NODE);
      assert.deepEqual(
        failedResults.map((result) => result.err),
        [Err.OK, Err.NO_NODE, Err.RUNTIME_INCONSISTENCY],
      );
      assert.equal((await call((cb) => client.exists('/tx/b', cb)))[1], null, 'nothing of a failed multi is applied');
    } finally {
      client.close();
    }
  });

  test('watches fire once, before the change is visible, across clients on different servers', async () => {
    const watcher = await nzk(cluster.endpoint(1));
    const writer = await nzk(cluster.endpoint(2));
    try {
      await call((cb) => writer.create('/w', Buffer.from('0'), cb));
      await visible(watcher, '/w');
      const events: string[] = [];
      await call((cb) => watcher.getData('/w', (event: { getName(): string }) => events.push(event.getName()), cb));
      await call((cb) => watcher.getChildren('/w', (event: { getName(): string }) => events.push(event.getName()), cb));
      await call((cb) => writer.setData('/w', Buffer.from('1'), -1, cb));
      await call((cb) => writer.setData('/w', Buffer.from('2'), -1, cb));
      await call((cb) => writer.create('/w/c', Buffer.from(''), cb));
      await waitFor(() => events.length >= 2, { description: 'two notifications', timeoutMs: 5000 });
      // The data watch fired once (not twice for two setData), the child watch once.
      assert.deepEqual(events.sort(), ['NODE_CHILDREN_CHANGED', 'NODE_DATA_CHANGED']);
      const existsEvents: string[] = [];
      await call((cb) =>
        watcher.exists('/w-new', (event: { getName(): string }) => existsEvents.push(event.getName()), cb),
      );
      await call((cb) => writer.create('/w-new', Buffer.from(''), cb));
      await waitFor(() => existsEvents.length === 1, { description: 'NodeCreated', timeoutMs: 5000 });
      assert.deepEqual(existsEvents, ['NODE_CREATED']);
    } finally {
      watcher.close();
      writer.close();
    }
  });

  test('ephemeral nodes go when the session closes, and when it expires; the watches fire', async () => {
    const owner = await nzk(cluster.endpoint(1), 1000);
    const observer = await nzk(cluster.endpoint(3));
    await call((cb) => owner.create('/eph-closed', Buffer.from(''), zookeeper.CreateMode.EPHEMERAL, cb));
    await visible(observer, '/eph-closed');
    const deleted: string[] = [];
    await call((cb) =>
      observer.exists('/eph-closed', (event: { getName(): string }) => deleted.push(event.getName()), cb),
    );
    owner.close();
    await waitFor(() => deleted.length === 1, { description: 'NodeDeleted on close', timeoutMs: 5000 });
    assert.deepEqual(deleted, ['NODE_DELETED']);
    // Expiry: our client abandons its session without closing it (a crashed application).
    const crashed = await zk({ servers: cluster.endpoint(2), timeoutMs: 1000 });
    await crashed.create('/eph-expired', 'x', CreateMode.EPHEMERAL);
    await visible(observer, '/eph-expired');
    const gone: string[] = [];
    await call((cb) =>
      observer.exists('/eph-expired', (event: { getName(): string }) => gone.push(event.getName()), cb),
    );
    crashed.abandon();
    await waitFor(() => gone.length === 1, { description: 'NodeDeleted on expiry', timeoutMs: 10_000 });
    assert.equal((await call((cb) => observer.exists('/eph-expired', cb)))[1], null);
    observer.close();
  });

  test('an expired session is told so when it reconnects', async () => {
    const client = await zk({ servers: cluster.endpoint(1), timeoutMs: 1000 });
    const { id, password } = client.session;
    await client.create('/expiring', '', CreateMode.EPHEMERAL);
    client.abandon();
    const observer = await zk();
    await waitFor(async () => (await observer.exists('/expiring')) === null, {
      description: 'the leader expires the session (its ephemeral node goes)',
      timeoutMs: 10_000,
      intervalMs: 200,
    });
    await observer.close();
    const socket = connect(Number(cluster.endpoint(2).split(':')[1]), '127.0.0.1');
    const { encodeConnectRequest, decodeConnectResponse } = await import('../src/jute.js');
    socket.write(
      encodeConnectRequest({
        protocolVersion: 0,
        lastZxidSeen: 0,
        timeoutMs: 1000,
        sessionId: id,
        password,
        readOnly: false,
      }),
    );
    const frame = await new Promise<Buffer>((resolve) => socket.once('data', resolve));
    socket.destroy();
    const response = decodeConnectResponse(frame.subarray(4));
    assert.ok(response.ok);
    assert.equal(response.value.timeoutMs, 0, 'timeOut 0 means expired');
  });

  test('a session survives a move to another server, with its watches and ephemerals', async () => {
    const client = await ZkClient.connect({
      connectString: `${cluster.endpoint(1)},${cluster.endpoint(2)}`,
      sessionTimeoutMs: 4000,
    });
    const sessionBefore = client.session.id;
    await client.create('/moving', 'x', CreateMode.EPHEMERAL);
    const events: number[] = [];
    await client.getData('/moving', (event) => events.push(event.type));
    client.dropConnection();
    await waitFor(() => client.server === cluster.endpoint(2) && client.session.id === sessionBefore, {
      description: 'reconnected to server 2',
      timeoutMs: 10_000,
    });
    await client.untilConnected();
    assert.equal(client.session.id, sessionBefore);
    const other = await zk({ servers: cluster.endpoint(3) });
    await other.setData('/moving', 'y');
    await waitFor(() => events.length === 1, { description: 'the re-registered watch fired', timeoutMs: 5000 });
    assert.deepEqual(events, [EventType.NODE_DATA_CHANGED]);
    assert.deepEqual(await client.getEphemerals('/'), ['/moving']);
    await client.close();
    await other.sync('/');
    assert.equal(await other.exists('/moving'), null);
    await other.close();
  });
});

describe('operations beyond node-zookeeper-client (our jute client)', { timeout: 120_000 }, () => {
  test('sync, container, TTL, addWatch (recursive), removeWatches, getEphemerals, getAllChildrenNumber', async () => {
    const client = await zk({ servers: cluster.endpoint(3) });
    try {
      await client.sync('/');
      await client.create('/cont', '', CreateMode.CONTAINER);
      await client.create('/cont/child');
      const stat = await client.exists('/cont');
      assert.equal(stat?.kind, 'container');
      await client.delete('/cont/child');
      await waitFor(async () => (await client.exists('/cont')) === null, {
        description: 'emptied container reaped',
        timeoutMs: 10_000,
        intervalMs: 200,
      });
      await client.create('/ttl', 't', CreateMode.PERSISTENT_WITH_TTL, 500);
      assert.equal((await client.exists('/ttl'))?.ttlMs, 500);
      await waitFor(async () => (await client.exists('/ttl')) === null, {
        description: 'TTL node reaped',
        timeoutMs: 10_000,
        intervalMs: 200,
      });
      await assert.rejects(
        client.create('/bad-ttl', '', CreateMode.PERSISTENT, 100),
        (error: unknown) => error instanceof ZkError && error.err === Err.BAD_ARGUMENTS,
      );
      await assert.rejects(
        client.create('/bad//path'),
        (error: unknown) => error instanceof ZkError && error.err === Err.BAD_ARGUMENTS,
      );
      await client.create('/tree');
      const seen: string[] = [];
      await client.addPersistentWatch('/tree', true, (event) => seen.push(`${event.type}:${event.path}`));
      await client.create('/tree/a');
      await client.create('/tree/a/b');
      await client.setData('/tree/a/b', 'x');
      await waitFor(() => seen.length === 3, { description: 'recursive watch events', timeoutMs: 5000 });
      assert.deepEqual(seen, [
        `${EventType.NODE_CREATED}:/tree/a`,
        `${EventType.NODE_CREATED}:/tree/a/b`,
        `${EventType.NODE_DATA_CHANGED}:/tree/a/b`,
      ]);
      await client.removeWatches('/tree', 3);
      await assert.rejects(
        client.removeWatches('/tree', 3),
        (error: unknown) => error instanceof ZkError && error.err === Err.NO_WATCHER,
      );
      assert.equal(await client.getAllChildrenNumber('/tree'), 2);
      await client.create('/tree/e', '', CreateMode.EPHEMERAL);
      assert.deepEqual(await client.getEphemerals('/tree'), ['/tree/e']);
    } finally {
      await client.close();
    }
  });

  test('four-letter words: ruok, srvr, mntr, conf', async () => {
    const ask = (word: string) =>
      new Promise<string>((resolve) => {
        const socket = connect(Number(cluster.endpoint(1).split(':')[1]), '127.0.0.1');
        let text = '';
        socket.on('data', (chunk) => {
          text += chunk.toString();
        });
        socket.on('close', () => resolve(text));
        socket.write(word);
      });
    assert.equal(await ask('ruok'), 'imok');
    assert.match(
      await ask('srvr'),
      /Zookeeper version: .*\nLatency min\/avg\/max: .*\n[\s\S]*Mode: (leader|follower)\nNode count: \d+/,
    );
    assert.match(await ask('mntr'), /zk_server_state\t(leader|follower)\n/);
    assert.match(await ask('conf'), /clientPort=\d+/);
  });

  test('bad input closes only that connection, and the server keeps serving', async () => {
    const port = Number(cluster.endpoint(2).split(':')[1]);
    const send = (bytes: Uint8Array) =>
      new Promise<void>((resolve) => {
        const socket = connect(port, '127.0.0.1');
        socket.on('close', () => resolve());
        socket.on('error', () => undefined);
        socket.write(bytes);
        socket.on('connect', () => setTimeout(() => socket.end(), 200));
      });
    const absurd = new Uint8Array([0x7f, 0xff, 0xff, 0xff, 1, 2, 3]);
    await send(absurd); // an absurd length
    await send(new Uint8Array([0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 4])); // a request before the handshake
    await send(new Uint8Array([0, 0, 0, 44, 1, 2])); // a truncated frame
    const random = new Uint8Array(300);
    for (let i = 0; i < random.length; i++) random[i] = (i * 7919) % 251;
    await send(random);
    const client = await zk({ servers: cluster.endpoint(2) });
    await client.create('/after-bad-input');
    assert.equal((await client.getData('/after-bad-input')).stat.version, 0);
    await client.close();
  });
});

describe('recipes on the real ensemble', { timeout: 120_000 }, () => {
  test('the lock is never held by two clients, and a release wakes exactly one waiter', async () => {
    const clients = await Promise.all([1, 2, 3, 1, 2].map((id) => zk({ servers: cluster.endpoint(id) })));
    try {
      // Contention: everyone at once; never two holders.
      const locks = clients.map((client) => new Lock(client, '/locks/a'));
      let holders = 0;
      let maxHolders = 0;
      await Promise.all(
        locks.map(async (lock) => {
          await lock.acquire();
          holders++;
          maxHolders = Math.max(maxHolders, holders);
          await new Promise((resolve) => setImmediate(resolve));
          holders--;
          await lock.release();
        }),
      );
      assert.equal(maxHolders, 1);
      for (const lock of locks)
        assert.ok(lock.wakeups <= lock.watchesSet, `wakeups ${lock.wakeups} > watches ${lock.watchesSet}`);
      assert.ok(locks.reduce((sum, lock) => sum + lock.wakeups, 0) <= 4, 'at most one wakeup per release');
      // No herd: a queue of waiters, each watching its predecessor; one release wakes exactly one.
      const queue = clients.map((client) => new Lock(client, '/locks/queue'));
      await queue[0]!.acquire();
      const acquired = queue.map(() => false);
      // Waiters queue up one after another, so the queue order is the array order.
      const pending: Promise<void>[] = [];
      for (let i = 1; i < queue.length; i++) {
        pending.push(
          queue[i]!.acquire().then(() => {
            acquired[i] = true;
          }),
        );
        await waitFor(() => queue[i]!.watchesSet === 1, { description: `waiter ${i} watches`, timeoutMs: 10_000 });
      }
      for (let holder = 0; holder < queue.length - 1; holder++) {
        await queue[holder]!.release();
        await waitFor(() => acquired[holder + 1], { description: `waiter ${holder + 1} acquires`, timeoutMs: 10_000 });
        // A notification leaves before any later reply on its connection: after a sync round trip on
        // every waiting client, any herd notification would already have arrived.
        await Promise.all(clients.map((client) => client.sync('/')));
        const woken = queue.filter((lock) => lock.wakeups > 0).length;
        assert.equal(woken, holder + 1, `after release ${holder + 1}, exactly ${holder + 1} waiters were ever woken`);
        assert.equal(queue[holder + 1]!.wakeups, 1);
      }
      await Promise.all(pending);
      await queue[queue.length - 1]!.release();
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  });

  test("the lock survives a holder's crash: its ephemeral node goes and the next waiter gets it", async () => {
    const holder = await zk({ servers: cluster.endpoint(1), timeoutMs: 1000 });
    const waiter = await zk({ servers: cluster.endpoint(3) });
    const first = new Lock(holder, '/locks/b');
    await first.acquire();
    const second = new Lock(waiter, '/locks/b');
    let acquired = false;
    const acquiring = second.acquire().then(() => {
      acquired = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(acquired, false);
    holder.abandon();
    await acquiring;
    assert.equal(second.wakeups, 1);
    await second.release();
    await waiter.close();
  });

  test('leader election, double barrier and the ready-znode configuration pattern', async () => {
    const [a, b, c] = await Promise.all([1, 2, 3].map((id) => zk({ servers: cluster.endpoint(id) })));
    const ea = new LeaderElection(a!, '/election', 'a');
    const eb = new LeaderElection(b!, '/election', 'b');
    await ea.lead();
    let bLeads = false;
    const bLeading = eb.lead().then(() => {
      bLeads = true;
    });
    assert.equal(await eb.leader(), 'a');
    assert.equal(bLeads, false);
    await ea.resign();
    await bLeading;
    assert.equal(await ea.leader(), 'b');
    const barriers = [a!, b!, c!].map((client, i) => new DoubleBarrier(client, '/barrier', `p${i}`, 3));
    await Promise.all(barriers.map((barrier) => barrier.enter()));
    await Promise.all(barriers.map((barrier) => barrier.leave()));
    const writer = new ReadyConfig(a!, '/config');
    await writer.publish({ f1: 'one', f2: 'two' });
    const reader = new ReadyConfig(c!, '/config');
    // The reader's server may be behind the writer's: sync() first (the documented cure for stale reads).
    await c!.sync('/config');
    const first = await reader.read(['f1', 'f2']);
    assert.deepEqual(first.entries, { f1: 'one', f2: 'two' });
    const publishing = writer.publish({ f1: 'uno', f2: 'dos' });
    await first.changed; // the watch on `ready` announces the rewrite
    await publishing;
    await c!.sync('/config');
    const second = await reader.read(['f1', 'f2']);
    assert.deepEqual(second.entries, { f1: 'uno', f2: 'dos' });
    await Promise.all([a!, b!, c!].map((client) => client.close()));
  });
});
