/**
 * The receiving side of a chunked InstallSnapshot (dissertation §5.3, Figure 13): chunks arrive in
 * offset order for one snapshot (index, term); an out-of-order chunk is answered with the offset the
 * receiver expects, so the leader rewinds; a chunk of a newer snapshot starts over. The buffer never
 * exceeds the declared size, which is itself bounded by `snapshotBytesMax`.
 */
import type { SnapshotMeta } from './types.js';

export type ChunkOutcome =
  | { readonly type: 'complete'; readonly data: Uint8Array }
  /** Send the leader this offset (the next one expected). */
  | { readonly type: 'progress'; readonly offset: number }
  | { readonly type: 'invalid'; readonly reason: string };

export class SnapshotReceiver {
  private meta: SnapshotMeta | null = null;
  private totalBytes = 0;
  private chunks: Uint8Array[] = [];
  private received = 0;

  constructor(private readonly snapshotBytesMax: number) {}

  accept(meta: SnapshotMeta, totalBytes: number, offset: number, chunk: Uint8Array): ChunkOutcome {
    if (totalBytes > this.snapshotBytesMax) {
      return { type: 'invalid', reason: `snapshot of ${totalBytes} bytes over ${this.snapshotBytesMax}` };
    }
    if (offset + chunk.length > totalBytes) return { type: 'invalid', reason: 'chunk beyond the declared size' };
    const same = this.meta !== null && this.meta.index === meta.index && this.meta.term === meta.term;
    if (!same || this.totalBytes !== totalBytes) {
      if (offset !== 0) return { type: 'progress', offset: 0 };
      this.reset();
      this.meta = meta;
      this.totalBytes = totalBytes;
    }
    if (offset !== this.received) return { type: 'progress', offset: this.received };
    if (chunk.length > 0) this.chunks.push(chunk);
    this.received += chunk.length;
    if (this.received < totalBytes) return { type: 'progress', offset: this.received };
    const data = new Uint8Array(totalBytes);
    let at = 0;
    for (const piece of this.chunks) {
      data.set(piece, at);
      at += piece.length;
    }
    this.reset();
    return { type: 'complete', data };
  }

  reset(): void {
    this.meta = null;
    this.totalBytes = 0;
    this.chunks = [];
    this.received = 0;
  }

  get bufferedBytes(): number {
    return this.received;
  }
}
