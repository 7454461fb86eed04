/**
 * The command line of one node of a local cluster, from the addresses a cluster runner allocated
 * (the harness's `NodeSpec`, `dsys raft up`). Structural types, so that this module does not depend on
 * the harness.
 */
import { type Endpoint, formatEndpoint } from '@dsys/runtime-node';

export interface RaftNodeRecipe {
  readonly id: number;
  readonly peerAddress: Endpoint;
  readonly clientAddress: Endpoint;
  readonly dataDir: string;
  /** Where this node dials every node (itself included): link proxies in tests. */
  readonly peers: ReadonlyMap<number, Endpoint>;
}

/** Standard runtime-node flags plus Raft flags (`extra`, e.g. `['--election-ticks', '20']`). */
export function raftNodeArgs(node: RaftNodeRecipe, extra: readonly string[] = []): string[] {
  const peers = [...node.peers]
    .sort(([a], [b]) => a - b)
    .map(([id, endpoint]) => `${id}=${formatEndpoint(endpoint)}`)
    .join(',');
  return [
    ...['--id', String(node.id), '--peers', peers],
    ...['--listen-peer', formatEndpoint(node.peerAddress), '--listen-client', formatEndpoint(node.clientAddress)],
    ...['--data-dir', node.dataDir],
    ...extra,
  ];
}
