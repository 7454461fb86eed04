/**
 * Length-prefixed framing for TCP streams: u32 little-endian payload length, then the payload.
 *
 * The decoder never trusts the length prefix: it is checked against `frameBytesMax` as soon as the
 * 4 header bytes are in, before anything is allocated for the payload, and memory held for a partial
 * frame is only what actually arrived (chunks are kept as received, not preallocated to the claimed
 * length), so a peer that sends a bare header cannot make us reserve `frameBytesMax`.
 *
 * Cost is linear in bytes received: a frame that lies inside one chunk is returned as a view of that
 * chunk (no copy), and a frame that spans chunks is copied exactly once into a buffer of its own size.
 * Bad input never throws out of `push`: it yields the frames before the fault and a typed error, after
 * which the decoder stays failed (the connection is expected to close).
 */
import { assert } from '@dsys/kit';

export const FRAME_HEADER_BYTES = 4;
/** The largest payload a u32 length prefix can describe. */
export const FRAME_BYTES_LIMIT = 0xffff_ffff;

export type FrameError =
  | { readonly code: 'FRAME_TOO_LARGE'; readonly bytes: number; readonly bytesMax: number }
  | { readonly code: 'FRAME_TRUNCATED'; readonly bytesHave: number; readonly bytesNeed: number };

export interface FramePush {
  readonly frames: Uint8Array[];
  readonly error: FrameError | null;
}

export function describeFrameError(error: FrameError): string {
  switch (error.code) {
    case 'FRAME_TOO_LARGE':
      return `frame of ${error.bytes} bytes exceeds the maximum of ${error.bytesMax}`;
    case 'FRAME_TRUNCATED':
      return `stream ended inside a frame: have ${error.bytesHave} bytes, need ${error.bytesNeed}`;
  }
}

/** One frame: header and payload in a single buffer (one `write` per frame). */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  writeFrameAt(out, 0, payload);
  return out;
}

/** Writes the frame of `payload` into `out` at `offset` (the caller sized `out`); returns the end offset. */
export function writeFrameAt(out: Uint8Array, offset: number, payload: Uint8Array): number {
  const length = payload.length;
  if (length > FRAME_BYTES_LIMIT) throw new RangeError(`frame payload of ${length} bytes exceeds u32`);
  out[offset] = length & 0xff;
  out[offset + 1] = (length >>> 8) & 0xff;
  out[offset + 2] = (length >>> 16) & 0xff;
  out[offset + 3] = length >>> 24;
  out.set(payload, offset + FRAME_HEADER_BYTES);
  return offset + FRAME_HEADER_BYTES + length;
}

export class FrameDecoder {
  readonly frameBytesMax: number;
  /** Received bytes not yet returned, in arrival order; `chunks[chunkHead]` starts at `headOffset`. */
  private chunks: Uint8Array[] = [];
  private chunkHead = 0;
  private headOffset = 0;
  private buffered = 0;
  /** Payload length of the frame being assembled, or -1 while its header is incomplete. */
  private frameBytes = -1;
  private failure: FrameError | null = null;

  constructor(options: { frameBytesMax: number }) {
    const { frameBytesMax } = options;
    if (!Number.isInteger(frameBytesMax) || frameBytesMax < 0 || frameBytesMax > FRAME_BYTES_LIMIT) {
      throw new RangeError(`frameBytesMax must be an integer in 0..${FRAME_BYTES_LIMIT}, got ${frameBytesMax}`);
    }
    this.frameBytesMax = frameBytesMax;
  }

  /** Bytes of a partial frame (header included) waiting for more input. */
  get bufferedBytes(): number {
    return this.frameBytes < 0 ? this.buffered : FRAME_HEADER_BYTES + this.buffered;
  }

  get failed(): FrameError | null {
    return this.failure;
  }

  push(chunk: Uint8Array): FramePush {
    if (this.failure !== null) return { frames: [], error: this.failure };
    const frames: Uint8Array[] = [];
    let offset = 0;
    if (this.bufferedBytes === 0) offset = this.decodeInPlace(chunk, frames);
    if (this.failure === null && offset < chunk.length) {
      this.chunks.push(offset === 0 ? chunk : chunk.subarray(offset));
      this.buffered += chunk.length - offset;
      this.decodeBuffered(frames);
    }
    return { frames, error: this.failure };
  }

  /** Call when the stream ends: a partial frame is then a truncation. */
  end(): FrameError | null {
    if (this.failure !== null) return this.failure;
    const bytesHave = this.bufferedBytes;
    if (bytesHave === 0) return null;
    const bytesNeed = this.frameBytes < 0 ? FRAME_HEADER_BYTES : FRAME_HEADER_BYTES + this.frameBytes;
    this.failure = { code: 'FRAME_TRUNCATED', bytesHave, bytesNeed };
    return this.failure;
  }

  /** Fast path with nothing buffered: frames wholly inside `chunk` become views of it. */
  private decodeInPlace(chunk: Uint8Array, frames: Uint8Array[]): number {
    const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let offset = 0;
    while (chunk.length - offset >= FRAME_HEADER_BYTES) {
      const length = view.getUint32(offset, true);
      if (!this.checkLength(length)) return offset;
      const end = offset + FRAME_HEADER_BYTES + length;
      if (end > chunk.length) break;
      frames.push(chunk.subarray(offset + FRAME_HEADER_BYTES, end));
      offset = end;
    }
    return offset;
  }

  private decodeBuffered(frames: Uint8Array[]): void {
    for (;;) {
      if (this.frameBytes < 0) {
        if (this.buffered < FRAME_HEADER_BYTES) return;
        const header = this.take(FRAME_HEADER_BYTES);
        const length = new DataView(header.buffer, header.byteOffset, FRAME_HEADER_BYTES).getUint32(0, true);
        if (!this.checkLength(length)) return;
        this.frameBytes = length;
      }
      if (this.buffered < this.frameBytes) return;
      frames.push(this.take(this.frameBytes));
      this.frameBytes = -1;
    }
  }

  private checkLength(length: number): boolean {
    if (length <= this.frameBytesMax) return true;
    this.failure = { code: 'FRAME_TOO_LARGE', bytes: length, bytesMax: this.frameBytesMax };
    this.chunks = [];
    this.chunkHead = 0;
    this.headOffset = 0;
    this.buffered = 0;
    this.frameBytes = -1;
    return false;
  }

  /** Removes `count` buffered bytes: a view when they lie in one chunk, else one copy. */
  private take(count: number): Uint8Array {
    assert(count <= this.buffered, 'FrameDecoder.take: more than buffered');
    if (count === 0) return new Uint8Array(0);
    const first = this.chunks[this.chunkHead]!;
    const available = first.length - this.headOffset;
    let out: Uint8Array;
    if (count <= available) {
      out = first.subarray(this.headOffset, this.headOffset + count);
      this.advance(count);
    } else {
      out = new Uint8Array(count);
      let filled = 0;
      while (filled < count) {
        const chunk = this.chunks[this.chunkHead]!;
        const piece = Math.min(count - filled, chunk.length - this.headOffset);
        out.set(chunk.subarray(this.headOffset, this.headOffset + piece), filled);
        filled += piece;
        this.advance(piece);
      }
    }
    return out;
  }

  private advance(count: number): void {
    this.buffered -= count;
    this.headOffset += count;
    const chunk = this.chunks[this.chunkHead]!;
    if (this.headOffset < chunk.length) return;
    this.chunkHead++;
    this.headOffset = 0;
    if (this.chunkHead === this.chunks.length) {
      this.chunks = [];
      this.chunkHead = 0;
    } else if (this.chunkHead >= 64 && this.chunkHead * 2 >= this.chunks.length) {
      // Drop consumed slots now and then so the array stays proportional to what is buffered.
      this.chunks = this.chunks.slice(this.chunkHead);
      this.chunkHead = 0;
    }
  }
}
