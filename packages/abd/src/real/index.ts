/**
 * The real-process side of the ABD register: where its node entry point is, and a client that
 * reads and writes through any replica of a running cluster.
 */
import { fileURLToPath } from 'node:url';
import { DsError } from '@dsys/kit';
import { ClientError, NodeClient, parseEndpoint, runNodeMain } from '@dsys/runtime-node';
import { type AbdRequest, type AbdResponse, messageSchema, requestSchema, responseSchema } from '../messages.js';
import { ABD_CONFIG_DEFAULT, abdProtocol } from '../protocol.js';

/**
 * Runs one replica in this process: the same `abdProtocol` the simulator runs, hosted by runtime-node
 * over TCP with its durable log. Resolves once it serves; the process exits when it stops (SIGINT/SIGTERM).
 */
export function startAbdNode(argv: readonly string[]): Promise<void> {
  return runNodeMain({
    protocol: abdProtocol,
    schemas: { message: messageSchema, request: requestSchema, response: responseSchema },
    configFrom: () => ABD_CONFIG_DEFAULT,
    program: 'dsys abd start',
    argv: [...argv],
  });
}

/** Absolute path of the replica's entry point (run it with tsx, as the harness does). */
export const abdNodeEntry: string = fileURLToPath(new URL('./main.ts', import.meta.url));

export type AbdCallErrorDetail =
  /** Every endpoint refused or failed before the request was sent: it did not take effect. */
  | { readonly code: 'UNAVAILABLE'; readonly tried: readonly string[] }
  /** A replica took the request and then went silent: a write may or may not have happened. */
  | { readonly code: 'INDETERMINATE'; readonly endpoint: string; readonly reason: string }
  | { readonly code: 'REJECTED'; readonly endpoint: string; readonly reason: string };

export class AbdCallError extends DsError<AbdCallErrorDetail> {}

/**
 * Sends one request to the first replica that accepts a connection. ABD needs no leader: any replica
 * coordinates the two phases. A timeout after the request went out is reported as INDETERMINATE
 * (never retried: a retried write could land after a later one).
 */
export async function abdCall(
  endpoints: readonly string[],
  request: AbdRequest,
  options: { timeoutMs?: number } = {},
): Promise<AbdResponse> {
  const tried: string[] = [];
  for (const endpoint of endpoints) {
    const parsed = parseEndpoint(endpoint);
    if (!parsed.ok) throw new AbdCallError({ code: 'REJECTED', endpoint, reason: parsed.error });
    let client: NodeClient<AbdRequest, AbdResponse>;
    try {
      client = await NodeClient.connect(parsed.value, {
        request: requestSchema,
        response: responseSchema,
        connectTimeoutMs: 1000,
      });
    } catch (error) {
      if (!(error instanceof ClientError)) throw error;
      tried.push(endpoint);
      continue;
    }
    try {
      const response = await client.call(request, { timeoutMs: options.timeoutMs ?? 5000 });
      if (response.type === 'busy' || response.type === 'invalid') {
        const reason = response.type === 'busy' ? 'busy' : response.reason;
        throw new AbdCallError({ code: 'REJECTED', endpoint, reason });
      }
      return response;
    } catch (error) {
      if (error instanceof ClientError) {
        const code = error.indeterminate ? 'INDETERMINATE' : 'REJECTED';
        throw new AbdCallError({ code, endpoint, reason: error.message });
      }
      throw error;
    } finally {
      await client.close();
    }
  }
  throw new AbdCallError({ code: 'UNAVAILABLE', tried });
}
