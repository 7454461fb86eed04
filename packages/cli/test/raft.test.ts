// Goal: `dsys raft up` and `dsys kv` as a user runs them: the ready line lists the endpoints `dsys kv`
// takes, the exit codes are the (0 done, 1 not done, 64 usage), `dsys raft status` shows one
// leader, and SIGTERM stops every node process.
// Method: the real bin (bin/dsys.mjs) as child processes; the exit-code matrix in detail (including 2,
// outcome unknown) is tested in packages/raft/test/real/cli.test.ts.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@dsys/harness';

const BIN = fileURLToPath(new URL('../bin/dsys.mjs', import.meta.url));

function dsys(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
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
      reject(new Error(`dsys ${args.join(' ')} did not finish in 60 s\n${stdout}\n${stderr}`));
    }, 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('dsys raft up serves a 3-node cluster that dsys kv and dsys raft status use; SIGTERM stops it', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'dsys-cli-raft-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const up: ChildProcess = spawn(process.execPath, [BIN, 'raft', 'up', '--base-port', '0', '--data-dir', dataDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  up.stdout!.on('data', (chunk) => {
    stdout += chunk;
  });
  const exited = new Promise<number | null>((resolve) => up.on('close', (code) => resolve(code)));
  t.after(() => {
    if (up.exitCode === null) up.kill('SIGKILL');
  });
  await waitFor(() => /^ready: /m.test(stdout), { description: 'ready line', timeoutMs: 60_000 });
  const endpoints = /^ready: (.*)$/m.exec(stdout)![1]!;
  assert.equal(endpoints.split(',').length, 3);

  const put = await dsys(['kv', '--endpoints', endpoints, 'put', 'greeting', 'hello']);
  assert.deepEqual([put.code, put.stdout], [0, 'OK\n'], put.stderr);
  const get = await dsys(['kv', '--endpoints', endpoints, 'get', 'greeting', '--json']);
  assert.deepEqual([get.code, JSON.parse(get.stdout)], [0, { key: 'greeting', value: 'hello' }], get.stderr);
  const cas = await dsys(['kv', '--endpoints', endpoints, 'cas', 'greeting', '--expect', 'bye', 'x']);
  assert.equal(cas.code, 1, 'a compare-and-swap that did not match');
  const usage = await dsys(['kv', 'get', 'greeting']);
  assert.equal(usage.code, 64);
  assert.match(usage.stderr, /--endpoints is required/);

  const status = await dsys(['raft', 'status', '--endpoints', endpoints, '--json']);
  assert.equal(status.code, 0, status.stderr);
  const roles = (JSON.parse(status.stdout) as { role: string }[]).map((node) => node.role).sort();
  assert.deepEqual(roles, ['follower', 'follower', 'leader']);

  up.kill('SIGTERM');
  assert.equal(await exited, 0);
  const after = await dsys(['kv', '--endpoints', endpoints, '--timeout', '300', 'get', 'greeting']);
  assert.equal(after.code, 1, 'every node stopped: nothing answers');
});
