/**
 * Carries out a protocol's effects under kit's effect-order contract (kit/src/protocol.ts):
 *
 * 1. Effects run in the order returned, across steps too: one FIFO for the node's whole life.
 * 2. A `persist` with `sync: true` and a `compact` with `barrier: true` is a barrier: every later effect, including
 *    those of later steps, waits until it is durable. Effects before it are not delayed.
 * 3. A persist/compact with an `ack` yields a `persisted` event once durable.
 *
 * Storage operations are handed to the log at once, in effect order, even when they sit behind a
 * barrier. The log keeps them in order, so the disk never holds a later record without the earlier
 * ones; what changes is only that a later record may become durable in the same fsync as the barrier,
 * before the sends between them go out. That outcome is also reachable under the strict order:
 * persist, send (lost: messages are unreliable by contract, and so is a reply to a client that may
 * disconnect), persist, crash. In exchange one fsync covers every barrier queued while the previous
 * one ran (group commit), instead of one fsync per step.
 *
 * Sends and replies behind a pending barrier wait in the FIFO and are released in order when the
 * log reports the barrier's ticket synced.
 */
import { assert, type ClientId, type Effect, type NodeId, type RequestId, unreachable } from '@dsys/kit';

export interface PipelineStorage {
  append(records: readonly Uint8Array[], sync: boolean): number;
  compact(snapshot: Uint8Array, records: readonly Uint8Array[]): number;
  readonly syncedTicket: number;
  /** Must call back asynchronously (never from inside this call). */
  whenSynced(ticket: number, callback: () => void): void;
}

export interface PipelineTargets<Message, Response> {
  send(to: NodeId, message: Message): void;
  reply(client: ClientId, requestId: RequestId, response: Response): void;
  /** Schedules the `persisted` event (the host dispatches it; never from inside this call). */
  persisted(ack: number): void;
}

type Waiting<Message, Response> =
  | { readonly kind: 'barrier'; readonly ticket: number }
  | { readonly kind: 'effect'; readonly effect: Effect<Message, Response> };

export class EffectPipeline<Message, Response> {
  private readonly storage: PipelineStorage;
  private readonly targets: PipelineTargets<Message, Response>;
  /** Effects held behind a barrier; `head` indexes the oldest (amortized O(1) dequeue). */
  private waiting: Waiting<Message, Response>[] = [];
  private head = 0;
  /** The barrier ticket a `whenSynced` callback is registered for, to register once per barrier. */
  private awaitedTicket = 0;

  constructor(storage: PipelineStorage, targets: PipelineTargets<Message, Response>) {
    this.storage = storage;
    this.targets = targets;
  }

  /** Effects held behind an undurable barrier (sends and replies), barriers included. */
  get heldCount(): number {
    return this.waiting.length - this.head;
  }

  submit(effects: readonly Effect<Message, Response>[]): void {
    for (const effect of effects) {
      switch (effect.type) {
        case 'persist': {
          const ticket = this.storage.append(effect.records, effect.sync);
          this.watchAck(ticket, effect.ack);
          if (effect.sync) this.hold({ kind: 'barrier', ticket });
          break;
        }
        case 'compact': {
          const ticket = this.storage.compact(effect.snapshot, effect.records);
          this.watchAck(ticket, effect.ack);
          if (effect.barrier) this.hold({ kind: 'barrier', ticket });
          break;
        }
        case 'send':
        case 'reply':
          if (this.heldCount === 0) this.execute(effect);
          else this.hold({ kind: 'effect', effect });
          break;
        default:
          unreachable(effect, 'unknown effect');
      }
    }
    this.drain();
  }

  private watchAck(ticket: number, ack: number | undefined): void {
    if (ack === undefined) return;
    this.storage.whenSynced(ticket, () => this.targets.persisted(ack));
  }

  private hold(item: Waiting<Message, Response>): void {
    this.waiting.push(item);
  }

  /** Runs everything up to the first barrier that is not yet durable. */
  private drain(): void {
    while (this.head < this.waiting.length) {
      const item = this.waiting[this.head]!;
      if (item.kind === 'barrier') {
        if (item.ticket > this.storage.syncedTicket) {
          if (this.awaitedTicket !== item.ticket) {
            this.awaitedTicket = item.ticket;
            this.storage.whenSynced(item.ticket, () => this.drain());
          }
          // Under steady load a barrier is always pending: drop the consumed prefix now and then.
          if (this.head >= 1024 && this.head * 2 >= this.waiting.length) {
            this.waiting = this.waiting.slice(this.head);
            this.head = 0;
          }
          return;
        }
      } else {
        this.execute(item.effect);
      }
      this.head++;
    }
    this.waiting = [];
    this.head = 0;
  }

  private execute(effect: Effect<Message, Response>): void {
    assert(effect.type === 'send' || effect.type === 'reply', 'pipeline executes only sends and replies');
    if (effect.type === 'send') this.targets.send(effect.to, effect.message);
    else this.targets.reply(effect.client, effect.requestId, effect.response);
  }
}
