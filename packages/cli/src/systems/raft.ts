/** `dsys raft` and `dsys kv`: the Raft key-value service (issue 4); the commands live in `@dsys/raft/real`. */
import { KV_HELP, kvCli, RAFT_HELP, raftCli, raftNodeEntry, raftStartUsage } from '@dsys/raft/real';
import { startLocalCluster } from '../cluster-up.js';
import type { Command } from '../command.js';
import type { SystemCluster, SystemEntry } from '../systems.js';
import { upCommand } from '../up.js';

const cluster: SystemCluster = {
  nodesDefault: 3,
  nodesMax: 9,
  basePortDefault: 7200,
  start: (options) => startLocalCluster({ entry: raftNodeEntry }, options),
  howToReach: (running) => {
    const endpoints = running.endpoints().join(',');
    return (
      `  try: npx dsys kv --endpoints ${endpoints} put greeting hello\n` +
      `       npx dsys kv --endpoints ${endpoints} get greeting\n` +
      `       npx dsys raft status --endpoints ${endpoints}`
    );
  },
};

/** A client subcommand whose flags `raftCli` parses itself (usage errors exit 64 there). */
function client(name: string, summary: string): Command {
  return { name, summary, details: RAFT_HELP, usageExitCode: 64, rawArgs: (argv) => raftCli([name, ...argv]) };
}

const command: Command = {
  name: 'raft',
  summary: 'Raft consensus: a replicated key-value service with exactly-once client sessions',
  details: RAFT_HELP,
  subcommands: [
    upCommand('raft', cluster),
    {
      name: 'start',
      summary: 'run one node in the foreground (flags below)',
      details: raftStartUsage(),
      rawArgs: (argv) => raftCli(['start', ...argv]),
    },
    client('status', "every node's role, term, commit index, applied index and members"),
    client('member', 'membership changes: add <id> (as a learner), promote <id>, remove <id>'),
    client('transfer-leader', 'hand leadership to voter <id>'),
  ],
};

export const raftSystem: SystemEntry = { name: 'raft', summary: command.summary, command, cluster };

export const kvCommand: Command = {
  name: 'kv',
  summary: 'get, put, del, cas, scan on a Raft key-value cluster (exit 0 done, 1 not done, 2 unknown)',
  details: KV_HELP,
  usageExitCode: 64,
  rawArgs: (argv) => kvCli(argv),
};
