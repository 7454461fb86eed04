// Goal: the frame decoder returns exactly the frames that were encoded, however the stream is cut
// into chunks, rejects oversized lengths before allocating, and never throws on any byte sequence.
// Method: hand-picked splits, then fast-check (fixed seed) against a naive reference decoder.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { encodeFrame, FrameDecoder, type FrameError } from '../src/index.js';

const SEED = 0x5eed_f4a3;

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function decodeAll(decoder: FrameDecoder, chunks: readonly Uint8Array[]) {
  const frames: Uint8Array[] = [];
  let error: FrameError | null = null;
  for (const chunk of chunks) {
    const result = decoder.push(chunk);
    frames.push(...result.frames.map((frame) => frame.slice()));
    if (result.error !== null) {
      error = result.error;
      break;
    }
  }
  return { frames, error: error ?? decoder.end() };
}

/** The obviously-correct decoder: whole stream at once. */
function referenceDecode(stream: Uint8Array, frameBytesMax: number) {
  const frames: Uint8Array[] = [];
  const view = new DataView(stream.buffer, stream.byteOffset, stream.byteLength);
  let offset = 0;
  while (stream.length - offset >= 4) {
    const length = view.getUint32(offset, true);
    if (length > frameBytesMax) return { frames, error: 'FRAME_TOO_LARGE' };
    if (stream.length - offset - 4 < length) return { frames, error: 'FRAME_TRUNCATED' };
    frames.push(stream.slice(offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  return { frames, error: offset === stream.length ? null : 'FRAME_TRUNCATED' };
}

function splitAt(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let previous = 0;
  for (const point of [...points, bytes.length]) {
    chunks.push(bytes.subarray(previous, point));
    previous = point;
  }
  return chunks;
}

const bytes = (...values: number[]) => new Uint8Array(values);

test('many frames in one chunk come back as views, in order', () => {
  const payloads = [bytes(1), bytes(), bytes(2, 3, 4), bytes(5, 6)];
  const decoder = new FrameDecoder({ frameBytesMax: 16 });
  const stream = concat(payloads.map(encodeFrame));
  const result = decoder.push(stream);
  assert.equal(result.error, null);
  assert.deepEqual(result.frames, payloads);
  assert.equal(result.frames[2]!.buffer, stream.buffer, 'a frame inside one chunk is not copied');
  assert.equal(decoder.bufferedBytes, 0);
  assert.equal(decoder.end(), null);
});

test('a frame split at every possible point, including inside the header', () => {
  const payload = bytes(10, 20, 30, 40, 50, 60, 70);
  const stream = concat([encodeFrame(payload), encodeFrame(bytes(99))]);
  for (let cut = 0; cut <= stream.length; cut++) {
    for (let cut2 = cut; cut2 <= stream.length; cut2++) {
      const decoder = new FrameDecoder({ frameBytesMax: 64 });
      const { frames, error } = decodeAll(decoder, splitAt(stream, [cut, cut2]));
      assert.equal(error, null, `cuts ${cut},${cut2}`);
      assert.deepEqual(frames, [payload, bytes(99)], `cuts ${cut},${cut2}`);
    }
  }
});

test('one byte at a time', () => {
  const payloads = [bytes(1, 2, 3), bytes(), bytes(4)];
  const stream = concat(payloads.map(encodeFrame));
  const decoder = new FrameDecoder({ frameBytesMax: 8 });
  const { frames, error } = decodeAll(
    decoder,
    Array.from(stream, (byte) => bytes(byte)),
  );
  assert.equal(error, null);
  assert.deepEqual(frames, payloads);
});

test('an oversized length is rejected from the header alone, before the payload arrives', () => {
  const decoder = new FrameDecoder({ frameBytesMax: 100 });
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, 0xffff_fff0, true);
  const first = decoder.push(concat([encodeFrame(bytes(7)), header.subarray(0, 2)]));
  assert.deepEqual(first.frames, [bytes(7)]);
  assert.equal(first.error, null);
  const second = decoder.push(header.subarray(2));
  assert.deepEqual(second.error, { code: 'FRAME_TOO_LARGE', bytes: 0xffff_fff0, bytesMax: 100 });
  assert.equal(decoder.bufferedBytes, 0, 'nothing kept after the failure');
  // The decoder stays failed.
  assert.deepEqual(decoder.push(encodeFrame(bytes(1))).error?.code, 'FRAME_TOO_LARGE');
});

test('a stream ending inside a frame is FRAME_TRUNCATED', () => {
  const decoder = new FrameDecoder({ frameBytesMax: 100 });
  decoder.push(encodeFrame(bytes(1, 2, 3, 4)).subarray(0, 6));
  assert.deepEqual(decoder.end(), { code: 'FRAME_TRUNCATED', bytesHave: 6, bytesNeed: 8 });
  const headerOnly = new FrameDecoder({ frameBytesMax: 100 });
  headerOnly.push(bytes(1, 0));
  assert.deepEqual(headerOnly.end(), { code: 'FRAME_TRUNCATED', bytesHave: 2, bytesNeed: 4 });
});

test('bad limits are a RangeError', () => {
  assert.throws(() => new FrameDecoder({ frameBytesMax: -1 }), RangeError);
  assert.throws(() => new FrameDecoder({ frameBytesMax: 2 ** 32 }), RangeError);
});

test('property: encoded frames survive any chunking', () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      (payloads, cuts) => {
        const stream = concat(payloads.map(encodeFrame));
        const { frames, error } = decodeAll(new FrameDecoder({ frameBytesMax: 40 }), splitAt(stream, cuts));
        assert.equal(error, null);
        assert.deepEqual(frames, payloads);
      },
    ),
    { seed: SEED, numRuns: 500 },
  );
});

test('property: any bytes, any chunking: never throws, agrees with the reference decoder', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 200 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      fc.integer({ min: 0, max: 64 }),
      (stream, cuts, frameBytesMax) => {
        const expected = referenceDecode(stream, frameBytesMax);
        const actual = decodeAll(new FrameDecoder({ frameBytesMax }), splitAt(stream, cuts));
        assert.deepEqual(actual.frames, expected.frames);
        assert.equal(actual.error?.code ?? null, expected.error);
      },
    ),
    { seed: SEED, numRuns: 1000 },
  );
});

test('cost is linear: 50k 1-byte frames and in one frame split into 1-byte chunks', () => {
  const small = concat(Array.from({ length: 50_000 }, () => encodeFrame(bytes(1))));
  const decoder = new FrameDecoder({ frameBytesMax: 1 });
  assert.equal(decoder.push(small).frames.length, 50_000);
  // One large frame arriving in 16-byte pieces is copied once, not re-concatenated per piece.
  const big = encodeFrame(new Uint8Array(1_000_000).fill(7));
  const bigDecoder = new FrameDecoder({ frameBytesMax: 1_000_000 });
  let frames = 0;
  const started = performance.now();
  for (let offset = 0; offset < big.length; offset += 16)
    frames += bigDecoder.push(big.subarray(offset, offset + 16)).frames.length;
  const elapsedMs = performance.now() - started;
  assert.equal(frames, 1);
  // A quadratic decoder would copy ~31 GB here; linear takes a few ms. Generous bound for slow CI.
  assert.ok(elapsedMs < 2_000, `took ${elapsedMs} ms`);
});
