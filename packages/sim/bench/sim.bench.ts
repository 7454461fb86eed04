/**
 * Simulator speed (`npm run bench -w @dsys/sim [-- --quick]`):
 * - events/s driving the ABD register (5 nodes, 8 clients, no think time, 2% loss, 1..3 ms links):
 *   the whole loop per event: heap pop, network draws, the protocol's step and invariants, the
 *   global invariant, effects, trace-hash folding, and the clients recording a history;
 * - the same loop around an empty protocol (nodes that only tick), as the baseline: the simulator's
 *   own cost per event;
 * - simulated seconds per wall second for the ABD run.
 * The linearizability check is not included (it is @dsys/check's benchmark).
 */

import { abdSim } from '@dsys/abd';
import { median, quick, report, row } from '@dsys/benchkit';
import type { Protocol } from '@dsys/kit';
import { createSimulation, defineSimSystem, ratio, type SimOverrides, type SimSystem } from '../src/index.js';

const emptyProtocol: Protocol<{ ticks: number }, never, never, never, null> = {
  name: 'empty',
  init: () => ({ ticks: 0 }),
  step(state) {
    state.ticks++;
    return [];
  },
  invariants() {},
};

const emptySim = defineSimSystem({
  name: 'empty',
  description: 'nodes that only tick',
  protocol: emptyProtocol,
  config: () => null,
  workload: { init: () => null, client: () => ({ onStart() {}, onReply() {}, onTimer() {} }) },
  converged: () => true,
});

const busy: SimOverrides = {
  nodeCount: 5,
  clientCount: 8,
  thinkMsMax: 0,
  requestTimeoutMs: 200,
  latencyMsMin: 1,
  latencyMsMax: 3,
  latencyTailMsMean: 1,
  lossRatio: ratio(2, 100),
  diskLatencyMsMin: 0.1,
  diskLatencyMsMax: 0.5,
  opsMax: 10_000_000,
};

interface Measure {
  eventsPerSecond: number;
  simulatedSecondsPerSecond: number;
  events: number;
}

/**
 * Rates per second of CPU time of this process (user + system), not wall time: the simulator is
 * single-threaded, so this is "per core", and it is robust to other processes sharing the machine.
 * (GC helper threads count too, which makes the number slightly pessimistic.)
 */
function measure(system: SimSystem, overrides: SimOverrides, virtualMs: number): Measure {
  const sim = createSimulation(system, { ...overrides, seed: 1 });
  const before = process.cpuUsage();
  sim.runFor(virtualMs);
  const used = process.cpuUsage(before);
  const cpuSeconds = (used.user + used.system) / 1e6;
  return {
    eventsPerSecond: sim.stats.events / cpuSeconds,
    simulatedSecondsPerSecond: virtualMs / 1000 / cpuSeconds,
    events: sim.stats.events,
  };
}

function best(system: SimSystem, overrides: SimOverrides, virtualMs: number, runs: number): Measure {
  measure(system, overrides, virtualMs / 4); // warm up the JIT
  const samples = Array.from({ length: runs }, () => measure(system, overrides, virtualMs));
  const eventsPerSecond = median(samples.map((sample) => sample.eventsPerSecond));
  return {
    eventsPerSecond,
    simulatedSecondsPerSecond: median(samples.map((sample) => sample.simulatedSecondsPerSecond)),
    events: samples[0]!.events,
  };
}

const runs = quick ? 3 : 7;
const abd = best(abdSim as SimSystem, busy, quick ? 10_000 : 40_000, runs);
// 64 nodes ticking every ms: about as many events per virtual second as the ABD run.
const empty = best(emptySim as SimSystem, { nodeCount: 64, tickMs: 1 }, quick ? 10_000 : 40_000, runs);
console.log(`abd: ${abd.events} events per run; empty: ${empty.events} events per run`);

report('sim', [
  row(
    'abd register, 5 nodes, 8 clients',
    'events per CPU-second',
    'events/s',
    abd.eventsPerSecond,
    { name: 'empty protocol', value: empty.eventsPerSecond },
    true,
  ),
  row('abd register, 5 nodes, 8 clients', 'virtual s per CPU-second', 'x', abd.simulatedSecondsPerSecond, null, true),
  row('empty protocol, 64 nodes, 1 ms ticks', 'events per CPU-second', 'events/s', empty.eventsPerSecond, null, true),
]);
