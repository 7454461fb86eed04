/**
 * A TCP socket speaking length-prefixed frames, with the defences every port shares: the frame size
 * limit (checked by the decoder before allocating), a deadline for a started frame to complete (a
 * peer that trickles one byte at a time cannot hold a connection and its buffers forever), and a
 * bound on bytes waiting in the socket's write buffer.
 *
 * Bad input closes only this connection: the reason is logged (structured) and counted in
 * `dsys_frames_rejected_total{port,reason}`; the process keeps serving everyone else.
 */
import type { Socket } from 'node:net';
import { describeFrameError, encodeFrame, FrameDecoder } from './frame.js';
import type { Logger } from './logger.js';
import type { PortMetrics } from './transport-metrics.js';

/** Why a connection closed. The first group is bad input from the remote side. */
export type CloseReason =
  | 'FRAME_TOO_LARGE'
  | 'FRAME_TRUNCATED'
  | 'FRAME_TIMEOUT'
  | 'DECODE_ERROR'
  | 'BAD_HANDSHAKE'
  | 'HANDSHAKE_TIMEOUT'
  | 'UNEXPECTED_FRAME'
  | 'DUPLICATE_REQUEST'
  | 'SLOW_CONSUMER'
  | 'HANDSHAKE_REJECTED'
  | 'TOO_MANY_CONNECTIONS'
  | 'REPLACED'
  | 'REMOTE_CLOSED'
  | 'SOCKET_ERROR'
  | 'CONNECT_TIMEOUT'
  | 'SHUTDOWN';

const KEEPALIVE_DELAY_MS = 5_000;
/** How long a closing connection may take to hand its last frames to the kernel and the remote. */
const FLUSH_ON_CLOSE_MS = 1000;

const BAD_INPUT: ReadonlySet<CloseReason> = new Set([
  'FRAME_TOO_LARGE',
  'FRAME_TRUNCATED',
  'FRAME_TIMEOUT',
  'DECODE_ERROR',
  'BAD_HANDSHAKE',
  'HANDSHAKE_TIMEOUT',
  'UNEXPECTED_FRAME',
  'DUPLICATE_REQUEST',
  'SLOW_CONSUMER',
]);

export function isBadInput(reason: CloseReason): boolean {
  return BAD_INPUT.has(reason);
}

export interface ConnectionLimits {
  readonly frameBytesMax: number;
  /** A frame whose first byte arrived must be complete within this. */
  readonly frameTimeoutMs: number;
  /** Bytes waiting in the socket's write buffer above which the remote side counts as too slow. */
  readonly writeBufferBytesMax: number;
}

export interface ConnectionOptions {
  readonly limits: ConnectionLimits;
  readonly logger: Logger;
  readonly metrics: PortMetrics;
  readonly onFrame: (frame: Uint8Array) => void;
  readonly onClose?: (reason: CloseReason, detail: string) => void;
}

export class FramedConnection {
  readonly socket: Socket;
  readonly remote: string;
  private readonly options: ConnectionOptions;
  private readonly decoder: FrameDecoder;
  private frameTimer: NodeJS.Timeout | null = null;
  private closedReason: CloseReason | null = null;

  constructor(socket: Socket, options: ConnectionOptions) {
    this.socket = socket;
    this.options = options;
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.decoder = new FrameDecoder({ frameBytesMax: options.limits.frameBytesMax });
    options.metrics.open.inc();
    socket.setNoDelay(true);
    // Finds a peer that vanished without a FIN or RST (a crashed host, a dropped NAT entry).
    socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => {
      const error = this.decoder.end();
      if (error === null) this.close('REMOTE_CLOSED', 'remote closed the connection');
      else this.close(error.code, describeFrameError(error));
    });
    socket.on('error', (error) => this.close('SOCKET_ERROR', error.message));
    socket.on('close', () => this.close('REMOTE_CLOSED', 'socket closed'));
  }

  get closed(): boolean {
    return this.closedReason !== null;
  }

  get closeReason(): CloseReason | null {
    return this.closedReason;
  }

  /** Bytes written but not yet taken by the kernel. */
  get bufferedBytes(): number {
    return this.socket.writableLength;
  }

  /** Frames and writes `payload`; closes with SLOW_CONSUMER when the write buffer is over its bound. */
  send(payload: Uint8Array): boolean {
    if (this.closedReason !== null) return false;
    if (this.socket.writableLength > this.options.limits.writeBufferBytesMax) {
      this.close('SLOW_CONSUMER', `${this.socket.writableLength} bytes unread by the remote side`);
      return false;
    }
    const frame = encodeFrame(payload);
    this.socket.write(frame);
    this.options.metrics.framesOut.inc();
    this.options.metrics.bytesOut.inc(frame.length);
    return true;
  }

  /**
   * Closes once (later calls are ignored). `flush` lets frames already written go out first (a
   * goodbye or rejection the remote should read); otherwise the socket is destroyed at once.
   */
  close(reason: CloseReason, detail: string, flush = reason === 'SHUTDOWN'): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    this.clearFrameTimer();
    const { logger, metrics } = this.options;
    metrics.open.dec();
    metrics.closed(reason).inc();
    const fields = { remote: this.remote, reason, detail };
    if (isBadInput(reason)) {
      metrics.rejected(reason).inc();
      logger.warn('closing connection: bad input', fields);
    } else {
      // Owners log what matters to them (a peer link going down) at a higher level.
      logger.debug('connection closed', fields);
    }
    if (flush) {
      this.socket.end();
      // A remote that never reads would keep the socket half-closed forever.
      setTimeout(() => this.socket.destroy(), FLUSH_ON_CLOSE_MS).unref();
    } else {
      this.socket.destroy();
    }
    this.options.onClose?.(reason, detail);
  }

  private onData(chunk: Buffer): void {
    if (this.closedReason !== null) return;
    const { metrics } = this.options;
    metrics.bytesIn.inc(chunk.length);
    const { frames, error } = this.decoder.push(chunk);
    for (const frame of frames) {
      if (this.closedReason !== null) return;
      metrics.framesIn.inc();
      this.options.onFrame(frame);
    }
    if (this.closedReason !== null) return;
    if (error !== null) {
      this.close(error.code, describeFrameError(error));
      return;
    }
    // The deadline runs per frame: completing one restarts it for the next partial frame.
    if (frames.length > 0 || this.decoder.bufferedBytes === 0) this.clearFrameTimer();
    if (this.decoder.bufferedBytes > 0 && this.frameTimer === null) {
      const timeoutMs = this.options.limits.frameTimeoutMs;
      this.frameTimer = setTimeout(() => {
        this.frameTimer = null;
        this.close('FRAME_TIMEOUT', `frame incomplete after ${timeoutMs} ms (${this.decoder.bufferedBytes} bytes)`);
      }, timeoutMs);
      this.frameTimer.unref();
    }
  }

  private clearFrameTimer(): void {
    if (this.frameTimer === null) return;
    clearTimeout(this.frameTimer);
    this.frameTimer = null;
  }
}
