/**
 * The framing of durable log records, pure so that the simulator's disk and the real runtime's
 * files share one recovery routine.
 *
 * Record = header (12 bytes) + payload:
 *   u32 payloadLength | u32 crc32c(payload) | u32 crc32c(first 8 header bytes)
 * The header has its own checksum (TigerBeetle keeps header and body checksums apart) so a flipped
 * bit in a length field is detected instead of sending recovery off to a wrong offset.
 *
 * Recovery tells a torn tail from corruption:
 * - a torn tail is an incomplete or invalid record with *no valid record after it*: the last write
 *   was interrupted by a crash before fsync. It is truncated, because nothing in it was acknowledged.
 * - corruption is an invalid record *followed by a valid one*: bytes that were durable changed.
 *   Recovery stops with an error naming the file and offset; serving on would lose acknowledged data.
 * Limitation (shared with etcd's WAL): damage to the very last record looks exactly like a torn write.
 */
import { crc32c } from './crc32c.js';

export const RECORD_HEADER_BYTES = 12;
/** Largest single record; bounds allocation during recovery. */
export const RECORD_PAYLOAD_BYTES_MAX = 64 * 1024 * 1024;

export function encodeRecordHeader(payload: Uint8Array, out: Uint8Array, offset: number): void {
  const view = new DataView(out.buffer, out.byteOffset + offset, RECORD_HEADER_BYTES);
  view.setUint32(0, payload.length, true);
  view.setUint32(4, crc32c(payload), true);
  view.setUint32(8, crc32c(out.subarray(offset, offset + 8)), true);
}

/** Frames records back to back into one buffer (one write for a whole group commit). */
export function encodeRecords(payloads: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const payload of payloads) total += RECORD_HEADER_BYTES + payload.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const payload of payloads) {
    if (payload.length > RECORD_PAYLOAD_BYTES_MAX) {
      throw new RangeError(`record of ${payload.length} bytes exceeds ${RECORD_PAYLOAD_BYTES_MAX}`);
    }
    encodeRecordHeader(payload, out, offset);
    out.set(payload, offset + RECORD_HEADER_BYTES);
    offset += RECORD_HEADER_BYTES + payload.length;
  }
  return out;
}

export type ScanResult =
  | { ok: true; records: Uint8Array[]; validBytes: number; tornBytes: number }
  | { ok: false; corruptAt: number; reason: string; records: Uint8Array[] };

type RecordCheck = { valid: true; length: number } | { valid: false; reason: string };

function checkRecord(bytes: Uint8Array, offset: number): RecordCheck {
  if (bytes.length - offset < RECORD_HEADER_BYTES) return { valid: false, reason: 'partial header' };
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, RECORD_HEADER_BYTES);
  const length = view.getUint32(0, true);
  const payloadCrc = view.getUint32(4, true);
  const headerCrc = view.getUint32(8, true);
  if (crc32c(bytes.subarray(offset, offset + 8)) !== headerCrc)
    return { valid: false, reason: 'header checksum mismatch' };
  if (length > RECORD_PAYLOAD_BYTES_MAX) return { valid: false, reason: `length ${length} over maximum` };
  const start = offset + RECORD_HEADER_BYTES;
  if (start + length > bytes.length) return { valid: false, reason: 'partial payload' };
  if (crc32c(bytes.subarray(start, start + length)) !== payloadCrc)
    return { valid: false, reason: 'payload checksum mismatch' };
  return { valid: true, length };
}

/** Is there any valid record starting anywhere in bytes[from..]? (Only run on the failure path.) */
function validRecordAfter(bytes: Uint8Array, from: number): boolean {
  let offset = from;
  while (offset + RECORD_HEADER_BYTES <= bytes.length) {
    // An all-zero header would check only if crc32c of 8 zero bytes were 0, which it is not; so zeroed
    // (preallocated) space never counts as a record, and a run of zeros is skipped at once instead of
    // checking a header at each of its offsets (megabytes of them after a preallocating writer).
    let nonZero = offset;
    while (nonZero < bytes.length && bytes[nonZero] === 0) nonZero++;
    if (nonZero - offset >= RECORD_HEADER_BYTES) {
      offset = nonZero - RECORD_HEADER_BYTES + 1;
      continue;
    }
    if (checkRecord(bytes, offset).valid) return true;
    offset++;
  }
  return false;
}

/** Splits a log file's bytes into record payloads (copies), classifying any damage. */
export function scanRecords(bytes: Uint8Array): ScanResult {
  const records: Uint8Array[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const check = checkRecord(bytes, offset);
    if (!check.valid) {
      if (validRecordAfter(bytes, offset + 1)) {
        return { ok: false, corruptAt: offset, reason: check.reason, records };
      }
      return { ok: true, records, validBytes: offset, tornBytes: bytes.length - offset };
    }
    const start = offset + RECORD_HEADER_BYTES;
    records.push(bytes.slice(start, start + check.length));
    offset = start + check.length;
  }
  return { ok: true, records, validBytes: offset, tornBytes: 0 };
}
