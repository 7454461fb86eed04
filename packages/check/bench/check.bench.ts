/**
 * Benchmarks for @dsys/check (`npm run bench -w @dsys/check [-- --quick]`).
 *
 * Histories come from `runPlan`: 10 clients drive a real register (5 distinct values, as in Jepsen's
 * register workload) with exponential think times and latencies (mean 5 ms), 1% of operations
 * indeterminate (half of them applied anyway, possibly after the client gave up) and 1% failed.
 * Every such history is linearizable by construction.
 *
 * - the target: one 10,000-operation single-key history, median wall time of `checkLinearizable`;
 * - the peer: Wing & Gong's search without memoization (Porcupine's list layout, same per-step
 *   cost as ours) on ten 200-operation histories, median per history, and how many it could not
 *   decide within its step cap (its time then counts as the time to reach the cap, a lower bound);
 * - refuting: a 2,000-operation history with one read corrupted to a value never written.
 */
import { machine, quick, report, row, timeMedianMs } from '@dsys/benchkit';
import { Rng } from '@dsys/kit';
import { checkLinearizable } from '../src/linearizability.js';
import { type RegisterInput, type RegisterOutput, registerModel } from '../src/models.js';
import type { History } from '../src/types.js';
import { type RandomPlanOptions, randomPlan, runPlan } from '../test/support/register-workload.js';
import { checkWingGongNoMemo } from './wing-gong-no-memo.js';

const PEER = 'naive Wing-Gong (no memo)';
const PEER_STEPS_MAX = 20_000_000;
const RUNS = quick ? 3 : 7;

function workload(operations: number, seed: number): History<RegisterInput, RegisterOutput> {
  const options: RandomPlanOptions = {
    operations,
    clients: 10,
    values: 5,
    latencyMsMean: 5,
    infoPerMille: 10,
    failPerMille: 10,
  };
  return runPlan(randomPlan(Rng.fromSeed(seed), options));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

async function main(): Promise<void> {
  console.log(`@dsys/check bench on ${machine()}${quick ? ' (quick)' : ''}`);
  const rows = [];

  const big = workload(10_000, 1);
  const bigResult = checkLinearizable(registerModel, big);
  if (bigResult.ok !== true) throw new Error(`10k history not accepted: ${JSON.stringify(bigResult)}`);
  const bigMs = await timeMedianMs(() => checkLinearizable(registerModel, big), RUNS, 2);
  rows.push(row('linearizability', 'check 10k-op register history, 10 clients, 1% info', 'ms', bigMs, null, false));

  const seeds = quick ? [1, 2, 3, 4, 5] : [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const ours: number[] = [];
  const peer: number[] = [];
  let peerUndecided = 0;
  for (const seed of seeds) {
    const small = workload(200, seed);
    ours.push(await timeMedianMs(() => checkLinearizable(registerModel, small), RUNS, 2));
    const verdict = checkWingGongNoMemo(registerModel, small, PEER_STEPS_MAX);
    if (verdict.ok === false) throw new Error(`peer rejected a linearizable history (seed ${seed})`);
    if (verdict.ok === 'unknown') peerUndecided++;
    peer.push(await timeMedianMs(() => checkWingGongNoMemo(registerModel, small, PEER_STEPS_MAX), quick ? 1 : 3, 0));
  }
  const perHistory = `check 200-op history (median of ${seeds.length})`;
  rows.push(row('linearizability', perHistory, 'ms', median(ours), { name: PEER, value: median(peer) }, false));
  const undecided = `200-op histories undecided in ${PEER_STEPS_MAX / 1e6}M steps`;
  rows.push(row('linearizability', undecided, 'count', 0, { name: PEER, value: peerUndecided }, false));

  const stale = workload(2000, 7);
  const reads = stale.filter((op) => op.status === 'ok' && op.input.type === 'read');
  const victim = reads[Math.floor(reads.length / 2)]!.id;
  const corrupted = stale.map((op) =>
    op.id === victim ? { ...op, output: { type: 'read' as const, value: 'x' } } : op,
  );
  const refuted = checkLinearizable(registerModel, corrupted);
  if (refuted.ok !== false) throw new Error(`corrupted history not refuted: ${JSON.stringify(refuted)}`);
  const refuteMs = await timeMedianMs(() => checkLinearizable(registerModel, corrupted), RUNS, 1);
  rows.push(row('linearizability', 'refute 2k-op history with one stale read', 'ms', refuteMs, null, false));

  report('check', rows);
}

await main();
