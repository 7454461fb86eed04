/** `dsys abd`: the ABD quorum register, the foundation's demo system. */
import { AbdCallError, abdCall, abdNodeEntry, startAbdNode } from '@dsys/abd/real';
import { startLocalCluster } from '../cluster-up.js';
import { type Command, stringFlag, UsageError } from '../command.js';
import type { SystemCluster, SystemEntry } from '../systems.js';
import { upCommand } from '../up.js';

const cluster: SystemCluster = {
  nodesDefault: 3,
  nodesMax: 9,
  basePortDefault: 7000,
  start: (options) => startLocalCluster({ entry: abdNodeEntry }, options),
  howToReach: (running) =>
    `  try: npx dsys abd write hello --endpoints ${running.endpoints().join(',')}\n` +
    `       npx dsys abd read --endpoints ${running.endpoints().join(',')}`,
};

const EXIT_DETAILS = `Exit codes: 0 the operation took effect; 1 it definitely did not (rejected, no replica reachable);
2 its outcome is unknown (a replica took it and went silent: a write may or may not have happened);
64 bad usage.`;

const endpointsFlag = {
  endpoints: {
    type: 'string' as const,
    value: 'LIST',
    description: 'replica client endpoints, as printed on the ready: line (host:port,...)',
  },
  timeout: { type: 'string' as const, value: 'MS', description: 'give up waiting after MS', default: '5000' },
};

function endpointsOf(flags: Record<string, unknown>, path: string): string[] {
  const list = stringFlag(flags as never, 'endpoints', path)
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  if (list.length === 0) throw new UsageError(path, '--endpoints is empty');
  return list;
}

async function callAndReport(run: () => Promise<string>): Promise<number> {
  try {
    process.stdout.write(`${await run()}\n`);
    return 0;
  } catch (error) {
    if (error instanceof AbdCallError) {
      process.stderr.write(`error: ${error.message}\n`);
      return error.detail.code === 'INDETERMINATE' ? 2 : 1;
    }
    throw error;
  }
}

const command: Command = {
  name: 'abd',
  summary: 'the ABD multi-writer atomic register (majority quorums, no leader): the demo system',
  subcommands: [
    upCommand('abd', cluster),
    {
      name: 'start',
      summary: 'run one replica in the foreground (see --help for its flags)',
      rawArgs: (argv) => startAbdNode(argv).then(() => 0),
    },
    {
      name: 'read',
      summary: 'read the register through any replica (prints the value as JSON, null if never written)',
      flags: endpointsFlag,
      details: EXIT_DETAILS,
      usageExitCode: 64,
      run: (flags) =>
        callAndReport(async () => {
          const response = await abdCall(
            endpointsOf(flags, 'dsys abd read'),
            { type: 'read' },
            {
              timeoutMs: Number(flags.timeout),
            },
          );
          return JSON.stringify(response.type === 'read' ? response.value : null);
        }),
    },
    {
      name: 'write',
      summary: 'write a value through any replica',
      positionals: '<value>',
      flags: endpointsFlag,
      details: EXIT_DETAILS,
      usageExitCode: 64,
      run: (flags, positionals) => {
        const path = 'dsys abd write';
        if (positionals.length !== 1) throw new UsageError(path, 'expected exactly one <value>');
        return callAndReport(async () => {
          await abdCall(
            endpointsOf(flags, path),
            { type: 'write', value: positionals[0]! },
            {
              timeoutMs: Number(flags.timeout),
            },
          );
          return 'ok';
        });
      },
    },
  ],
};

export const abdSystem: SystemEntry = { name: 'abd', summary: command.summary, command, cluster };
