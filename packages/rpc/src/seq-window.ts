/**
 * The client's outstanding sequence numbers of one session, to compute `floor` (the lowest seq still
 * waited for) in O(1) amortized: seqs are opened in increasing order and closed in any order; the floor
 * advances over a run of closed seqs. A ring of flags covers [floor, next).
 */
import { assert } from '@dsys/kit';

export class SeqWindow {
  /** Lowest seq not yet closed (equals `next` when nothing is open). */
  floor = 1;
  next = 1;
  private closed = new Uint8Array(64);

  /** Allocates the next seq. */
  open(): number {
    const seq = this.next++;
    if (this.next - this.floor > this.closed.length) this.grow();
    this.closed[seq % this.closed.length] = 0;
    return seq;
  }

  close(seq: number): void {
    if (seq < 1 || seq >= this.next) assert(false, `SeqWindow.close: seq ${seq} was never opened`);
    if (seq < this.floor) return;
    const ring = this.closed;
    ring[seq % ring.length] = 1;
    while (this.floor < this.next && ring[this.floor % ring.length] === 1) this.floor++;
  }

  private grow(): void {
    const old = this.closed;
    const grown = new Uint8Array(old.length * 2);
    for (let seq = this.floor; seq < this.next - 1; seq++) grown[seq % grown.length] = old[seq % old.length]!;
    this.closed = grown;
  }
}
