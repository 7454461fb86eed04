/**
 * `npm run paper -w @dsys/chord [-- --quick] [-- --only path|load|failures|churn|scale]`: re-runs the
 * Chord paper's evaluation on this implementation (src/experiment/paper.ts), writes the figures to
 * figures/*.svg, the numbers to figures/results.json, and the tables into README.md between the
 * `paper:begin` / `paper:end` markers. Deterministic: the same seed gives the same numbers (wall
 * times aside). `--quick` runs smaller versions of every experiment in well under a minute.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type ChurnRow,
  churn,
  type FailureRow,
  failures,
  type LoadRow,
  loadBalance,
  type PathLengthRow,
  pathLength,
} from '../src/experiment/paper.js';
import { scaleRun } from '../src/experiment/scale.js';
import { lineChart } from '../src/experiment/svg.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const quick = args.includes('--quick');
/** `--tables`: only rewrite the README tables from figures/results.json. */
const tablesOnly = args.includes('--tables');
// Quick runs are for checking the pipeline: their figures go to a temporary directory.
const figures = quick ? join(tmpdir(), 'dsys-chord-paper-quick') : join(root, 'figures');
const onlyIndex = args.indexOf('--only');
const only = onlyIndex >= 0 ? args[onlyIndex + 1] : undefined;
const SEED = 2001;
const started = performance.now();

/** CPU time of this process (user + system), ms: the machine may be shared, so wall time says little. */
function cpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

function log(line: string): void {
  const wall = ((performance.now() - started) / 1000).toFixed(1).padStart(6);
  const cpu = (cpuMs() / 1000).toFixed(1).padStart(6);
  console.log(`[${wall}s wall ${cpu}s cpu] ${line}`);
}

function wants(name: string): boolean {
  return only === undefined || only === name;
}

interface Results {
  mode: string;
  machine: string;
  path?: PathLengthRow[];
  load?: { nodes: number; keys: number; rows: LoadRow[] };
  failures?: { n: number; rows: FailureRow[] };
  churn?: { n: number; durationMs: number; lookupsPerSecond: number; rows: ChurnRow[] };
  scale?: ReturnType<typeof scaleRun> & { wallMs: number; cpuMs: number };
  /** CPU seconds of the last full run, per experiment. */
  cpuSeconds?: Record<string, number>;
}

const resultsPath = join(figures, 'results.json');
mkdirSync(figures, { recursive: true });
const previous: Results = (() => {
  try {
    return JSON.parse(readFileSync(resultsPath, 'utf8')) as Results;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    return { mode: '', machine: '' };
  }
})();
if (tablesOnly) {
  updateReadme(previous);
  log('README tables rewritten from figures/results.json');
  process.exit(0);
}
const results: Results = {
  ...previous,
  mode: quick ? 'quick' : 'full',
  machine: `${process.platform} ${process.arch}, Node ${process.version}`,
};
const suffix = '';

const cpuSeconds: Record<string, number> = { ...previous.cpuSeconds };

/** Runs one experiment if asked for, recording its CPU time. */
function experiment(name: string, body: () => void): void {
  if (!wants(name) || (quick && name === 'scale')) return;
  const cpu0 = cpuMs();
  body();
  cpuSeconds[name] = Math.round((cpuMs() - cpu0) / 100) / 10;
}

experiment('path', () => {
  log('path length vs N (stable rings, random lookups)');
  results.path = pathLength(
    { kMin: 3, kMax: quick ? 10 : 14, lookups: () => (quick ? 2_000 : 10_000), seed: SEED },
    log,
  );
  writeFileSync(join(figures, `path-length${suffix}.svg`), pathChart(results.path));
});
experiment('load', () => {
  const nodes = quick ? 1_000 : 10_000;
  const keys = quick ? 100_000 : 1_000_000;
  log(`keys per node: N = ${nodes}, K = ${keys}, 1..20 virtual nodes`);
  const rows = loadBalance({ nodes, keys, vnodes: [1, 2, 5, 10, 20] }, log);
  results.load = { nodes, keys, rows };
  writeFileSync(join(figures, `keys-per-node${suffix}.svg`), loadChart(rows, nodes, keys));
});
experiment('failures', () => {
  const n = quick ? 500 : 2_000;
  const fractions = quick ? [0, 0.1, 0.2, 0.3, 0.4, 0.5] : [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5];
  log(`simultaneous failures: N = ${n}, r = 2 log2 N successors`);
  const rows = failures({ n, fractions, lookups: quick ? 1_000 : 4_000, seed: SEED }, log);
  results.failures = { n, rows };
  writeFileSync(join(figures, `failures${suffix}.svg`), failureChart(rows, n));
});
experiment('churn', () => {
  const n = 500;
  const durationMs = quick ? 60_000 : 180_000;
  const lookupsPerSecond = 10;
  const rates = quick ? [0, 1, 4] : [0, 0.5, 1, 2, 4, 8];
  log(`lookups during churn: N = ${n}, ${durationMs / 1000} s per rate, ${lookupsPerSecond} lookups/s`);
  const rows = churn({ n, rates, durationMs, lookupsPerSecond, seed: SEED }, log);
  results.churn = { n, durationMs, lookupsPerSecond, rows };
  writeFileSync(join(figures, `churn${suffix}.svg`), churnChart(rows, n));
});
experiment('scale', () => {
  log('scale: 10,000 nodes, 100,000 lookups');
  const t0 = performance.now();
  const cpu0 = cpuMs();
  const run = scaleRun({ nodes: 10_000, lookups: 100_000, seed: SEED });
  results.scale = { ...run, wallMs: Math.round(performance.now() - t0), cpuMs: Math.round(cpuMs() - cpu0) };
  log(
    `scale: ${run.lookups} lookups on ${run.nodes} nodes in ${results.scale.cpuMs} ms cpu, ${results.scale.wallMs} ms wall (${run.events} events)`,
  );
});
results.cpuSeconds = cpuSeconds;

writeFileSync(resultsPath, `${JSON.stringify(results, null, 2)}\n`);
if (!quick) updateReadme(results);
log(`done; figures in ${figures}`);

// ---------------------------------------------------------------------------------------------
// Charts.

function pathChart(rows: PathLengthRow[]): string {
  return lineChart({
    title: 'Lookup path length vs number of nodes',
    xLabel: 'number of nodes N',
    yLabel: 'path length (nodes traversed)',
    xLog2: true,
    yMin: 0,
    series: [
      {
        name: 'fingers only (paper), mean with 1st/99th pct.',
        color: '#1f77b4',
        points: rows.map((row) => ({ x: row.n, y: row.fingers.mean, low: row.fingers.p1, high: row.fingers.p99 })),
      },
      {
        name: 'fingers and successor list (default), mean',
        color: '#2ca02c',
        points: rows.map((row) => ({ x: row.n, y: row.successors.mean })),
      },
      { name: '½ log2 N', color: '#d62728', dashed: true, points: rows.map((row) => ({ x: row.n, y: row.halfLog2N })) },
    ],
  });
}

function loadChart(rows: LoadRow[], nodes: number, keys: number): string {
  return lineChart({
    title: `Keys per node, N = ${nodes}, K = ${keys}`,
    xLabel: 'virtual nodes per physical node',
    yLabel: 'keys per physical node',
    yMin: 0,
    xTicks: rows.map((row) => row.vnodes),
    series: [
      {
        name: 'mean, with 1st and 99th percentiles',
        color: '#1f77b4',
        points: rows.map((row) => ({ x: row.vnodes, y: row.mean, low: row.p1, high: row.p99 })),
      },
    ],
  });
}

function failureChart(rows: FailureRow[], n: number): string {
  return lineChart({
    title: `Failed lookups after simultaneous failures, N = ${n}`,
    xLabel: 'fraction of nodes failed at once',
    yLabel: 'fraction of lookups failed',
    yMin: 0,
    series: [
      {
        name: 'right after the failures',
        color: '#d62728',
        points: rows.map((row) => ({ x: row.fraction, y: row.before.failedFraction })),
      },
      {
        name: 'after stabilization',
        color: '#2ca02c',
        points: rows.map((row) => ({ x: row.fraction, y: row.after.failedFraction })),
      },
    ],
  });
}

function churnChart(rows: ChurnRow[], n: number): string {
  return lineChart({
    title: `Lookups during churn, N = ${n}, stabilize every 1 s`,
    xLabel: 'joins per second = failures per second',
    yLabel: 'value',
    yMin: 0,
    series: [
      {
        name: 'mean path length (1st/99th pct.)',
        color: '#1f77b4',
        points: rows.map((row) => ({
          x: row.rate,
          y: row.stats.meanPathLength,
          high: row.stats.p99PathLength,
          low: row.stats.p1PathLength,
        })),
      },
      {
        name: 'failed lookups, percent',
        color: '#d62728',
        points: rows.map((row) => ({ x: row.rate, y: row.stats.failedFraction * 100 })),
      },
    ],
  });
}

// ---------------------------------------------------------------------------------------------
// README tables.

function updateReadme(all: Results): void {
  const readmePath = join(root, 'README.md');
  const readme = readFileSync(readmePath, 'utf8');
  const begin = '<!-- paper:begin -->';
  const end = '<!-- paper:end -->';
  const from = readme.indexOf(begin);
  const to = readme.indexOf(end);
  if (from < 0 || to < from) return;
  const body = tables(all);
  writeFileSync(readmePath, `${readme.slice(0, from + begin.length)}\n${body}\n${readme.slice(to)}`);
}

function tables(all: Results): string {
  const out: string[] = [];
  out.push(`Generated by \`npm run paper -w @dsys/chord\` (${all.machine}).`, '');
  if (all.path !== undefined) {
    out.push(
      '**Path length vs N** (stable ring, random keys from random nodes; path length = nodes traversed, as in the paper)',
      '',
    );
    out.push(
      '| N | lookups | ½ log2 N | fingers only: mean | mean / ½ log2 N | 1st pct | 99th pct | with successor list: mean | 1st pct | 99th pct | correct |',
    );
    out.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const row of all.path) {
      const f = row.fingers;
      const s = row.successors;
      const correct = Math.min(f.correct, s.correct);
      out.push(
        `| 2^${Math.log2(row.n)} = ${row.n} | ${row.lookups} | ${row.halfLog2N.toFixed(1)} | ${f.mean.toFixed(2)} | ${(f.mean / row.halfLog2N).toFixed(3)} | ${f.p1} | ${f.p99} | ${s.mean.toFixed(2)} | ${s.p1} | ${s.p99} | ${(correct * 100).toFixed(1)}% |`,
      );
    }
    out.push('', '![path length](figures/path-length.svg)', '');
  }
  if (all.load !== undefined) {
    out.push(`**Keys per node** (N = ${all.load.nodes}, K = ${all.load.keys})`, '');
    out.push('| virtual nodes | mean | 1st pct | 99th pct | max | 99th / mean |');
    out.push('|---:|---:|---:|---:|---:|---:|');
    for (const row of all.load.rows) {
      out.push(
        `| ${row.vnodes} | ${row.mean} | ${row.p1} | ${row.p99} | ${row.max} | ${(row.p99 / row.mean).toFixed(2)} |`,
      );
    }
    out.push('', '![keys per node](figures/keys-per-node.svg)', '');
  }
  if (all.failures !== undefined) {
    out.push(`**Simultaneous failures** (N = ${all.failures.n}, successor lists of 2 log2 N)`, '');
    out.push(
      '| failed | nodes | failed lookups, right after | mean path / timeouts | failed lookups, after stabilization | mean path | stabilized in |',
    );
    out.push('|---:|---:|---:|---:|---:|---:|---:|');
    for (const row of all.failures.rows) {
      out.push(
        `| ${(row.fraction * 100).toFixed(0)}% | ${row.failed} | ${(row.before.failedFraction * 100).toFixed(2)}% | ${row.before.meanPathLength.toFixed(2)} / ${row.before.meanTimeouts.toFixed(2)} | ${(row.after.failedFraction * 100).toFixed(2)}% | ${row.after.meanPathLength.toFixed(2)} | ${(row.stabilizeMs / 1000).toFixed(2)} s |`,
      );
    }
    out.push('', '![failures](figures/failures.svg)', '');
  }
  if (all.churn !== undefined) {
    const c = all.churn;
    out.push(
      `**Lookups during churn** (N = ${c.n} at start, ${c.durationMs / 1000} s per rate, ${c.lookupsPerSecond} lookups/s, stabilize every 1 s)`,
      '',
    );
    out.push('| joins/s = failures/s | joins | failures | lookups | succeeded | mean path | 99th pct path |');
    out.push('|---:|---:|---:|---:|---:|---:|---:|');
    for (const row of c.rows) {
      out.push(
        `| ${row.rate} | ${row.joins} | ${row.fails} | ${row.stats.lookups} | ${((1 - row.stats.failedFraction) * 100).toFixed(2)}% | ${row.stats.meanPathLength.toFixed(2)} | ${row.stats.p99PathLength} |`,
      );
    }
    out.push('', '![churn](figures/churn.svg)', '');
  }
  if (all.cpuSeconds !== undefined) {
    const parts = Object.entries(all.cpuSeconds).map(([name, seconds]) => `${name} ${seconds.toFixed(0)} s`);
    const total = Object.values(all.cpuSeconds).reduce((sum, seconds) => sum + seconds, 0);
    out.push(`CPU time per experiment: ${parts.join(', ')}; ${total.toFixed(0)} s in all.`, '');
  }
  if (all.scale !== undefined) {
    const s = all.scale;
    out.push(
      `**Scale**: ${s.lookups} lookups on a ${s.nodes}-node ring (160-bit ids, iterative): ${(s.cpuMs / 1000).toFixed(1)} s of CPU on one core (${(s.wallMs / 1000).toFixed(1)} s wall on the shared machine), ${s.events} simulator events; mean path length ${s.meanPathLength.toFixed(2)}; ${s.correct} of ${s.lookups} lookups returned the key's successor.`,
    );
  }
  return out.join('\n');
}
