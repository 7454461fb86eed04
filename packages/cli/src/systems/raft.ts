/** `dsys raft` and `dsys kv`: the Raft key-value service (issue 4); the commands live in `@dsys/raft/real`. */

import type { Cluster, NodeSpec } from '@dsys/harness';
import { KV_HELP, kvCli, RAFT_HELP, raftCli, raftNodeEntry, raftStartUsage } from '@dsys/raft/real';
import { startLocalCluster, type UpOptions } from '../cluster-up.js';
import type { Command } from '../command.js';
import type { SystemCluster, SystemEntry } from '../systems.js';
import { upCommand } from '../up.js';

/** The etcd v3 gateway of node i listens this far above its client port (7250.. by default). */
const ETCD_PORT_OFFSET = 50;

/**
 * Each node serves the etcd v3 API next to its RPC port: on client port + 50 with fixed ports (so
 * every member can name the others in MemberList), on an ephemeral port with --base-port 0.
 */
function etcdArgs(node: NodeSpec, options: UpOptions): string[] {
  if (options.basePort === 0) return ['--etcd-listen', '127.0.0.1:0'];
  const port = (id: number) => options.basePort + ETCD_PORT_OFFSET + id - 1;
  const members = Array.from({ length: options.nodes }, (_, i) => `${i + 1}=127.0.0.1:${port(i + 1)}`);
  return ['--etcd-listen', `127.0.0.1:${port(node.id)}`, '--etcd-endpoints', members.join(',')];
}

/** The gateways' addresses, from each node's `listening: ... etcd=HOST:PORT` line. */
function etcdEndpoints(running: Cluster): string[] {
  return running.endpoints().flatMap((_, i) => {
    const line = running
      .logTail(i + 1)
      .findLast((text) => text.startsWith('listening: '))
      ?.match(/ etcd=(\S+)/);
    return line === undefined || line === null ? [] : [line[1]!];
  });
}

const cluster: SystemCluster = {
  nodesDefault: 3,
  nodesMax: 9,
  basePortDefault: 7200,
  start: (options) => startLocalCluster({ entry: raftNodeEntry, extraArgs: etcdArgs }, options),
  howToReach: (running) => {
    const endpoints = running.endpoints().join(',');
    const etcd = etcdEndpoints(running).join(',');
    return (
      `  try: npx dsys kv --endpoints ${endpoints} put greeting hello\n` +
      `       npx dsys kv --endpoints ${endpoints} get greeting\n` +
      `       npx dsys raft status --endpoints ${endpoints}\n` +
      `  etcd v3 API (etcdctl 3.4, etcd client libraries): ${etcd}\n` +
      `       ETCDCTL_API=3 etcdctl --endpoints ${etcd} get greeting\n` +
      `       ETCDCTL_API=3 etcdctl --endpoints ${etcd} endpoint status -w table`
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
