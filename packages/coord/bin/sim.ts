/**
 * `npm run sim -w @dsys/coord -- [--seed N [--trace] | --seeds COUNT [--from INDEX]]`: the simulator's
 * CLI with the coordination service preselected. Without a seed it draws a fresh one and prints it.
 */
import { randomBytes } from 'node:crypto';
import { runSystemCli } from '@dsys/sim';
import { coordSim } from '../src/sim/system.js';

process.exitCode = await runSystemCli(coordSim, process.argv.slice(2), {
  command: 'npm run sim -w @dsys/coord --',
  wallClockMs: () => performance.now(),
  randomSeed: () => randomBytes(8).readBigUInt64BE(),
});
