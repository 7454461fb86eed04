/**
 * Branded primitive types keep an index, a count, a size and an id apart at compile time
 * at zero run-time cost: `LogIndex` cannot be passed where a `Term` is expected.
 */
declare const brand: unique symbol;
export type Brand<T, Name extends string> = T & { readonly [brand]: Name };

/** A protocol node (replica, peer, server) within one cluster. */
export type NodeId = Brand<number, 'NodeId'>;
/** A client of a cluster (sim workload actor or real connection). */
export type ClientId = Brand<number, 'ClientId'>;
/** A client-chosen id that matches a reply to its request. */
export type RequestId = Brand<number, 'RequestId'>;
/** Milliseconds, virtual or real. */
export type Ms = Brand<number, 'Ms'>;

export const NodeId = (value: number): NodeId => value as NodeId;
export const ClientId = (value: number): ClientId => value as ClientId;
export const RequestId = (value: number): RequestId => value as RequestId;
export const Ms = (value: number): Ms => value as Ms;
