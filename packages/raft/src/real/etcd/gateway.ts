/**
 * The etcd v3 API gateway of a real node: etcd's gRPC services (the subset below) on their own port,
 * each call turned into the node's `etcdRange` / `etcdTxn` requests (`server.request`), so that etcdctl
 * and etcd's client libraries work against a dsys Raft cluster.
 *
 * Served: KV.Range (a key, a range or a prefix, limit, sort, revision filters, count/keys only;
 * linearizable through ReadIndex by default, `serializable` from the member's own state), KV.Put
 * (prev_kv, ignore_value, ignore_lease), KV.DeleteRange (prev_kv), KV.Txn (compares on VALUE, VERSION,
 * CREATE, MOD, LEASE with EQUAL, NOT_EQUAL, GREATER, LESS, over a key or a range; then/else of range,
 * put, delete and nested txn), KV.Compact (a no-op: only the newest revision is kept),
 * Maintenance.Status, Cluster.MemberList. Not served (UNIMPLEMENTED): Watch, Lease, Auth, member
 * changes, snapshots, alarms, defragmentation. Any member takes writes: a follower forwards them to
 * its leader (etcd's proposal forwarding) and answers once the write applied locally.
 *
 * Errors use etcd's status codes and messages (etcd's api/v3rpc/rpctypes): "etcdserver: no leader"
 * (UNAVAILABLE), "etcdserver: request timed out" (UNAVAILABLE, outcome unknown), "etcdserver: key is
 * not provided" (INVALID_ARGUMENT), "etcdserver: mvcc: required revision has been compacted"
 * (OUT_OF_RANGE), "etcdserver: requested lease not found" (NOT_FOUND: there are no leases), ...
 */
import { type NodeId, NodeId as toNodeId } from '@dsys/kit';
import { type Endpoint, formatEndpoint, type Logger } from '@dsys/runtime-node';
import {
  type Compare,
  type EtcdOp,
  type EtcdOpResult,
  type EtcdTxn,
  type KeyValue,
  type RangeQuery,
  TXN_DEPTH_MAX,
  TXN_OPS_MAX,
} from '../../kv/etcd-schema.js';
import { KEY_BYTES_MAX, VALUE_BYTES_MAX } from '../../kv/limits.js';
import type { KvRequest, KvResponse } from '../../kv/schema.js';
import type { RaftServer } from '../server.js';
import { GrpcCode, GrpcError, type GrpcServer, startGrpcServer, type UnaryHandler } from './grpc.js';
import {
  COMPARE_RESULT_NUMBERS,
  COMPARE_TARGET_NUMBERS,
  ETCD_METHODS,
  type PbCompare,
  type PbDeleteRangeRequest,
  type PbKeyValue,
  type PbMember,
  type PbPutRequest,
  type PbRangeRequest,
  type PbRequestOp,
  type PbResponseHeader,
  type PbResponseOp,
  type PbTxnRequest,
  pb,
  SORT_ORDER_NUMBERS,
  SORT_TARGET_NUMBERS,
} from './proto.js';

/** What Maintenance.Status reports as the member's version: the etcd API level, and who serves it. */
export const ETCD_API_VERSION = '3.4.0-dsys';
/** etcd's --max-request-bytes default. */
export const ETCD_REQUEST_BYTES_MAX = 1.5 * 1024 * 1024;
/** A call without its own deadline (etcd's request timeout is 5 s plus two election timeouts). */
const DEFAULT_TIMEOUT_MS = 7_000;

export interface EtcdGatewayOptions {
  readonly server: RaftServer;
  readonly listen: Endpoint;
  /** The cluster id string (runtime-node's `--cluster-id`); the numeric cluster_id is a hash of it. */
  readonly clusterId: string;
  /** Every node's peer address (etcd's peer URLs in MemberList). */
  readonly peers: ReadonlyMap<NodeId, Endpoint>;
  /** The etcd gateway address of each member, where known (client URLs in MemberList); this one's is added. */
  readonly clientEndpoints?: ReadonlyMap<NodeId, string>;
  readonly logger: Logger;
}

export interface EtcdGateway {
  readonly endpoint: Endpoint;
  close(): Promise<void>;
}

/** etcd's cluster_id is a 64-bit number; ours is FNV-1a of the cluster id string, kept below 2^53. */
export function etcdClusterId(clusterId: string): number {
  let high = 0xcbf29ce4;
  let low = 0x84222325;
  for (const byte of Buffer.from(clusterId, 'utf8')) {
    low ^= byte;
    // 64-bit multiply by the FNV prime 0x100000001b3, in two 32-bit halves.
    const lowProduct = low * 0x1b3;
    high = (high * 0x1b3 + low * 0x100 + Math.floor(lowProduct / 0x1_0000_0000)) >>> 0;
    low = lowProduct >>> 0;
  }
  return (high & 0x1f_ffff) * 0x1_0000_0000 + low;
}

export async function startEtcdGateway(options: EtcdGatewayOptions): Promise<EtcdGateway> {
  const gateway = new Gateway(options);
  const grpc: GrpcServer = await startGrpcServer({
    listen: options.listen,
    methods: gateway.methods(),
    logger: options.logger,
    requestBytesMax: ETCD_REQUEST_BYTES_MAX,
    defaultTimeoutMs: DEFAULT_TIMEOUT_MS,
  });
  gateway.self = `http://${formatEndpoint(grpc.endpoint)}`;
  return { endpoint: grpc.endpoint, close: () => grpc.close() };
}

class Gateway {
  private readonly options: EtcdGatewayOptions;
  private readonly server: RaftServer;
  private readonly clusterId: number;
  self = '';

  constructor(options: EtcdGatewayOptions) {
    this.options = options;
    this.server = options.server;
    this.clusterId = etcdClusterId(options.clusterId);
  }

  methods(): Map<string, UnaryHandler> {
    return new Map<string, UnaryHandler>([
      [ETCD_METHODS.range, (bytes) => this.range(bytes)],
      [ETCD_METHODS.put, (bytes) => this.put(bytes)],
      [ETCD_METHODS.deleteRange, (bytes) => this.deleteRange(bytes)],
      [ETCD_METHODS.txn, (bytes) => this.txn(bytes)],
      [ETCD_METHODS.compact, (bytes) => this.compact(bytes)],
      [ETCD_METHODS.status, () => this.status()],
      [ETCD_METHODS.memberList, () => this.memberList()],
    ]);
  }

  private header(revision: number, term: number): PbResponseHeader {
    return { clusterId: this.clusterId, memberId: this.server.id, revision, raftTerm: term };
  }

  private async ask<K extends 'etcdRange' | 'etcdTxn'>(
    request: KvRequest,
    kind: K,
  ): Promise<Extract<KvResponse, { type: K }>> {
    let response: KvResponse;
    try {
      response = await this.server.request(request);
    } catch (error) {
      // The node's own deadline passed: the outcome is unknown, as with etcd's request timeout.
      this.options.logger.debug('etcd request failed in the node', { error });
      throw new GrpcError(GrpcCode.UNAVAILABLE, 'etcdserver: request timed out');
    }
    if (response.type === kind) return response as Extract<KvResponse, { type: K }>;
    if (response.type === 'error') throw grpcErrorOf(response);
    throw new GrpcError(GrpcCode.INTERNAL, `unexpected ${response.type} answer`);
  }

  private async range(bytes: Buffer): Promise<Uint8Array> {
    const request = decodeOr(() => pb.RangeRequest.decode(bytes));
    const query = rangeQueryOf(request);
    if (query.key.length === 0) throw invalidArgument('etcdserver: key is not provided');
    const response = await this.ask(
      { type: 'etcdRange', query, serializable: request.serializable === true },
      'etcdRange',
    );
    return pb.RangeResponse.encode({
      header: this.header(response.revision, response.term),
      kvs: response.result.kvs.map(pbKeyValue),
      more: response.result.more,
      count: response.result.count,
    });
  }

  private async put(bytes: Buffer): Promise<Uint8Array> {
    const request = decodeOr(() => pb.PutRequest.decode(bytes));
    const txn: EtcdTxn = { compare: [], success: [putOpOf(request)], failure: [] };
    const response = await this.ask({ type: 'etcdTxn', txn, serializable: false }, 'etcdTxn');
    const result = response.responses[0];
    if (result?.type !== 'put') throw new GrpcError(GrpcCode.INTERNAL, 'put answered without a put result');
    return pb.PutResponse.encode({
      header: this.header(response.revision, response.term),
      prevKv: result.prevKv === null ? null : pbKeyValue(result.prevKv),
    });
  }

  private async deleteRange(bytes: Buffer): Promise<Uint8Array> {
    const request = decodeOr(() => pb.DeleteRangeRequest.decode(bytes));
    const txn: EtcdTxn = { compare: [], success: [deleteOpOf(request)], failure: [] };
    const response = await this.ask({ type: 'etcdTxn', txn, serializable: false }, 'etcdTxn');
    const result = response.responses[0];
    if (result?.type !== 'deleteRange') throw new GrpcError(GrpcCode.INTERNAL, 'delete answered without a result');
    return pb.DeleteRangeResponse.encode({
      header: this.header(response.revision, response.term),
      deleted: result.deleted,
      prevKvs: result.prevKvs.map(pbKeyValue),
    });
  }

  private async txn(bytes: Buffer): Promise<Uint8Array> {
    const request = decodeOr(() => pb.TxnRequest.decode(bytes));
    const txn = txnOf(request, 1);
    const response = await this.ask({ type: 'etcdTxn', txn, serializable: false }, 'etcdTxn');
    return pb.TxnResponse.encode({
      header: this.header(response.revision, response.term),
      succeeded: response.succeeded,
      responses: response.responses.map(pbResponseOp),
    });
  }

  /** Compaction: only the newest revision is ever kept, so any revision up to it is compacted already. */
  private async compact(bytes: Buffer): Promise<Uint8Array> {
    const request = decodeOr(() => pb.CompactionRequest.decode(bytes));
    const { revision, term } = this.server.node.inspect((state) => ({
      revision: state.machine.revision,
      term: state.core.term,
    }));
    if ((request.revision ?? 0) > revision) {
      throw new GrpcError(GrpcCode.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision');
    }
    return pb.CompactionResponse.encode({ header: this.header(revision, term) });
  }

  private async status(): Promise<Uint8Array> {
    const id = this.server.id;
    const status = this.server.node.inspect((state) => ({
      term: state.core.term,
      leader: state.core.leader,
      commit: state.core.log.committed,
      applied: state.appliedIndex,
      revision: state.machine.revision,
      bytes: state.machine.store.bytesInUse,
      learner: state.core.status().config.learners.includes(id),
    }));
    return pb.StatusResponse.encode({
      header: this.header(status.revision, status.term),
      version: ETCD_API_VERSION,
      dbSize: status.bytes,
      leader: status.leader ?? 0,
      raftIndex: status.commit,
      raftTerm: status.term,
      raftAppliedIndex: status.applied,
      errors: [],
      dbSizeInUse: status.bytes,
      isLearner: status.learner,
    });
  }

  private async memberList(): Promise<Uint8Array> {
    const { config, revision, term } = this.server.node.inspect((state) => ({
      config: state.core.status().config,
      revision: state.machine.revision,
      term: state.core.term,
    }));
    const ids = [...new Set([...config.voters, ...config.votersOutgoing, ...config.learners])].sort((a, b) => a - b);
    const members: PbMember[] = ids.map((id) => this.member(id, config.learners.includes(id)));
    return pb.MemberListResponse.encode({ header: this.header(revision, term), members });
  }

  private member(id: NodeId, isLearner: boolean): PbMember {
    const peer = this.options.peers.get(toNodeId(id));
    const client = id === this.server.id ? this.self : this.options.clientEndpoints?.get(id);
    return {
      ID: id,
      name: `n${id}`,
      peerURLs: peer === undefined ? [] : [`http://${formatEndpoint(peer)}`],
      clientURLs:
        client === undefined || client === '' ? [] : [client.startsWith('http') ? client : `http://${client}`],
      isLearner,
    };
  }
}

// ------------------------------------------------------------------------------------------------
// Protobuf to the node's requests

const EMPTY = new Uint8Array(0);

function decodeOr<T>(decode: () => T): T {
  try {
    return decode();
  } catch (error) {
    throw new GrpcError(GrpcCode.INTERNAL, `grpc: error unmarshalling request: ${(error as Error).message}`);
  }
}

function invalidArgument(message: string): GrpcError {
  return new GrpcError(GrpcCode.INVALID_ARGUMENT, message);
}

/** protobufjs leaves absent bytes fields as an empty default that need not be a Uint8Array. */
function bytesOf(value: Uint8Array | null | undefined, bytesMax: number): Uint8Array {
  if (!(value instanceof Uint8Array)) return EMPTY;
  if (value.length > bytesMax) throw invalidArgument('etcdserver: request is too large');
  return value;
}

/** int64 fields as the kit's unsigned integers: negatives are "none" (etcd treats <= 0 so). */
function unsignedOf(value: number | null | undefined): number {
  if (typeof value !== 'number' || !(value > 0)) return 0;
  return Math.min(value, Number.MAX_SAFE_INTEGER);
}

/** Compare operands as the kit's signed integers (|n| < 2^52). */
function signedOf(value: number | null | undefined): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) return 0;
  const bound = 2 ** 52 - 1;
  return Math.max(-bound, Math.min(bound, Math.trunc(value)));
}

function enumOf<const T extends readonly string[]>(values: T, number: number | undefined, field: string): T[number] {
  const value = values[number ?? 0];
  if (value === undefined) throw invalidArgument(`etcdserver: unknown ${field} ${number}`);
  return value;
}

export function rangeQueryOf(request: PbRangeRequest): RangeQuery {
  return {
    key: bytesOf(request.key, KEY_BYTES_MAX),
    rangeEnd: bytesOf(request.rangeEnd, KEY_BYTES_MAX),
    limit: unsignedOf(request.limit),
    revision: unsignedOf(request.revision),
    sortOrder: enumOf(SORT_ORDER_NUMBERS, request.sortOrder, 'sort order'),
    sortTarget: enumOf(SORT_TARGET_NUMBERS, request.sortTarget, 'sort target'),
    keysOnly: request.keysOnly === true,
    countOnly: request.countOnly === true,
    minModRevision: unsignedOf(request.minModRevision),
    maxModRevision: unsignedOf(request.maxModRevision),
    minCreateRevision: unsignedOf(request.minCreateRevision),
    maxCreateRevision: unsignedOf(request.maxCreateRevision),
  };
}

/** etcd's checkPutRequest, then the put. */
function putOpOf(request: PbPutRequest): EtcdOp {
  const key = bytesOf(request.key, KEY_BYTES_MAX);
  const value = bytesOf(request.value, VALUE_BYTES_MAX);
  if (key.length === 0) throw invalidArgument('etcdserver: key is not provided');
  if (request.ignoreValue === true && value.length !== 0) throw invalidArgument('etcdserver: value is provided');
  if (request.ignoreLease === true && (request.lease ?? 0) !== 0) {
    throw invalidArgument('etcdserver: lease is provided');
  }
  if ((request.lease ?? 0) !== 0) throw new GrpcError(GrpcCode.NOT_FOUND, 'etcdserver: requested lease not found');
  return {
    type: 'put',
    key,
    value,
    prevKv: request.prevKv === true,
    ignoreValue: request.ignoreValue === true,
    ignoreLease: request.ignoreLease === true,
  };
}

function deleteOpOf(request: PbDeleteRangeRequest): EtcdOp {
  const key = bytesOf(request.key, KEY_BYTES_MAX);
  if (key.length === 0) throw invalidArgument('etcdserver: key is not provided');
  return {
    type: 'deleteRange',
    key,
    rangeEnd: bytesOf(request.rangeEnd, KEY_BYTES_MAX),
    prevKv: request.prevKv === true,
  };
}

function compareOf(compare: PbCompare): Compare {
  const target = enumOf(COMPARE_TARGET_NUMBERS, compare.target, 'compare target');
  const operand =
    target === 'value'
      ? { type: 'value' as const, operand: bytesOf(compare.value, VALUE_BYTES_MAX) }
      : {
          type: target,
          operand: signedOf(
            target === 'version'
              ? compare.version
              : target === 'create'
                ? compare.createRevision
                : target === 'mod'
                  ? compare.modRevision
                  : compare.lease,
          ),
        };
  return {
    result: enumOf(COMPARE_RESULT_NUMBERS, compare.result, 'compare result'),
    target: operand,
    key: bytesOf(compare.key, KEY_BYTES_MAX),
    rangeEnd: bytesOf(compare.rangeEnd, KEY_BYTES_MAX),
  };
}

function requestOpOf(op: PbRequestOp, depth: number): EtcdOp {
  if (op.requestRange != null) {
    const query = rangeQueryOf(op.requestRange);
    if (query.key.length === 0) throw invalidArgument('etcdserver: key is not provided');
    return { type: 'range', ...query };
  }
  if (op.requestPut != null) return putOpOf(op.requestPut);
  if (op.requestDeleteRange != null) return deleteOpOf(op.requestDeleteRange);
  if (op.requestTxn != null) return { type: 'txn', txn: txnOf(op.requestTxn, depth + 1) };
  throw invalidArgument('etcdserver: a txn operation names no request');
}

export function txnOf(request: PbTxnRequest, depth: number): EtcdTxn {
  if (depth > TXN_DEPTH_MAX) throw invalidArgument(`etcdserver: txns nested deeper than ${TXN_DEPTH_MAX} levels`);
  const compare = request.compare ?? [];
  const success = request.success ?? [];
  const failure = request.failure ?? [];
  if (compare.length > TXN_OPS_MAX || success.length > TXN_OPS_MAX || failure.length > TXN_OPS_MAX) {
    throw invalidArgument('etcdserver: too many operations in txn request');
  }
  return {
    compare: compare.map(compareOf),
    success: success.map((op) => requestOpOf(op, depth)),
    failure: failure.map((op) => requestOpOf(op, depth)),
  };
}

// ------------------------------------------------------------------------------------------------
// The node's answers to protobuf

function pbKeyValue(kv: KeyValue): PbKeyValue {
  return {
    key: kv.key,
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
    value: kv.value,
  };
}

function pbResponseOp(result: EtcdOpResult): PbResponseOp {
  switch (result.type) {
    case 'range':
      return { responseRange: { kvs: result.kvs.map(pbKeyValue), more: result.more, count: result.count } };
    case 'put':
      return { responsePut: { prevKv: result.prevKv === null ? null : pbKeyValue(result.prevKv) } };
    case 'deleteRange':
      return { responseDeleteRange: { deleted: result.deleted, prevKvs: result.prevKvs.map(pbKeyValue) } };
    case 'txn':
      return { responseTxn: { succeeded: result.succeeded, responses: result.responses.map(pbResponseOp) } };
  }
}

/** The node's typed errors as etcd's gRPC errors (etcd's api/v3rpc/rpctypes/error.go). */
export function grpcErrorOf(error: Extract<KvResponse, { type: 'error' }>): GrpcError {
  switch (error.code) {
    case 'NOT_LEADER':
      return new GrpcError(GrpcCode.UNAVAILABLE, 'etcdserver: no leader');
    case 'LEADER_CHANGED':
      return new GrpcError(GrpcCode.UNAVAILABLE, 'etcdserver: leader changed');
    case 'TIMED_OUT':
      return new GrpcError(GrpcCode.UNAVAILABLE, 'etcdserver: request timed out');
    case 'BUSY':
      return new GrpcError(GrpcCode.RESOURCE_EXHAUSTED, 'etcdserver: too many requests');
    case 'BAD_REQUEST':
      return new GrpcError(GrpcCode.INVALID_ARGUMENT, `etcdserver: ${error.message}`);
    case 'KEY_NOT_FOUND':
      return new GrpcError(GrpcCode.INVALID_ARGUMENT, 'etcdserver: key not found');
    case 'COMPACTED':
      return new GrpcError(GrpcCode.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted');
    case 'FUTURE_REV':
      return new GrpcError(GrpcCode.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision');
    case 'REFUSED':
      return new GrpcError(GrpcCode.FAILED_PRECONDITION, `etcdserver: ${error.message}`);
    case 'SESSION_EXPIRED':
    case 'SEQ_STALE':
      return new GrpcError(GrpcCode.INTERNAL, `etcdserver: ${error.message}`);
  }
}
