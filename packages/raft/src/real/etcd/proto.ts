/**
 * The subset of etcd 3.4's v3 API that the gateway serves, as protobuf definitions for protobufjs.
 * Message names, field names and field numbers are etcd's own (api/etcdserverpb/rpc.proto and
 * api/mvccpb/kv.proto); only the messages of the served methods are declared, and the fields they
 * carry, so a real etcd client's bytes decode here and ours decode there.
 *
 * int64 fields decode to JS numbers (protobufjs without `Long`): revisions, counts and our member and
 * cluster ids stay far below 2^53. etcd's own member ids are random 64-bit numbers and lose their low
 * bits when the bench's client decodes them; nothing uses them.
 */
import protobuf from 'protobufjs';

// Numbers instead of Long objects for 64-bit fields (a process-wide protobufjs setting).
protobuf.util.Long = undefined as unknown as typeof protobuf.util.Long;
protobuf.configure();

const MVCC_PROTO = `
syntax = "proto3";
package mvccpb;

message KeyValue {
  bytes key = 1;
  int64 create_revision = 2;
  int64 mod_revision = 3;
  int64 version = 4;
  bytes value = 5;
  int64 lease = 6;
}
`;

const ETCD_PROTO = `
syntax = "proto3";
package etcdserverpb;

message ResponseHeader {
  uint64 cluster_id = 1;
  uint64 member_id = 2;
  int64 revision = 3;
  uint64 raft_term = 4;
}

message RangeRequest {
  enum SortOrder { NONE = 0; ASCEND = 1; DESCEND = 2; }
  enum SortTarget { KEY = 0; VERSION = 1; CREATE = 2; MOD = 3; VALUE = 4; }
  bytes key = 1;
  bytes range_end = 2;
  int64 limit = 3;
  int64 revision = 4;
  SortOrder sort_order = 5;
  SortTarget sort_target = 6;
  bool serializable = 7;
  bool keys_only = 8;
  bool count_only = 9;
  int64 min_mod_revision = 10;
  int64 max_mod_revision = 11;
  int64 min_create_revision = 12;
  int64 max_create_revision = 13;
}

message RangeResponse {
  ResponseHeader header = 1;
  repeated mvccpb.KeyValue kvs = 2;
  bool more = 3;
  int64 count = 4;
}

message PutRequest {
  bytes key = 1;
  bytes value = 2;
  int64 lease = 3;
  bool prev_kv = 4;
  bool ignore_value = 5;
  bool ignore_lease = 6;
}

message PutResponse {
  ResponseHeader header = 1;
  mvccpb.KeyValue prev_kv = 2;
}

message DeleteRangeRequest {
  bytes key = 1;
  bytes range_end = 2;
  bool prev_kv = 3;
}

message DeleteRangeResponse {
  ResponseHeader header = 1;
  int64 deleted = 2;
  repeated mvccpb.KeyValue prev_kvs = 3;
}

message RequestOp {
  oneof request {
    RangeRequest request_range = 1;
    PutRequest request_put = 2;
    DeleteRangeRequest request_delete_range = 3;
    TxnRequest request_txn = 4;
  }
}

message ResponseOp {
  oneof response {
    RangeResponse response_range = 1;
    PutResponse response_put = 2;
    DeleteRangeResponse response_delete_range = 3;
    TxnResponse response_txn = 4;
  }
}

message Compare {
  enum CompareResult { EQUAL = 0; GREATER = 1; LESS = 2; NOT_EQUAL = 3; }
  enum CompareTarget { VERSION = 0; CREATE = 1; MOD = 2; VALUE = 3; LEASE = 4; }
  CompareResult result = 1;
  CompareTarget target = 2;
  bytes key = 3;
  oneof target_union {
    int64 version = 4;
    int64 create_revision = 5;
    int64 mod_revision = 6;
    bytes value = 7;
    int64 lease = 8;
  }
  bytes range_end = 64;
}

message TxnRequest {
  repeated Compare compare = 1;
  repeated RequestOp success = 2;
  repeated RequestOp failure = 3;
}

message TxnResponse {
  ResponseHeader header = 1;
  bool succeeded = 2;
  repeated ResponseOp responses = 3;
}

message CompactionRequest {
  int64 revision = 1;
  bool physical = 2;
}

message CompactionResponse {
  ResponseHeader header = 1;
}

message StatusRequest {}

message StatusResponse {
  ResponseHeader header = 1;
  string version = 2;
  int64 dbSize = 3;
  uint64 leader = 4;
  uint64 raftIndex = 5;
  uint64 raftTerm = 6;
  uint64 raftAppliedIndex = 7;
  repeated string errors = 8;
  int64 dbSizeInUse = 9;
  bool isLearner = 10;
}

message Member {
  uint64 ID = 1;
  string name = 2;
  repeated string peerURLs = 3;
  repeated string clientURLs = 4;
  bool isLearner = 5;
}

message MemberListRequest {
  bool linearizable = 1;
}

message MemberListResponse {
  ResponseHeader header = 1;
  repeated Member members = 2;
}
`;

const root = new protobuf.Root();
protobuf.parse(MVCC_PROTO, root);
protobuf.parse(ETCD_PROTO, root);
root.resolveAll();

function type(name: string): protobuf.Type {
  return root.lookupType(name);
}

/** The decoded shapes (camelCase field names, as protobufjs gives them). */
export interface PbResponseHeader {
  clusterId?: number;
  memberId?: number;
  revision?: number;
  raftTerm?: number;
}
export interface PbKeyValue {
  key?: Uint8Array;
  createRevision?: number;
  modRevision?: number;
  version?: number;
  value?: Uint8Array;
  lease?: number;
}
export interface PbRangeRequest {
  key?: Uint8Array;
  rangeEnd?: Uint8Array;
  limit?: number;
  revision?: number;
  sortOrder?: number;
  sortTarget?: number;
  serializable?: boolean;
  keysOnly?: boolean;
  countOnly?: boolean;
  minModRevision?: number;
  maxModRevision?: number;
  minCreateRevision?: number;
  maxCreateRevision?: number;
}
export interface PbRangeResponse {
  header?: PbResponseHeader;
  kvs?: PbKeyValue[];
  more?: boolean;
  count?: number;
}
export interface PbPutRequest {
  key?: Uint8Array;
  value?: Uint8Array;
  lease?: number;
  prevKv?: boolean;
  ignoreValue?: boolean;
  ignoreLease?: boolean;
}
export interface PbPutResponse {
  header?: PbResponseHeader;
  prevKv?: PbKeyValue | null;
}
export interface PbDeleteRangeRequest {
  key?: Uint8Array;
  rangeEnd?: Uint8Array;
  prevKv?: boolean;
}
export interface PbDeleteRangeResponse {
  header?: PbResponseHeader;
  deleted?: number;
  prevKvs?: PbKeyValue[];
}
export interface PbRequestOp {
  requestRange?: PbRangeRequest | null;
  requestPut?: PbPutRequest | null;
  requestDeleteRange?: PbDeleteRangeRequest | null;
  requestTxn?: PbTxnRequest | null;
}
export interface PbResponseOp {
  responseRange?: PbRangeResponse | null;
  responsePut?: PbPutResponse | null;
  responseDeleteRange?: PbDeleteRangeResponse | null;
  responseTxn?: PbTxnResponse | null;
}
export interface PbCompare {
  result?: number;
  target?: number;
  key?: Uint8Array;
  version?: number | null;
  createRevision?: number | null;
  modRevision?: number | null;
  value?: Uint8Array | null;
  lease?: number | null;
  rangeEnd?: Uint8Array;
}
export interface PbTxnRequest {
  compare?: PbCompare[];
  success?: PbRequestOp[];
  failure?: PbRequestOp[];
}
export interface PbTxnResponse {
  header?: PbResponseHeader;
  succeeded?: boolean;
  responses?: PbResponseOp[];
}
export interface PbStatusResponse {
  header?: PbResponseHeader;
  version?: string;
  dbSize?: number;
  leader?: number;
  raftIndex?: number;
  raftTerm?: number;
  raftAppliedIndex?: number;
  errors?: string[];
  dbSizeInUse?: number;
  isLearner?: boolean;
}
export interface PbMember {
  ID?: number;
  name?: string;
  peerURLs?: string[];
  clientURLs?: string[];
  isLearner?: boolean;
}
export interface PbMemberListResponse {
  header?: PbResponseHeader;
  members?: PbMember[];
}

/** A protobuf message type with typed encode and decode (decode throws on malformed bytes). */
export interface MessageCodec<T> {
  encode(message: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

function codec<T>(name: string): MessageCodec<T> {
  const messageType = type(name);
  return {
    encode: (message) => messageType.encode(message as Record<string, unknown>).finish(),
    decode: (bytes) => messageType.decode(bytes) as unknown as T,
  };
}

export const pb = {
  RangeRequest: codec<PbRangeRequest>('etcdserverpb.RangeRequest'),
  RangeResponse: codec<PbRangeResponse>('etcdserverpb.RangeResponse'),
  PutRequest: codec<PbPutRequest>('etcdserverpb.PutRequest'),
  PutResponse: codec<PbPutResponse>('etcdserverpb.PutResponse'),
  DeleteRangeRequest: codec<PbDeleteRangeRequest>('etcdserverpb.DeleteRangeRequest'),
  DeleteRangeResponse: codec<PbDeleteRangeResponse>('etcdserverpb.DeleteRangeResponse'),
  TxnRequest: codec<PbTxnRequest>('etcdserverpb.TxnRequest'),
  TxnResponse: codec<PbTxnResponse>('etcdserverpb.TxnResponse'),
  CompactionRequest: codec<{ revision?: number; physical?: boolean }>('etcdserverpb.CompactionRequest'),
  CompactionResponse: codec<{ header?: PbResponseHeader }>('etcdserverpb.CompactionResponse'),
  StatusRequest: codec<Record<string, never>>('etcdserverpb.StatusRequest'),
  StatusResponse: codec<PbStatusResponse>('etcdserverpb.StatusResponse'),
  MemberListRequest: codec<{ linearizable?: boolean }>('etcdserverpb.MemberListRequest'),
  MemberListResponse: codec<PbMemberListResponse>('etcdserverpb.MemberListResponse'),
} as const;

/** gRPC method paths (`/<package>.<Service>/<Method>`). */
export const ETCD_METHODS = {
  range: '/etcdserverpb.KV/Range',
  put: '/etcdserverpb.KV/Put',
  deleteRange: '/etcdserverpb.KV/DeleteRange',
  txn: '/etcdserverpb.KV/Txn',
  compact: '/etcdserverpb.KV/Compact',
  status: '/etcdserverpb.Maintenance/Status',
  memberList: '/etcdserverpb.Cluster/MemberList',
} as const;

export const SORT_ORDER_NUMBERS = ['none', 'ascend', 'descend'] as const;
export const SORT_TARGET_NUMBERS = ['key', 'version', 'create', 'mod', 'value'] as const;
/** etcd's CompareResult numbers: EQUAL 0, GREATER 1, LESS 2, NOT_EQUAL 3. */
export const COMPARE_RESULT_NUMBERS = ['equal', 'greater', 'less', 'notEqual'] as const;
/** etcd's CompareTarget numbers: VERSION 0, CREATE 1, MOD 2, VALUE 3, LEASE 4. */
export const COMPARE_TARGET_NUMBERS = ['version', 'create', 'mod', 'value', 'lease'] as const;
