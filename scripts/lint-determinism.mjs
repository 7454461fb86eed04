#!/usr/bin/env node
// Protocol code must stay deterministic (STYLE.md section 3): time, randomness, timers and I/O come
// from the driver. This check bans them in packages/*/src, except in the packages and folders that
// are the real runtime: runtime-node, harness and cli, and any `src/real/` folder (TCP servers,
// process entry points of a system).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const IO_PACKAGES = new Set(['runtime-node', 'harness', 'cli', 'benchkit']);
const BANNED = [
  [/\bMath\.random\s*\(/, 'Math.random() (use the injected Rng)'],
  [/\bDate\.now\s*\(/, 'Date.now() (time comes from tick events)'],
  [/\bnew Date\s*\(/, 'new Date() (time comes from tick events)'],
  [/\bperformance\.now\s*\(/, 'performance.now()'],
  [/\bset(Timeout|Interval|Immediate)\s*\(/, 'timers (emit tick events or effects instead)'],
  [/\bcrypto\.random/, 'crypto randomness (use the injected Rng)'],
  [
    /from\s+['"]node:(fs|net|tls|dgram|http|https|child_process|timers|worker_threads)(\/[a-z]+)?['"]/,
    'I/O module import',
  ],
];

const problems = [];
function walk(dir) {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) {
      if (entry === 'real') continue;
      walk(path);
    } else if (entry.endsWith('.ts')) {
      const lines = readFileSync(path, 'utf8').split('\n');
      lines.forEach((line, index) => {
        if (/\/\/.*determinism-ok/.test(line)) return;
        const code = line.replace(/\/\/.*$/, '');
        for (const [pattern, what] of BANNED) {
          if (pattern.test(code)) problems.push(`${relative(root, path)}:${index + 1}: ${what}`);
        }
      });
    }
  }
}
for (const pkg of readdirSync(join(root, 'packages'))) {
  if (IO_PACKAGES.has(pkg)) continue;
  try {
    walk(join(root, 'packages', pkg, 'src'));
  } catch (error) {
    if (error.code !== 'ENOENT') throw error;
  }
}
if (problems.length > 0) {
  console.error(`determinism lint: ${problems.length} problem(s) in protocol code:`);
  for (const problem of problems) console.error(`  ${problem}`);
  process.exit(1);
}
