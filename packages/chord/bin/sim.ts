/**
 * `npm run sim -w @dsys/chord -- [--seed N [--trace] | --seeds COUNT [--from INDEX]]`: the simulator's
 * CLI with Chord preselected. Without a seed it draws a fresh one and prints it.
 */
import { randomBytes } from 'node:crypto';
import { runSystemCli } from '@dsys/sim';
import { chordSim } from '../src/sim/system.js';

process.exitCode = await runSystemCli(chordSim, process.argv.slice(2), {
  wallClockMs: () => performance.now(),
  randomSeed: () => randomBytes(8).readBigUInt64LE(0),
  command: 'npm run sim -w @dsys/chord --',
});
