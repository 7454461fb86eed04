/**
 * A local Chord ring of real processes (for `dsys chord up`, `dsys up` and the real-process tests),
 * on @dsys/harness: node 1 creates the ring, every other node joins through any of the others (node 1
 * first; a restarted node 1 through the others). Each node keeps its items in its harness data
 * directory (fsynced, reloaded on restart). Each node listens on its harness *peer* address; Chord
 * dials the addresses it learns from the ring itself, so the harness's link proxies are off.
 */
import { fileURLToPath } from 'node:url';
import { type Cluster, formatEndpoint, nodeCommand, startCluster } from '@dsys/harness';

export interface ChordClusterOptions {
  readonly nodes: number;
  /** Fixed ports: node i listens on basePort + 100 + i - 1 (the harness layout's peer ports). */
  readonly basePort?: number;
  readonly dataDir?: string;
  readonly vnodes?: number;
  readonly replicas?: number;
  readonly successors?: number;
  readonly tickMs?: number;
  readonly readyTimeoutMs?: number;
}

export const CHORD_MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

export async function startChordCluster(options: ChordClusterOptions): Promise<Cluster> {
  const extra: string[] = [];
  if (options.vnodes !== undefined) extra.push('--vnodes', String(options.vnodes));
  if (options.replicas !== undefined) extra.push('--replicas', String(options.replicas));
  if (options.successors !== undefined) extra.push('--successors', String(options.successors));
  if (options.tickMs !== undefined) extra.push('--tick-ms', String(options.tickMs));
  return startCluster({
    nodes: options.nodes,
    proxies: false,
    ...(options.basePort === undefined ? {} : { basePort: options.basePort }),
    ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
    readyTimeoutMs: options.readyTimeoutMs ?? 30_000,
    command: (spec) => {
      const args = ['--host', spec.peerAddress.host, '--port', String(spec.peerAddress.port), ...extra];
      args.push('--data-dir', spec.dataDir);
      // Every other node, node 1 first: a restarted node can join while any of them is a member.
      const others = [...spec.peers.keys()].filter((id) => id !== spec.id).sort((a, b) => a - b);
      const creates = spec.id === 1 && spec.restarts === 0;
      if (!creates && others.length > 0) {
        args.push('--join', others.map((id) => formatEndpoint(spec.peers.get(id)!)).join(','));
      }
      return nodeCommand(CHORD_MAIN, args);
    },
  });
}
