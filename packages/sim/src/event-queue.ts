/**
 * The simulator's event queue: a binary min-heap keyed by (timeUs, seq). `seq` is assigned at
 * insertion and never repeats, so the order is total and ties at one instant run in the order they
 * were scheduled: no hidden nondeterminism from an unstable sort (STYLE.md section 3).
 *
 * Events are plain objects with fixed fields (one hidden class, so property access stays
 * monomorphic); popped events go to a free list and are reused, so a long run allocates almost no
 * queue garbage.
 */
import { assert } from '@dsys/kit';

export class SimEvent {
  timeUs = 0;
  seq = 0;
  /** One of the `EventKind` numbers of the simulation. */
  kind = 0;
  /** Node id or client id the event is for. */
  target = 0;
  /** Sender endpoint, timer id, ack number: meaning depends on `kind`. */
  source = 0;
  /** The target's incarnation when scheduled; a crash makes the node's older events stale. */
  incarnation = 0;
  /** Request id, effect index: meaning depends on `kind`. */
  index = 0;
  payload: unknown = null;
  /** A second payload (a disk completion carries its ticket and the effects after its barrier). */
  extra: unknown = null;
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.timeUs < b.timeUs || (a.timeUs === b.timeUs && a.seq < b.seq);
}

export class EventQueue {
  private readonly heap: SimEvent[] = [];
  private readonly free: SimEvent[] = [];
  private seqNext = 0;

  get size(): number {
    return this.heap.length;
  }

  /** A blank event to fill in and `push`. */
  allocate(): SimEvent {
    return this.free.pop() ?? new SimEvent();
  }

  push(event: SimEvent): void {
    // The message is built only on failure: no string work per event on the hot path.
    if (!(Number.isSafeInteger(event.timeUs) && event.timeUs >= 0))
      assert(false, `EventQueue.push: bad time ${event.timeUs}`);
    event.seq = this.seqNext++;
    const heap = this.heap;
    let index = heap.length;
    heap.push(event);
    while (index > 0) {
      const parent = (index - 1) >> 1;
      const above = heap[parent]!;
      if (!before(event, above)) break;
      heap[index] = above;
      index = parent;
    }
    heap[index] = event;
  }

  peek(): SimEvent | undefined {
    return this.heap[0];
  }

  /** Removes and returns the earliest event; hand it back with `release` once done with it. */
  pop(): SimEvent | undefined {
    const heap = this.heap;
    const top = heap[0];
    if (top === undefined) return undefined;
    const last = heap.pop()!;
    const count = heap.length;
    if (count > 0) {
      let index = 0;
      for (;;) {
        const left = 2 * index + 1;
        if (left >= count) break;
        const right = left + 1;
        const child = right < count && before(heap[right]!, heap[left]!) ? right : left;
        if (!before(heap[child]!, last)) break;
        heap[index] = heap[child]!;
        index = child;
      }
      heap[index] = last;
    }
    return top;
  }

  release(event: SimEvent): void {
    event.payload = null;
    event.extra = null;
    this.free.push(event);
  }
}
