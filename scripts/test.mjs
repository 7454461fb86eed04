#!/usr/bin/env node
// The README's test command: typecheck, lint, then every package's tests with node's test runner.
// Ends with one plain summary line, `N passed, N failed, N skipped`, whose counts include the
// static checks, and exits non-zero if anything failed.
//   --no-static   skip typecheck and lint
//   --slow        also run *.slow.test.ts files
//   --only <dir>  only test files under this path (e.g. packages/kit)
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const runStatic = !args.includes('--no-static');
const runSlow = args.includes('--slow');
const onlyIndex = args.indexOf('--only');
const only = onlyIndex >= 0 ? args[onlyIndex + 1] : undefined;

let passed = 0;
let failed = 0;
let skipped = 0;

function staticCheck(name, command, commandArgs) {
  const started = Date.now();
  const result = spawnSync(command, commandArgs, { cwd: root, stdio: 'inherit' });
  const ok = result.status === 0;
  console.log(`${ok ? 'ok' : 'not ok'} - ${name} (${Date.now() - started} ms)`);
  if (ok) passed++;
  else failed++;
}

if (runStatic) {
  const bin = (name) => join(root, 'node_modules', '.bin', name);
  staticCheck('typecheck (tsc)', bin('tsc'), ['-p', 'tsconfig.json']);
  staticCheck('lint (biome)', bin('biome'), ['check', '.']);
  staticCheck('lint (determinism)', process.execPath, [join(root, 'scripts', 'lint-determinism.mjs')]);
}

function findTests(dir, out) {
  for (const entry of readdirSync(dir)) {
    if (entry === 'node_modules' || entry === 'fixtures') continue;
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) findTests(path, out);
    else if (entry.endsWith('.test.ts') && (runSlow || !entry.endsWith('.slow.test.ts'))) out.push(path);
  }
  return out;
}

const files = [];
for (const pkg of readdirSync(join(root, 'packages')).sort()) {
  const testDir = join(root, 'packages', pkg, 'test');
  try {
    if (statSync(testDir).isDirectory()) findTests(testDir, files);
  } catch {
    // A package without tests is allowed (it shows up as zero tests).
  }
}
const selected = files.filter((file) => only === undefined || relative(root, file).startsWith(only)).sort();

const concurrency = process.env.DSYS_TEST_CONCURRENCY ?? '2';
const child = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-reporter=tap', `--test-concurrency=${concurrency}`, ...selected],
  { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' } },
);
let tail = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  tail = (tail + chunk.toString()).slice(-4096);
});
child.on('close', (code) => {
  const count = (name) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(tail)?.[1] ?? 0);
  const testsPassed = count('pass');
  const testsFailed = count('fail') + count('cancelled');
  skipped += count('skipped') + count('todo');
  passed += testsPassed;
  failed += testsFailed;
  if (code !== 0 && testsFailed === 0) failed++; // the runner itself failed (e.g. no files, crash)
  if (selected.length === 0) failed++;
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.exit(failed > 0 ? 1 : 0);
});
