export { AssertionError, assert, maybe, unreachable } from './assert.js';
export {
  type ArrayOptions,
  type BytesOptions,
  type Decoded,
  type DecodeError,
  DecodeFailure,
  decode,
  describeDecodeError,
  encode,
  fromJsonValue,
  type Infer,
  type InferStruct,
  type InferUnion,
  Reader,
  type Schema,
  type StringOptions,
  s,
  toJsonValue,
  utf8ByteLength,
  validate,
  Writer,
} from './codec.js';
export { crc32c } from './crc32c.js';
export { DsError, type ErrorDetail, errorMessage } from './errors.js';
export { TraceHasher } from './hash.js';
export { type Brand, ClientId, Ms, NodeId, RequestId } from './ids.js';
export {
  type ConfigOf,
  type Durable,
  type Effect,
  EMPTY_DURABLE,
  type Event,
  type MessageOf,
  type NodeContext,
  type Protocol,
  type RequestOf,
  type ResponseOf,
  type StateOf,
} from './protocol.js';
export {
  encodeRecordHeader,
  encodeRecords,
  RECORD_HEADER_BYTES,
  RECORD_PAYLOAD_BYTES_MAX,
  type ScanResult,
  scanRecords,
} from './record-log.js';
export { formatSeed, parseSeed, Rng } from './rng.js';
