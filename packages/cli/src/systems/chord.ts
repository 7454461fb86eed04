/** `dsys chord`: the Chord DHT (the command logic lives in @dsys/chord/real). */
import { chordCli, startChordCluster } from '@dsys/chord/real';
import type { Command } from '../command.js';
import type { SystemCluster, SystemEntry } from '../systems.js';

const cluster: SystemCluster = {
  nodesDefault: 4,
  nodesMax: 64,
  basePortDefault: 7400,
  start: (options) =>
    startChordCluster({
      nodes: options.nodes,
      ...(options.basePort === 0 ? {} : { basePort: options.basePort }),
      dataDir: options.dataDir,
    }),
  howToReach: (running) => {
    const first = running.endpoints()[0];
    return `  try: npx dsys chord put greeting hello --node ${first}\n       npx dsys chord ring --node ${first}`;
  },
};

const command: Command = {
  name: 'chord',
  summary: 'the Chord DHT: consistent hashing, finger tables, stabilization, a replicated key-value store',
  rawArgs: (argv) => chordCli(argv),
};

export const chordSystem: SystemEntry = { name: 'chord', summary: command.summary, command, cluster };
