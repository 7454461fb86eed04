/**
 * HTTP/2 framing (RFC 9113 section 4 and 6): the frame header, the frame types, flags, settings and
 * error codes the gRPC connection uses, and writers for the frames it sends. Every frame starts with
 * a 9-byte header: a 24-bit payload length, an 8-bit type, 8 bits of flags, one reserved bit and a
 * 31-bit stream id.
 */

export const FRAME_HEADER_BYTES = 9;
/** The largest payload a peer may send before it has seen our SETTINGS_MAX_FRAME_SIZE; we keep it. */
export const FRAME_PAYLOAD_BYTES_DEFAULT = 16_384;
/** The connection preface a client sends first (RFC 9113 section 3.4). */
export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** Flow-control windows cannot exceed 2^31 - 1 (RFC 9113 section 6.9.1). */
export const WINDOW_MAX = 0x7fff_ffff;
/** The initial window of every stream and of the connection before any SETTINGS or WINDOW_UPDATE. */
export const WINDOW_DEFAULT = 65_535;

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

/** Error codes (RFC 9113 section 7). */
export const H2Code = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;
export type H2Code = (typeof H2Code)[keyof typeof H2Code];

/** A violation that ends the whole connection with GOAWAY (RFC 9113 section 5.4.1). */
export class ConnectionError extends Error {
  readonly code: H2Code;
  constructor(code: H2Code, message: string) {
    super(message);
    this.code = code;
  }
}

/** A frame header followed by its payload, ready to write. */
export function frame(type: number, flags: number, streamId: number, payload: Uint8Array | null): Buffer {
  const length = payload === null ? 0 : payload.length;
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + length);
  writeFrameHeader(out, 0, length, type, flags, streamId);
  if (payload !== null) out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

export function writeFrameHeader(
  out: Buffer,
  offset: number,
  length: number,
  type: number,
  flags: number,
  streamId: number,
): void {
  out[offset] = length >>> 16;
  out[offset + 1] = (length >>> 8) & 0xff;
  out[offset + 2] = length & 0xff;
  out[offset + 3] = type;
  out[offset + 4] = flags;
  out.writeUInt32BE(streamId & WINDOW_MAX, offset + 5);
}

export function settingsFrame(settings: ReadonlyArray<readonly [number, number]>): Buffer {
  const payload = Buffer.allocUnsafe(settings.length * 6);
  settings.forEach(([id, value], index) => {
    payload.writeUInt16BE(id, index * 6);
    payload.writeUInt32BE(value, index * 6 + 2);
  });
  return frame(FrameType.SETTINGS, 0, 0, payload);
}

export function windowUpdateFrame(streamId: number, increment: number): Buffer {
  const payload = Buffer.allocUnsafe(4);
  payload.writeUInt32BE(increment, 0);
  return frame(FrameType.WINDOW_UPDATE, 0, streamId, payload);
}

export function rstStreamFrame(streamId: number, code: H2Code): Buffer {
  const payload = Buffer.allocUnsafe(4);
  payload.writeUInt32BE(code, 0);
  return frame(FrameType.RST_STREAM, 0, streamId, payload);
}

export function goawayFrame(lastStreamId: number, code: H2Code, debug: string): Buffer {
  const text = Buffer.from(debug.slice(0, 256), 'utf8');
  const payload = Buffer.allocUnsafe(8 + text.length);
  payload.writeUInt32BE(lastStreamId & WINDOW_MAX, 0);
  payload.writeUInt32BE(code, 4);
  payload.set(text, 8);
  return frame(FrameType.GOAWAY, 0, 0, payload);
}
