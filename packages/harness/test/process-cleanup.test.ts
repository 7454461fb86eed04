/**
 * What happens to the nodes when the process that owns the cluster ends: by an uncaught exception
 * (a failing test), by a signal, or as the foreground runner of `dsys <system> up`. Each case runs
 * the owner as a real child process (test/fixtures/owner.ts, a TypeScript file started with
 * `nodeCommand` from another working directory) and checks the node PIDs it printed.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { formatPeers, isProcessAlive, nodeCommand, parseEndpoint, tsxArgs, tsxLoader, waitFor } from '../src/index.js';
import { request } from './helpers.js';

const OWNER = fileURLToPath(new URL('./fixtures/owner.ts', import.meta.url));

interface Owner {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
}

function startOwner(scenario: string, nodes: number): Owner {
  const command = nodeCommand(OWNER, ['--scenario', scenario, '--nodes', String(nodes)]);
  // Another cwd on purpose: the tsx loader must be found from the harness, not from the cwd.
  const child = spawn(command.command, command.args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: tmpdir() });
  const owner: Owner = { child, stdout: '', stderr: '', exit: null };
  child.stdout?.on('data', (chunk: Buffer) => {
    owner.stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    owner.stderr += chunk.toString();
  });
  child.on('close', (code, signal) => {
    owner.exit = { code, signal };
  });
  return owner;
}

async function nodePids(owner: Owner, nodes: number): Promise<number[]> {
  const line = await waitFor(() => /^pids: (.*)$/m.exec(owner.stdout)?.[1] ?? (owner.exit ? 'exited' : null), {
    description: 'the owner to print its node pids',
    timeoutMs: 20_000,
  });
  assert.notEqual(line, 'exited', `owner exited early: ${owner.stderr}`);
  const pids = line.split(',').map(Number);
  assert.equal(pids.length, nodes);
  assert.ok(pids.every(isProcessAlive));
  return pids;
}

/** An owner that dies without `stopAll` leaves its temp dir (logs included) behind on purpose; tidy it. */
async function removeDataDir(owner: Owner): Promise<void> {
  const dataDir = /^data: (.*dsys-cluster-.*)$/m.exec(owner.stdout)?.[1];
  assert.ok(dataDir !== undefined, `no data dir line in: ${owner.stdout}`);
  assert.ok(existsSync(dataDir), 'an owner that died abruptly leaves its data dir for inspection');
  await rm(dataDir, { recursive: true, force: true });
}

async function assertAllGone(pids: readonly number[]): Promise<void> {
  // SIGKILLed children vanish once the kernel and init have reaped them: wait for that, boundedly.
  await waitFor(() => pids.every((pid) => !isProcessAlive(pid)), { description: `pids ${pids.join(',')} to be gone` });
}

async function exited(owner: Owner): Promise<NonNullable<Owner['exit']>> {
  return waitFor(() => owner.exit, { description: 'the owner to exit', timeoutMs: 20_000 });
}

describe('no leaked node processes', { concurrency: true }, () => {
  test('an uncaught exception in the owner kills its nodes (exit hook)', async () => {
    const owner = startOwner('throw', 1);
    const pids = await nodePids(owner, 1);
    const exit = await exited(owner);
    assert.notEqual(exit.code, 0);
    assert.match(owner.stderr, /owner failed on purpose/);
    await assertAllGone(pids);
    await removeDataDir(owner);
  });

  test('SIGTERM to the owner kills its nodes and the owner still dies of SIGTERM', async () => {
    const owner = startOwner('wait', 1);
    const pids = await nodePids(owner, 1);
    owner.child.kill('SIGTERM');
    const exit = await exited(owner);
    assert.deepEqual(exit, { code: null, signal: 'SIGTERM' });
    await assertAllGone(pids);
    await removeDataDir(owner);
  });

  test('foreground runner: prints the ready line, serves, and on SIGINT stops every node and exits 0', async () => {
    const owner = startOwner('foreground', 2);
    const pids = await nodePids(owner, 2);
    const endpoints = await waitFor(() => /^ready: (.*)$/m.exec(owner.stdout)?.[1], {
      description: 'the ready line',
    });
    const list = endpoints.split(',');
    assert.equal(list.length, 2);
    for (const endpoint of list) assert.equal(await request(endpoint, 'ping'), 'pong');
    owner.child.kill('SIGINT');
    const exit = await exited(owner);
    assert.deepEqual(exit, { code: 0, signal: null }, owner.stderr);
    await assertAllGone(pids);
  });

  test('foreground runner: a node that dies unexpectedly is reported with its log, the rest stopped, exit 1', async () => {
    const owner = startOwner('foreground', 2);
    const [first, second] = await nodePids(owner, 2);
    await waitFor(() => /^ready: /m.test(owner.stdout), { description: 'the ready line' });
    process.kill(second!, 'SIGKILL');
    const exit = await exited(owner);
    assert.deepEqual(exit, { code: 1, signal: null });
    assert.match(owner.stderr, new RegExp(`node 2 \\(pid ${second}\\) exited unexpectedly: killed by SIGKILL`));
    assert.match(owner.stderr, /--- last \d+ log lines ---\n[\s\S]*ready: 127\.0\.0\.1:\d+/);
    await assertAllGone([first!, second!]);
  });
});

describe('nodeCommand and address formats', () => {
  test('tsxArgs points --import at the tsx loader as an absolute file URL', () => {
    const [flag, loader] = tsxArgs();
    assert.equal(flag, '--import');
    assert.equal(loader, tsxLoader());
    assert.match(loader!, /^file:\/\//);
    assert.ok(existsSync(fileURLToPath(loader!)), `${loader} does not exist`);
  });

  test('nodeCommand runs node itself with an absolute path to the file, then the arguments', () => {
    const command = nodeCommand('some/file.ts', ['--id', '1']);
    assert.equal(command.command, process.execPath);
    const file = command.args[2]!;
    assert.ok(isAbsolute(file));
    assert.equal(file, resolve('some/file.ts'));
    assert.deepEqual(command.args.slice(0, 2), tsxArgs());
    assert.deepEqual(command.args.slice(3), ['--id', '1']);
  });

  test('endpoint and peer-list formats', () => {
    assert.deepEqual(parseEndpoint('127.0.0.1:7001'), { host: '127.0.0.1', port: 7001 });
    for (const bad of ['127.0.0.1', ':80', '127.0.0.1:0', '127.0.0.1:70000', 'host:port']) {
      assert.throws(() => parseEndpoint(bad), RangeError, bad);
    }
    const peers = new Map([
      [2, { host: '127.0.0.1', port: 7002 }],
      [1, { host: '127.0.0.1', port: 7001 }],
    ]);
    assert.equal(formatPeers(peers), '1=127.0.0.1:7001,2=127.0.0.1:7002');
  });
});
