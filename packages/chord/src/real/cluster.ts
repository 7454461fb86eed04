/**
 * A local Chord ring of real processes (for `dsys chord up`, `dsys up` and the real-process tests),
 * on @dsys/harness: node 1 creates the ring, every other node joins through node 1 (a restarted
 * node 1 joins through node 2). Each node listens on its harness *peer* address; Chord dials the
 * addresses it learns from the ring itself, so the harness's link proxies are off.
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
      const via = spec.id === 1 ? (spec.restarts > 0 && options.nodes > 1 ? 2 : null) : 1;
      if (via !== null) args.push('--join', formatEndpoint(spec.peers.get(via)!));
      return nodeCommand(CHORD_MAIN, args);
    },
  });
}
