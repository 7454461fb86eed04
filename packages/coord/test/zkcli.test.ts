/**
 * Smoke test with Apache ZooKeeper's own command-line client (Debian's zookeeper package): zkCli
 * against a 3-server `dsys coord` ensemble creates, lists, reads, sets, watches and deletes. Skipped
 * with a message when zkCli is not installed (`apt-get install -y zookeeper`; CI installs it).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { type Cluster, nodeCommand, startCluster, waitFor } from '@dsys/harness';
import { coordNodeEntry, ZkClient } from '../src/real/index.js';

const ZKCLI = '/usr/share/zookeeper/bin/zkCli.sh';
const available = existsSync(ZKCLI) && spawnSync('java', ['-version']).status === 0;
let cluster: Cluster | null = null;

before(async () => {
  if (!available) return;
  cluster = await startCluster({
    nodes: 3,
    // No fault proxies: they would live in this process, whose event loop waits for zkCli below.
    proxies: false,
    readyTimeoutMs: 30_000,
    command: (node) =>
      nodeCommand(coordNodeEntry, [
        '--id',
        String(node.id),
        '--peers',
        [...node.peers].map(([id, e]) => `${id}=${e.host}:${e.port}`).join(','),
        '--listen-peer',
        `${node.peerAddress.host}:${node.peerAddress.port}`,
        '--listen-client',
        `${node.clientAddress.host}:${node.clientAddress.port}`,
        '--data-dir',
        node.dataDir,
        '--log-level',
        'warn',
      ]),
  });
  const connectString = cluster.endpoints().join(',');
  await waitFor(
    async () => {
      try {
        const client = await ZkClient.connect({ connectString, sessionTimeoutMs: 4000 });
        await client.sync('/');
        await client.close();
        return true;
      } catch {
        return false;
      }
    },
    { description: 'the ensemble serves', timeoutMs: 30_000, intervalMs: 200 },
  );
});

after(async () => {
  await cluster?.stopAll();
});

test('zkCli: create, ls, get -s, set, get -w, delete, against dsys coord', {
  skip: available ? false : `zkCli not installed (${ZKCLI}); apt-get install -y zookeeper`,
}, async () => {
  const script = [
    'create /zkcli hello',
    'create -e /zkcli/e eph',
    'create -s /zkcli/s- seq',
    'ls /zkcli',
    'get -s /zkcli',
    'set /zkcli world',
    'get -w /zkcli',
    'set /zkcli again',
    'deleteall /zkcli',
    'ls /',
    'quit',
  ].join('\n');
  // zkCli reads its commands from a here-document, as a person would pipe them in.
  const shell = `${ZKCLI} -server ${cluster!.endpoints().join(',')} <<'ZKCLI_EOF'\n${script}\nZKCLI_EOF\n`;
  const run = await new Promise<{ stdout: string; stderr: string }>((resolve) => {
    const child = spawn('bash', ['-c', shell], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, 'SIGKILL'), 60_000);
    child.on('close', () => {
      clearTimeout(timer);
      resolve({ stdout, stderr });
    });
  });
  const out = `${run.stdout}\n${run.stderr}`; // zkCli prints "Created" on stderr
  if (!/Created \/zkcli\/e/.test(out)) process.stderr.write(`zkCli output:\n${out}\n${run.stderr}\n`);
  assert.match(out, /Created \/zkcli\/e/);
  assert.match(out, /Created \/zkcli\/s-0000000001/);
  assert.match(out, /\[e, s-0000000001\]|\[s-0000000001, e\]/);
  assert.match(out, /dataVersion = 0/);
  assert.match(out, /world/);
  assert.match(out, /WatchedEvent state:SyncConnected type:NodeDataChanged path:\/zkcli/);
  assert.doesNotMatch(out, /KeeperErrorCode/);
});
