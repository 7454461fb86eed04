/**
 * The wire format. On a byte stream (TCP, TLS) every frame is a u32 little-endian body length, then the
 * body; on a message transport (the simulator) one message is one body. A body starts with its kind:
 *
 *   HELLO    1  client -> server  kit schema `Hello` (service, version, per-procedure fingerprints)
 *   WELCOME  2  server -> client  kit schema `Welcome` (bound | mismatch | refused)
 *   CALL     3  callId procIndex session seq floor timeoutMs windowBytes | args
 *   REPLY    4  callId status | result, or error (executed u8, message, appCode)
 *   ITEM     5  callId | item                    (server stream)
 *   END      6  callId status | error if status != OK
 *   CANCEL   7  callId                           (client -> server)
 *   CREDIT   8  callId bytes                     (client -> server: stream flow control)
 *   PING     9  nonce        PONG 10 nonce       (keepalive, either side)
 *   GOAWAY  11  reason                           (the sender is closing the connection)
 *
 * Header integers are varuints (kit's LEB128). `seq` 0 means "no at-most-once" (idempotent procedures
 * and streams); `floor` is the lowest seq the client still waits for, so the server can drop older
 * replies; `timeoutMs` 0 means no deadline. Hot frames (CALL/REPLY/ITEM) are written by hand into the
 * connection's Writer; rare ones (HELLO/WELCOME) use kit schemas. No JSON on the wire.
 */
import { assert, DecodeFailure, Reader, s, Writer } from '@dsys/kit';
import { FINGERPRINT_BYTES, PROCEDURE_NAME_BYTES_MAX, PROCEDURES_MAX, SERVICE_NAME_BYTES_MAX } from './interface.js';

export const PROTOCOL_VERSION = 1;
export const FRAME_HEADER_BYTES = 4;
/** gRPC's default receive limit; raise it per endpoint for bulk transfers. */
export const FRAME_BYTES_MAX_DEFAULT = 4 * 1024 * 1024;
/** A HELLO or WELCOME above this is refused even if the frame limit is larger. */
export const CONTROL_BYTES_MAX = 1024 * 1024;
export const DESCRIPTION_BYTES_MAX = 64 * 1024;
export const MESSAGE_BYTES_MAX = 4096;

export enum Kind {
  HELLO = 1,
  WELCOME = 2,
  CALL = 3,
  REPLY = 4,
  ITEM = 5,
  END = 6,
  CANCEL = 7,
  CREDIT = 8,
  PING = 9,
  PONG = 10,
  GOAWAY = 11,
}

/** Reply statuses; the first ones mirror `RpcErrorCode`, the last three are session-level. */
export enum Status {
  OK = 0,
  APPLICATION = 1,
  INVALID_ARGUMENT = 2,
  UNKNOWN_PROCEDURE = 3,
  DEADLINE_EXCEEDED = 4,
  CANCELLED = 5,
  RESOURCE_EXHAUSTED = 6,
  INTERNAL = 7,
  UNAVAILABLE = 8,
  /** The CALL names no session this server knows (never bound, or bound to an earlier incarnation). */
  NOT_BOUND = 9,
  /** The session was evicted from the reply cache: earlier calls of it have unknown outcomes. */
  SESSION_EXPIRED = 10,
  /** The seq is below the session's floor and its reply is gone: the call was not run again. */
  REPLY_EVICTED = 11,
}
export const STATUS_MAX = 11;

export enum ExecutedByte {
  NO = 0,
  YES = 1,
  UNKNOWN = 2,
}

const Name = s.string({ bytesMax: PROCEDURE_NAME_BYTES_MAX });
const ServiceName = s.string({ bytesMax: SERVICE_NAME_BYTES_MAX });
const Fingerprint = s.bytes({ bytesMax: FINGERPRINT_BYTES });
const Description = s.string({ bytesMax: DESCRIPTION_BYTES_MAX });

export const Hello = s.struct({
  protocol: s.u8,
  /** Matches the WELCOME to this HELLO (a message transport may duplicate or delay either). */
  nonce: s.uint,
  /** Empty for reflection: bind to whatever service is there (the CLI). */
  service: ServiceName,
  version: s.uint,
  procedures: s.array(s.struct({ name: Name, fingerprint: Fingerprint }), { itemsMax: PROCEDURES_MAX }),
  /** Resume this session if the server is still the same incarnation (its reply cache then still holds). */
  resume: s.optional(s.struct({ incarnation: s.u64, session: s.uint })),
  /** Ask for the server's canonical procedure texts in the WELCOME. */
  reflect: s.bool,
  /** Largest frame body this client accepts. */
  frameBytesMax: s.uint,
});
export type Hello = typeof Hello extends { read(r: Reader, at: string): infer T } ? T : never;

const Reflection = s.array(s.struct({ name: Name, description: Description }), { itemsMax: PROCEDURES_MAX });

export const Welcome = s.union('result', {
  bound: s.struct({
    nonce: s.uint,
    incarnation: s.u64,
    session: s.uint,
    resumed: s.bool,
    service: ServiceName,
    version: s.uint,
    fingerprint: Fingerprint,
    /** For each procedure of the HELLO, in its order, the server's procedure index. */
    procedureIds: s.array(s.uint, { itemsMax: PROCEDURES_MAX }),
    reflection: s.optional(Reflection),
    frameBytesMax: s.uint,
  }),
  mismatch: s.struct({
    nonce: s.uint,
    service: ServiceName,
    version: s.uint,
    /** Per differing procedure of the HELLO: the server's canonical text, or none if it lacks it. */
    problems: s.array(s.struct({ procedure: Name, server: s.optional(Description) }), { itemsMax: PROCEDURES_MAX }),
  }),
  refused: s.struct({ nonce: s.uint, reason: s.string({ bytesMax: MESSAGE_BYTES_MAX }) }),
});
export type Welcome = typeof Welcome extends { read(r: Reader, at: string): infer T } ? T : never;

/** A Reader whose window can move from frame to frame of one received chunk (no allocation per frame). */
export class FrameCursor extends Reader {
  declare end: number;
}

/** Starts a frame: reserves the length prefix and writes the kind; returns the frame's start. */
export function beginFrame(writer: Writer, kind: Kind): number {
  writer.reserve(16);
  const start = writer.length;
  writer.length += FRAME_HEADER_BYTES;
  writer.bytes[writer.length++] = kind;
  return start;
}

/** Patches the length prefix of the frame that began at `start`; returns its body length. */
export function endFrame(writer: Writer, start: number): number {
  const bodyBytes = writer.length - start - FRAME_HEADER_BYTES;
  writer.view.setUint32(start, bodyBytes, true);
  return bodyBytes;
}

/** Writes a control frame from a kit schema. */
export function writeControl<T>(writer: Writer, kind: Kind, schema: { encode(w: Writer, v: T): void }, value: T): void {
  const start = beginFrame(writer, kind);
  schema.encode(writer, value);
  endFrame(writer, start);
}

export function writeError(writer: Writer, executed: ExecutedByte, message: string, appCode: string): void {
  writer.u8(executed);
  writer.string(message.length > 1000 ? `${message.slice(0, 1000)}...` : message);
  writer.string(appCode.length > 200 ? appCode.slice(0, 200) : appCode);
}

export interface WireError {
  readonly executed: ExecutedByte;
  readonly message: string;
  readonly appCode: string;
}

export function readError(reader: Reader): WireError {
  const executed = reader.u8('error.executed');
  if (executed > ExecutedByte.UNKNOWN) {
    throw new DecodeFailure({ code: 'INVALID', reason: `executed byte ${executed}`, at: 'error.executed' });
  }
  const message = reader.string(MESSAGE_BYTES_MAX, 'error.message');
  const appCode = reader.string(MESSAGE_BYTES_MAX, 'error.appCode');
  return { executed, message, appCode };
}

/** A buffer for split frames up to this size is kept for the next one. */
const PARTIAL_KEEP_BYTES_MAX = 256 * 1024;

export type FrameProblem =
  | { readonly code: 'FRAME_TOO_LARGE'; readonly bytes: number; readonly bytesMax: number }
  | { readonly code: 'FRAME_TRUNCATED'; readonly bytesHave: number };

/**
 * Splits a byte stream into frame bodies and hands each to `onFrame` as a window of a `FrameCursor`
 * (offset at the kind byte, end at the body's end). Frames inside one chunk are parsed in place; only a
 * frame split across chunks is copied, into a buffer that grows by doubling as its bytes arrive (so a
 * sender of one byte at a time costs linear time, and a bare length prefix cannot make us allocate the
 * length it claims). Each length prefix is checked against `frameBytesMax` before anything is kept.
 */
export class FrameParser {
  readonly frameBytesMax: number;
  /** Bytes of the frame being assembled across chunks (header included). */
  private partial: Uint8Array = new Uint8Array(0);
  private heldBytes = 0;
  private problem: FrameProblem | null = null;

  constructor(frameBytesMax: number) {
    if (!Number.isInteger(frameBytesMax) || frameBytesMax < 1 || frameBytesMax > 0xffff_ffff) {
      throw new RangeError(`frameBytesMax must be an integer in 1..2^32-1, got ${frameBytesMax}`);
    }
    this.frameBytesMax = frameBytesMax;
  }

  /** Bytes of an incomplete frame held back (a slow sender's progress). */
  get partialBytes(): number {
    return this.heldBytes;
  }

  get failed(): FrameProblem | null {
    return this.problem;
  }

  /**
   * Feeds a chunk. `onFrame` sees each complete body; it must not keep the cursor or its bytes past the
   * call (they may be a view of the chunk). Returns a problem once the stream is unusable; after that
   * every push returns it again.
   */
  push(chunk: Uint8Array, onFrame: (cursor: FrameCursor) => void): FrameProblem | null {
    if (this.problem !== null) return this.problem;
    let offset = 0;
    if (this.heldBytes > 0) {
      offset = this.complete(chunk, onFrame);
      if (offset < 0) return this.problem;
    }
    if (offset === chunk.length) return null;
    const cursor = new FrameCursor(chunk);
    const view = cursor.view;
    while (chunk.length - offset >= FRAME_HEADER_BYTES) {
      const bodyBytes = view.getUint32(offset, true);
      if (bodyBytes > this.frameBytesMax) return this.fail(bodyBytes);
      const end = offset + FRAME_HEADER_BYTES + bodyBytes;
      if (end > chunk.length) break;
      cursor.offset = offset + FRAME_HEADER_BYTES;
      cursor.end = end;
      onFrame(cursor);
      if (this.problem !== null) return this.problem;
      offset = end;
    }
    if (offset < chunk.length) this.append(chunk, offset, chunk.length);
    return null;
  }

  /** The stream ended: a partial frame is a truncation. */
  end(): FrameProblem | null {
    if (this.problem === null && this.heldBytes > 0) {
      this.problem = { code: 'FRAME_TRUNCATED', bytesHave: this.heldBytes };
    }
    return this.problem;
  }

  /** Stops parsing (the owner closes the connection); later pushes are ignored. */
  abandon(problem: FrameProblem): void {
    if (this.problem === null) this.problem = problem;
    this.partial = new Uint8Array(0);
    this.heldBytes = 0;
  }

  /**
   * Moves bytes of `chunk` into the partial frame until it is complete, then hands it over. Returns how
   * much of `chunk` it used, or -1 if the chunk ended first (or the frame is too large).
   */
  private complete(chunk: Uint8Array, onFrame: (cursor: FrameCursor) => void): number {
    let used = 0;
    if (this.heldBytes < FRAME_HEADER_BYTES) {
      used = Math.min(FRAME_HEADER_BYTES - this.heldBytes, chunk.length);
      this.append(chunk, 0, used);
      if (this.heldBytes < FRAME_HEADER_BYTES) return -1;
    }
    const p = this.partial;
    const bodyBytes = (p[0]! | (p[1]! << 8) | (p[2]! << 16)) + p[3]! * 0x100_0000;
    if (bodyBytes > this.frameBytesMax) {
      this.fail(bodyBytes);
      return -1;
    }
    const frameBytes = FRAME_HEADER_BYTES + bodyBytes;
    const take = Math.min(frameBytes - this.heldBytes, chunk.length - used);
    this.append(chunk, used, used + take, frameBytes);
    used += take;
    if (this.heldBytes < frameBytes) return -1;
    const cursor = new FrameCursor(this.partial, FRAME_HEADER_BYTES, frameBytes);
    this.heldBytes = 0;
    onFrame(cursor);
    // The buffer is reused for the next split frame (the consumer keeps no view of it), unless large.
    if (this.partial.length > PARTIAL_KEEP_BYTES_MAX) this.partial = new Uint8Array(0);
    return this.problem === null ? used : -1;
  }

  private append(chunk: Uint8Array, from: number, to: number, capacityMax = Number.POSITIVE_INFINITY): void {
    const needed = this.heldBytes + (to - from);
    if (needed > this.partial.length) {
      const capacity = Math.min(Math.max(needed, this.partial.length * 2, 64), Math.max(capacityMax, needed));
      const grown = new Uint8Array(capacity);
      grown.set(this.partial.subarray(0, this.heldBytes));
      this.partial = grown;
    }
    this.partial.set(chunk.subarray(from, to), this.heldBytes);
    this.heldBytes = needed;
  }

  private fail(bytes: number): FrameProblem {
    this.problem = { code: 'FRAME_TOO_LARGE', bytes, bytesMax: this.frameBytesMax };
    this.partial = new Uint8Array(0);
    this.heldBytes = 0;
    return this.problem;
  }
}

/** Reads a varuint header field of a CALL/REPLY; malformed values throw `DecodeFailure` (caught per frame). */
export function readVarUint(reader: Reader, at: string): number {
  // Inline fast path for one-byte values, the common case for ids and small counters.
  if (reader.offset < reader.end) {
    const byte = reader.bytes[reader.offset]!;
    if (byte < 0x80) {
      reader.offset++;
      return byte;
    }
  }
  return reader.varuint(at);
}

/** Initial size of a connection's output buffer: 64 KiB covers a typical batch of frames without growing. */
export const OUTPUT_BYTES = 64 * 1024;

/** A fresh writer per connection. */
export function newOutput(): Writer {
  return new Writer(OUTPUT_BYTES);
}

/**
 * Everything written since the last take, as a *view* of the writer's buffer (or null), and the writer
 * emptied. The view stays valid until the next write into the writer: the driver must hand it to the
 * transport synchronously and, if the transport kept a reference (a write left queued), call
 * `swapOutput` so that later frames go to another buffer instead of overwriting the queued ones.
 */
export function takeOutputView(writer: Writer): Uint8Array | null {
  if (writer.length === 0) return null;
  const bytes = writer.bytes.subarray(0, writer.length);
  writer.length = 0;
  return bytes;
}

/**
 * The writer's buffer is still referenced by a queued write: continue in `next` (a buffer whose write
 * completed) or in a new one. Returns the buffer given up, for the driver to hand back once it is free.
 */
export function swapOutput(writer: Writer, next: Uint8Array | null): Uint8Array {
  assert(writer.length === 0, 'swapOutput: unsent frames would be lost');
  const previous = writer.bytes;
  writer.bytes = next ?? new Uint8Array(OUTPUT_BYTES);
  writer.view = new DataView(writer.bytes.buffer, writer.bytes.byteOffset, writer.bytes.byteLength);
  return previous;
}
