/**
 * `EtcdClient`: a small etcd v3 client (gRPC over `node:http2`) for the gateway's tests and for the
 * etcd benchmark, which drives real etcd and a dsys cluster with this same code. One HTTP/2
 * connection per endpoint, calls multiplexed on it; each call goes to the endpoint it names, or to the
 * client's endpoints in turn (as etcd's round-robin balancer does). No retries: a failed call rejects
 * with a `GrpcError` carrying etcd's status code and message.
 */
import { GrpcChannel, GrpcError } from './grpc.js';
import {
  ETCD_METHODS,
  type PbDeleteRangeRequest,
  type PbDeleteRangeResponse,
  type PbMemberListResponse,
  type PbPutRequest,
  type PbPutResponse,
  type PbRangeRequest,
  type PbRangeResponse,
  type PbStatusResponse,
  type PbTxnRequest,
  type PbTxnResponse,
  pb,
} from './proto.js';

export { GrpcCode, GrpcError } from './grpc.js';

export interface EtcdClientOptions {
  /** Deadline of one call (sent as `grpc-timeout`). */
  readonly timeoutMs?: number;
}

const encoder = new TextEncoder();

/** Text keys and values become their UTF-8 bytes. */
export function etcdBytes(value: string | Uint8Array): Uint8Array {
  return typeof value === 'string' ? encoder.encode(value) : value;
}

/** The range end that selects every key starting with `prefix` (etcd's clientv3.GetPrefixRangeEnd). */
export function prefixRangeEnd(prefix: Uint8Array): Uint8Array {
  const end = Uint8Array.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  // Every byte is 0xff: no upper bound (every key from the prefix on).
  return new Uint8Array([0]);
}

export class EtcdClient {
  readonly endpoints: readonly string[];
  private readonly channels = new Map<string, GrpcChannel>();
  private readonly timeoutMs: number;
  private next = 0;

  constructor(endpoints: readonly string[], options: EtcdClientOptions = {}) {
    if (endpoints.length === 0) throw new RangeError('EtcdClient: no endpoints');
    this.endpoints = endpoints;
    this.timeoutMs = options.timeoutMs ?? 5_000;
  }

  private channel(endpoint: string | undefined): GrpcChannel {
    const target = endpoint ?? this.endpoints[this.next++ % this.endpoints.length]!;
    let channel = this.channels.get(target);
    if (channel === undefined) {
      channel = new GrpcChannel(target);
      this.channels.set(target, channel);
    }
    return channel;
  }

  private async call<T>(
    path: string,
    request: Uint8Array,
    decode: (bytes: Uint8Array) => T,
    endpoint: string | undefined,
  ): Promise<T> {
    const response = await this.channel(endpoint).call(path, request, this.timeoutMs);
    return decode(response);
  }

  range(request: PbRangeRequest, endpoint?: string): Promise<PbRangeResponse> {
    return this.call(ETCD_METHODS.range, pb.RangeRequest.encode(request), pb.RangeResponse.decode, endpoint);
  }

  /** The value of `key`, or null (a linearizable read unless `serializable`). */
  async get(key: string | Uint8Array, options: { serializable?: boolean; endpoint?: string } = {}) {
    const response = await this.range(
      { key: etcdBytes(key), serializable: options.serializable === true },
      options.endpoint,
    );
    return response.kvs?.[0]?.value ?? null;
  }

  put(request: PbPutRequest, endpoint?: string): Promise<PbPutResponse> {
    return this.call(ETCD_METHODS.put, pb.PutRequest.encode(request), pb.PutResponse.decode, endpoint);
  }

  deleteRange(request: PbDeleteRangeRequest, endpoint?: string): Promise<PbDeleteRangeResponse> {
    return this.call(
      ETCD_METHODS.deleteRange,
      pb.DeleteRangeRequest.encode(request),
      pb.DeleteRangeResponse.decode,
      endpoint,
    );
  }

  txn(request: PbTxnRequest, endpoint?: string): Promise<PbTxnResponse> {
    return this.call(ETCD_METHODS.txn, pb.TxnRequest.encode(request), pb.TxnResponse.decode, endpoint);
  }

  status(endpoint: string): Promise<PbStatusResponse> {
    return this.call(ETCD_METHODS.status, pb.StatusRequest.encode({}), pb.StatusResponse.decode, endpoint);
  }

  memberList(endpoint?: string): Promise<PbMemberListResponse> {
    return this.call(ETCD_METHODS.memberList, pb.MemberListRequest.encode({}), pb.MemberListResponse.decode, endpoint);
  }

  /** The endpoint whose member leads, by asking each for its status (null when none answers as leader). */
  async leaderEndpoint(): Promise<string | null> {
    for (const endpoint of this.endpoints) {
      try {
        const status = await this.status(endpoint);
        if (status.leader !== undefined && status.leader !== 0 && status.leader === status.header?.memberId) {
          return endpoint;
        }
      } catch (error) {
        if (!(error instanceof GrpcError)) throw error;
      }
    }
    return null;
  }

  close(): void {
    for (const channel of this.channels.values()) channel.close();
    this.channels.clear();
  }
}
