/** Helpers of the real-process tests: RPC clients to nodes, the ring seen by walking successor pointers. */
import type { Cluster } from '@dsys/harness';
import { connect, type RpcConnection } from '@dsys/rpc';
import type { ChordResponse, NodeRef, StatusResponse } from '../../src/messages.js';
import { type ChordService, chordService } from '../../src/real/service.js';

export const text = new TextEncoder();
export const untext = new TextDecoder();

export class Clients {
  private readonly connections = new Map<string, RpcConnection<ChordService>>();

  stub(endpoint: string): RpcConnection<ChordService>['stub'] {
    let connection = this.connections.get(endpoint);
    if (connection === undefined) {
      connection = connect(chordService, endpoint, { timeoutMs: 5_000, retriesMax: 1 });
      this.connections.set(endpoint, connection);
    }
    return connection.stub;
  }

  /** Drops the connection to a node that was killed (the next call dials afresh). */
  async forget(endpoint: string): Promise<void> {
    const connection = this.connections.get(endpoint);
    this.connections.delete(endpoint);
    await connection?.close();
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.connections.values()].map((connection) => connection.close()));
    this.connections.clear();
  }

  async status(endpoint: string): Promise<StatusResponse | null> {
    try {
      const response: ChordResponse = await this.stub(endpoint).status({});
      return response.type === 'status' ? response : null;
    } catch (error) {
      // A node being killed or restarted does not answer: the caller waits and asks again.
      if (!(error instanceof Error)) throw error;
      return null;
    }
  }

  /**
   * The number of nodes on the cycle of successor pointers from `endpoint`, if it closes back on
   * `endpoint` (-1 otherwise): the ring as Chord itself sees it.
   */
  async ringSize(endpoint: string, nodesMax: number): Promise<number> {
    const seen = new Set<string>();
    let next: string | null = endpoint;
    while (next !== null && !seen.has(next) && seen.size <= nodesMax) {
      seen.add(next);
      const status: StatusResponse | null = await this.status(next);
      const successor: NodeRef | undefined = status?.vnodes[0]?.successors[0];
      next = successor === undefined ? null : `127.0.0.1:${successor.addr % 65536}`;
    }
    return next === endpoint ? seen.size : -1;
  }
}

/** The cluster node listening at a node address (Chord addresses are the nodes' endpoints). */
export function nodeAt(cluster: Cluster, ref: NodeRef): number {
  const endpoint = `127.0.0.1:${ref.addr % 65536}`;
  const id = cluster.ids.find((candidate) => cluster.endpoint(candidate) === endpoint);
  if (id === undefined) throw new Error(`no cluster node at ${endpoint}`);
  return id;
}

/** The key's replicas as a lookup through `endpoint` names them: the first `count` distinct nodes. */
export async function replicasOf(clients: Clients, cluster: Cluster, endpoint: string, key: string, count: number) {
  const response = await clients.stub(endpoint).lookup({ key });
  if (response.type !== 'lookup') throw new Error(`lookup ${key}: ${JSON.stringify(response)}`);
  const ids: number[] = [];
  for (const ref of response.successors) {
    const id = nodeAt(cluster, ref);
    if (!ids.includes(id)) ids.push(id);
    if (ids.length === count) break;
  }
  return ids;
}
