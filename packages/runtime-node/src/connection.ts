/**
 * A TCP socket speaking length-prefixed frames, with the defences every port shares: the frame size
 * limit (checked by the decoder before allocating), a deadline for a started frame to complete (a
 * peer that trickles one byte at a time cannot hold a connection and its buffers forever), and a
 * bound on bytes waiting in the socket's write buffer.
 *
 * Bad input closes only this connection: the reason is logged (structured) and counted in
 * `dsys_frames_rejected_total{port,reason}`; the process keeps serving everyone else.
 *
 * Write coalescing: the first frame sent in a turn of the event loop (one callback: a socket's data,
 * an fsync completion, a timer) is written at once, so a lone message waits for nothing and the remote
 * can work on it while this process finishes its turn. The frames that follow it in the same turn
 * are copied into one buffer and written together from a `process.nextTick` at the end of the turn:
 * two syscalls per turn instead of one per frame. Order is kept: a frame of `COALESCE_BYTES_MAX` or
 * more first writes out what is pending, then goes alone; pending frames are written as soon as they
 * reach `COALESCE_BYTES_MAX`, so they never hold more than that, and the write-buffer bound applies to
 * the socket as before (plus at most one batch). `DSYS_COALESCE_WRITES=0` in the environment turns it
 * off: one write per frame, as before, for comparison.
 */
import type { Socket } from 'node:net';
import { assert } from '@dsys/kit';
import { describeFrameError, encodeFrame, FRAME_HEADER_BYTES, FrameDecoder, writeFrameAt } from './frame.js';
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
/** Pending frames are written once they reach this many bytes; a frame this large is written alone. */
export const COALESCE_BYTES_MAX = 64 * 1024;

/** Whether ports coalesce writes unless told otherwise: on, except with `DSYS_COALESCE_WRITES=0`. */
export function coalesceWritesDefault(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.DSYS_COALESCE_WRITES !== '0';
}

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

/** Connections that sent in this turn; one `nextTick` per turn serves all of them (it costs ~1 µs). */
let turnEnders: FramedConnection[] = [];

function atTurnEnd(connection: FramedConnection): void {
  if (turnEnders.length === 0) process.nextTick(endTurn);
  turnEnders.push(connection);
}

function endTurn(): void {
  const connections = turnEnders;
  turnEnders = [];
  for (const connection of connections) connection.endTurn();
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
  /** Coalesce the frames sent in one turn into two writes (default: `coalesceWritesDefault()`). */
  readonly coalesceWrites?: boolean;
}

export class FramedConnection {
  readonly socket: Socket;
  readonly remote: string;
  private readonly options: ConnectionOptions;
  private readonly decoder: FrameDecoder;
  private frameTimer: NodeJS.Timeout | null = null;
  private closedReason: CloseReason | null = null;
  private readonly coalesce: boolean;
  /** Frames (payloads) sent this turn and not yet written; `pendingBytes` counts their headers too. */
  private pending: Uint8Array[] = [];
  private pendingBytesNow = 0;
  private flushScheduled = false;

  constructor(socket: Socket, options: ConnectionOptions) {
    this.socket = socket;
    this.options = options;
    this.coalesce = options.coalesceWrites ?? coalesceWritesDefault();
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

  /**
   * Bytes handed to the socket but not yet taken by the kernel. Frames pending for this turn's write
   * are not counted: they are fewer than `COALESCE_BYTES_MAX` bytes (see `pendingBytes`).
   */
  get bufferedBytes(): number {
    return this.socket.writableLength;
  }

  /** Bytes of frames sent this turn and not yet handed to the socket (headers included). */
  get pendingBytes(): number {
    return this.pendingBytesNow;
  }

  /** Frames and writes `payload`; closes with SLOW_CONSUMER when the write buffer is over its bound. */
  send(payload: Uint8Array): boolean {
    if (this.closedReason !== null) return false;
    if (this.socket.writableLength > this.options.limits.writeBufferBytesMax) {
      this.close('SLOW_CONSUMER', `${this.socket.writableLength} bytes unread by the remote side`);
      return false;
    }
    const frameBytes = FRAME_HEADER_BYTES + payload.length;
    this.options.metrics.framesOut.inc();
    this.options.metrics.bytesOut.inc(frameBytes);
    if (!this.coalesce || frameBytes >= COALESCE_BYTES_MAX) {
      this.writePending();
      this.socket.write(encodeFrame(payload));
      return true;
    }
    if (!this.flushScheduled) {
      // The first frame of a turn leaves at once, so a lone message waits for nothing and the remote
      // can start on it while this process computes the rest of its turn; those follow together.
      this.flushScheduled = true;
      atTurnEnd(this);
      this.socket.write(encodeFrame(payload));
      return true;
    }
    this.pending.push(payload);
    this.pendingBytesNow += frameBytes;
    if (this.pendingBytesNow >= COALESCE_BYTES_MAX) this.writePending();
    return true;
  }

  /** @internal Called once at the end of every turn in which this connection sent a frame. */
  endTurn(): void {
    this.flushScheduled = false;
    if (this.closedReason === null) this.writePending();
  }

  /** Writes every pending frame in one buffer, in the order they were sent. */
  private writePending(): void {
    const count = this.pending.length;
    if (count === 0) return;
    let batch: Uint8Array;
    if (count === 1) batch = encodeFrame(this.pending[0]!);
    else {
      batch = Buffer.allocUnsafe(this.pendingBytesNow);
      let offset = 0;
      for (const payload of this.pending) offset = writeFrameAt(batch, offset, payload);
      assert(offset === batch.length, 'FramedConnection: coalesced batch size mismatch');
    }
    this.pending = [];
    this.pendingBytesNow = 0;
    this.socket.write(batch);
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
      this.writePending();
      this.socket.end();
      // A remote that never reads would keep the socket half-closed forever.
      setTimeout(() => this.socket.destroy(), FLUSH_ON_CLOSE_MS).unref();
    } else {
      this.pending = [];
      this.pendingBytesNow = 0;
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
