/**
 * Endpoints are `host:port` pairs on loopback. The harness only ever binds 127.0.0.1 (the repo rule
 * for tests), but keeps the host explicit so that formatted addresses are unambiguous.
 */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export const LOOPBACK = '127.0.0.1';

export function formatEndpoint(endpoint: Endpoint): string {
  return `${endpoint.host}:${endpoint.port}`;
}

/** Parses `host:port` (IPv4 or a name; no IPv6 brackets needed on loopback). Throws RangeError on bad text. */
export function parseEndpoint(text: string): Endpoint {
  const colon = text.lastIndexOf(':');
  const host = text.slice(0, colon);
  const portText = text.slice(colon + 1);
  if (colon <= 0 || !/^[0-9]{1,5}$/.test(portText)) throw new RangeError(`endpoint must be host:port, got "${text}"`);
  const port = Number(portText);
  if (port < 1 || port > 65535) throw new RangeError(`endpoint port out of range in "${text}"`);
  return { host, port };
}

/** `1=127.0.0.1:7001,2=127.0.0.1:7002`, ascending by id: the `--peers` flag format of dsys nodes. */
export function formatPeers(peers: ReadonlyMap<number, Endpoint>): string {
  return [...peers.entries()]
    .sort(([a], [b]) => a - b)
    .map(([id, endpoint]) => `${id}=${formatEndpoint(endpoint)}`)
    .join(',');
}
