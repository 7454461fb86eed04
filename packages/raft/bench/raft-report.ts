/**
 * Every raft bench writes into one file, `bench-results/raft.json`: each replaces its own rows (by
 * bench name) and keeps the others', so the sim speed, the fail-over time and the etcd comparison end
 * up side by side whichever ran last.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BenchRow, report } from '@dsys/benchkit';

const RESULTS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bench-results', 'raft.json');

function previousRows(): BenchRow[] {
  try {
    const rows = JSON.parse(readFileSync(RESULTS, 'utf8')) as unknown;
    return Array.isArray(rows) ? (rows as BenchRow[]) : [];
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || error instanceof SyntaxError) return [];
    throw error;
  }
}

/** Prints `rows` (with the kept rows of the other raft benches) and writes bench-results/raft.json. */
export function reportRaft(rows: readonly BenchRow[]): void {
  const benches = new Set(rows.map((row) => row.bench));
  const kept = previousRows().filter((row) => !benches.has(row.bench));
  report('raft', [...kept, ...rows]);
}
