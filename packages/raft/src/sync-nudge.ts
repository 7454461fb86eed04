/**
 * Log writes of entries are acknowledged once durable but are not barriers (`ReadyDriver`):
 * later sends and replies do not queue behind them. That relies on the driver
 * syncing soon when an acknowledgement is awaited, which runtime-node does (group commit). A driver
 * that syncs only when asked (the simulator's disk) gets one explicit synced persist once the oldest
 * unacknowledged write has waited `ticksMax` ticks.
 */
export class SyncNudge {
  private oldestAck = Number.POSITIVE_INFINITY;
  private ticks = 0;
  private sent = false;

  constructor(private readonly ticksMax: number) {}

  /**
   * Called once a tick with the oldest acknowledgement in flight (+Infinity when none); true when the
   * node should emit one synced, empty persist now. One nudge per oldest write: its sync covers every
   * write queued before it, so that write is acknowledged when it completes; nudging again while it is
   * queued would only lengthen the disk's queue (with a disk slower than a tick, without end) and hold
   * every later send behind it.
   */
  tick(oldestAck: number): boolean {
    if (oldestAck !== this.oldestAck) {
      this.oldestAck = oldestAck;
      this.ticks = 0;
      this.sent = false;
      return false;
    }
    if (oldestAck === Number.POSITIVE_INFINITY || this.sent) return false;
    if (++this.ticks < this.ticksMax) return false;
    this.sent = true;
    return true;
  }
}
