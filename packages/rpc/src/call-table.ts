/**
 * Pending calls by wire id, without allocating per call. Wire ids only grow and most calls end soon,
 * so a ring indexed by `id & mask` holds them; a long-lived call (a stream, a slow call) whose slot is
 * needed again moves to a small overflow map. A JS Map with an insert and a delete per call made V8
 * reallocate its table every few dozen calls, and those tables were promoted to old space (see
 * sessions.ts for the measurement).
 */
import { assert } from '@dsys/kit';

export class CallTable<T extends { id: number }> {
  private slots: (T | undefined)[];
  private mask: number;
  private readonly overflow = new Map<number, T>();
  size = 0;

  constructor(capacity = 1024) {
    assert(capacity > 0 && (capacity & (capacity - 1)) === 0, 'CallTable: capacity must be a power of two');
    this.slots = new Array(capacity).fill(undefined);
    this.mask = capacity - 1;
  }

  get(id: number): T | undefined {
    const item = this.slots[id & this.mask];
    if (item !== undefined && item.id === id) return item;
    return this.overflow.size === 0 ? undefined : this.overflow.get(id);
  }

  /** True if `item` is in the table under its current id. */
  has(item: T): boolean {
    return this.get(item.id) === item;
  }

  set(item: T): void {
    // A template string in the assert would build a string per call: test first.
    if (this.get(item.id) !== undefined) assert(false, `CallTable.set: id ${item.id} taken`);
    const slot = item.id & this.mask;
    const previous = this.slots[slot];
    if (previous !== undefined) {
      this.overflow.set(previous.id, previous);
      if (this.overflow.size * 4 > this.slots.length) this.grow();
    }
    this.slots[item.id & this.mask] = item;
    this.size++;
  }

  /** Removes `item` (under its current id); false if it was not there. */
  delete(item: T): boolean {
    const slot = item.id & this.mask;
    if (this.slots[slot] === item) {
      this.slots[slot] = undefined;
      this.size--;
      return true;
    }
    if (this.overflow.get(item.id) === item) {
      this.overflow.delete(item.id);
      this.size--;
      return true;
    }
    return false;
  }

  /** A snapshot of every item, oldest id first. */
  values(): T[] {
    const items: T[] = [];
    for (const item of this.slots) if (item !== undefined) items.push(item);
    for (const item of this.overflow.values()) items.push(item);
    return items.sort((a, b) => a.id - b.id);
  }

  private grow(): void {
    const items = this.values();
    const capacity = this.slots.length * 2;
    this.slots = new Array(capacity).fill(undefined);
    this.mask = capacity - 1;
    this.overflow.clear();
    this.size = 0;
    for (const item of items) this.set(item);
  }
}
