/**
 * A Raft key-value cluster inside the test process: N real nodes (runtime-node hosts with durable
 * logs in a temp dir, TCP between them, an RPC server each) on loopback. Faster to start than
 * processes; a "crash" here is `stop` (a graceful close), so kill -9 belongs to the process tests.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allocatePorts, waitFor } from '@dsys/harness';
import { NodeId } from '@dsys/kit';
import { type KvConfigInput, kvConfig } from '@dsys/raft';
import { KvClient, type RaftServer, startRaftServer } from '@dsys/raft/real';
import { Logger } from '@dsys/runtime-node';

export interface TestCluster {
  readonly ids: readonly number[];
  /** Client endpoints in node id order (fixed across restarts). */
  readonly endpoints: readonly string[];
  readonly dataDir: string;
  server(id: number): RaftServer | null;
  /** Graceful stop (flushes the log). */
  stop(id: number): Promise<void>;
  /** Starts a stopped node again from its data directory, on the same ports. */
  start(id: number): Promise<void>;
  /** Waits until some running node reports itself leader; returns its id. */
  leader(timeoutMs?: number): Promise<number>;
  close(): Promise<void>;
}

export interface TestClusterOptions {
  readonly nodes: number;
  readonly config?: KvConfigInput;
  readonly tickMs?: number;
  /** Nodes started outside the configuration (they wait to be added). */
  readonly joining?: readonly number[];
}

export async function startTestCluster(options: TestClusterOptions): Promise<TestCluster> {
  const ids = Array.from({ length: options.nodes }, (_, i) => i + 1);
  const ports = await allocatePorts(2 * options.nodes);
  const peerPort = (id: number) => ports[id - 1]!;
  const clientPort = (id: number) => ports[options.nodes + id - 1]!;
  const peers = new Map(ids.map((id) => [NodeId(id), { host: '127.0.0.1', port: peerPort(id) }]));
  const dataDir = await mkdtemp(join(tmpdir(), 'dsys-raft-test-'));
  const joining = new Set(options.joining ?? []);
  const voters = ids.filter((id) => !joining.has(id)).map(NodeId);
  const servers = new Map<number, RaftServer>();
  const start = async (id: number) => {
    const server = await startRaftServer({
      id: NodeId(id),
      peers,
      dataDir: join(dataDir, `node-${id}`),
      listenPeer: { host: '127.0.0.1', port: peerPort(id) },
      listenClient: { host: '127.0.0.1', port: clientPort(id) },
      config: kvConfig({
        batchRequests: true,
        ...options.config,
        initialVoters: voters,
        raft: { electionTicks: 20, heartbeatTicks: 2, ...options.config?.raft },
      }),
      tickMs: options.tickMs ?? 10,
      logger: new Logger({ level: 'error', node: id }),
    });
    servers.set(id, server);
  };
  await Promise.all(ids.map(start));
  const endpoints = ids.map((id) => `127.0.0.1:${clientPort(id)}`);
  const probe = new KvClient(endpoints, { attemptTimeoutMs: 500 });
  return {
    ids,
    endpoints,
    dataDir,
    server: (id) => servers.get(id) ?? null,
    async stop(id) {
      const server = servers.get(id);
      servers.delete(id);
      await server?.close();
    },
    start,
    async leader(timeoutMs = 20_000) {
      return waitFor(
        async () => {
          for (const status of await probe.statusAll()) {
            if (status.ok && status.status.role === 'leader' && servers.has(status.status.node))
              return status.status.node;
          }
          return null;
        },
        { description: 'a leader', timeoutMs },
      );
    },
    async close() {
      await probe.close();
      await Promise.all([...servers.keys()].map(async (id) => servers.get(id)?.close()));
      servers.clear();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
