/**
 * The Chord paper's evaluation (Stoica et al., SIGCOMM 2001 §6 / TON 2003 §V), re-run on this
 * implementation with `RingSim`. Each experiment is a pure function of its parameters and seed; the
 * `bin/paper.ts` script runs them, writes the SVG figures and the README tables.
 *
 * - `pathLength`: stable rings of N = 2^k nodes; random nodes look up random keys (TON Fig. 10).
 * - `loadBalance`: consistent hashing of K keys onto N nodes with v virtual nodes each (TON Fig. 9).
 * - `failures`: a fraction p of a stable ring fails at once; lookups right away, then after the
 *   ring has re-stabilized (TON Fig. 11, here with lookups judged for routing, not for lost keys).
 * - `churn`: nodes join and fail as Poisson processes while lookups run (TON Fig. 12).
 *
 * Path length is the paper's "number of nodes traversed during a lookup" (see `pathLength`): the
 * `hops` of a lookup, every node asked up to the key's predecessor; not the origin, not the successor.
 */
import { assert, type NodeId, Rng, NodeId as toNodeId } from '@dsys/kit';
import { CHORD_CONFIG_DEFAULT, type ChordConfig } from '../config.js';
import type { ChordResponse } from '../messages.js';
import { checkRing, installStableRing, RingOracle } from '../oracle.js';
import { keyId, nodeId, ringOf } from '../ring.js';
import { type RequestHandle, RingSim } from './ring-sim.js';

export type Progress = (line: string) => void;

export function percentile(sorted: readonly number[], fraction: number): number {
  assert(sorted.length > 0, 'percentile of nothing');
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[rank]!;
}

export function mean(values: readonly number[]): number {
  let sum = 0;
  for (const value of values) sum += value;
  return values.length === 0 ? 0 : sum / values.length;
}

function stableConfig(overrides: Partial<ChordConfig>): ChordConfig {
  return { ...CHORD_CONFIG_DEFAULT, bootstrap: 'manual', ...overrides };
}

/** Sends `count` lookups of random keys from random live members, `batch` at a time; returns the handles. */
function runLookups(sim: RingSim, rng: Rng, members: readonly number[], count: number, batch: number, msMax: number) {
  const handles: RequestHandle[] = [];
  for (let start = 0; start < count; start += batch) {
    for (let i = start; i < Math.min(count, start + batch); i++) {
      const key = `key-${rng.u32().toString(16)}-${i}`;
      handles.push(sim.request(rng.pick(members), { type: 'lookup', key }));
    }
    sim.drainRequests(msMax);
  }
  return handles;
}

// ---------------------------------------------------------------------------------------------
// Path length vs N.

/** Path lengths of one routing variant at one N. */
export interface PathStats {
  readonly mean: number;
  readonly p1: number;
  readonly p99: number;
  /** Share of lookups that returned the key's true successor (should be 1). */
  readonly correct: number;
  /** Distribution of path lengths: count per length. */
  readonly histogram: number[];
}

export interface PathLengthRow {
  readonly n: number;
  readonly lookups: number;
  readonly halfLog2N: number;
  /** closest_preceding_node over the finger table only (TON Fig. 5, SIGCOMM Fig. 4): the paper's setting. */
  readonly fingers: PathStats;
  /** closest_preceding_node over fingers and successor list (TON §IV.E.3): this implementation's default. */
  readonly successors: PathStats;
}

/**
 * Path length as the paper defines it (SIGCOMM 2001 §6.3, TON §V.B): "the number of nodes traversed
 * during a lookup operation", which is the `hops` of a lookup: the nodes the origin asks, up to and
 * including the key's predecessor, which answers with its successor. The predecessor does not contact
 * that successor, so it is not counted (§6.6: a lookup in 180 nodes is "four [exchanges] for the Chord
 * lookup, and a final message to the successor node"; ½ log2 180 = 3.7). The origin is not counted
 * either: a key in (origin, successor] costs 0.
 */
export function pathLength(
  options: { kMin: number; kMax: number; lookups: (n: number) => number; seed: number },
  progress: Progress = () => {},
): PathLengthRow[] {
  const rows: PathLengthRow[] = [];
  for (let k = options.kMin; k <= options.kMax; k++) {
    const n = 2 ** k;
    const count = options.lookups(n);
    const run = (routeViaSuccessors: boolean) => pathStats(k, count, options.seed, routeViaSuccessors);
    const row: PathLengthRow = { n, lookups: count, halfLog2N: k / 2, fingers: run(false), successors: run(true) };
    progress(
      `path length N=2^${k}: fingers only mean ${row.fingers.mean.toFixed(2)} (½log2N ${row.halfLog2N}, p1 ${row.fingers.p1}, p99 ${row.fingers.p99}); with successor list ${row.successors.mean.toFixed(2)}; ${count} lookups, correct ${(row.fingers.correct * 100).toFixed(2)}% / ${(row.successors.correct * 100).toFixed(2)}%`,
    );
    rows.push(row);
  }
  return rows;
}

/** One stable ring of 2^k nodes; the same origins and keys for either routing (same seeds). */
function pathStats(k: number, count: number, seed: number, routeViaSuccessors: boolean): PathStats {
  const n = 2 ** k;
  const config = stableConfig({ successorListLength: Math.max(4, 2 * k), routeViaSuccessors });
  const sim = new RingSim({ seed: seed + k, config, tickMs: 10, ticks: false, latencyMsMin: 1, latencyMsMax: 10 });
  for (let address = 1; address <= n; address++) sim.addNode(address);
  const ring = ringOf(config.idBits);
  const oracle = installStableRing(ring, [...sim.liveStates()]);
  const members = Array.from({ length: n }, (_, i) => i + 1);
  const handles = runLookups(sim, Rng.fromSeed(seed).fork(`path:${k}`), members, count, 2000, 1e9);
  const lengths: number[] = [];
  let correct = 0;
  for (const handle of handles) {
    const response = handle.response;
    if (response?.type !== 'lookup' || handle.request.type !== 'lookup') continue;
    lengths.push(response.hops);
    if (response.node.id === oracle.successorOf(keyId(ring, handle.request.key)).id) correct++;
  }
  lengths.sort((a, b) => a - b);
  const histogram = new Array<number>(lengths[lengths.length - 1]! + 1).fill(0);
  for (const length of lengths) histogram[length]!++;
  return {
    mean: mean(lengths),
    p1: percentile(lengths, 0.01),
    p99: percentile(lengths, 0.99),
    correct: correct / count,
    histogram,
  };
}

// ---------------------------------------------------------------------------------------------
// Keys per node vs virtual nodes.

export interface LoadRow {
  readonly vnodes: number;
  readonly mean: number;
  readonly p1: number;
  readonly p99: number;
  readonly max: number;
}

/**
 * Consistent hashing of `keys` keys onto `nodes` physical nodes with v virtual nodes each: a key goes
 * to its successor (the same `keyId`/`nodeId` hashing the protocol uses); keys per physical node.
 */
export function loadBalance(
  options: { nodes: number; keys: number; vnodes: readonly number[]; idBits?: number },
  progress: Progress = () => {},
): LoadRow[] {
  const ring = ringOf(options.idBits ?? 160);
  const keyIds: bigint[] = [];
  for (let i = 0; i < options.keys; i++) keyIds.push(keyId(ring, `key-${i}`));
  keyIds.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const rows: LoadRow[] = [];
  for (const v of options.vnodes) {
    const points: { id: bigint; node: number }[] = [];
    for (let node = 1; node <= options.nodes; node++) {
      for (let j = 0; j < v; j++) points.push({ id: nodeId(ring, `n${node}`, j), node });
    }
    points.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const counts = new Array<number>(options.nodes + 1).fill(0);
    // Merge walk: each key goes to the first point at or after it, wrapping to the first point.
    let p = 0;
    for (const id of keyIds) {
      while (p < points.length && points[p]!.id < id) p++;
      counts[(p < points.length ? points[p]! : points[0]!).node]!++;
    }
    const perNode = counts.slice(1).sort((a, b) => a - b);
    const row: LoadRow = {
      vnodes: v,
      mean: mean(perNode),
      p1: percentile(perNode, 0.01),
      p99: percentile(perNode, 0.99),
      max: perNode[perNode.length - 1]!,
    };
    progress(`keys per node, ${v} vnode(s): mean ${row.mean}, p1 ${row.p1}, p99 ${row.p99}, max ${row.max}`);
    rows.push(row);
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Simultaneous failures.

export interface FailureRow {
  readonly fraction: number;
  readonly failed: number;
  readonly before: LookupStats;
  readonly after: LookupStats;
  /** Virtual ms from the failures until every successor pointer was right again. */
  readonly stabilizeMs: number;
}

export interface LookupStats {
  readonly lookups: number;
  /** Returned an error, or a node that is not the key's live successor. */
  readonly failedFraction: number;
  readonly meanPathLength: number;
  readonly p1PathLength: number;
  readonly p99PathLength: number;
  readonly meanTimeouts: number;
}

/** Periods in ticks of 10 ms: stabilize every 50 ms, RPC timeout 100 ms. */
function dynamicConfig(n: number, overrides: Partial<ChordConfig> = {}): ChordConfig {
  return stableConfig({
    successorListLength: 2 * Math.ceil(Math.log2(n)),
    stabilizeTicks: 5,
    checkPredecessorTicks: 5,
    fixFingersTicks: 20,
    rpcTimeoutTicks: 10,
    operationTimeoutTicks: 200,
    suspectTicks: 100,
    reconcileTicks: 1000,
    ...overrides,
  });
}

function judge(handles: readonly RequestHandle[], truth: (handle: RequestHandle) => bigint): LookupStats {
  let failed = 0;
  const lengths: number[] = [];
  let timeouts = 0;
  for (const handle of handles) {
    const response: ChordResponse | null = handle.response;
    if (response?.type !== 'lookup' || response.node.id !== truth(handle)) {
      failed++;
      continue;
    }
    lengths.push(response.hops);
    timeouts += response.timeouts;
  }
  lengths.sort((a, b) => a - b);
  return {
    lookups: handles.length,
    failedFraction: failed / Math.max(1, handles.length),
    meanPathLength: mean(lengths),
    p1PathLength: lengths.length === 0 ? 0 : percentile(lengths, 0.01),
    p99PathLength: lengths.length === 0 ? 0 : percentile(lengths, 0.99),
    meanTimeouts: timeouts / Math.max(1, lengths.length),
  };
}

export function failures(
  options: { n: number; fractions: readonly number[]; lookups: number; seed: number },
  progress: Progress = () => {},
): FailureRow[] {
  const rows: FailureRow[] = [];
  for (const fraction of options.fractions) {
    const config = dynamicConfig(options.n);
    const ring = ringOf(config.idBits);
    const sim = new RingSim({ seed: options.seed, config, tickMs: 10, latencyMsMin: 1, latencyMsMax: 10 });
    for (let address = 1; address <= options.n; address++) sim.addNode(address);
    installStableRing(ring, [...sim.liveStates()]);
    sim.runFor(100);
    const rng = Rng.fromSeed(options.seed).fork(`failures:${fraction}`);
    const victims = rng.shuffle(Array.from({ length: options.n }, (_, i) => i + 1));
    const failed = Math.round(fraction * options.n);
    for (const address of victims.slice(0, failed)) sim.kill(address);
    const alive = victims.slice(failed).sort((a, b) => a - b);
    const oracle = new RingOracle(ring, [...sim.liveStates()]);
    const truth = (handle: RequestHandle) =>
      handle.request.type === 'lookup' ? oracle.successorOf(keyId(ring, handle.request.key)).id : -1n;
    // Before: every lookup starts at the instant of the failures. Meanwhile, time the stabilization.
    const killMs = sim.nowMs;
    const handles: RequestHandle[] = [];
    for (let i = 0; i < options.lookups; i++) {
      handles.push(sim.request(rng.pick(alive), { type: 'lookup', key: `key-${rng.u32().toString(16)}-${i}` }));
    }
    let stabilizedMs = failed === 0 ? killMs : -1;
    const states = () => [...sim.liveStates()];
    sim.runUntil(
      () => {
        if (stabilizedMs < 0 && checkRing(ring, states()).wrongSuccessors === 0) stabilizedMs = sim.nowMs;
        return stabilizedMs >= 0 && sim.outstandingRequests === 0;
      },
      120_000,
      10,
    );
    const before = judge(handles, truth);
    const stabilizeMs = stabilizedMs - killMs;
    sim.runFor(500);
    const after = judge(runLookups(sim, rng, alive, options.lookups, options.lookups, 60_000), truth);
    const row = { fraction, failed, before, after, stabilizeMs };
    progress(
      `failures p=${fraction}: ${failed} of ${options.n} failed; failed lookups before ${pct(before.failedFraction)}, after ${pct(after.failedFraction)}; stabilized in ${stabilizeMs} ms`,
    );
    rows.push(row);
  }
  return rows;
}

function pct(value: number): string {
  return `${(value * 100).toFixed(2)}%`;
}

// ---------------------------------------------------------------------------------------------
// Lookups during churn.

export interface ChurnRow {
  /** Joins per second, and failures per second (each a Poisson process at this rate). */
  readonly rate: number;
  readonly joins: number;
  readonly fails: number;
  readonly stats: LookupStats;
  readonly meanSize: number;
}

/**
 * A ring of `n` nodes (1 s stabilization, 500 ms RPC timeout, 10..50 ms links) in which nodes join
 * (through a random member) and fail, each at `rate` per second, for `durationMs`, while random
 * members look up random keys `lookupsPerSecond` times a second. A lookup succeeds when it returns
 * the key's successor among the members at the moment it completes (TON §V.E).
 */
export function churn(
  options: {
    n: number;
    rates: readonly number[];
    durationMs: number;
    lookupsPerSecond: number;
    seed: number;
  },
  progress: Progress = () => {},
): ChurnRow[] {
  return options.rates.map((rate) => {
    const row = churnAt(rate, options);
    progress(
      `churn ${rate}/s joins and failures: ${row.joins} joins, ${row.fails} failures, ${row.stats.lookups} lookups, ${pct(1 - row.stats.failedFraction)} succeeded, mean path ${row.stats.meanPathLength.toFixed(2)}`,
    );
    return row;
  });
}

function churnAt(
  rate: number,
  options: { n: number; durationMs: number; lookupsPerSecond: number; seed: number },
): ChurnRow {
  const config = dynamicConfig(options.n, {
    stabilizeTicks: 10,
    checkPredecessorTicks: 10,
    fixFingersTicks: 10,
    rpcTimeoutTicks: 5,
    operationTimeoutTicks: 100,
    suspectTicks: 50,
    reconcileTicks: 600,
  });
  const ring = ringOf(config.idBits);
  const sim = new RingSim({ seed: options.seed, config, tickMs: 100, latencyMsMin: 10, latencyMsMax: 50 });
  for (let address = 1; address <= options.n; address++) sim.addNode(address);
  installStableRing(ring, [...sim.liveStates()]);
  const rng = Rng.fromSeed(options.seed).fork(`churn:${rate}`);
  const live = new Set<number>(Array.from({ length: options.n }, (_, i) => i + 1));
  let nextAddress = options.n + 1;
  let joins = 0;
  let fails = 0;
  let sizeSum = 0;
  let samples = 0;
  const handles: { handle: RequestHandle; judged: boolean }[] = [];
  const results: RequestHandle[] = [];
  const truths = new Map<RequestHandle, bigint>();
  const stepMs = 10;
  let nextJoin = rate > 0 ? rng.exponential(1000 / rate) : Number.POSITIVE_INFINITY;
  let nextFail = rate > 0 ? rng.exponential(1000 / rate) : Number.POSITIVE_INFINITY;
  let nextLookup = rng.exponential(1000 / options.lookupsPerSecond);
  for (let t = 0; t < options.durationMs; t += stepMs) {
    while (nextJoin <= t) {
      const members = [...live].filter((address) => sim.state(address)?.vnodes[0]?.status === 'joined');
      const via: NodeId = toNodeId(rng.pick(members));
      sim.addNode(nextAddress, { bootstrap: 'join', seeds: [via] });
      live.add(nextAddress++);
      joins++;
      nextJoin += rng.exponential(1000 / rate);
    }
    while (nextFail <= t) {
      const victim = rng.pick([...live]);
      sim.kill(victim);
      live.delete(victim);
      fails++;
      nextFail += rng.exponential(1000 / rate);
    }
    while (nextLookup <= t) {
      const members = [...live].filter((address) => sim.state(address)?.vnodes[0]?.status === 'joined');
      const key = `key-${rng.u32().toString(16)}`;
      handles.push({ handle: sim.request(rng.pick(members), { type: 'lookup', key }), judged: false });
      nextLookup += rng.exponential(1000 / options.lookupsPerSecond);
    }
    sim.runFor(stepMs);
    judgeCompleted(sim, ring, handles, results, truths);
    sizeSum += live.size;
    samples++;
  }
  sim.drainRequests(30_000);
  judgeCompleted(sim, ring, handles, results, truths);
  const stats = judge(results, (handle) => truths.get(handle) ?? -1n);
  return { rate, joins, fails, stats, meanSize: sizeSum / Math.max(1, samples) };
}

/** Judges lookups that completed in the last step against the membership at that moment. */
function judgeCompleted(
  sim: RingSim,
  ring: ReturnType<typeof ringOf>,
  handles: { handle: RequestHandle; judged: boolean }[],
  results: RequestHandle[],
  truths: Map<RequestHandle, bigint>,
): void {
  let oracle: RingOracle | null = null;
  for (const entry of handles) {
    if (entry.judged || entry.handle.response === null) continue;
    entry.judged = true;
    oracle ??= new RingOracle(ring, [...sim.liveStates()]);
    const request = entry.handle.request;
    assert(request.type === 'lookup', 'churn: only lookups');
    truths.set(entry.handle, oracle.successorOf(keyId(ring, request.key)).id);
    results.push(entry.handle);
  }
  let kept = 0;
  for (const entry of handles) if (!entry.judged) handles[kept++] = entry;
  handles.length = kept;
}
