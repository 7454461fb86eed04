/**
 * Where a Chord node lives. The kit's `NodeId` is a number; Chord needs to reach nodes it learns
 * about at run time (a successor list names nodes it never met), so the number must *be* the address:
 *
 * - `sim`: node k of the simulator, named `n<k>`;
 * - `ipv4`: an IPv4 address and TCP port packed as `ip * 2^16 + port` (48 bits, a safe integer),
 *   named `a.b.c.d:port`. The real runtime dials that endpoint; no directory service is needed.
 *
 * A node's ring identifiers are hashes of its name (ring.ts `nodeId`), so anyone can verify the
 * identifier a peer claims for an address.
 */
import type { NodeId } from '@dsys/kit';
import { NodeId as toNodeId } from '@dsys/kit';

export type Addressing = 'sim' | 'ipv4';

/** Simulator node ids are 1..SIM_NODE_MAX (the generic simulator's cap is lower; the experiment driver's is this). */
export const SIM_NODE_MAX = 1 << 20;

export function isValidAddress(addressing: Addressing, address: number): boolean {
  if (!Number.isSafeInteger(address) || address < 1) return false;
  if (addressing === 'sim') return address <= SIM_NODE_MAX;
  const port = address % 65536;
  return port !== 0 && address < 2 ** 48;
}

export function addressName(addressing: Addressing, address: NodeId): string {
  if (addressing === 'sim') return `n${address}`;
  const port = address % 65536;
  const ip = Math.floor(address / 65536);
  return `${(ip >>> 24) & 255}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}:${port}`;
}

/** Packs `host:port` (dotted IPv4 only) into an address; null when it is not one. */
export function ipv4Address(host: string, port: number): NodeId | null {
  const parts = host.split('.');
  if (parts.length !== 4 || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  let ip = 0;
  for (const part of parts) {
    if (!/^[0-9]{1,3}$/.test(part)) return null;
    const byte = Number(part);
    if (byte > 255) return null;
    ip = ip * 256 + byte;
  }
  return toNodeId(ip * 65536 + port);
}

/** The endpoint of an `ipv4` address. */
export function ipv4Endpoint(address: NodeId): { host: string; port: number } {
  const name = addressName('ipv4', address);
  const colon = name.lastIndexOf(':');
  return { host: name.slice(0, colon), port: Number(name.slice(colon + 1)) };
}
