/**
 * Loopback port allocation.
 *
 * Two schemes:
 * - `allocatePorts(n)`: n distinct ports that are free now. All n listeners are held open together so
 *   the ports are distinct, then closed so the node processes can bind them. Between that close and
 *   the node's own bind another process could take a port. The ports are drawn at random from below
 *   the kernel's ephemeral range (`ip_local_port_range`), because every outgoing connection on the
 *   machine takes its local port from that range: a test suite that opens thousands of connections
 *   while it starts clusters would otherwise, now and then, have a client socket land on a port a node
 *   was about to bind (the node then exits with EADDRINUSE). `startCluster` also retries on that error.
 * - `basePortLayout(base, n)`: fixed ports for `dsys <system> up --base-port P`, so that client
 *   addresses are predictable: node i (1-based) serves clients on P+i-1 and peers on P+100+i-1.
 *   `assertPortsFree` checks them first so a clash is reported before any process starts.
 */
import { readFileSync } from 'node:fs';
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

/** Ports below this are left alone: well-known services and dsys's own `--base-port` defaults. */
const LOWEST_ALLOCATED_PORT = 20_000;

/** The first port of the kernel's ephemeral range, or null when it cannot be read (not Linux). */
function ephemeralRangeStart(): number | null {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const port = Number(low);
    return Number.isSafeInteger(port) && port > 0 ? port : null;
  } catch {
    return null;
  }
}

/** Tries random ports in [low, high) until one binds; null after `attempts` tries. */
async function listenOnRandomPort(low: number, high: number, host: string, attempts: number): Promise<Server | null> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low));
    try {
      return await listen(port, host);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EADDRINUSE' && code !== 'EACCES') throw error;
    }
  }
  return null;
}

/** `count` distinct ports that were free a moment ago (outside the ephemeral range where possible). */
export async function allocatePorts(count: number, host: string = LOOPBACK): Promise<number[]> {
  if (!Number.isSafeInteger(count) || count < 0) throw new RangeError(`count must be a non-negative integer: ${count}`);
  const ephemeralStart = ephemeralRangeStart();
  const roomBelow = ephemeralStart !== null && ephemeralStart - LOWEST_ALLOCATED_PORT >= 1000;
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = roomBelow ? await listenOnRandomPort(LOWEST_ALLOCATED_PORT, ephemeralStart, host, 50) : null;
      servers.push(server ?? (await listen(0, host)));
    }
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
