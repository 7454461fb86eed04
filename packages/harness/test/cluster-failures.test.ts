/**
 * How the cluster fails: nodes that never get ready or die before it (the error quotes their log),
 * a node that ignores SIGTERM (escalated to SIGKILL), a crash the harness did not cause (reported as
 * unexpected), and the fixed `--base-port` layout with its port-clash check.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { describe, test } from 'node:test';
import {
  allocatePorts,
  assertPortsFree,
  BASE_PORT_PEER_OFFSET,
  basePortLayout,
  HarnessError,
  isProcessAlive,
  liveChildren,
  type NodeExitEvent,
  startCluster,
  waitFor,
} from '../src/index.js';
import { relayCommand, request } from './helpers.js';

describe('Cluster failures', () => {
  test('a node that never prints ready fails startCluster with its log tail, and nothing is left running', async () => {
    const startedMs = performance.now();
    const failure = await startCluster({
      nodes: 2,
      readyTimeoutMs: 2500, // generous: node start-up alone can take a second on a loaded 2-core machine
      command: (node) => relayCommand(node.id === 2 ? ['--mode', 'never-ready'] : [])(node),
    }).then(
      () => null,
      (error: unknown) => error,
    );
    assert.ok(failure instanceof HarnessError, `expected a HarnessError, got ${String(failure)}`);
    assert.equal(failure.code, 'NODE_NOT_READY');
    assert.deepEqual(failure.detail, {
      code: 'NODE_NOT_READY',
      id: 2,
      reason: 'no line matching /^ready: (.*)$/ within 2500 ms',
    });
    assert.ok(failure.logTail.includes('stuck waiting for a quorum that never comes'), failure.message);
    assert.match(failure.message, /booting/);
    assert.ok(performance.now() - startedMs >= 2500);
    assert.deepEqual(liveChildren(), [], 'node 1 (ready) and node 2 (stuck) were both stopped');
  });

  test('a node that exits before ready fails fast with its exit code and stderr', async () => {
    const startedMs = performance.now();
    await assert.rejects(
      startCluster({ nodes: 1, readyTimeoutMs: 20_000, command: relayCommand(['--mode', 'exit-early']) }),
      (error: unknown) => {
        assert.ok(error instanceof HarnessError);
        assert.equal(error.code, 'NODE_NOT_READY');
        assert.match(error.message, /exited before ready \(exit code 3\)/);
        assert.match(error.message, /fatal: cannot start/);
        return true;
      },
    );
    assert.ok(performance.now() - startedMs < 20_000, 'did not wait for the ready timeout');
    assert.deepEqual(liveChildren(), []);
  });

  test('stop escalates to SIGKILL when SIGTERM is ignored; a crash the harness did not cause is unexpected', async () => {
    const cluster = await startCluster({
      nodes: 2,
      proxies: false,
      stopTimeoutMs: 300,
      command: relayCommand(['--mode', 'ignore-sigterm']),
    });
    try {
      const exits: NodeExitEvent[] = [];
      cluster.onExit((event) => exits.push(event));
      const exit = await cluster.stop(1);
      assert.deepEqual(exit, { code: null, signal: 'SIGKILL' });
      assert.ok(cluster.logTail(1).includes('ignoring SIGTERM'));
      // The log file is written through a stream: wait for the line rather than race the write.
      await waitFor(
        () => /ignored SIGTERM for 300 ms; sending SIGKILL/.test(readFileSync(cluster.logPath(1), 'utf8')),
        {
          description: 'the escalation to be logged',
        },
      );

      const pid = cluster.pid(2)!;
      process.kill(pid, 'SIGKILL'); // from outside the harness: a crash
      await waitFor(() => exits.length === 2, { description: 'the crash to be reported' });
      assert.deepEqual(
        exits.map((event) => [event.id, event.expected]),
        [
          [1, true],
          [2, false],
        ],
      );
      assert.equal(isProcessAlive(pid), false);
      assert.equal(cluster.isRunning(2), false);
      await assert.rejects(
        cluster.kill(2),
        (error) => error instanceof HarnessError && error.code === 'NODE_NOT_RUNNING',
      );
      assert.throws(
        () => cluster.cut(1, 2),
        (error) => error instanceof HarnessError && error.code === 'NO_PROXIES',
      );
    } finally {
      await cluster.stopAll();
    }
  });

  test('basePort: fixed, predictable client and peer ports; a clash is reported before anything starts', async () => {
    const basePort = await freeBasePort(2);
    const cluster = await startCluster({ nodes: 2, basePort, proxies: false, command: relayCommand() });
    try {
      assert.deepEqual(cluster.endpoints(), [`127.0.0.1:${basePort}`, `127.0.0.1:${basePort + 1}`]);
      assert.equal(cluster.spec(2).peerAddress.port, basePort + BASE_PORT_PEER_OFFSET + 1);
      assert.deepEqual(cluster.spec(1).peers.get(2), cluster.spec(2).peerAddress, 'no proxy: dial the peer directly');
      assert.equal(await request(cluster.endpoint(1), 'send 2 direct'), 'ok');
      await assert.rejects(
        startCluster({ nodes: 2, basePort, command: relayCommand() }),
        new RegExp(`port 127.0.0.1:${basePort} is not available \\(EADDRINUSE\\)`),
      );
    } finally {
      await cluster.stopAll();
    }
  });

  test("a port taken between allocation and the node's bind makes startCluster retry on fresh ports", async () => {
    // The race, made certain: the first time node 1 is launched, its client port is taken just before.
    let squatter: Server | null = null;
    let squatterListening: Promise<unknown> = Promise.resolve();
    const squattedPorts: number[] = [];
    const cluster = await startCluster({
      nodes: 2,
      proxies: false,
      command: (node) => {
        if (node.id === 1 && squatter === null) {
          squatter = createServer();
          squatterListening = once(squatter, 'listening');
          squatter.listen(node.clientAddress.port, node.clientAddress.host);
          squattedPorts.push(node.clientAddress.port);
        }
        return relayCommand()(node);
      },
    });
    try {
      await squatterListening;
      assert.equal(squattedPorts.length, 1);
      assert.notEqual(cluster.spec(1).clientAddress.port, squattedPorts[0], 'the second attempt has fresh ports');
      assert.equal(await request(cluster.endpoint(1), 'ping'), 'pong');
      assert.equal(await request(cluster.endpoint(1), 'starts'), '1', 'a fresh data dir, not the failed one');
    } finally {
      await cluster.stopAll();
      squatter!.close();
    }
    assert.deepEqual(liveChildren(), []);
  });

  test("allocatePorts: distinct ports below the kernel's ephemeral range, where outgoing connections take theirs", async () => {
    const ports = await allocatePorts(40);
    assert.equal(new Set(ports).size, 40);
    const range = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (range[0]! > 21_000) {
      for (const port of ports) assert.ok(port >= 20_000 && port < range[0]!, `port ${port}`);
    }
  });

  test('basePortLayout rejects sizes and bases that do not fit', () => {
    assert.deepEqual(basePortLayout(7000, 2), [
      { clientPort: 7000, peerPort: 7100 },
      { clientPort: 7001, peerPort: 7101 },
    ]);
    assert.throws(() => basePortLayout(7000, 0), RangeError);
    assert.throws(() => basePortLayout(7000, BASE_PORT_PEER_OFFSET + 1), RangeError);
    assert.throws(() => basePortLayout(65_500, 3), RangeError);
    assert.throws(() => basePortLayout(80, 3), RangeError);
  });
});

/** A base port below the ephemeral range whose whole layout is free right now. */
async function freeBasePort(nodes: number): Promise<number> {
  for (let base = 21_000; base < 30_000; base += 250) {
    const ports = basePortLayout(base, nodes).flatMap((node) => [node.clientPort, node.peerPort]);
    try {
      await assertPortsFree(ports);
      return base;
    } catch (error) {
      if (!(error instanceof Error && /not available/.test(error.message))) throw error;
    }
  }
  throw new Error('no free base port layout found');
}
