/**
 * Interface modules (Birrell & Nelson 1984, §2: "the list of procedure names, together with the types
 * of their arguments and results"). One `defineInterface` declaration per service gives:
 * - the TypeScript types of the client stub (`ClientOf<I>`) and of the server handlers (`HandlersOf<I>`);
 * - run-time validation and the binary encoding, from kit's `s.*` schemas;
 * - a canonical text per procedure and its fingerprint, which binding compares.
 *
 * The canonical text of a procedure is `<kind> <name>(<args>) -> <result>` plus ` idempotent`, where
 * `<args>`/`<result>` are kit `describe()` strings. Idempotency is part of it because the server's reply
 * cache and the client's retry policy must agree on it: a client that believes a procedure idempotent
 * retries it freely, which is only safe if the server agrees.
 */
import { type Infer, type Schema, utf8ByteLength } from '@dsys/kit';
import { sha256 } from '@noble/hashes/sha2.js';

export const PROCEDURE_NAME_BYTES_MAX = 128;
export const SERVICE_NAME_BYTES_MAX = 128;
export const PROCEDURES_MAX = 1024;
/** Fingerprints are the first 16 bytes of SHA-256: collisions need 2^64 work, ample for catching mistakes. */
export const FINGERPRINT_BYTES = 16;

export interface UnaryProcedure<A, R> {
  readonly kind: 'unary';
  readonly args: Schema<A>;
  readonly result: Schema<R>;
  /** Running it twice has the same effect as once: the client may retry it freely, the server caches no reply. */
  readonly idempotent: boolean;
}

export interface StreamProcedure<A, T> {
  readonly kind: 'stream';
  readonly args: Schema<A>;
  readonly item: Schema<T>;
}

// biome-ignore lint/suspicious/noExplicitAny: procedure maps are heterogeneous; each entry keeps its own types.
export type AnyProcedure = UnaryProcedure<any, any> | StreamProcedure<any, any>;
export type ProcedureMap = Record<string, AnyProcedure>;

export interface Interface<P extends ProcedureMap = ProcedureMap> {
  readonly name: string;
  readonly version: number;
  readonly procedures: P;
  /** Procedure names in declaration order; a procedure's position is its local index. */
  readonly names: readonly string[];
  /** Canonical text per procedure, by local index. */
  readonly descriptions: readonly string[];
  /** Fingerprint per procedure, by local index. */
  readonly fingerprints: readonly Uint8Array[];
  /** Fingerprint of the whole interface (sorted canonical texts). */
  readonly fingerprint: Uint8Array;
}

/** A unary procedure: one call, one result. Not idempotent unless said so. */
export function unary<A, R>(spec: { args: Schema<A>; result: Schema<R>; idempotent?: boolean }): UnaryProcedure<A, R> {
  return { kind: 'unary', args: spec.args, result: spec.result, idempotent: spec.idempotent ?? false };
}

/** A server-streaming procedure: one call, a flow-controlled sequence of items, then an end or an error. */
export function stream<A, T>(spec: { args: Schema<A>; item: Schema<T> }): StreamProcedure<A, T> {
  return { kind: 'stream', args: spec.args, item: spec.item };
}

const NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

export function describeProcedure(name: string, procedure: AnyProcedure): string {
  if (procedure.kind === 'stream') {
    return `stream ${name}(${procedure.args.describe()}) -> ${procedure.item.describe()}`;
  }
  const flag = procedure.idempotent ? ' idempotent' : '';
  return `unary ${name}(${procedure.args.describe()}) -> ${procedure.result.describe()}${flag}`;
}

export function fingerprintOf(text: string): Uint8Array {
  return sha256(new TextEncoder().encode(text)).subarray(0, FINGERPRINT_BYTES);
}

export function hex(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += bytes[i]!.toString(16).padStart(2, '0');
  return out;
}

/** Fingerprint of a whole interface from its canonical texts (order-independent). */
export function interfaceFingerprint(name: string, descriptions: readonly string[]): Uint8Array {
  return fingerprintOf(`service ${name}\n${[...descriptions].sort().join('\n')}`);
}

/**
 * Declares a service interface. Names must be identifiers; the version is informational (binding
 * compares procedures, so adding a procedure on the server keeps old clients binding).
 */
export function defineInterface<const P extends ProcedureMap>(spec: {
  name: string;
  version: number;
  procedures: P;
}): Interface<P> {
  const { name, version, procedures } = spec;
  if (!NAME.test(name) || utf8ByteLength(name) > SERVICE_NAME_BYTES_MAX) {
    throw new TypeError(`service name must be an identifier of at most ${SERVICE_NAME_BYTES_MAX} bytes, got "${name}"`);
  }
  if (!Number.isSafeInteger(version) || version < 0) throw new RangeError(`version must be a uint, got ${version}`);
  const names = Object.keys(procedures);
  if (names.length > PROCEDURES_MAX) throw new RangeError(`${names.length} procedures > max ${PROCEDURES_MAX}`);
  for (const procedure of names) {
    if (!NAME.test(procedure) || utf8ByteLength(procedure) > PROCEDURE_NAME_BYTES_MAX) {
      throw new TypeError(`procedure name must be an identifier, got "${procedure}"`);
    }
    if (procedure.startsWith('$')) throw new TypeError(`procedure names starting with $ are reserved: ${procedure}`);
  }
  const descriptions = names.map((procedure) => describeProcedure(procedure, procedures[procedure]!));
  return Object.freeze({
    name,
    version,
    procedures,
    names: Object.freeze(names),
    descriptions: Object.freeze(descriptions),
    fingerprints: Object.freeze(descriptions.map(fingerprintOf)),
    fingerprint: interfaceFingerprint(name, descriptions),
  });
}

// ---------------------------------------------------------------------------------------------
// Types derived from an interface: the "generated" stubs and skeletons.

export interface CallOptions {
  /** Overall deadline for this call, retries included (ms from now). Sent to the server, which enforces it. */
  readonly timeoutMs?: number;
  /** Aborting cancels the call: the promise rejects with CANCELLED and the server is told. */
  readonly signal?: AbortSignal;
}

export interface StreamOptions extends CallOptions {
  /** Bytes of items the server may send ahead of what this client has consumed. */
  readonly windowBytes?: number;
}

/** A server stream on the client: iterate it; `cancel()` (or leaving a `for await`) stops the server. */
export interface RpcStream<T> extends AsyncIterable<T> {
  cancel(): void;
}

/** What a handler knows about its call. */
export interface CallContext {
  /** Aborted when the client cancels, the deadline passes or the connection closes. */
  readonly signal: AbortSignal;
  /** Absolute deadline on the server's clock (ms), or Infinity. */
  readonly deadlineMs: number;
  /** The server session (one per bound client) that made the call. */
  readonly session: number;
}

/** The sending side of a server stream. */
export interface StreamSink<T> {
  /**
   * Sends one item. Resolves once the client has room for more (flow control); rejects with an
   * `RpcError` (CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE) once the stream is over for the client.
   */
  send(item: T): Promise<void>;
  /** True once the client cancelled or the connection closed. */
  readonly closed: boolean;
}

export type ClientOf<I extends Interface> = {
  readonly [K in keyof I['procedures']]: I['procedures'][K] extends UnaryProcedure<infer A, infer R>
    ? (args: A, options?: CallOptions) => Promise<R>
    : I['procedures'][K] extends StreamProcedure<infer A, infer T>
      ? (args: A, options?: StreamOptions) => RpcStream<T>
      : never;
};

export type HandlersOf<I extends Interface> = {
  readonly [K in keyof I['procedures']]: I['procedures'][K] extends UnaryProcedure<infer A, infer R>
    ? (args: A, context: CallContext) => R | Promise<R>
    : I['procedures'][K] extends StreamProcedure<infer A, infer T>
      ? (args: A, sink: StreamSink<T>, context: CallContext) => void | Promise<void>
      : never;
};

/** Argument type of procedure `K` of interface `I`. */
export type ArgsOf<I extends Interface, K extends keyof I['procedures']> = Infer<I['procedures'][K]['args']>;
