/** `dsys sim`: seeded simulation runs of every registered system (the logic lives in @dsys/sim). */
import { randomBytes } from 'node:crypto';
import { abdSim } from '@dsys/abd';
import { chordSim } from '@dsys/chord';
import { coordSim } from '@dsys/coord';
import { raftSim } from '@dsys/raft';
import { runSimCli, type SimSystem } from '@dsys/sim';
import type { Command } from '../command.js';

/** Every system registered with the simulator; `dsys sim --list` prints their names. */
export const simSystems: readonly SimSystem[] = [
  abdSim,
  raftSim as SimSystem,
  chordSim as SimSystem,
  coordSim as SimSystem,
];

export const simCommand: Command = {
  name: 'sim',
  summary: 'run a system in the deterministic simulator: --list, <system> --seed N [--trace], <system> --seeds N',
  rawArgs: (argv) =>
    runSimCli([...simSystems], argv, {
      wallClockMs: () => performance.now(),
      randomSeed: () => randomBytes(8).readBigUInt64LE(0),
    }),
};
