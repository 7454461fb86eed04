/**
 * Starting a system's local cluster of real processes, shared by `dsys <system> up` and `dsys up`:
 * the harness allocates ports (fixed from --base-port, or ephemeral with --base-port 0), builds each
 * node's standard runtime-node flags, and waits for every node's `ready:` line.
 */
import { join, resolve } from 'node:path';
import { type Cluster, formatEndpoint, formatPeers, type NodeSpec, nodeCommand, startCluster } from '@dsys/harness';

export interface UpOptions {
  readonly nodes: number;
  /** 0: ephemeral ports. */
  readonly basePort: number;
  readonly dataDir: string;
}

export interface ClusterRecipe {
  /** Absolute path of the node entry point (a runtime-node `runNodeMain` program). */
  readonly entry: string;
  /** Extra flags for every node, after the standard ones. */
  extraArgs?(node: NodeSpec, options: UpOptions): string[];
}

export function standardNodeArgs(node: NodeSpec): string[] {
  return [
    '--id',
    String(node.id),
    '--peers',
    formatPeers(node.peers),
    '--listen-peer',
    formatEndpoint(node.peerAddress),
    '--listen-client',
    formatEndpoint(node.clientAddress),
    '--data-dir',
    node.dataDir,
  ];
}

export function startLocalCluster(recipe: ClusterRecipe, options: UpOptions): Promise<Cluster> {
  return startCluster({
    nodes: options.nodes,
    dataDir: resolve(options.dataDir),
    keepDataDir: true,
    proxies: false,
    ...(options.basePort === 0 ? {} : { basePort: options.basePort }),
    readyTimeoutMs: 30_000,
    command: (node) =>
      nodeCommand(recipe.entry, [...standardNodeArgs(node), ...(recipe.extraArgs?.(node, options) ?? [])]),
  });
}

export function defaultDataDir(system: string): string {
  return join(process.cwd(), '.data', system);
}
