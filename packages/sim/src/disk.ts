/**
 * One node's simulated disk. The log is real bytes framed with kit's record-log `encodeRecords`, and
 * a restart recovers it with `scanRecords`: the same recovery routine as the real runtime, so torn
 * tails are exercised in simulation.
 *
 * Model (a single-writer file plus fsync, as a real runtime drives it):
 * - `append` writes records into the file (the page cache): instant, not durable;
 * - `sync` (a synced persist) makes every byte appended so far durable when it completes;
 * - `compact` writes a new snapshot and a new log and swaps them in atomically when it completes
 *   (write-new-then-rename): a crash before that leaves the old state, after it the new;
 * - operations complete in FIFO order (the caller schedules completions in issue order);
 * - a crash keeps exactly the durable bytes, plus, if torn, a random prefix of the unsynced bytes
 *   (the write in progress was partly on the platter): recovery must then drop a partial record.
 */
import {
  assert,
  type Durable,
  encodeRecordHeader,
  encodeRecords,
  RECORD_HEADER_BYTES,
  RECORD_PAYLOAD_BYTES_MAX,
  scanRecords,
} from '@dsys/kit';

/** A growable byte buffer: the contents of one log file. */
class LogFile {
  bytes = new Uint8Array(256);
  length = 0;

  /** Files are numbered in creation order; a compaction's new file has a higher generation. */
  constructor(
    readonly generation: number,
    initial?: Uint8Array,
  ) {
    if (initial !== undefined) this.append(initial);
  }

  private reserve(count: number): void {
    const needed = this.length + count;
    if (needed <= this.bytes.length) return;
    let capacity = this.bytes.length * 2;
    while (capacity < needed) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
  }

  append(data: Uint8Array): void {
    this.reserve(data.length);
    this.bytes.set(data, this.length);
    this.length += data.length;
  }

  /**
   * Frames records straight into the file: the bytes `encodeRecords(payloads)` would return (kit's
   * record-log format, header by `encodeRecordHeader`), without the intermediate buffer.
   */
  appendRecords(payloads: readonly Uint8Array[]): void {
    let total = 0;
    for (const payload of payloads) {
      if (payload.length > RECORD_PAYLOAD_BYTES_MAX) {
        throw new RangeError(`record of ${payload.length} bytes exceeds ${RECORD_PAYLOAD_BYTES_MAX}`);
      }
      total += RECORD_HEADER_BYTES + payload.length;
    }
    this.reserve(total);
    for (const payload of payloads) {
      encodeRecordHeader(payload, this.bytes, this.length);
      this.bytes.set(payload, this.length + RECORD_HEADER_BYTES);
      this.length += RECORD_HEADER_BYTES + payload.length;
    }
  }

  truncate(length: number): void {
    assert(length <= this.length, `LogFile.truncate: ${length} > ${this.length}`);
    this.length = length;
  }
}

/** A sync or compaction in flight; completes in issue order. */
export type DiskTicket =
  | { readonly type: 'sync'; readonly file: LogFile; readonly target: number }
  | { readonly type: 'compact'; readonly file: LogFile; readonly target: number; readonly snapshot: Uint8Array };

interface PendingAck {
  readonly file: LogFile;
  readonly end: number;
  readonly ack: number;
}

export interface CrashReport {
  /** Unsynced bytes that were lost. */
  readonly bytesLost: number;
  /** Unsynced bytes that survived as a torn tail (recovery will truncate the partial record). */
  readonly bytesTorn: number;
}

export interface Recovery {
  readonly durable: Durable;
  /** Bytes of torn tail that recovery truncated. */
  readonly bytesTruncated: number;
}

export class DiskCorruption extends Error {
  override readonly name = 'DiskCorruption';
}

export class SimDisk {
  /** The file that survives a crash, and how much of it is durable. */
  private generationNext = 1;
  private durableFile = new LogFile(0);
  private durableLength = 0;
  private durableSnapshot: Uint8Array | null = null;
  /** The file appends go to: the durable one, or the new log of a compaction in flight. */
  private currentFile: LogFile = this.durableFile;
  private readonly acksPending: PendingAck[] = [];
  /** Virtual time at which the disk finishes its last queued operation (FIFO). */
  busyUntilUs = 0;

  /** Appends records (not durable until a later sync); `ack` is reported once they are durable. */
  append(records: readonly Uint8Array[], ack: number | undefined): void {
    if (records.length > 0) this.currentFile.appendRecords(records);
    if (ack !== undefined) this.acksPending.push({ file: this.currentFile, end: this.currentFile.length, ack });
  }

  /** Starts an fsync of everything appended so far. */
  sync(): DiskTicket {
    return { type: 'sync', file: this.currentFile, target: this.currentFile.length };
  }

  /** Starts an atomic replacement of all durable state; later appends go to the new log. */
  compact(snapshot: Uint8Array, records: readonly Uint8Array[], ack: number | undefined): DiskTicket {
    const file = new LogFile(this.generationNext++, encodeRecords(records));
    this.currentFile = file;
    if (ack !== undefined) this.acksPending.push({ file, end: file.length, ack });
    return { type: 'compact', file, target: file.length, snapshot };
  }

  /** Completes an operation (in issue order); returns the acks now durable, in append order. */
  complete(ticket: DiskTicket): number[] {
    if (ticket.type === 'compact') {
      this.durableFile = ticket.file;
      this.durableSnapshot = ticket.snapshot;
      this.durableLength = ticket.target;
    } else {
      // FIFO: a sync completes after every compaction issued before it, so its file is durable's.
      assert(ticket.file === this.durableFile, 'SimDisk.complete: sync of a file that is not the durable one');
      assert(ticket.target <= ticket.file.length, 'SimDisk.complete: sync target beyond the file');
      this.durableLength = Math.max(this.durableLength, ticket.target);
    }
    return this.takeDurableAcks();
  }

  /**
   * Acks whose bytes are durable: in the durable file up to its durable length, or in an older file
   * that a completed compaction replaced (the protocol chose the compaction's contents to supersede
   * them). Acks in the new file of a compaction still in flight wait for it.
   */
  private takeDurableAcks(): number[] {
    const acks: number[] = [];
    const durable = this.durableFile;
    let kept = 0;
    for (const pending of this.acksPending) {
      const older = pending.file.generation < durable.generation;
      if (older || (pending.file === durable && pending.end <= this.durableLength)) acks.push(pending.ack);
      else this.acksPending[kept++] = pending;
    }
    this.acksPending.length = kept;
    return acks;
  }

  /** Unsynced bytes in the durable file (the ones a crash loses or tears). */
  get bytesUnsynced(): number {
    return this.durableFile.length - this.durableLength;
  }

  /**
   * Loses everything not durable. With `tornBytes(unsynced)` given, that many of the unsynced bytes
   * (a prefix: the write in progress) survive as a torn tail.
   */
  crash(tornBytes: ((unsyncedBytes: number) => number) | null): CrashReport {
    const unsynced = this.bytesUnsynced;
    const torn = tornBytes === null || unsynced === 0 ? 0 : tornBytes(unsynced);
    assert(Number.isSafeInteger(torn) && torn >= 0 && torn <= unsynced, `SimDisk.crash: torn ${torn} of ${unsynced}`);
    this.durableFile.truncate(this.durableLength + torn);
    this.currentFile = this.durableFile;
    this.acksPending.length = 0;
    return { bytesLost: unsynced - torn, bytesTorn: torn };
  }

  /**
   * What the node finds at boot: scans the log with kit's `scanRecords`, truncates a torn tail (as the
   * real runtime does before appending again), and throws `DiskCorruption` if durable bytes are damaged.
   */
  recover(): Recovery {
    const bytes = this.durableFile.bytes.subarray(0, this.durableFile.length);
    const scan = scanRecords(bytes);
    if (!scan.ok) throw new DiskCorruption(`log corrupt at byte ${scan.corruptAt}: ${scan.reason}`);
    assert(scan.validBytes >= this.durableLength, 'SimDisk.recover: a durable record failed its checksum');
    this.durableFile.truncate(scan.validBytes);
    this.durableLength = scan.validBytes;
    return { durable: { snapshot: this.durableSnapshot, records: scan.records }, bytesTruncated: scan.tornBytes };
  }

  /** Durable bytes of the log (tests inspect the on-disk framing). */
  durableBytes(): Uint8Array {
    return this.durableFile.bytes.slice(0, this.durableLength);
  }
}
