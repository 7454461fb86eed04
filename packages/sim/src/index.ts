export { runSimCli, runSystemCli, type SimCliIo, seedForIndex } from './cli.js';
export { type CrashReport, DiskCorruption, type Recovery, SimDisk } from './disk.js';
export { EventQueue, SimEvent } from './event-queue.js';
export { SimFailure, type SimFailureCode, type SimFailureDetail } from './failure.js';
export { describeFault, drawFaults, type FaultAction, type ScriptedFault } from './faults.js';
export { type Endpoint, Network } from './network.js';
export {
  CLIENT_COUNT_MAX,
  calmOptions,
  drawSwarmOptions,
  formatOptions,
  formatRatio,
  minority,
  NEVER,
  NODE_COUNT_MAX,
  type Ratio,
  ratio,
  type SimOptions,
  type SimOptionsBase,
  type SimOverrides,
  type SwarmBounds,
  validateOptions,
} from './options.js';
export {
  createSimulation,
  createSwarmSimulation,
  describeResult,
  type RunOptions,
  runSwarm,
  type SimRunResult,
  swarmOptions,
} from './run.js';
export { type SimRequest, type SimStats, Simulation, type SimulationInit } from './simulation.js';
export {
  type CheckOutcome,
  type ClientActor,
  type ClientContext,
  type ClusterView,
  defineSimSystem,
  type NodeView,
  type Phase,
  type SimCodec,
  type SimSystem,
  type SimWorkload,
} from './system.js';
