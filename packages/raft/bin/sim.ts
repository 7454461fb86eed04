/**
 * `npm run sim -w @dsys/raft -- [--seed N [--trace] | --seeds COUNT [--from INDEX]]`: the simulator's
 * CLI with the Raft KV system preselected. Without a seed it draws a fresh one and prints it.
 */
import { randomBytes } from 'node:crypto';
import { runSystemCli } from '@dsys/sim';
import { raftSim } from '../src/index.js';

process.exitCode = await runSystemCli(raftSim, process.argv.slice(2), {
  command: 'npm run sim -w @dsys/raft --',
  wallClockMs: () => performance.now(),
  randomSeed: () => randomBytes(8).readBigUInt64BE(),
});
