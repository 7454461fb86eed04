// In-process counter clusters on real sockets and real files: every node gets a forwarder as its
// address in everyone's peer map (so ports can be ephemeral), pointed at the node once it listens.
import { type Effect, type Event, NodeId } from '@dsys/kit';
import {
  type Endpoint,
  memoryLogger,
  type NodeLimits,
  type RunningNode,
  type StorageHooks,
  startNode,
} from '../../src/index.js';
import {
  type CounterMessage,
  type CounterRequest,
  type CounterResponse,
  type CounterState,
  counterProtocol,
  counterSchemas,
} from '../fixtures/counter-protocol.js';
import { TcpForwarder, tempDir, waitFor } from './util.js';

export type CounterNode = RunningNode<CounterState, CounterRequest, CounterResponse>;

export interface NodeSetup {
  readonly storageHooks?: StorageHooks;
  readonly onStep?: (
    event: Event<CounterMessage, CounterRequest>,
    effects: readonly Effect<CounterMessage, CounterResponse>[],
  ) => void;
  readonly limits?: Partial<NodeLimits>;
  /** false: listed as a peer but never started (its address leads nowhere). */
  readonly start?: boolean;
}

export interface InProcessCluster {
  readonly nodes: Map<number, CounterNode>;
  readonly logs: Map<number, Record<string, unknown>[]>;
  readonly forwarders: Map<number, TcpForwarder>;
  readonly dataDirs: Map<number, string>;
  node(id: number): CounterNode;
  close(): Promise<void>;
}

export async function startCluster(
  setups: readonly NodeSetup[],
  options: { gossipTicks?: number; tickMs?: number; metrics?: boolean } = {},
): Promise<InProcessCluster> {
  const ids = setups.map((_, index) => index + 1);
  const forwarders = new Map<number, TcpForwarder>();
  for (const id of ids) forwarders.set(id, await TcpForwarder.start());
  const peers = new Map<NodeId, Endpoint>(ids.map((id) => [NodeId(id), forwarders.get(id)!.endpoint]));
  const dirs = await Promise.all(ids.map((id) => tempDir(`node-${id}`)));
  const nodes = new Map<number, CounterNode>();
  const logs = new Map<number, Record<string, unknown>[]>();
  const dataDirs = new Map<number, string>(ids.map((id, index) => [id, dirs[index]!.path]));
  const cluster: InProcessCluster = {
    nodes,
    logs,
    forwarders,
    dataDirs,
    node: (id) => nodes.get(id)!,
    async close() {
      // A node a test stopped on purpose (fatal error) rejects close() with that error: already asserted.
      for (const node of nodes.values()) await node.close().catch(() => undefined);
      for (const forwarder of forwarders.values()) await forwarder.close();
      for (const dir of dirs) await dir.remove();
    },
  };
  try {
    for (const [index, setup] of setups.entries()) {
      const id = ids[index]!;
      if (setup.start === false) continue;
      const { logger, lines } = memoryLogger('debug', id);
      logs.set(id, lines);
      const node = await startNode({
        protocol: counterProtocol,
        schemas: counterSchemas,
        config: { gossipTicks: options.gossipTicks ?? 1_000_000 },
        id: NodeId(id),
        peers,
        clusterId: 'test',
        dataDir: dirs[index]!.path,
        listenPeer: { host: '127.0.0.1', port: 0 },
        listenClient: { host: '127.0.0.1', port: 0 },
        listenMetrics: options.metrics === true ? { host: '127.0.0.1', port: 0 } : null,
        tickMs: options.tickMs ?? 10,
        seed: id,
        logger,
        limits: { reconnectDelayMsMin: 10, reconnectDelayMsMax: 100, ...setup.limits },
        ...(setup.storageHooks === undefined ? {} : { storageHooks: setup.storageHooks }),
        ...(setup.onStep === undefined ? {} : { onStep: setup.onStep }),
      });
      nodes.set(id, node);
      forwarders.get(id)!.target = node.endpoints.peer;
    }
  } catch (error) {
    await cluster.close();
    throw error;
  }
  return cluster;
}

/** Waits until every started node's link to every other started node is up. */
export async function waitConnected(cluster: InProcessCluster): Promise<void> {
  const started = [...cluster.nodes.keys()];
  await waitFor('peer links up', () =>
    started.every((a) => started.every((b) => a === b || cluster.node(a).isPeerConnected(NodeId(b)))),
  );
}
