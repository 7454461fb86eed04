/**
 * Cluster against real processes: three fixture nodes that message each other only through the link
 * proxies. One cluster is shared by the tests in order (each leaves every link healed and every node
 * running), because starting node processes is the slow part; the last test stops it and checks
 * that no process is left.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import {
  type Cluster,
  HarnessError,
  isProcessAlive,
  liveChildren,
  type NodeExitEvent,
  startCluster,
  waitFor,
} from '../src/index.js';
import { relayCommand, request } from './helpers.js';

const SEND_TIMEOUT_MS = 300;

describe('Cluster of 3 real processes', () => {
  let cluster: Cluster;
  const exits: NodeExitEvent[] = [];

  before(async () => {
    cluster = await startCluster({ nodes: 3, command: relayCommand(['--send-timeout-ms', String(SEND_TIMEOUT_MS)]) });
    cluster.onExit((event) => exits.push(event));
  });
  after(async () => {
    await cluster.stopAll();
  });

  const send = (from: number, to: number, text: string): Promise<string> =>
    request(cluster.endpoint(from), `send ${to} ${text}`);
  const received = async (id: number): Promise<string[]> =>
    JSON.parse(await request(cluster.endpoint(id), 'received')) as string[];

  test('every node reaches every other through its link proxy', async () => {
    for (const from of cluster.ids) {
      for (const to of cluster.ids) {
        if (from !== to) assert.equal(await send(from, to, `hello-${from}-${to}`), 'ok', `${from} -> ${to}`);
      }
    }
    assert.deepEqual((await received(2)).sort(), ['1:hello-1-2', '3:hello-3-2']);
    const spec = cluster.spec(1);
    assert.deepEqual(spec.peers.get(2), cluster.proxy(1, 2).address, 'node 1 dials node 2 at the 1->2 proxy');
    assert.deepEqual(spec.peers.get(1), spec.peerAddress, 'a node is listed at its own peer address');
    assert.equal(cluster.proxy(1, 2).stats().connectionsAccepted, 1);
    assert.ok(cluster.proxy(1, 2).stats().bytesToTarget > 0);
    assert.deepEqual(
      cluster.endpoints(),
      cluster.ids.map((id) => `127.0.0.1:${cluster.spec(id).clientAddress.port}`),
    );
  });

  test('kill -9 really ends the process; restart serves again on the same port and data dir', async () => {
    const pid = cluster.pid(2);
    assert.ok(pid !== null && isProcessAlive(pid));
    const endpoint = cluster.endpoint(2);
    const exit = await cluster.kill(2);
    assert.deepEqual(exit, { code: null, signal: 'SIGKILL' });
    assert.equal(isProcessAlive(pid), false, `pid ${pid} still exists`);
    assert.equal(cluster.isRunning(2), false);
    assert.equal(cluster.pid(2), null);
    await assert.rejects(request(endpoint, 'ping'), { code: 'ECONNREFUSED' });
    assert.match(await send(1, 2, 'while-down'), /^error /);
    assert.deepEqual(
      exits.map((event) => [event.id, event.pid, event.expected]),
      [[2, pid, true]],
    );

    assert.equal(await cluster.start(2), endpoint);
    const newPid = cluster.pid(2);
    assert.ok(newPid !== null && newPid !== pid);
    assert.equal(await request(endpoint, 'pid'), String(newPid));
    assert.equal(await request(endpoint, 'starts'), '2', 'the start counter survived in the data dir');
    assert.equal(cluster.spec(2).restarts, 1);
    assert.equal(await send(1, 2, 'after-restart'), 'ok');
    assert.deepEqual(await received(2), ['1:after-restart']);
    assert.ok(cluster.logTail(2).some((line) => line.includes('killed by SIGKILL')));
  });

  test('cut(i, j) fails only the i -> j link; heal restores it', async () => {
    cluster.cut(1, 3);
    assert.equal(cluster.proxy(1, 3).mode, 'reset');
    assert.match(await send(1, 3, 'cut'), /^error (ECONNRESET|EPIPE|closed)$/);
    assert.equal(await send(3, 1, 'reverse'), 'ok', 'the reverse link is a different proxy');
    assert.equal(await send(1, 2, 'other'), 'ok');
    cluster.heal();
    assert.equal(await send(1, 3, 'healed'), 'ok');
    const fromNode1 = (await received(3)).filter((message) => message.startsWith('1:'));
    assert.deepEqual(fromNode1, ['1:hello-1-3', '1:healed']);
  });

  test('blackhole: the sender meets silence (its own timeout), nothing is delivered', async () => {
    cluster.cut(2, 3, 'blackhole');
    const before = await received(3);
    assert.equal(await send(2, 3, 'into-the-void'), 'error timeout');
    assert.ok(cluster.proxy(2, 3).stats().bytesDropped > 0);
    assert.deepEqual(await received(3), before);
    cluster.heal(2, 3);
    assert.equal(await send(2, 3, 'back'), 'ok');
  });

  test('partition([[1], [2, 3]]) cuts across groups both ways and heals within them', async () => {
    cluster.cut(2, 3); // partition() sets every link, so this one is healed by it
    cluster.partition([[1], [2, 3]]);
    for (const [from, to] of [
      [1, 2],
      [1, 3],
      [2, 1],
      [3, 1],
    ] as const) {
      assert.match(await send(from, to, 'across'), /^error /, `${from} -> ${to} must be cut`);
    }
    assert.equal(await send(2, 3, 'within'), 'ok');
    assert.equal(await send(3, 2, 'within'), 'ok');
    assert.match(cluster.describe(), /link 1->2: reset/);
    assert.throws(() => cluster.partition([[1], [2]]), /missing 3/);
    assert.throws(
      () =>
        cluster.partition([
          [1, 2],
          [2, 3],
        ]),
      /more than one/,
    );
    cluster.heal();
    assert.equal(await send(1, 2, 'healed'), 'ok');
  });

  test('isolate(3) cuts every link to and from node 3 only', async () => {
    cluster.isolate(3, 'blackhole');
    assert.equal(await send(1, 3, 'x'), 'error timeout');
    assert.equal(await send(3, 2, 'x'), 'error timeout');
    assert.equal(await send(1, 2, 'fine'), 'ok');
    cluster.heal();
    assert.equal(await send(1, 3, 'fine'), 'ok');
  });

  test('freeze stops a process answering with its sockets open; thaw resumes it', async () => {
    cluster.freeze(1);
    await assert.rejects(request(cluster.endpoint(1), 'ping', 300), { code: 'ETIMEDOUT' });
    cluster.thaw(1);
    assert.equal(await request(cluster.endpoint(1), 'ping'), 'pong');
  });

  test('restart(id) stops gracefully and keeps the data dir', async () => {
    assert.equal(await request(cluster.endpoint(3), 'write durable-value'), 'ok');
    const pid = cluster.pid(3)!;
    await cluster.restart(3);
    assert.equal(isProcessAlive(pid), false);
    assert.equal(await request(cluster.endpoint(3), 'read'), 'value "durable-value"');
    const last = exits.at(-1)!;
    assert.deepEqual([last.id, last.exit.code, last.expected], [3, 0, true], 'SIGTERM ended it with code 0');
  });

  test('misuse throws typed errors', async () => {
    await assert.rejects(cluster.kill(9), (error) => error instanceof HarnessError && error.code === 'UNKNOWN_NODE');
    await assert.rejects(cluster.start(1), (error) => error instanceof HarnessError && error.code === 'NODE_BUSY');
    assert.throws(() => cluster.cut(1, 1), RangeError);
    assert.throws(() => cluster.heal(1), RangeError);
  });

  test('stopAll stops every process by PID, closes proxies, removes the temp dir; idempotent', async () => {
    const pids = cluster.ids.map((id) => cluster.pid(id)!);
    const proxyAddress = cluster.proxy(1, 2).address;
    assert.ok(pids.every(isProcessAlive));
    await Promise.all([cluster.stopAll(), cluster.stopAll()]);
    assert.deepEqual(
      pids.filter((pid) => isProcessAlive(pid)),
      [],
    );
    assert.deepEqual(liveChildren(), []);
    assert.equal(existsSync(cluster.dataDir), false);
    await assert.rejects(request(`127.0.0.1:${proxyAddress.port}`, 'ping'), { code: 'ECONNREFUSED' });
    await assert.rejects(
      cluster.start(1),
      (error) => error instanceof HarnessError && error.code === 'CLUSTER_STOPPED',
    );
    await waitFor(() => exits.filter((event) => event.expected).length >= 5 || null, { description: 'exit events' });
    assert.equal(
      exits.some((event) => !event.expected),
      false,
    );
  });
});
