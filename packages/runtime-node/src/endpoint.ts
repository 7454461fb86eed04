/** `host:port` endpoints as the flags and the `ready:` line spell them (IPv6 as `[::1]:7001`). */

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export type EndpointParse = { ok: true; value: Endpoint } | { ok: false; error: string };

/** Parses `host:port`; `allowPortZero` accepts port 0 (listen on an ephemeral port). */
export function parseEndpoint(text: string, options: { allowPortZero?: boolean } = {}): EndpointParse {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/.exec(text.trim());
  if (match === null) return { ok: false, error: `expected host:port, got "${text}"` };
  const host = match[1] ?? match[2]!;
  const port = Number(match[3]);
  const portMin = options.allowPortZero === true ? 0 : 1;
  if (port < portMin || port > 65535) return { ok: false, error: `port ${port} out of range ${portMin}..65535` };
  return { ok: true, value: { host, port } };
}

export function formatEndpoint(endpoint: Endpoint): string {
  return endpoint.host.includes(':') ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}`;
}
