/**
 * Every parameter of a simulation run, flat so that a test overrides one with a spread and the CLI
 * prints all of them (TigerBeetle's VOPR prints its whole `options_swarm` before running).
 *
 * Two starting points:
 * - `calmOptions()`: a quiet network and no injected faults, for scripted scenario tests;
 * - `drawSwarmOptions(rng)`: everything drawn from the seed (swarm testing, Groce et al. 2012: each
 *   run enables a random subset of fault kinds at random rates, which finds more bugs than one
 *   fixed "everything at once" mix).
 *
 * Probabilities are integer ratios (`ratio(3, 100)`), never floats compared against `float()`.
 */
import { formatSeed, type Rng } from '@dsys/kit';

export interface Ratio {
  readonly numerator: number;
  readonly denominator: number;
}

export function ratio(numerator: number, denominator: number): Ratio {
  if (!Number.isSafeInteger(numerator) || numerator < 0) throw new RangeError(`ratio numerator ${numerator}`);
  if (!Number.isSafeInteger(denominator) || denominator < 1) throw new RangeError(`ratio denominator ${denominator}`);
  return Object.freeze({ numerator, denominator });
}

export const NEVER: Ratio = ratio(0, 1);

export function formatRatio(value: Ratio): string {
  return value.numerator === 0 ? '0' : `${value.numerator}/${value.denominator}`;
}

/** All options except the seed: what a swarm draws and a test overrides. */
export interface SimOptionsBase {
  // Cluster and clocks.
  /** Nodes get ids 1..nodeCount. */
  readonly nodeCount: number;
  /** Each node ticks every `tickMs` of its own (drifting) clock. */
  readonly tickMs: number;
  /** Each node's clock rate is drawn in [1 - max, 1 + max] parts per million. */
  readonly clockDriftPpmMax: number;
  /** Each node's clock starts at an offset drawn in [0, max] ms (clocks are not synchronized). */
  readonly clockOffsetMsMax: number;

  // Network: per-link base latency drawn in [min, max], plus an exponential tail per packet (its
  // variance is what reorders packets).
  readonly latencyMsMin: number;
  readonly latencyMsMax: number;
  readonly latencyTailMsMean: number;
  readonly lossRatio: Ratio;
  readonly duplicateRatio: Ratio;

  // Disk: each fsync (synced persist, compaction) takes a latency drawn in [min, max]; a node's disk is FIFO.
  readonly diskLatencyMsMin: number;
  readonly diskLatencyMsMax: number;

  // Injected faults (swarm schedule). Every `faultIntervalMs` (0: never) the injector rolls each ratio.
  readonly faultIntervalMs: number;
  readonly partitionRatio: Ratio;
  /** Of the partitions, the share that are one-way cuts (asymmetric) rather than symmetric splits. */
  readonly asymmetricRatio: Ratio;
  readonly healRatio: Ratio;
  readonly crashRatio: Ratio;
  readonly restartRatio: Ratio;
  /** Of the crashes, the share that tear the last unsynced write. */
  readonly tornWriteRatio: Ratio;
  /** At most this many nodes down at once (the injector never exceeds it; scripts may). */
  readonly crashedMax: number;

  // Phases.
  /** Virtual duration of the safety phase (faults on). */
  readonly safetyMs: number;
  /** Budget of the liveness phase, in ticks of `tickMs` virtual time. */
  readonly livenessTicksMax: number;

  // Workload.
  readonly clientCount: number;
  /** A client gives up on a request after this long (the operation becomes indeterminate). */
  readonly requestTimeoutMs: number;
  /** A client waits up to this long between operations. */
  readonly thinkMsMax: number;
  /** Operations invoked per run, all clients together (bounds the checker's work). */
  readonly opsMax: number;
  /** In the liveness phase every client must complete this many operations. */
  readonly livenessOpsPerClient: number;

  // Checks.
  /** Encode and decode every message, request and response with the system's schemas. */
  readonly wireCodec: boolean;
  /** Print a status line every this many virtual ms (0: never). */
  readonly statusEveryMs: number;
  /** System-specific parameters (drawn by the system's `swarm`), printed with the rest. */
  readonly knobs: Readonly<Record<string, number>>;
}

export interface SimOptions extends SimOptionsBase {
  readonly seed: bigint;
}

export type SimOverrides = Partial<SimOptionsBase>;

/** A quiet cluster of three: fixed 1 ms links, no loss, no drift, no injected faults, no clients. */
export function calmOptions(): SimOptionsBase {
  return {
    nodeCount: 3,
    tickMs: 10,
    clockDriftPpmMax: 0,
    clockOffsetMsMax: 0,
    latencyMsMin: 1,
    latencyMsMax: 1,
    latencyTailMsMean: 0,
    lossRatio: NEVER,
    duplicateRatio: NEVER,
    diskLatencyMsMin: 1,
    diskLatencyMsMax: 1,
    faultIntervalMs: 0,
    partitionRatio: NEVER,
    asymmetricRatio: NEVER,
    healRatio: NEVER,
    crashRatio: NEVER,
    restartRatio: NEVER,
    tornWriteRatio: NEVER,
    crashedMax: 0,
    safetyMs: 1000,
    livenessTicksMax: 1000,
    clientCount: 0,
    requestTimeoutMs: 500,
    thinkMsMax: 10,
    opsMax: 100,
    livenessOpsPerClient: 1,
    wireCodec: false,
    statusEveryMs: 0,
    knobs: {},
  };
}

export interface SwarmBounds {
  readonly nodeCountMin?: number;
  readonly nodeCountMax?: number;
  /** Nodes that may be down at once for a given cluster size; default a minority, floor((n-1)/2). */
  readonly crashedMax?: (nodeCount: number) => number;
}

/** Some fault kinds are off in a run (swarm testing): half the runs never lose a packet, and so on. */
function maybeRatio(rng: Rng, percentMax: number): Ratio {
  return rng.boolean() ? ratio(rng.between(1, percentMax), 100) : NEVER;
}

/** Draws every option from `rng` (fork it from the seed with a label: `rng.fork('swarm')`). */
export function drawSwarmOptions(rng: Rng, bounds: SwarmBounds = {}): SimOptionsBase {
  const nodeCount = rng.between(bounds.nodeCountMin ?? 1, bounds.nodeCountMax ?? 7);
  const latencyMsMin = rng.pick([0.1, 1, 5]);
  const latencyMsMax = latencyMsMin + rng.pick([0, 2, 20]);
  const latencyTailMsMean = rng.pick([0, 1, 10, 50]);
  const diskLatencyMsMin = rng.pick([0.05, 0.5, 2]);
  const diskLatencyMsMax = diskLatencyMsMin + rng.pick([0, 5, 20]);
  // Client timeouts scale with the drawn network (a fixed 50 ms against a 50 ms tail would time out
  // nearly every request, and a history of mostly indeterminate writes is costly to check).
  const roundTripMs = 2 * (latencyMsMax + latencyTailMsMean) + diskLatencyMsMax;
  return {
    nodeCount,
    tickMs: rng.pick([5, 10, 20]),
    clockDriftPpmMax: rng.pick([0, 100, 10_000, 50_000]),
    clockOffsetMsMax: rng.pick([0, 1000]),
    latencyMsMin,
    latencyMsMax,
    latencyTailMsMean,
    lossRatio: maybeRatio(rng, 20),
    duplicateRatio: rng.chance(1, 3) ? ratio(rng.between(1, 10), 100) : NEVER,
    diskLatencyMsMin,
    diskLatencyMsMax,
    faultIntervalMs: rng.pick([50, 200, 1000]),
    partitionRatio: maybeRatio(rng, 30),
    asymmetricRatio: ratio(rng.between(0, 100), 100),
    healRatio: ratio(rng.between(10, 60), 100),
    crashRatio: maybeRatio(rng, 20),
    restartRatio: ratio(rng.between(10, 60), 100),
    tornWriteRatio: ratio(rng.between(0, 100), 100),
    crashedMax: (bounds.crashedMax ?? minority)(nodeCount),
    safetyMs: rng.between(1000, 4000),
    livenessTicksMax: 2000,
    clientCount: rng.between(1, 5),
    requestTimeoutMs: Math.ceil(roundTripMs * rng.pick([2, 4, 10])),
    thinkMsMax: rng.pick([0, 10, 100]),
    opsMax: rng.between(50, 300),
    livenessOpsPerClient: 2,
    wireCodec: rng.chance(1, 4),
    statusEveryMs: 1000,
    knobs: {},
  };
}

export function minority(nodeCount: number): number {
  return Math.floor((nodeCount - 1) / 2);
}

/** Rejects nonsense once, with the parameter's name (noble's validators). */
export function validateOptions(options: SimOptions): void {
  const integer = (name: keyof SimOptionsBase, min: number, max: number) => {
    const value = options[name] as number;
    if (!Number.isSafeInteger(value) || value < min || value > max)
      throw new RangeError(`sim option ${name} must be an integer in [${min}, ${max}], got ${value}`);
  };
  const positive = (name: keyof SimOptionsBase, allowZero: boolean) => {
    const value = options[name] as number;
    if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0))
      throw new RangeError(
        `sim option ${name} must be a ${allowZero ? 'non-negative' : 'positive'} number, got ${value}`,
      );
  };
  integer('nodeCount', 1, NODE_COUNT_MAX);
  integer('clientCount', 0, CLIENT_COUNT_MAX);
  positive('tickMs', false);
  integer('clockDriftPpmMax', 0, 500_000);
  positive('clockOffsetMsMax', true);
  positive('latencyMsMin', true);
  positive('latencyMsMax', true);
  if (options.latencyMsMax < options.latencyMsMin) throw new RangeError('sim option latencyMsMax < latencyMsMin');
  positive('latencyTailMsMean', true);
  positive('diskLatencyMsMin', true);
  positive('diskLatencyMsMax', true);
  if (options.diskLatencyMsMax < options.diskLatencyMsMin)
    throw new RangeError('sim option diskLatencyMsMax < diskLatencyMsMin');
  positive('faultIntervalMs', true);
  integer('crashedMax', 0, options.nodeCount);
  positive('safetyMs', true);
  integer('livenessTicksMax', 1, Number.MAX_SAFE_INTEGER);
  positive('requestTimeoutMs', false);
  positive('thinkMsMax', true);
  integer('opsMax', 0, Number.MAX_SAFE_INTEGER);
  integer('livenessOpsPerClient', 0, Number.MAX_SAFE_INTEGER);
  positive('statusEveryMs', true);
}

/** Limits of the address space (endpoints index dense tables). */
export const NODE_COUNT_MAX = 64;
export const CLIENT_COUNT_MAX = 1024;

/** `key value` lines, every parameter (VOPR style). */
export function formatOptions(options: SimOptions): string[] {
  const lines = [`seed ${formatSeed(options.seed)}`];
  for (const [key, value] of Object.entries(options)) {
    if (key === 'seed' || key === 'knobs') continue;
    lines.push(`${key} ${formatValue(value)}`);
  }
  for (const [key, value] of Object.entries(options.knobs)) lines.push(`knobs.${key} ${value}`);
  return lines;
}

function formatValue(value: unknown): string {
  if (typeof value === 'object' && value !== null && 'numerator' in value) return formatRatio(value as Ratio);
  return String(value);
}
