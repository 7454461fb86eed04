/**
 * The bytes of a snapshot file: 8 magic bytes, then kit's record framing (each record CRC32C
 * checked) holding one meta record {generation, chunks, bytes} and the snapshot split into chunks
 * of at most `SNAPSHOT_CHUNK_BYTES` (so a snapshot is not limited to one record's maximum size).
 *
 * A snapshot file is fsynced before it is renamed into place, so unlike the log it has no torn tail
 * to forgive: any damage, including a short file, is corruption.
 */
import { decode, encode, encodeRecords, RECORD_HEADER_BYTES, s, scanRecords } from '@dsys/kit';

export const SNAPSHOT_MAGIC = new TextEncoder().encode('DSYSSNP1');
export const SNAPSHOT_CHUNK_BYTES = 16 * 1024 * 1024;

const SnapshotMeta = s.struct({ generation: s.uint, chunks: s.uint, bytes: s.uint });

export function encodeSnapshotFile(generation: number, snapshot: Uint8Array): Uint8Array {
  const chunks: Uint8Array[] = [];
  for (let offset = 0; offset < snapshot.length; offset += SNAPSHOT_CHUNK_BYTES) {
    chunks.push(snapshot.subarray(offset, offset + SNAPSHOT_CHUNK_BYTES));
  }
  const meta = encode(SnapshotMeta, { generation, chunks: chunks.length, bytes: snapshot.length });
  const body = encodeRecords([meta, ...chunks]);
  const out = new Uint8Array(SNAPSHOT_MAGIC.length + body.length);
  out.set(SNAPSHOT_MAGIC, 0);
  out.set(body, SNAPSHOT_MAGIC.length);
  return out;
}

export type SnapshotDecode = { ok: true; snapshot: Uint8Array } | { ok: false; offset: number; reason: string };

export function decodeSnapshotFile(bytes: Uint8Array, generation: number): SnapshotDecode {
  const magicBytes = SNAPSHOT_MAGIC.length;
  if (bytes.length < magicBytes) return { ok: false, offset: 0, reason: 'shorter than the magic' };
  for (let i = 0; i < magicBytes; i++) {
    if (bytes[i] !== SNAPSHOT_MAGIC[i]) return { ok: false, offset: i, reason: 'bad magic' };
  }
  const scan = scanRecords(bytes.subarray(magicBytes));
  if (!scan.ok) return { ok: false, offset: magicBytes + scan.corruptAt, reason: scan.reason };
  if (scan.tornBytes > 0) {
    return { ok: false, offset: magicBytes + scan.validBytes, reason: `${scan.tornBytes} bytes of damaged record` };
  }
  const [metaBytes, ...chunks] = scan.records;
  if (metaBytes === undefined) return { ok: false, offset: magicBytes, reason: 'no meta record' };
  const meta = decode(SnapshotMeta, metaBytes);
  if (!meta.ok) return { ok: false, offset: magicBytes + RECORD_HEADER_BYTES, reason: 'undecodable meta record' };
  if (meta.value.generation !== generation) {
    return { ok: false, offset: magicBytes, reason: `names generation ${meta.value.generation}, file ${generation}` };
  }
  if (meta.value.chunks !== chunks.length) {
    return { ok: false, offset: magicBytes, reason: `meta says ${meta.value.chunks} chunks, found ${chunks.length}` };
  }
  let total = 0;
  for (const chunk of chunks) total += chunk.length;
  if (total !== meta.value.bytes) {
    return { ok: false, offset: magicBytes, reason: `meta says ${meta.value.bytes} bytes, found ${total}` };
  }
  if (chunks.length === 1) return { ok: true, snapshot: chunks[0]! };
  const snapshot = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    snapshot.set(chunk, offset);
    offset += chunk.length;
  }
  return { ok: true, snapshot };
}
