/** A FIFO of byte payloads bounded in count and bytes; pushing past a bound drops the oldest. */
export class BoundedQueue {
  private items: Uint8Array[] = [];
  private head = 0;
  private bytesNow = 0;
  readonly itemsMax: number;
  readonly bytesMax: number;

  constructor(itemsMax: number, bytesMax: number) {
    if (!(itemsMax >= 1) || !(bytesMax >= 1)) throw new RangeError('BoundedQueue: bounds must be >= 1');
    this.itemsMax = itemsMax;
    this.bytesMax = bytesMax;
  }

  get length(): number {
    return this.items.length - this.head;
  }

  get bytes(): number {
    return this.bytesNow;
  }

  /** Adds `item`, returning how many older items were dropped to make room. */
  push(item: Uint8Array): number {
    let dropped = 0;
    while (this.length > 0 && (this.length >= this.itemsMax || this.bytesNow + item.length > this.bytesMax)) {
      this.shift();
      dropped++;
    }
    this.items.push(item);
    this.bytesNow += item.length;
    return dropped;
  }

  peek(): Uint8Array | undefined {
    return this.items[this.head];
  }

  shift(): Uint8Array | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head]!;
    this.items[this.head] = EMPTY;
    this.head++;
    this.bytesNow -= item.length;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
    this.bytesNow = 0;
  }
}

const EMPTY = new Uint8Array(0);
