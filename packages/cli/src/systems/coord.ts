/**
 * `dsys coord`: the coordination service (ZooKeeper's semantics and wire protocol on our Raft).
 * `start` runs one ensemble member, `up` a local ensemble, and the client subcommands talk to any
 * server with the ZooKeeper protocol (our `ZkClient`; zkCli and other ZooKeeper clients work too).
 */
import { CreateMode, type Stat } from '@dsys/coord';
import { coordNodeEntry, coordStartUsage, runCoordMain, ZkClient, ZkError } from '@dsys/coord/real';
import { startLocalCluster } from '../cluster-up.js';
import { type Command, type Flags, stringFlag, UsageError } from '../command.js';
import type { SystemCluster, SystemEntry } from '../systems.js';
import { upCommand } from '../up.js';

const cluster: SystemCluster = {
  nodesDefault: 3,
  nodesMax: 9,
  // ZooKeeper clients default to port 2181: the ensemble's client ports are 2181, 2182, ...
  basePortDefault: 2181,
  start: (options) => startLocalCluster({ entry: coordNodeEntry }, options),
  howToReach: (running) =>
    `  try: npx dsys coord create /hello world --server ${running.endpoints().join(',')}\n` +
    `       npx dsys coord get /hello --server ${running.endpoints().join(',')}\n` +
    `       /usr/share/zookeeper/bin/zkCli.sh -server ${running.endpoints().join(',')}`,
};

const serverFlags = {
  server: {
    type: 'string' as const,
    value: 'LIST',
    description: 'ensemble client endpoints, host:port,... (the ready: line of `dsys coord up`)',
    default: '127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183',
  },
  timeout: { type: 'string' as const, value: 'MS', description: 'session timeout', default: '10000' },
};

function describeStat(stat: Stat): string {
  const hex = (value: number) => `0x${value.toString(16)}`;
  return [
    `cZxid = ${hex(stat.czxid)}`,
    `ctime = ${new Date(stat.ctime).toUTCString()}`,
    `mZxid = ${hex(stat.mzxid)}`,
    `mtime = ${new Date(stat.mtime).toUTCString()}`,
    `pZxid = ${hex(stat.pzxid)}`,
    `cversion = ${stat.cversion}`,
    `dataVersion = ${stat.version}`,
    `aclVersion = ${stat.aversion}`,
    `ephemeralOwner = ${hex(stat.ephemeralOwner)}`,
    `dataLength = ${stat.dataLength}`,
    `numChildren = ${stat.numChildren}`,
  ].join('\n');
}

/** Runs `body` with a connected client; ZooKeeper errors print their name and exit 1. */
async function withClient(
  flags: Flags,
  path: string,
  body: (client: ZkClient) => Promise<string | null>,
): Promise<number> {
  const connectString = stringFlag(flags, 'server', path);
  let client: ZkClient | null = null;
  try {
    client = await ZkClient.connect({
      connectString,
      sessionTimeoutMs: Number(flags.timeout),
      connectTimeoutMs: 10_000,
    });
    const text = await body(client);
    if (text !== null) process.stdout.write(`${text}\n`);
    return 0;
  } catch (error) {
    if (error instanceof ZkError) {
      process.stderr.write(`error: ${error.message}\n`);
      return 1;
    }
    throw error;
  } finally {
    await client?.close();
  }
}

function onePath(positionals: string[], path: string, count = 1): string[] {
  if (positionals.length !== count) throw new UsageError(path, `expected ${count === 1 ? '<path>' : '<path> <data>'}`);
  return positionals;
}

const command: Command = {
  name: 'coord',
  summary: "coordination service: ZooKeeper's semantics and wire protocol on Raft (zkCli works)",
  subcommands: [
    upCommand('coord', cluster),
    {
      name: 'start',
      summary: 'run one ensemble member in the foreground (flags below)',
      details: coordStartUsage(),
      rawArgs: (argv) => runCoordMain(argv).then(() => 0),
    },
    {
      name: 'ls',
      summary: 'list the children of a znode',
      positionals: '<path>',
      flags: serverFlags,
      usageExitCode: 64,
      run: (flags, positionals) => {
        const [path] = onePath(positionals, 'dsys coord ls');
        return withClient(
          flags,
          'dsys coord ls',
          async (client) => `[${(await client.getChildren(path!)).children.sort().join(', ')}]`,
        );
      },
    },
    {
      name: 'get',
      summary: 'print the data of a znode',
      positionals: '<path>',
      flags: { ...serverFlags, stat: { type: 'boolean' as const, description: 'print the stat too' } },
      usageExitCode: 64,
      run: (flags, positionals) => {
        const [path] = onePath(positionals, 'dsys coord get');
        return withClient(flags, 'dsys coord get', async (client) => {
          const { data, stat } = await client.getData(path!);
          const text = new TextDecoder().decode(data);
          return flags.stat === true ? `${text}\n${describeStat(stat)}` : text;
        });
      },
    },
    {
      name: 'set',
      summary: 'set the data of a znode',
      positionals: '<path> <data>',
      flags: {
        ...serverFlags,
        version: { type: 'string' as const, value: 'N', description: 'expected version', default: '-1' },
      },
      usageExitCode: 64,
      run: (flags, positionals) => {
        const [path, data] = onePath(positionals, 'dsys coord set', 2);
        return withClient(flags, 'dsys coord set', async (client) =>
          describeStat(await client.setData(path!, data!, Number(flags.version))),
        );
      },
    },
    {
      name: 'create',
      summary: 'create a znode (-e ephemeral, -s sequential); prints the created path',
      positionals: '<path> [data]',
      flags: {
        ...serverFlags,
        ephemeral: { type: 'boolean' as const, short: 'e', description: 'ephemeral (gone when this command exits)' },
        sequential: { type: 'boolean' as const, short: 's', description: 'append a 10-digit sequence number' },
        container: { type: 'boolean' as const, short: 'c', description: 'container node' },
      },
      usageExitCode: 64,
      run: (flags, positionals) => {
        if (positionals.length < 1 || positionals.length > 2)
          throw new UsageError('dsys coord create', 'expected <path> [data]');
        const ephemeral = flags.ephemeral === true;
        const sequential = flags.sequential === true;
        const mode =
          flags.container === true
            ? CreateMode.CONTAINER
            : ephemeral
              ? sequential
                ? CreateMode.EPHEMERAL_SEQUENTIAL
                : CreateMode.EPHEMERAL
              : sequential
                ? CreateMode.PERSISTENT_SEQUENTIAL
                : CreateMode.PERSISTENT;
        return withClient(
          flags,
          'dsys coord create',
          async (client) => `Created ${await client.create(positionals[0]!, positionals[1] ?? '', mode)}`,
        );
      },
    },
    {
      name: 'delete',
      summary: 'delete a znode',
      positionals: '<path>',
      flags: {
        ...serverFlags,
        version: { type: 'string' as const, value: 'N', description: 'expected version', default: '-1' },
      },
      usageExitCode: 64,
      run: (flags, positionals) => {
        const [path] = onePath(positionals, 'dsys coord delete');
        return withClient(flags, 'dsys coord delete', async (client) => {
          await client.delete(path!, Number(flags.version));
          return null;
        });
      },
    },
    {
      name: 'stat',
      summary: 'print the stat of a znode',
      positionals: '<path>',
      flags: serverFlags,
      usageExitCode: 64,
      run: (flags, positionals) => {
        const [path] = onePath(positionals, 'dsys coord stat');
        return withClient(flags, 'dsys coord stat', async (client) => {
          const stat = await client.exists(path!);
          if (stat === null) throw new ZkError(-101, path!);
          return describeStat(stat);
        });
      },
    },
    {
      name: 'watch',
      summary: 'wait for the next change of a znode (data, existence or children) and print it',
      positionals: '<path>',
      flags: serverFlags,
      usageExitCode: 64,
      run: (flags, positionals) => {
        const [path] = onePath(positionals, 'dsys coord watch');
        return withClient(flags, 'dsys coord watch', async (client) => {
          const names: Record<number, string> = {
            1: 'NodeCreated',
            2: 'NodeDeleted',
            3: 'NodeDataChanged',
            4: 'NodeChildrenChanged',
          };
          const event = await new Promise<{ type: number; path: string }>((resolve, reject) => {
            client.exists(path!, resolve).catch(reject);
            client.getChildren(path!, resolve).catch(() => undefined);
          });
          return `WatchedEvent type:${names[event.type] ?? event.type} path:${event.path}`;
        });
      },
    },
  ],
};

export const coordSystem: SystemEntry = { name: 'coord', summary: command.summary, command, cluster };
