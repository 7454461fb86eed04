/**
 * The bench convention every dsys package follows (`npm run bench -w @dsys/<pkg> [-- --quick]`):
 * measure ours and the named peer in the same run on the same machine, print a table with ratios
 * (machines are noisy, ratios less so), and write `bench-results/<pkg>.json` at the repo root as a
 * list of `BenchRow`. Benchmarks are tooling, not protocol code: wall-clock time is fine here.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BenchRow {
  bench: string;
  metric: string;
  unit: string;
  dsys: number;
  peer: number | null;
  peerName: string | null;
  /** dsys/peer when higher is better, peer/dsys otherwise: above 1 means dsys wins. */
  ratio: number | null;
  higherIsBetter: boolean;
}

export function row(
  bench: string,
  metric: string,
  unit: string,
  dsys: number,
  peer: { name: string; value: number } | null,
  higherIsBetter: boolean,
): BenchRow {
  let ratio: number | null = null;
  if (peer !== null && peer.value > 0 && dsys > 0) ratio = higherIsBetter ? dsys / peer.value : peer.value / dsys;
  return { bench, metric, unit, dsys, peer: peer?.value ?? null, peerName: peer?.name ?? null, ratio, higherIsBetter };
}

export const quick = process.argv.includes('--quick');

export function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown cpu';
  return `${cpus().length} x ${cpu.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

function format(value: number | null): string {
  if (value === null) return '-';
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US');
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toPrecision(3);
}

/** Prints the table and writes bench-results/<pkg>.json (repo root). Returns the file path. */
export function report(pkg: string, rows: readonly BenchRow[]): string {
  const header = ['bench', 'metric', 'dsys', 'peer', 'ratio'];
  const lines = rows.map((r) => [
    r.bench,
    `${r.metric} (${r.unit}${r.higherIsBetter ? ', higher better' : ', lower better'})`,
    format(r.dsys),
    r.peerName === null ? '-' : `${format(r.peer)} (${r.peerName})`,
    r.ratio === null ? '-' : `${r.ratio.toFixed(2)}x`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const print = (cells: string[]) => console.log(cells.map((c, i) => c.padEnd(widths[i]!)).join('  '));
  console.log(`\n${pkg} benchmarks on ${machine()}`);
  print(header);
  print(widths.map((w) => '-'.repeat(w)));
  for (const line of lines) print(line);
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const path = join(root, 'bench-results', `${pkg}.json`);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(rows, null, 2)}\n`);
  console.log(`wrote ${path}`);
  return path;
}

/** Percentile (0..100) of unsorted samples, nearest-rank. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function median(samples: readonly number[]): number {
  return percentile(samples, 50);
}

/** Runs `fn` `warmup` times, then `runs` times, returning the median wall time in ms. */
export async function timeMedianMs(fn: () => unknown, runs: number, warmup = 1): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    await fn();
    samples.push(performance.now() - started);
  }
  return median(samples);
}
