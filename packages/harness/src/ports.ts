/**
 * Loopback port allocation.
 *
 * Two schemes:
 * - `allocatePorts(n)`: the kernel picks free ports (bind to port 0). All n listeners are held open
 *   together so the n ports are distinct, then closed so the node processes can bind them. Between that
 *   close and the node's own bind another process could take a port; on a test machine that is rare,
 *   and it shows up as a node failing to become ready with EADDRINUSE in its log tail.
 * - `basePortLayout(base, n)`: fixed ports for `dsys <system> up --base-port P`, so that client
 *   addresses are predictable: node i (1-based) serves clients on P+i-1 and peers on P+100+i-1.
 *   `assertPortsFree` checks them first so a clash is reported before any process starts.
 */
import { createServer, type Server } from 'node:net';
import { LOOPBACK } from './endpoint.js';

/** Peer ports sit this far above client ports in the base-port layout, which caps it at this many nodes. */
export const BASE_PORT_PEER_OFFSET = 100;

export interface NodePorts {
  readonly clientPort: number;
  readonly peerPort: number;
}

function listen(port: number, host: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ port, host, exclusive: true }, () => {
      server.removeListener('error', reject);
      resolve(server);
    });
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
}

function boundPort(server: Server): number {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new TypeError('server is not bound to a TCP port');
  return address.port;
}

/** `count` distinct ports that were free a moment ago. */
export async function allocatePorts(count: number, host: string = LOOPBACK): Promise<number[]> {
  if (!Number.isSafeInteger(count) || count < 0) throw new RangeError(`count must be a non-negative integer: ${count}`);
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) servers.push(await listen(0, host));
    return servers.map(boundPort);
  } finally {
    await Promise.all(servers.map(close));
  }
}

/** The fixed layout of `--base-port`: node i serves clients on base+i-1 and peers on base+100+i-1. */
export function basePortLayout(basePort: number, nodeCount: number): NodePorts[] {
  if (!Number.isSafeInteger(nodeCount) || nodeCount < 1 || nodeCount > BASE_PORT_PEER_OFFSET) {
    throw new RangeError(`node count must be 1..${BASE_PORT_PEER_OFFSET} with a base port, got ${nodeCount}`);
  }
  const top = basePort + BASE_PORT_PEER_OFFSET + nodeCount - 1;
  if (!Number.isSafeInteger(basePort) || basePort < 1024 || top > 65535) {
    throw new RangeError(`base port must leave room for ports ${basePort}..${top} within 1024..65535`);
  }
  const layout: NodePorts[] = [];
  for (let i = 0; i < nodeCount; i++) {
    layout.push({ clientPort: basePort + i, peerPort: basePort + BASE_PORT_PEER_OFFSET + i });
  }
  return layout;
}

/** Throws an Error naming the first port that cannot be bound right now. */
export async function assertPortsFree(ports: readonly number[], host: string = LOOPBACK): Promise<void> {
  for (const port of ports) {
    let server: Server;
    try {
      server = await listen(port, host);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
      throw new Error(`port ${host}:${port} is not available (${code})`, { cause: error });
    }
    await close(server);
  }
}
