/**
 * One seeded swarm run, VOPR style: draw every option from the seed and print them, run a safety
 * phase under faults, then a liveness phase (heal everything, restart every crashed node, stop loss
 * and fault injection) that must converge within a tick budget, then the workload's end check
 * (linearizability). Any failure carries the seed that replays it.
 */
import { assert, errorMessage, parseSeed, Rng } from '@dsys/kit';
import { SimFailure } from './failure.js';
import type { ScriptedFault } from './faults.js';
import {
  calmOptions,
  drawSwarmOptions,
  formatOptions,
  type SimOptions,
  type SimOptionsBase,
  type SimOverrides,
} from './options.js';
import { type SimStats, Simulation, type SimulationInit } from './simulation.js';
import type { CheckOutcome, SimSystem } from './system.js';

/** The options a seed draws for `system` (its `swarm` hook applied), then `overrides`. */
export function swarmOptions(
  system: SimSystem,
  seed: number | bigint | string,
  overrides: SimOverrides = {},
): SimOptions {
  const value = parseSeed(seed);
  const rng = Rng.fromSeed(value).fork('swarm');
  const drawn = drawSwarmOptions(rng);
  const adjusted: SimOptionsBase = system.swarm?.(rng.fork('system'), drawn) ?? drawn;
  const merged = { ...adjusted, ...overrides, seed: value };
  // A drawn crash budget follows an overridden cluster size (an explicit override is kept as given).
  if (overrides.crashedMax === undefined)
    return { ...merged, crashedMax: Math.min(merged.crashedMax, merged.nodeCount) };
  return merged;
}

/** A simulation on a calm network with no injected faults (see `calmOptions`), for scenario tests. */
export function createSimulation<State, Message, Request, Response, Config, Shared>(
  system: SimSystem<State, Message, Request, Response, Config, Shared>,
  options: SimOverrides & { readonly seed?: number | bigint | string } = {},
  init: SimulationInit = {},
): Simulation<State, Message, Request, Response, Config, Shared> {
  const { seed, ...overrides } = options;
  return new Simulation(system, { ...calmOptions(), ...overrides, seed: parseSeed(seed ?? 1) }, init);
}

/** A simulation with every option drawn from the seed (swarm testing), faults included. */
export function createSwarmSimulation<State, Message, Request, Response, Config, Shared>(
  system: SimSystem<State, Message, Request, Response, Config, Shared>,
  seed: number | bigint | string,
  overrides: SimOverrides = {},
  init: SimulationInit = {},
): Simulation<State, Message, Request, Response, Config, Shared> {
  return new Simulation(system, swarmOptions(system as SimSystem, seed, overrides), init);
}

export interface RunOptions {
  readonly overrides?: SimOverrides;
  readonly script?: readonly ScriptedFault[];
  /** One line per event (`--trace`). */
  readonly trace?: (line: string) => void;
  /** Options, status lines and the result; default: silent. */
  readonly out?: (line: string) => void;
}

export interface SimRunResult {
  readonly ok: boolean;
  readonly seed: bigint;
  readonly options: SimOptions;
  readonly traceHash: string;
  readonly failure: SimFailure | null;
  readonly check: CheckOutcome | null;
  readonly stats: SimStats | null;
  /** Virtual time at the end of the run. */
  readonly simulatedMs: number;
}

/** Runs one seeded swarm run of `system`: safety phase, liveness phase, end check. */
export function runSwarm<State, Message, Request, Response, Config, Shared>(
  system: SimSystem<State, Message, Request, Response, Config, Shared>,
  seed: number | bigint | string,
  run: RunOptions = {},
): SimRunResult {
  const options = swarmOptions(system as SimSystem, seed, run.overrides);
  const out = run.out;
  if (out !== undefined) {
    out(`options:`);
    for (const line of formatOptions(options)) out(`  ${line}`);
  }
  let sim: Simulation<State, Message, Request, Response, Config, Shared> | null = null;
  let check: CheckOutcome | null = null;
  let failure: SimFailure | null = null;
  try {
    const init: SimulationInit = {
      ...(run.trace === undefined ? {} : { trace: run.trace }),
      ...(run.script === undefined ? {} : { script: run.script }),
    };
    sim = new Simulation(system, options, init);
    runSafety(sim, out);
    runLiveness(sim, out);
    sim.finish();
    check = runCheck(sim);
  } catch (error) {
    failure = asFailure(error, sim, system.name, options.seed);
  }
  return {
    ok: failure === null,
    seed: options.seed,
    options,
    traceHash: sim?.traceHash() ?? '',
    failure,
    check,
    stats: sim?.stats ?? null,
    simulatedMs: sim?.nowMs ?? 0,
  };
}

function runSafety<S, M, Rq, Rs, C, Sh>(
  sim: Simulation<S, M, Rq, Rs, C, Sh>,
  out: ((line: string) => void) | undefined,
) {
  const { safetyMs, statusEveryMs } = sim.options;
  const chunkMs = statusEveryMs > 0 ? statusEveryMs : safetyMs;
  while (sim.nowMs < safetyMs) {
    sim.runFor(Math.min(chunkMs, safetyMs - sim.nowMs));
    if (out !== undefined && statusEveryMs > 0) out(sim.statusLine());
  }
}

function runLiveness<S, M, Rq, Rs, C, Sh>(
  sim: Simulation<S, M, Rq, Rs, C, Sh>,
  out: ((line: string) => void) | undefined,
): void {
  const { livenessTicksMax, tickMs, statusEveryMs } = sim.options;
  sim.enterLiveness();
  const converged = () => sim.system.converged(sim.view, sim.shared);
  const budgetMs = livenessTicksMax * tickMs;
  const chunkMs = statusEveryMs > 0 ? statusEveryMs : budgetMs;
  const startMs = sim.nowMs;
  for (;;) {
    const leftMs = startMs + budgetMs - sim.nowMs;
    const done = sim.tryRunUntil(converged, { msMax: Math.min(chunkMs, Math.max(0, leftMs)) });
    if (out !== undefined && statusEveryMs > 0) out(sim.statusLine());
    if (done) return;
    if (leftMs <= chunkMs) break;
  }
  throw sim.fail('LIVENESS', null, `not converged within ${livenessTicksMax} ticks (${budgetMs} ms) of healing`);
}

function runCheck<S, M, Rq, Rs, C, Sh>(sim: Simulation<S, M, Rq, Rs, C, Sh>): CheckOutcome | null {
  const check = sim.system.workload.check;
  if (check === undefined) return null;
  let outcome: CheckOutcome;
  try {
    outcome = check(sim.shared);
  } catch (error) {
    throw sim.fail('WORKLOAD', null, `check threw: ${errorMessage(error)}`);
  }
  if (outcome.ok === false) throw sim.fail('CHECK', null, outcome.message);
  return outcome;
}

function asFailure(
  error: unknown,
  sim: { fail(code: 'STEP', node: null, message: string): SimFailure } | null,
  system: string,
  seed: bigint,
): SimFailure {
  if (error instanceof SimFailure) return error;
  if (sim !== null) return sim.fail('STEP', null, errorMessage(error));
  // The constructor itself threw (a bad option, a broken `init`): still a failure with a seed.
  assert(error !== undefined, 'asFailure: undefined error');
  return new SimFailure({ code: 'STEP', system, seed, timeMs: 0, node: null, message: errorMessage(error) });
}

/** One line for the end of a run. */
export function describeResult(result: SimRunResult): string {
  const events = result.stats?.events ?? 0;
  const head = `${(result.simulatedMs / 1000).toFixed(1)} s virtual, ${events} events`;
  if (result.failure !== null) return `FAILED after ${head}: ${result.failure.message}`;
  const check = result.check;
  let verdict = 'no end check';
  if (check !== null && check.ok === true) verdict = check.summary;
  else if (check !== null && check.ok === 'unknown') verdict = `check UNKNOWN: ${check.summary}`;
  return `ok: ${head}; ${verdict}`;
}
