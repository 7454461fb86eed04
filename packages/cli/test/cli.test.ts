// Goal: the `dsys` command behaves as the README promises: --help at every level, clear usage errors
// with non-zero exit codes, `dsys sim` ending with a trace hash, and `dsys abd up` serving real
// processes that a client can use and that all stop (by PID) on SIGTERM.
// Method: run the real bin (bin/dsys.mjs) as a child process, as a user would.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isProcessAlive, waitFor } from '@dsys/harness';

const BIN = fileURLToPath(new URL('../bin/dsys.mjs', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function dsys(args: string[], timeoutMs = 60_000): Promise<Run> {
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
      reject(new Error(`dsys ${args.join(' ')} did not finish in ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('help at every level, exit 0', async () => {
  for (const args of [['--help'], ['sim', '--help'], ['abd', '--help'], ['abd', 'up', '--help'], ['up', '--help']]) {
    const run = await dsys(args);
    assert.equal(run.code, 0, `dsys ${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stdout, /Usage|usage/);
  }
  const root = await dsys(['--help']);
  for (const name of ['up', 'sim', 'rpc', 'abd']) assert.match(root.stdout, new RegExp(`^  ${name} `, 'm'));
});

test('usage errors name the problem and exit non-zero', async () => {
  const unknown = await dsys(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command 'frobnicate'/);
  const badFlag = await dsys(['abd', 'up', '--nodes', 'many']);
  assert.equal(badFlag.code, 2);
  assert.match(badFlag.stderr, /--nodes must be an integer/);
  const unknownFlag = await dsys(['abd', 'up', '--bogus']);
  assert.equal(unknownFlag.code, 2);
  const clientUsage = await dsys(['abd', 'read']);
  assert.equal(clientUsage.code, 64, 'client commands use 64 for usage errors: 2 means "outcome unknown"');
  assert.match(clientUsage.stderr, /--endpoints is required/);
});

test('dsys sim lists systems and runs a seed to a trace hash, reproducibly', async () => {
  const list = await dsys(['sim', '--list']);
  assert.equal(list.code, 0);
  assert.ok(list.stdout.split('\n').includes('abd'));
  const first = await dsys(['sim', 'abd', '--seed', '7']);
  const second = await dsys(['sim', 'abd', '--seed', '7']);
  assert.equal(first.code, 0, first.stderr);
  const lastLine = (text: string) => text.trimEnd().split('\n').at(-1)!;
  assert.match(lastLine(first.stdout), /^trace-hash: [0-9a-f]{16}$/);
  assert.equal(lastLine(first.stdout), lastLine(second.stdout));
  const bad = await dsys(['sim', 'nosuchsystem', '--seed', '1']);
  assert.notEqual(bad.code, 0);
});

test('dsys abd up serves real replicas, and SIGTERM stops every process', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'dsys-cli-up-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const child: ChildProcess = spawn(process.execPath, [BIN, 'abd', 'up', '--base-port', '0', '--data-dir', dataDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout!.on('data', (chunk) => {
    stdout += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  await waitFor(() => /^ready: /m.test(stdout), { description: 'ready line', timeoutMs: 60_000 });
  const endpoints = /^ready: (.*)$/m.exec(stdout)![1]!;
  assert.equal(endpoints.split(',').length, 3);
  const write = await dsys(['abd', 'write', 'hello', '--endpoints', endpoints]);
  assert.equal(write.code, 0, write.stderr);
  const read = await dsys(['abd', 'read', '--endpoints', endpoints]);
  assert.equal(read.code, 0, read.stderr);
  assert.equal(read.stdout.trim(), '"hello"');
  const pids = await replicaPids(dataDir);
  assert.equal(pids.length, 3);
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
  for (const pid of pids) assert.equal(isProcessAlive(pid), false, `replica ${pid} still running`);
});

/** PIDs of the replicas of this data dir (each node process names its data dir on its command line). */
async function replicaPids(dataDir: string): Promise<number[]> {
  const run = await new Promise<string>((resolve) => {
    const ps = spawn('ps', ['-eo', 'pid=,args='], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    ps.stdout.on('data', (chunk) => {
      out += chunk;
    });
    ps.on('close', () => resolve(out));
  });
  return run
    .split('\n')
    .filter((line) => line.includes(`--data-dir ${dataDir}/node-`))
    .map((line) => Number(line.trim().split(/\s+/)[0]));
}
