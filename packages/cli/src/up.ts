/**
 * `dsys <system> up` and `dsys up`: local clusters of real processes in the foreground. Every node is
 * stopped by PID on SIGINT/SIGTERM; a node that dies on its own stops the group with exit code 1.
 */
import { type NamedCluster, runClustersForeground } from '@dsys/harness';
import { defaultDataDir } from './cluster-up.js';
import { type Command, type Flags, intFlag, optionalString, UsageError } from './command.js';
import type { SystemCluster, SystemEntry } from './systems.js';

const PORT_MAX = 65535 - 200;

export function upCommand(system: string, cluster: SystemCluster): Command {
  return {
    name: 'up',
    summary: `start a local ${system} cluster of real processes; prints 'ready: <endpoints>', Ctrl-C stops it`,
    flags: {
      nodes: { type: 'string', value: 'N', description: 'number of nodes', default: String(cluster.nodesDefault) },
      'base-port': {
        type: 'string',
        value: 'P',
        description: 'node i serves clients on P+i-1 and peers on P+100+i-1; 0 picks free ports',
        default: String(cluster.basePortDefault),
      },
      'data-dir': {
        type: 'string',
        value: 'DIR',
        description: `node data under DIR/node-<i>`,
        default: `./.data/${system}`,
      },
    },
    run: async (flags) => {
      const path = `dsys ${system} up`;
      const options = upOptions(flags, path, cluster, system);
      process.stderr.write(`${path}: starting ${options.nodes} nodes (data in ${options.dataDir})\n`);
      const started = await cluster.start(options);
      return runClustersForeground([{ name: '', cluster: started, howToReach: cluster.howToReach(started) }]);
    },
  };
}

function upOptions(flags: Flags, path: string, cluster: SystemCluster, system: string) {
  const nodes = intFlag(flags, 'nodes', path, { min: 1, max: cluster.nodesMax });
  const basePort = intFlag(flags, 'base-port', path, { min: 0, max: PORT_MAX });
  if (basePort !== 0 && basePort < 1024) throw new UsageError(path, '--base-port must be 0 or at least 1024');
  const dataDir = optionalString(flags, 'data-dir') ?? defaultDataDir(system);
  return { nodes, basePort, dataDir: dataDir === `./.data/${system}` ? defaultDataDir(system) : dataDir };
}

/** `dsys up`: every system that runs as real processes, each on its default ports. */
export function upAllCommand(systems: readonly SystemEntry[]): Command {
  const runnable = systems.filter((entry) => entry.cluster !== undefined);
  return {
    name: 'up',
    summary: `start every system as a local cluster (${runnable.map((entry) => entry.name).join(', ')}); Ctrl-C stops all`,
    flags: {
      'data-dir': { type: 'string', value: 'DIR', description: 'data under DIR/<system>/node-<i>', default: './.data' },
      'port-offset': {
        type: 'string',
        value: 'K',
        description: "added to each system's default base port (to run two at once)",
        default: '0',
      },
    },
    run: async (flags) => {
      const offset = intFlag(flags, 'port-offset', 'dsys up', { min: 0, max: 20000 });
      const root = optionalString(flags, 'data-dir') ?? './.data';
      const started: NamedCluster[] = [];
      try {
        for (const entry of runnable) {
          const cluster = entry.cluster!;
          process.stderr.write(`dsys up: starting ${entry.name} (${cluster.nodesDefault} nodes)\n`);
          const running = await cluster.start({
            nodes: cluster.nodesDefault,
            basePort: cluster.basePortDefault + offset,
            dataDir: `${root}/${entry.name}`,
          });
          started.push({ name: entry.name, cluster: running, howToReach: cluster.howToReach(running) });
        }
      } catch (error) {
        await Promise.all(started.map(({ cluster }) => cluster.stopAll()));
        throw error;
      }
      return runClustersForeground(started);
    },
  };
}
