/**
 * ZooKeeper's client wire format (jute binary records, zookeeper.jute; big-endian, as Java's
 * DataOutput): the connect handshake, request headers and bodies, reply headers and bodies, watch
 * notifications. Translates between the wire and this package's `Op` / `Result` values, so the TCP
 * adapter (`real/zk-server.ts`) and our own client (`real/zk-client.ts`) stay thin.
 *
 * Record layouts used (zookeeper.jute):
 *   ConnectRequest  {int protocolVersion; long lastZxidSeen; int timeOut; long sessionId; buffer passwd; [boolean readOnly]}
 *   ConnectResponse {int protocolVersion; int timeOut; long sessionId; buffer passwd; [boolean readOnly]}
 *   RequestHeader   {int xid; int type}          ReplyHeader {int xid; long zxid; int err}
 *   Stat {long czxid, mzxid, ctime, mtime; int version, cversion, aversion; long ephemeralOwner;
 *         int dataLength, numChildren; long pzxid}
 *   WatcherEvent {int type; int state; ustring path}   MultiHeader {int type; boolean done; int err}
 * A `buffer` or `ustring` is an int length (-1: null) then the bytes; a vector is an int count then items.
 *
 * Untrusted input: every length is checked against what is left of the frame before allocating, and
 * decoding returns `Decoded` (kit's DecodeError) instead of throwing.
 */
import { type Decoded, DecodeFailure } from '@dsys/kit';
import type { MultiOp, MultiResult, Op, Result } from './schema.js';
import { CreateMode, type NodeKind, type Stat } from './types.js';

export const OpCode = {
  NOTIFICATION: 0,
  CREATE: 1,
  DELETE: 2,
  EXISTS: 3,
  GET_DATA: 4,
  SET_DATA: 5,
  GET_ACL: 6,
  SET_ACL: 7,
  GET_CHILDREN: 8,
  SYNC: 9,
  PING: 11,
  GET_CHILDREN2: 12,
  CHECK: 13,
  MULTI: 14,
  CREATE2: 15,
  RECONFIG: 16,
  CHECK_WATCHES: 17,
  REMOVE_WATCHES: 18,
  CREATE_CONTAINER: 19,
  DELETE_CONTAINER: 20,
  CREATE_TTL: 21,
  MULTI_READ: 22,
  AUTH: 100,
  SET_WATCHES: 101,
  SASL: 102,
  GET_EPHEMERALS: 103,
  GET_ALL_CHILDREN_NUMBER: 104,
  SET_WATCHES2: 105,
  ADD_WATCH: 106,
  WHO_AM_I: 107,
  CREATE_SESSION: -10,
  CLOSE_SESSION: -11,
  ERROR: -1,
} as const;

export const Xid = { NOTIFICATION: -1, PING: -2, AUTH: -4, SET_WATCHES: -8 } as const;

/** Most bytes one jute string or buffer may claim (ZooKeeper's jute.maxbuffer default is 1 MiB). */
export const JUTE_BUFFER_BYTES_MAX = 4 * 1024 * 1024;
/** Most items one jute vector may claim. */
export const JUTE_VECTOR_ITEMS_MAX = 1_000_000;
/** World-readable/writable ACL perms (ZooDefs.Perms.ALL). */
export const PERMS_ALL = 31;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

export class JuteWriter {
  private bytes: Uint8Array;
  private view: DataView;
  length = 0;

  constructor(capacity = 256) {
    this.bytes = new Uint8Array(capacity);
    this.view = new DataView(this.bytes.buffer);
  }

  private reserve(count: number): void {
    const needed = this.length + count;
    if (needed <= this.bytes.length) return;
    let capacity = this.bytes.length * 2;
    while (capacity < needed) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
    this.view = new DataView(grown.buffer);
  }

  int(value: number): this {
    this.reserve(4);
    this.view.setInt32(this.length, value);
    this.length += 4;
    return this;
  }

  /** A 64-bit signed long from a safe integer (negative values in two's complement). */
  long(value: number): this {
    this.reserve(8);
    this.view.setBigInt64(this.length, BigInt(value));
    this.length += 8;
    return this;
  }

  longBig(value: bigint): this {
    this.reserve(8);
    this.view.setBigInt64(this.length, BigInt.asIntN(64, value));
    this.length += 8;
    return this;
  }

  bool(value: boolean): this {
    this.reserve(1);
    this.bytes[this.length++] = value ? 1 : 0;
    return this;
  }

  buffer(value: Uint8Array | null): this {
    if (value === null) return this.int(-1);
    this.int(value.length);
    this.reserve(value.length);
    this.bytes.set(value, this.length);
    this.length += value.length;
    return this;
  }

  string(value: string | null): this {
    return this.buffer(value === null ? null : textEncoder.encode(value));
  }

  strings(values: readonly string[]): this {
    this.int(values.length);
    for (const value of values) this.string(value);
    return this;
  }

  /** The bytes written, prefixed by their length (one wire frame). */
  frame(): Uint8Array {
    const out = new Uint8Array(this.length + 4);
    new DataView(out.buffer).setInt32(0, this.length);
    out.set(this.bytes.subarray(0, this.length), 4);
    return out;
  }

  finish(): Uint8Array {
    return this.bytes.slice(0, this.length);
  }
}

export class JuteReader {
  private readonly view: DataView;
  offset = 0;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  private need(count: number, at: string): void {
    if (this.remaining < count) {
      throw new DecodeFailure({ code: 'TRUNCATED', bytesHave: this.remaining, bytesNeed: count, at });
    }
  }

  int(at = 'int'): number {
    this.need(4, at);
    const value = this.view.getInt32(this.offset);
    this.offset += 4;
    return value;
  }

  long(at = 'long'): number {
    this.need(8, at);
    const value = this.view.getBigInt64(this.offset);
    this.offset += 8;
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new DecodeFailure({ code: 'INVALID', reason: `long ${value} beyond 2^53`, at });
    }
    return Number(value);
  }

  longBig(at = 'long'): bigint {
    this.need(8, at);
    const value = this.view.getBigInt64(this.offset);
    this.offset += 8;
    return value;
  }

  bool(at = 'boolean'): boolean {
    this.need(1, at);
    const byte = this.bytes[this.offset++]!;
    if (byte > 1) throw new DecodeFailure({ code: 'INVALID', reason: `boolean byte ${byte}`, at });
    return byte === 1;
  }

  buffer(at = 'buffer'): Uint8Array | null {
    const length = this.int(at);
    if (length === -1) return null;
    if (length < -1) throw new DecodeFailure({ code: 'INVALID', reason: `negative length ${length}`, at });
    if (length > JUTE_BUFFER_BYTES_MAX) {
      throw new DecodeFailure({ code: 'TOO_LARGE', bytes: length, bytesMax: JUTE_BUFFER_BYTES_MAX, at });
    }
    this.need(length, at);
    const out = this.bytes.slice(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }

  string(at = 'ustring'): string {
    const bytes = this.buffer(at);
    if (bytes === null) return '';
    try {
      return textDecoder.decode(bytes);
    } catch {
      throw new DecodeFailure({ code: 'INVALID', reason: 'invalid UTF-8', at });
    }
  }

  count(at: string): number {
    const count = this.int(at);
    if (count === -1) return 0;
    if (count < 0 || count > JUTE_VECTOR_ITEMS_MAX) {
      throw new DecodeFailure({ code: 'TOO_LARGE', bytes: count, bytesMax: JUTE_VECTOR_ITEMS_MAX, at });
    }
    // Each item takes at least 4 bytes: a count the frame cannot hold is refused before any work.
    this.need(count * 4, at);
    return count;
  }

  strings(at: string): string[] {
    const count = this.count(at);
    const out: string[] = [];
    for (let i = 0; i < count; i++) out.push(this.string(at));
    return out;
  }
}

function attempt<T>(read: () => T): Decoded<T> {
  try {
    return { ok: true, value: read() };
  } catch (error) {
    if (error instanceof DecodeFailure) return { ok: false, error: error.error };
    throw error;
  }
}

// --------------------------------------------------------------------------------------------------
// Handshake

export interface ConnectRequest {
  readonly protocolVersion: number;
  readonly lastZxidSeen: number;
  readonly timeoutMs: number;
  readonly sessionId: number;
  readonly password: Uint8Array;
  /** Present when the client sent the optional readOnly flag (3.3+ clients do; it is echoed back). */
  readonly readOnly: boolean | null;
}

export function decodeConnectRequest(frame: Uint8Array): Decoded<ConnectRequest> {
  return attempt(() => {
    const reader = new JuteReader(frame);
    const protocolVersion = reader.int('protocolVersion');
    const lastZxidSeen = reader.long('lastZxidSeen');
    const timeoutMs = reader.int('timeOut');
    const sessionId = reader.long('sessionId');
    const password = reader.buffer('passwd') ?? new Uint8Array(0);
    const readOnly = reader.remaining >= 1 ? reader.bool('readOnly') : null;
    if (reader.remaining !== 0) throw new DecodeFailure({ code: 'TRAILING_BYTES', bytes: reader.remaining });
    if (lastZxidSeen < 0 || sessionId < 0 || timeoutMs < 0 || password.length > 64) {
      throw new DecodeFailure({
        code: 'INVALID',
        reason: 'negative zxid, session or timeout, or long password',
        at: 'connect',
      });
    }
    return { protocolVersion, lastZxidSeen, timeoutMs, sessionId, password, readOnly };
  });
}

export function encodeConnectRequest(request: ConnectRequest): Uint8Array {
  const writer = new JuteWriter()
    .int(request.protocolVersion)
    .long(request.lastZxidSeen)
    .int(request.timeoutMs)
    .long(request.sessionId)
    .buffer(request.password);
  if (request.readOnly !== null) writer.bool(request.readOnly);
  return writer.frame();
}

export interface ConnectResponse {
  readonly timeoutMs: number;
  readonly sessionId: number;
  readonly password: Uint8Array;
  readonly readOnly: boolean | null;
}

/** A refusal (expired session, wrong password) is a ConnectResponse with timeOut 0 (ZooKeeper's way). */
export function encodeConnectResponse(response: ConnectResponse): Uint8Array {
  const writer = new JuteWriter().int(0).int(response.timeoutMs).long(response.sessionId).buffer(response.password);
  if (response.readOnly !== null) writer.bool(response.readOnly);
  return writer.frame();
}

export function decodeConnectResponse(frame: Uint8Array): Decoded<ConnectResponse> {
  return attempt(() => {
    const reader = new JuteReader(frame);
    reader.int('protocolVersion');
    const timeoutMs = reader.int('timeOut');
    const sessionId = reader.long('sessionId');
    const password = reader.buffer('passwd') ?? new Uint8Array(0);
    const readOnly = reader.remaining >= 1 ? reader.bool('readOnly') : null;
    return { timeoutMs, sessionId, password, readOnly };
  });
}

// --------------------------------------------------------------------------------------------------
// Requests

/** One request frame, decoded: the header and what the server should do. */
export type WireRequest =
  | { readonly xid: number; readonly opcode: number; readonly kind: 'op'; readonly op: Op }
  | { readonly xid: number; readonly opcode: number; readonly kind: 'auth' }
  /** A valid header with an operation this server does not implement: answered Unimplemented. */
  | { readonly xid: number; readonly opcode: number; readonly kind: 'unimplemented' };

function readAcls(reader: JuteReader): void {
  const count = reader.count('acl');
  for (let i = 0; i < count; i++) {
    reader.int('acl.perms');
    reader.string('acl.scheme');
    reader.string('acl.id');
  }
}

function readCreate(reader: JuteReader, opcode: number): Extract<Op, { type: 'create' }> {
  const path = reader.string('path');
  const data = reader.buffer('data') ?? new Uint8Array(0);
  readAcls(reader);
  let mode = reader.int('flags');
  let ttlMs = 0;
  if (opcode === OpCode.CREATE_TTL) {
    const ttl = reader.long('ttl');
    if (ttl < 0) throw new DecodeFailure({ code: 'INVALID', reason: `ttl ${ttl}`, at: 'ttl' });
    ttlMs = ttl;
  }
  if (opcode === OpCode.CREATE_CONTAINER) mode = CreateMode.CONTAINER;
  if (mode < 0) throw new DecodeFailure({ code: 'INVALID', reason: `create flags ${mode}`, at: 'flags' });
  return { type: 'create', path, data, mode, ttlMs, withStat: opcode !== OpCode.CREATE };
}

function readMulti(reader: JuteReader): MultiOp[] {
  const ops: MultiOp[] = [];
  for (;;) {
    const type = reader.int('multi.type');
    const done = reader.bool('multi.done');
    reader.int('multi.err');
    if (done) return ops;
    if (ops.length >= 1000)
      throw new DecodeFailure({ code: 'TOO_LARGE', bytes: ops.length, bytesMax: 1000, at: 'multi' });
    switch (type) {
      case OpCode.CREATE:
      case OpCode.CREATE2:
      case OpCode.CREATE_CONTAINER:
      case OpCode.CREATE_TTL: {
        const create = readCreate(reader, type);
        ops.push({ ...create, type: 'create' });
        break;
      }
      case OpCode.DELETE:
        ops.push({ type: 'delete', path: reader.string('path'), version: reader.int('version') });
        break;
      case OpCode.SET_DATA:
        ops.push({
          type: 'setData',
          path: reader.string('path'),
          data: reader.buffer('data') ?? new Uint8Array(0),
          version: reader.int('version'),
        });
        break;
      case OpCode.CHECK:
        ops.push({ type: 'check', path: reader.string('path'), version: reader.int('version') });
        break;
      default:
        throw new DecodeFailure({ code: 'UNKNOWN_TAG', tag: type, at: 'multi.type' });
    }
  }
}

function readOp(reader: JuteReader, opcode: number): Op | null {
  switch (opcode) {
    case OpCode.CREATE:
    case OpCode.CREATE2:
    case OpCode.CREATE_CONTAINER:
    case OpCode.CREATE_TTL:
      return readCreate(reader, opcode);
    case OpCode.DELETE:
      return { type: 'delete', path: reader.string('path'), version: reader.int('version') };
    case OpCode.EXISTS:
      return { type: 'exists', path: reader.string('path'), watch: reader.bool('watch') };
    case OpCode.GET_DATA:
      return { type: 'getData', path: reader.string('path'), watch: reader.bool('watch') };
    case OpCode.SET_DATA:
      return {
        type: 'setData',
        path: reader.string('path'),
        data: reader.buffer('data') ?? new Uint8Array(0),
        version: reader.int('version'),
      };
    case OpCode.GET_ACL:
      return { type: 'getACL', path: reader.string('path') };
    case OpCode.GET_CHILDREN:
    case OpCode.GET_CHILDREN2:
      return {
        type: 'getChildren',
        path: reader.string('path'),
        watch: reader.bool('watch'),
        withStat: opcode === OpCode.GET_CHILDREN2,
      };
    case OpCode.SYNC:
      return { type: 'sync', path: reader.string('path') };
    case OpCode.PING:
      return { type: 'ping' };
    case OpCode.MULTI:
      return { type: 'multi', ops: readMulti(reader) };
    case OpCode.CLOSE_SESSION:
      return { type: 'close' };
    case OpCode.SET_WATCHES:
    case OpCode.SET_WATCHES2: {
      const relativeZxid = Math.max(0, reader.long('relativeZxid'));
      const data = reader.strings('dataWatches');
      const exist = reader.strings('existWatches');
      const child = reader.strings('childWatches');
      const two = opcode === OpCode.SET_WATCHES2;
      const persistent = two ? reader.strings('persistentWatches') : [];
      const persistentRecursive = two ? reader.strings('persistentRecursiveWatches') : [];
      return { type: 'setWatches', relativeZxid, data, exist, child, persistent, persistentRecursive };
    }
    case OpCode.ADD_WATCH:
      return { type: 'addWatch', path: reader.string('path'), mode: reader.int('mode') };
    case OpCode.CHECK_WATCHES:
    case OpCode.REMOVE_WATCHES:
      return {
        type: 'removeWatches',
        path: reader.string('path'),
        watcherType: reader.int('type'),
        checkOnly: opcode === OpCode.CHECK_WATCHES,
      };
    case OpCode.GET_EPHEMERALS:
      return { type: 'getEphemerals', prefix: reader.string('prefixPath') };
    case OpCode.GET_ALL_CHILDREN_NUMBER:
      return { type: 'getAllChildrenNumber', path: reader.string('path') };
    default:
      return null;
  }
}

/** Decodes one request frame (after the handshake). Bad bytes give a DecodeError, never a throw. */
export function decodeRequest(frame: Uint8Array): Decoded<WireRequest> {
  return attempt((): WireRequest => {
    const reader = new JuteReader(frame);
    const xid = reader.int('xid');
    const opcode = reader.int('type');
    if (opcode === OpCode.AUTH) return { xid, opcode, kind: 'auth' };
    const op = readOp(reader, opcode);
    if (op === null) return { xid, opcode, kind: 'unimplemented' };
    if (reader.remaining !== 0) throw new DecodeFailure({ code: 'TRAILING_BYTES', bytes: reader.remaining });
    if (op.type === 'addWatch' && op.mode < 0)
      throw new DecodeFailure({ code: 'INVALID', reason: 'negative mode', at: 'mode' });
    if (op.type === 'removeWatches' && op.watcherType < 0) {
      throw new DecodeFailure({ code: 'INVALID', reason: 'negative watcher type', at: 'type' });
    }
    return { xid, opcode, kind: 'op', op };
  });
}

function writeAcl(writer: JuteWriter): void {
  writer.int(1).int(PERMS_ALL).string('world').string('anyone');
}

function writeCreate(
  writer: JuteWriter,
  op: Extract<Op, { type: 'create' }> | Extract<MultiOp, { type: 'create' }>,
): void {
  writer.string(op.path).buffer(op.data);
  writeAcl(writer);
  writer.int(op.mode);
  if (op.ttlMs > 0) writer.long(op.ttlMs);
}

function createOpcode(op: { mode: number; ttlMs: number; withStat: boolean }): number {
  if (op.ttlMs > 0) return OpCode.CREATE_TTL;
  if (op.mode === CreateMode.CONTAINER) return OpCode.CREATE_CONTAINER;
  return op.withStat ? OpCode.CREATE2 : OpCode.CREATE;
}

/** The opcode a client sends for `op` (our client encodes with it). */
export function opcodeOf(op: Op): number {
  switch (op.type) {
    case 'create':
      return createOpcode(op);
    case 'delete':
      return OpCode.DELETE;
    case 'exists':
      return OpCode.EXISTS;
    case 'getData':
      return OpCode.GET_DATA;
    case 'setData':
      return OpCode.SET_DATA;
    case 'getACL':
      return OpCode.GET_ACL;
    case 'getChildren':
      return op.withStat ? OpCode.GET_CHILDREN2 : OpCode.GET_CHILDREN;
    case 'sync':
      return OpCode.SYNC;
    case 'ping':
      return OpCode.PING;
    case 'multi':
      return OpCode.MULTI;
    case 'close':
      return OpCode.CLOSE_SESSION;
    case 'setWatches':
      return op.persistent.length + op.persistentRecursive.length > 0 ? OpCode.SET_WATCHES2 : OpCode.SET_WATCHES;
    case 'addWatch':
      return OpCode.ADD_WATCH;
    case 'removeWatches':
      return op.checkOnly ? OpCode.CHECK_WATCHES : OpCode.REMOVE_WATCHES;
    case 'getEphemerals':
      return OpCode.GET_EPHEMERALS;
    case 'getAllChildrenNumber':
      return OpCode.GET_ALL_CHILDREN_NUMBER;
  }
}

/** Encodes a request frame (what a ZooKeeper client sends). */
export function encodeRequest(xid: number, op: Op): Uint8Array {
  const opcode = opcodeOf(op);
  const writer = new JuteWriter().int(xid).int(opcode);
  switch (op.type) {
    case 'create':
      writeCreate(writer, op);
      break;
    case 'delete':
      writer.string(op.path).int(op.version);
      break;
    case 'exists':
    case 'getData':
      writer.string(op.path).bool(op.watch);
      break;
    case 'getChildren':
      writer.string(op.path).bool(op.watch);
      break;
    case 'setData':
      writer.string(op.path).buffer(op.data).int(op.version);
      break;
    case 'getACL':
    case 'sync':
    case 'getAllChildrenNumber':
      writer.string(op.path);
      break;
    case 'getEphemerals':
      writer.string(op.prefix);
      break;
    case 'ping':
    case 'close':
      break;
    case 'multi':
      for (const sub of op.ops) {
        const subcode =
          sub.type === 'create'
            ? createOpcode(sub)
            : sub.type === 'delete'
              ? OpCode.DELETE
              : sub.type === 'setData'
                ? OpCode.SET_DATA
                : OpCode.CHECK;
        writer.int(subcode).bool(false).int(-1);
        if (sub.type === 'create') writeCreate(writer, sub);
        else if (sub.type === 'setData') writer.string(sub.path).buffer(sub.data).int(sub.version);
        else writer.string(sub.path).int(sub.version);
      }
      writer.int(-1).bool(true).int(-1);
      break;
    case 'setWatches':
      writer.long(op.relativeZxid).strings(op.data).strings(op.exist).strings(op.child);
      if (opcode === OpCode.SET_WATCHES2) writer.strings(op.persistent).strings(op.persistentRecursive);
      break;
    case 'addWatch':
      writer.string(op.path).int(op.mode);
      break;
    case 'removeWatches':
      writer.string(op.path).int(op.watcherType);
      break;
  }
  return writer.frame();
}

// --------------------------------------------------------------------------------------------------
// Replies

const CONTAINER_OWNER = -(2n ** 63n);
const TTL_OWNER_BASE = 0xffn << 56n;

/** ZooKeeper's ephemeralOwner encoding: a session id, or the container / TTL markers (EphemeralType). */
export function ephemeralOwnerOf(stat: Stat): bigint {
  if (stat.kind === 'container') return CONTAINER_OWNER;
  if (stat.kind === 'ttl') return BigInt.asIntN(64, TTL_OWNER_BASE | BigInt(stat.ttlMs));
  return BigInt(stat.ephemeralOwner);
}

export function writeStat(writer: JuteWriter, stat: Stat): void {
  writer
    .long(stat.czxid)
    .long(stat.mzxid)
    .long(stat.ctime)
    .long(stat.mtime)
    .int(stat.version)
    .int(stat.cversion)
    .int(stat.aversion)
    .longBig(ephemeralOwnerOf(stat))
    .int(stat.dataLength)
    .int(stat.numChildren)
    .long(stat.pzxid);
}

export function readStat(reader: JuteReader): Stat {
  const czxid = reader.long('czxid');
  const mzxid = reader.long('mzxid');
  const ctime = reader.long('ctime');
  const mtime = reader.long('mtime');
  const version = reader.int('version');
  const cversion = reader.int('cversion');
  const aversion = reader.int('aversion');
  const owner = reader.longBig('ephemeralOwner');
  const dataLength = reader.int('dataLength');
  const numChildren = reader.int('numChildren');
  const pzxid = reader.long('pzxid');
  let kind: NodeKind = owner === 0n ? 'persistent' : 'ephemeral';
  let ttlMs = 0;
  let ephemeralOwner = 0;
  if (owner === CONTAINER_OWNER) kind = 'container';
  else if (BigInt.asUintN(64, owner) >> 56n === 0xffn) {
    kind = 'ttl';
    ttlMs = Number(BigInt.asUintN(64, owner) & 0xff_ffff_ffffn);
  } else if (owner !== 0n) ephemeralOwner = Number(BigInt.asUintN(64, owner));
  return {
    czxid,
    mzxid,
    pzxid,
    ctime,
    mtime,
    version,
    cversion,
    aversion,
    ephemeralOwner,
    dataLength,
    numChildren,
    kind,
    ttlMs,
  };
}

/** Encodes a reply to a request with opcode `opcode`; only successful replies (and multis) carry a body. */
export function encodeReply(xid: number, zxid: number, err: number, opcode: number, result: Result): Uint8Array {
  const writer = new JuteWriter().int(xid).long(zxid).int(err);
  if (err !== 0) return writer.frame();
  switch (result.type) {
    case 'none':
      // ZooKeeper answers addWatch with an ErrorResponse {int err} body, which its client reads.
      if (opcode === OpCode.ADD_WATCH) writer.int(0);
      break;
    case 'created':
      writer.string(result.path);
      if (opcode !== OpCode.CREATE && result.stat !== null) writeStat(writer, result.stat);
      break;
    case 'stat':
      writeStat(writer, result.stat);
      break;
    case 'data':
      writer.buffer(result.data);
      writeStat(writer, result.stat);
      break;
    case 'children':
      writer.strings(result.children);
      if (opcode === OpCode.GET_CHILDREN2 && result.stat !== null) writeStat(writer, result.stat);
      break;
    case 'path':
      writer.string(result.path);
      break;
    case 'multi':
      writeMultiResults(writer, result.results);
      break;
    case 'paths':
      writer.strings(result.paths);
      break;
    case 'count':
      writer.int(result.count);
      break;
    case 'acl':
      writeAcl(writer);
      writeStat(writer, result.stat);
      break;
  }
  return writer.frame();
}

function writeMultiResults(writer: JuteWriter, results: readonly MultiResult[]): void {
  for (const result of results) {
    switch (result.type) {
      case 'create':
        writer
          .int(result.stat === null ? OpCode.CREATE : OpCode.CREATE2)
          .bool(false)
          .int(0)
          .string(result.path);
        if (result.stat !== null) writeStat(writer, result.stat);
        break;
      case 'delete':
        writer.int(OpCode.DELETE).bool(false).int(0);
        break;
      case 'setData':
        writer.int(OpCode.SET_DATA).bool(false).int(0);
        writeStat(writer, result.stat);
        break;
      case 'check':
        writer.int(OpCode.CHECK).bool(false).int(0);
        break;
      case 'error':
        writer.int(OpCode.ERROR).bool(false).int(result.err).int(result.err);
        break;
    }
  }
  writer.int(-1).bool(true).int(-1);
}

export interface ReplyHeader {
  readonly xid: number;
  readonly zxid: number;
  readonly err: number;
}

export interface WatcherEvent {
  readonly type: number;
  readonly state: number;
  readonly path: string;
}

/** A notification: ReplyHeader {xid -1, zxid -1, err 0} then a WatcherEvent. */
export function encodeNotification(event: WatcherEvent): Uint8Array {
  return new JuteWriter()
    .int(Xid.NOTIFICATION)
    .long(-1)
    .int(0)
    .int(event.type)
    .int(event.state)
    .string(event.path)
    .frame();
}

/** Decodes a reply frame for a request of `opcode` (our client's side). */
export function decodeReply(
  frame: Uint8Array,
  opcodeForXid: (xid: number) => number | undefined,
): Decoded<{ header: ReplyHeader; event: WatcherEvent | null; result: Result }> {
  return attempt(() => {
    const reader = new JuteReader(frame);
    const header = { xid: reader.int('xid'), zxid: reader.long('zxid'), err: reader.int('err') };
    if (header.xid === Xid.NOTIFICATION) {
      const event = { type: reader.int('type'), state: reader.int('state'), path: reader.string('path') };
      return { header, event, result: { type: 'none' } as Result };
    }
    const opcode = opcodeForXid(header.xid);
    if (header.err !== 0 || opcode === undefined) return { header, event: null, result: { type: 'none' } as Result };
    return { header, event: null, result: readResult(reader, opcode) };
  });
}

function readResult(reader: JuteReader, opcode: number): Result {
  switch (opcode) {
    case OpCode.CREATE:
      return { type: 'created', path: reader.string('path'), stat: null };
    case OpCode.CREATE2:
    case OpCode.CREATE_CONTAINER:
    case OpCode.CREATE_TTL:
      return { type: 'created', path: reader.string('path'), stat: readStat(reader) };
    case OpCode.EXISTS:
    case OpCode.SET_DATA:
      return { type: 'stat', stat: readStat(reader) };
    case OpCode.GET_DATA: {
      const data = reader.buffer('data') ?? new Uint8Array(0);
      return { type: 'data', data, stat: readStat(reader) };
    }
    case OpCode.GET_CHILDREN:
      return { type: 'children', children: reader.strings('children'), stat: null };
    case OpCode.GET_CHILDREN2: {
      const children = reader.strings('children');
      return { type: 'children', children, stat: readStat(reader) };
    }
    case OpCode.SYNC:
      return { type: 'path', path: reader.string('path') };
    case OpCode.GET_EPHEMERALS:
      return { type: 'paths', paths: reader.strings('ephemerals') };
    case OpCode.GET_ALL_CHILDREN_NUMBER:
      return { type: 'count', count: reader.int('totalNumber') };
    case OpCode.GET_ACL: {
      const count = reader.count('acl');
      for (let i = 0; i < count; i++) {
        reader.int('perms');
        reader.string('scheme');
        reader.string('id');
      }
      return { type: 'acl', stat: readStat(reader) };
    }
    case OpCode.MULTI:
      return { type: 'multi', results: readMultiResults(reader) };
    case OpCode.ADD_WATCH:
      reader.int('err');
      return { type: 'none' };
    default:
      return { type: 'none' };
  }
}

function readMultiResults(reader: JuteReader): MultiResult[] {
  const results: MultiResult[] = [];
  for (;;) {
    const type = reader.int('multi.type');
    const done = reader.bool('multi.done');
    const err = reader.int('multi.err');
    if (done) return results;
    switch (type) {
      case OpCode.CREATE:
        results.push({ type: 'create', path: reader.string('path'), stat: null });
        break;
      case OpCode.CREATE2:
      case OpCode.CREATE_CONTAINER:
      case OpCode.CREATE_TTL:
        results.push({ type: 'create', path: reader.string('path'), stat: readStat(reader) });
        break;
      case OpCode.DELETE:
        results.push({ type: 'delete' });
        break;
      case OpCode.SET_DATA:
        results.push({ type: 'setData', stat: readStat(reader) });
        break;
      case OpCode.CHECK:
        results.push({ type: 'check' });
        break;
      case OpCode.ERROR:
        results.push({ type: 'error', err: reader.int('err') });
        void err;
        break;
      default:
        throw new DecodeFailure({ code: 'UNKNOWN_TAG', tag: type, at: 'multi.type' });
    }
  }
}

// --------------------------------------------------------------------------------------------------
// Four-letter words

export const FOUR_LETTER_WORDS = ['ruok', 'srvr', 'stat', 'mntr', 'conf', 'envi', 'cons', 'wchs', 'dump'] as const;
export type FourLetterWord = (typeof FOUR_LETTER_WORDS)[number];

/** The four-letter word a connection opened with, or null (then the 4 bytes are a frame length). */
export function fourLetterWord(first: Uint8Array): FourLetterWord | null {
  if (first.length < 4) return null;
  const text = String.fromCharCode(first[0]!, first[1]!, first[2]!, first[3]!);
  return (FOUR_LETTER_WORDS as readonly string[]).includes(text) ? (text as FourLetterWord) : null;
}
