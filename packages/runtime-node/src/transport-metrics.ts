/** The wire-level series shared by the peer transport and the client port. */
import type { CounterChild, GaugeChild, MetricsRegistry } from './metrics.js';

/** Which listener or dialer a connection belongs to (the `port` label). */
export type PortKind = 'peer_in' | 'peer_out' | 'client' | 'client_out';

export interface PortMetrics {
  readonly framesIn: CounterChild;
  readonly framesOut: CounterChild;
  readonly bytesIn: CounterChild;
  readonly bytesOut: CounterChild;
  readonly open: GaugeChild;
  rejected(reason: string): CounterChild;
  closed(reason: string): CounterChild;
}

export class TransportMetrics {
  private readonly framesIn;
  private readonly framesOut;
  private readonly bytesIn;
  private readonly bytesOut;
  private readonly rejected;
  private readonly closed;
  private readonly open;
  readonly reconnects;
  readonly peerConnected;
  readonly messagesDropped;
  readonly peerQueueMessages;
  private readonly ports = new Map<PortKind, PortMetrics>();

  constructor(registry: MetricsRegistry) {
    this.framesIn = registry.counter('dsys_frames_in_total', 'Frames received', ['port']);
    this.framesOut = registry.counter('dsys_frames_out_total', 'Frames sent', ['port']);
    this.bytesIn = registry.counter('dsys_bytes_in_total', 'Bytes received', ['port']);
    this.bytesOut = registry.counter('dsys_bytes_out_total', 'Bytes sent', ['port']);
    this.rejected = registry.counter(
      'dsys_frames_rejected_total',
      'Connections closed for bad input (malformed, oversized, slow, bad handshake), by reason',
      ['port', 'reason'],
    );
    this.closed = registry.counter('dsys_connections_closed_total', 'Connections closed, by reason', [
      'port',
      'reason',
    ]);
    this.open = registry.gauge('dsys_connections_open', 'Open connections', ['port']);
    this.reconnects = registry.counter(
      'dsys_peer_reconnects_total',
      'Outbound peer connection attempts after the first',
      ['peer'],
    );
    this.peerConnected = registry.gauge('dsys_peer_connected', '1 when the outbound link to the peer is up', ['peer']);
    this.messagesDropped = registry.counter(
      'dsys_peer_messages_dropped_total',
      'Protocol messages dropped before reaching the socket (queue full, too large, unknown peer)',
      ['peer', 'reason'],
    );
    this.peerQueueMessages = registry.gauge('dsys_peer_queue_messages', 'Messages queued for a peer', ['peer']);
  }

  port(kind: PortKind): PortMetrics {
    let metrics = this.ports.get(kind);
    if (metrics === undefined) {
      const labels = { port: kind };
      metrics = {
        framesIn: this.framesIn.child(labels),
        framesOut: this.framesOut.child(labels),
        bytesIn: this.bytesIn.child(labels),
        bytesOut: this.bytesOut.child(labels),
        open: this.open.child(labels),
        rejected: (reason) => this.rejected.child({ port: kind, reason }),
        closed: (reason) => this.closed.child({ port: kind, reason }),
      };
      this.ports.set(kind, metrics);
    }
    return metrics;
  }
}
