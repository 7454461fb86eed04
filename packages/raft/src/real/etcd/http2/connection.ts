/**
 * One HTTP/2 connection (RFC 9113), cleartext with prior knowledge, as grpc-go dials an `http://`
 * endpoint: just what unary gRPC needs, on a plain TCP socket, for both ends. The server side takes
 * requests (a header block and a body, delivered once the client ended its half of the stream) and
 * answers each with headers, a body and trailers; the client side sends such requests and receives
 * the answers. It replaces node:http2 on the etcd gateway's hot path: node's session and stream
 * objects, events and header objects cost about 45 µs of CPU per call on the server alone, several
 * times the work of the frames themselves.
 *
 * What it does, and why that is enough for gRPC:
 * - Frames: every type is parsed and checked as RFC 9113 section 6 says (lengths, stream ids, flags,
 *   padding); a violation is a connection error (GOAWAY with the code, then the socket closes) or a
 *   stream error (RST_STREAM) where the RFC allows one. Unknown frame types are ignored.
 * - Header blocks (HEADERS plus CONTINUATION) are always decoded, also for streams that are refused or
 *   already closed, so that our HPACK table stays in step with the peer's.
 * - Flow control both ways. Receiving: the connection window is raised to 16 MiB at once and streams
 *   start at 4 MiB; both are replenished as data arrives, and a stream's body is capped
 *   (`bodyBytesMax`) as is the data buffered across all streams, so memory stays bounded. Sending:
 *   DATA never exceeds the peer's windows or its maximum frame size; the rest waits for WINDOW_UPDATE.
 * - PING is answered at once (grpc-go measures round trips and keeps connections alive with it).
 *   SETTINGS are applied and acknowledged. PRIORITY is accepted and ignored. Server push is refused.
 * - GOAWAY: a server that is closing stops taking streams and ends the connection once its streams
 *   are done; a client that receives one fails the streams above the last id (not processed, safe to
 *   retry) and opens no more.
 * - Writes from one turn of the event loop leave in one socket write (answers resolved together, frames
 *   of one call).
 */
import type { Socket } from 'node:net';
import {
  CLIENT_PREFACE,
  ConnectionError,
  Flag,
  FRAME_HEADER_BYTES,
  FRAME_PAYLOAD_BYTES_DEFAULT,
  FrameType,
  frame,
  goawayFrame,
  H2Code,
  rstStreamFrame,
  Setting,
  settingsFrame,
  WINDOW_DEFAULT,
  WINDOW_MAX,
  windowUpdateFrame,
  writeFrameHeader,
} from './frames.js';
import { type HeaderList, HpackDecoder, HpackError } from './hpack.js';

/** The receive window of the whole connection, raised at the start (streams share it). */
const CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024;
/** Every stream's receive window (our SETTINGS_INITIAL_WINDOW_SIZE). */
const STREAM_WINDOW_BYTES = 4 * 1024 * 1024;
/** Body bytes buffered across the streams of one connection before new data is refused. */
const BUFFERED_BYTES_MAX = 64 * 1024 * 1024;
/** A header block (all its fragments) larger than this ends the connection: no gRPC call needs it. */
const HEADER_BLOCK_BYTES_MAX = 256 * 1024;
/** The decoded header list (RFC 9113's size: name + value + 32 per field) we accept and advertise. */
const HEADER_LIST_BYTES_MAX = 64 * 1024;
/** How long a connection that sent GOAWAY for an error waits for the peer before it drops the socket. */
const CLOSE_GRACE_MS = 1_000;
/** Default `outputBytesMax`. */
const OUTPUT_BYTES_MAX = 16 * 1024 * 1024;

export type Role = 'server' | 'client';

/** Shared by every "nothing here" buffer: no allocation for an empty body, trailers or input. */
const EMPTY = Buffer.alloc(0);

/** One stream; the fields are what a gRPC caller reads. */
export class H2Stream {
  /** 0 for a client request still waiting for a stream slot. */
  id: number;
  /** The first header block (request headers on a server, response headers on a client). */
  headers: HeaderList | null = null;
  /** A second header block, which ended the stream (gRPC's trailers). */
  trailers: HeaderList | null = null;
  /** The peer reset the stream, or the connection ended before it did: nothing more will be sent. */
  cancelled = false;
  /** Body bytes received so far; `discarding` once they passed the cap. */
  bodyBytes = 0;
  discarding = false;
  /** Client side: told when the stream ends or fails. */
  listener: StreamListener | null = null;
  remoteEnded = false;
  localEnded = false;
  /** What the peer still lets us send on this stream. */
  sendWindow: number;
  /** Output waiting for window, in order (DATA, and trailers after it). */
  queued: Array<{ readonly kind: 'data' | 'headers'; bytes: Buffer; readonly end: boolean }> = [];
  recvWindow = STREAM_WINDOW_BYTES;
  recvConsumed = 0;
  private chunks: Buffer[] = [];

  constructor(id: number, sendWindow: number) {
    this.id = id;
    this.sendWindow = sendWindow;
  }

  /** The whole body received (one buffer; no copy when it came in one DATA frame). */
  body(): Buffer {
    if (this.chunks.length === 1) return this.chunks[0]!;
    return Buffer.concat(this.chunks, this.bodyBytes);
  }

  addChunk(chunk: Buffer): void {
    // The chunk is a view of a socket read buffer nobody writes to again: keeping it is safe.
    this.chunks.push(chunk);
    this.bodyBytes += chunk.length;
  }

  dropBody(): number {
    const dropped = this.bodyBytes;
    this.chunks = [];
    this.bodyBytes = 0;
    return dropped;
  }
}

export interface StreamListener {
  /** The peer ended the stream: headers, body and trailers are complete. */
  onEnd(stream: H2Stream): void;
  /** The stream failed: reset by the peer, refused by GOAWAY, or the connection ended. */
  onFail(stream: H2Stream, reason: string, retryable: boolean): void;
}

export interface H2ConnectionOptions {
  readonly role: Role;
  /** Largest body a stream may carry (a request on a server, an answer on a client). */
  readonly bodyBytesMax: number;
  /** Server: SETTINGS_MAX_CONCURRENT_STREAMS we advertise and enforce (REFUSED_STREAM above it). */
  readonly maxConcurrentStreams?: number;
  /** Server: a request is complete (the client ended its half of the stream). */
  readonly onRequest?: (stream: H2Stream) => void;
  /** Server: a request's body passed `bodyBytesMax`; its later data is dropped, answer it now. */
  readonly onOversized?: (stream: H2Stream) => void;
  /**
   * Server: bytes our socket may hold unsent (the client is not reading) before we stop reading the
   * client's requests until it drains, and bytes of answers that may wait for flow-control window
   * before new streams are refused (REFUSED_STREAM): a client that sends without reading, or without
   * opening windows, cannot make us buffer without end.
   */
  readonly outputBytesMax?: number;
  /** The connection is gone (socket closed); `error` says why when it was not a clean end. */
  readonly onClose?: (error: string | null) => void;
}

export class H2Connection {
  private readonly socket: Socket;
  private readonly options: H2ConnectionOptions;
  private readonly decoder = new HpackDecoder({ tableSizeMax: 4096, headerListBytesMax: HEADER_LIST_BYTES_MAX });
  private readonly streams = new Map<number, H2Stream>();
  /** Streams with output waiting for window, in the order they blocked. */
  private readonly blocked = new Set<H2Stream>();

  private input: Buffer = EMPTY;
  /** Server: bytes of the client preface still expected; -1 once it matched. */
  private prefaceMatched = 0;
  private settingsReceived = false;
  private pendingBlock: { streamId: number; endStream: boolean; fragments: Buffer[]; bytes: number } | null = null;

  private peerInitialWindow = WINDOW_DEFAULT;
  private peerMaxFrameBytes = FRAME_PAYLOAD_BYTES_DEFAULT;
  private peerMaxConcurrentStreams = Number.POSITIVE_INFINITY;
  private connectionSendWindow = WINDOW_DEFAULT;
  private connectionRecvWindow = CONNECTION_WINDOW_BYTES;
  private connectionRecvConsumed = 0;
  private bufferedBytes = 0;

  /** Server: the highest stream id the client opened. Client: the next id to use. */
  private lastPeerStreamId = 0;
  private nextStreamId = 1;
  /** Client: requests waiting for a stream slot under the server's concurrency limit. */
  private readonly waiting: Array<{ stream: H2Stream; headerBlock: Buffer; body: Buffer }> = [];

  private out: Buffer[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  /** Output bytes waiting in streams' queues for the peer's flow-control window. */
  private queuedBytes = 0;
  private goawaySent = false;
  private goawayReceived = false;
  private closed = false;
  /** The socket was ended (FIN sent): nothing more is written. */
  private ending = false;
  private closeError: string | null = null;

  constructor(socket: Socket, options: H2ConnectionOptions) {
    this.socket = socket;
    this.options = options;
    if (options.role === 'client') this.prefaceMatched = -1;
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (error) => {
      this.closeError ??= error.message;
    });
    socket.on('close', () => this.onSocketClose());
    const settings: Array<readonly [number, number]> = [
      [Setting.INITIAL_WINDOW_SIZE, STREAM_WINDOW_BYTES],
      [Setting.MAX_HEADER_LIST_SIZE, HEADER_LIST_BYTES_MAX],
    ];
    if (options.role === 'client') settings.push([Setting.ENABLE_PUSH, 0]);
    else settings.push([Setting.MAX_CONCURRENT_STREAMS, options.maxConcurrentStreams ?? 4096]);
    if (options.role === 'client') this.write(CLIENT_PREFACE);
    this.write(settingsFrame(settings));
    this.write(windowUpdateFrame(0, CONNECTION_WINDOW_BYTES - WINDOW_DEFAULT));
  }

  /** Client: whether new requests may still go on this connection. */
  get usable(): boolean {
    return !this.closed && !this.goawaySent && !this.goawayReceived && this.nextStreamId < WINDOW_MAX - 2;
  }

  // ----------------------------------------------------------------------------------------------
  // Client side

  /** Sends a request (header block, then the body, which ends our half) and returns its stream. */
  request(headerBlock: Buffer, body: Buffer, listener: StreamListener): H2Stream {
    if (!this.usable) throw new Error('connection not usable for new streams');
    const stream = new H2Stream(0, 0);
    stream.listener = listener;
    // Until the server's SETTINGS arrive its stream limit is unknown: wait for them, as grpc-go does,
    // rather than have calls over the limit refused.
    if (!this.settingsReceived || this.streams.size >= this.peerMaxConcurrentStreams) {
      this.waiting.push({ stream, headerBlock, body });
      return stream;
    }
    this.start(stream, headerBlock, body);
    return stream;
  }

  /** Client: gives up on a stream (deadline passed): the server is told to stop (RST_STREAM CANCEL). */
  cancel(stream: H2Stream): void {
    stream.cancelled = true;
    const waitingIndex = this.waiting.findIndex((entry) => entry.stream === stream);
    if (waitingIndex >= 0) {
      this.waiting.splice(waitingIndex, 1);
      return;
    }
    if (!this.streams.has(stream.id)) return;
    this.write(rstStreamFrame(stream.id, H2Code.CANCEL));
    this.removeStream(stream);
  }

  private start(stream: H2Stream, headerBlock: Buffer, body: Buffer): void {
    stream.id = this.nextStreamId;
    this.nextStreamId += 2;
    stream.sendWindow = this.peerInitialWindow;
    this.streams.set(stream.id, stream);
    this.sendHeaders(stream, headerBlock, false);
    this.sendData(stream, body, true);
  }

  private startWaiting(): void {
    // Not after a GOAWAY: the server would not process them (onGoaway fails the waiting requests instead).
    while (
      this.waiting.length > 0 &&
      this.settingsReceived &&
      this.streams.size < this.peerMaxConcurrentStreams &&
      !this.closed &&
      !this.goawayReceived
    ) {
      const next = this.waiting.shift()!;
      this.start(next.stream, next.headerBlock, next.body);
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Server side

  /**
   * Answers a request: headers, then (unless `body` is null) one DATA payload and trailers. With a
   * null body and null trailers the headers end the stream (gRPC's trailers-only answer).
   */
  respond(stream: H2Stream, headerBlock: Buffer, body: Buffer | null, trailerBlock: Buffer | null): void {
    if (stream.cancelled || stream.localEnded || this.closed) return;
    if (body === null && trailerBlock === null) {
      this.sendHeaders(stream, headerBlock, true);
      return;
    }
    const data = body ?? EMPTY;
    const trailers = trailerBlock ?? EMPTY;
    const frameBytesMax = this.peerMaxFrameBytes;
    const fits =
      stream.queued.length === 0 &&
      headerBlock.length <= frameBytesMax &&
      trailers.length <= frameBytesMax &&
      data.length <= frameBytesMax &&
      data.length <= stream.sendWindow &&
      data.length <= this.connectionSendWindow;
    if (!fits) {
      this.sendHeaders(stream, headerBlock, false);
      this.sendData(stream, data, trailerBlock === null);
      if (trailerBlock !== null) this.sendHeaders(stream, trailerBlock, true);
      return;
    }
    // The common answer: three frames in one buffer.
    const out = Buffer.allocUnsafe(3 * FRAME_HEADER_BYTES + headerBlock.length + data.length + trailers.length);
    let offset = 0;
    writeFrameHeader(out, offset, headerBlock.length, FrameType.HEADERS, Flag.END_HEADERS, stream.id);
    out.set(headerBlock, offset + FRAME_HEADER_BYTES);
    offset += FRAME_HEADER_BYTES + headerBlock.length;
    writeFrameHeader(out, offset, data.length, FrameType.DATA, 0, stream.id);
    out.set(data, offset + FRAME_HEADER_BYTES);
    offset += FRAME_HEADER_BYTES + data.length;
    writeFrameHeader(out, offset, trailers.length, FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, stream.id);
    out.set(trailers, offset + FRAME_HEADER_BYTES);
    stream.sendWindow -= data.length;
    this.connectionSendWindow -= data.length;
    this.write(out);
    this.localEnd(stream);
  }

  /** Server: stops taking streams (GOAWAY) and ends the connection once the open ones are answered. */
  shutdown(): void {
    if (this.closed) return;
    if (!this.goawaySent) {
      this.goawaySent = true;
      this.write(goawayFrame(this.lastPeerStreamId, H2Code.NO_ERROR, ''));
    }
    if (this.streams.size === 0) this.endSocket();
  }

  /** Drops the connection now; open streams fail. */
  destroy(reason: string): void {
    this.closeError ??= reason;
    this.socket.destroy();
  }

  // ----------------------------------------------------------------------------------------------
  // Receiving

  private receive(chunk: Buffer): void {
    if (this.closed || this.ending) return;
    let input = this.input.length === 0 ? chunk : Buffer.concat([this.input, chunk]);
    try {
      if (this.prefaceMatched >= 0) {
        const compared = Math.min(input.length, CLIENT_PREFACE.length - this.prefaceMatched);
        if (input.compare(CLIENT_PREFACE, this.prefaceMatched, this.prefaceMatched + compared, 0, compared) !== 0) {
          // Not HTTP/2 with prior knowledge (HTTP/1, TLS, garbage): nothing to answer in HTTP/2 terms.
          this.destroy('the client did not send the HTTP/2 preface');
          return;
        }
        this.prefaceMatched += compared;
        input = input.subarray(compared);
        if (this.prefaceMatched < CLIENT_PREFACE.length) return;
        this.prefaceMatched = -1;
      }
      let offset = 0;
      while (input.length - offset >= FRAME_HEADER_BYTES && !this.closed) {
        const length = (input[offset]! << 16) | (input[offset + 1]! << 8) | input[offset + 2]!;
        if (length > FRAME_PAYLOAD_BYTES_DEFAULT) {
          throw new ConnectionError(H2Code.FRAME_SIZE_ERROR, `frame of ${length} bytes over our maximum`);
        }
        if (input.length - offset < FRAME_HEADER_BYTES + length) break;
        const type = input[offset + 3]!;
        const flags = input[offset + 4]!;
        const streamId = input.readUInt32BE(offset + 5) & WINDOW_MAX;
        const payload = input.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + length);
        offset += FRAME_HEADER_BYTES + length;
        this.onFrame(type, flags, streamId, payload);
      }
      this.input = offset === input.length ? EMPTY : input.subarray(offset);
    } catch (error) {
      if (error instanceof ConnectionError) this.fail(error.code, error.message);
      else if (error instanceof HpackError) this.fail(H2Code.COMPRESSION_ERROR, error.message);
      else throw error;
    }
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (!this.settingsReceived && type !== FrameType.SETTINGS) {
      throw new ConnectionError(H2Code.PROTOCOL_ERROR, 'the first frame must be SETTINGS');
    }
    if (this.pendingBlock !== null && (type !== FrameType.CONTINUATION || streamId !== this.pendingBlock.streamId)) {
      throw new ConnectionError(H2Code.PROTOCOL_ERROR, 'a header block was interrupted');
    }
    switch (type) {
      case FrameType.DATA:
        this.onData(flags, streamId, payload);
        return;
      case FrameType.HEADERS:
        this.onHeaders(flags, streamId, payload);
        return;
      case FrameType.CONTINUATION:
        this.onContinuation(flags, streamId, payload);
        return;
      case FrameType.SETTINGS:
        this.onSettings(flags, streamId, payload);
        return;
      case FrameType.PING:
        this.onPing(flags, streamId, payload);
        return;
      case FrameType.WINDOW_UPDATE:
        this.onWindowUpdate(streamId, payload);
        return;
      case FrameType.RST_STREAM:
        this.onRstStream(streamId, payload);
        return;
      case FrameType.GOAWAY:
        this.onGoaway(streamId, payload);
        return;
      case FrameType.PRIORITY:
        if (streamId === 0) throw new ConnectionError(H2Code.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if (payload.length !== 5) this.resetStream(streamId, H2Code.FRAME_SIZE_ERROR);
        return;
      case FrameType.PUSH_PROMISE:
        throw new ConnectionError(H2Code.PROTOCOL_ERROR, 'PUSH_PROMISE is not allowed here');
      default:
        // Unknown frame types are ignored (RFC 9113 section 4.1).
        return;
    }
  }

  /** Strips padding (the PADDED flag): the pad length byte and the pad. */
  private unpad(flags: number, payload: Buffer, prefixBytes: number): Buffer {
    if ((flags & Flag.PADDED) === 0) return payload.subarray(prefixBytes);
    if (payload.length < 1) throw new ConnectionError(H2Code.FRAME_SIZE_ERROR, 'padded frame without a pad length');
    const padBytes = payload[0]!;
    if (padBytes + 1 + prefixBytes > payload.length) {
      throw new ConnectionError(H2Code.PROTOCOL_ERROR, 'padding longer than the frame');
    }
    return payload.subarray(1 + prefixBytes, payload.length - padBytes);
  }

  /** Whether `streamId` was never opened (idle): frames other than HEADERS on it are a protocol error. */
  private isIdle(streamId: number): boolean {
    const peerOpens = (streamId & 1) === (this.options.role === 'server' ? 1 : 0);
    if (this.options.role === 'server') return peerOpens ? streamId > this.lastPeerStreamId : true;
    return peerOpens ? true : streamId >= this.nextStreamId;
  }

  private onData(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(H2Code.PROTOCOL_ERROR, 'DATA on stream 0');
    // Flow control counts the whole payload, padding included.
    this.connectionRecvWindow -= payload.length;
    if (this.connectionRecvWindow < 0) {
      throw new ConnectionError(H2Code.FLOW_CONTROL_ERROR, 'DATA beyond the connection window');
    }
    this.connectionRecvConsumed += payload.length;
    if (this.connectionRecvConsumed >= CONNECTION_WINDOW_BYTES / 2) {
      this.write(windowUpdateFrame(0, this.connectionRecvConsumed));
      this.connectionRecvWindow += this.connectionRecvConsumed;
      this.connectionRecvConsumed = 0;
    }
    const data = this.unpad(flags, payload, 0);
    const stream = this.streams.get(streamId);
    if (stream === undefined) {
      if (this.isIdle(streamId)) throw new ConnectionError(H2Code.PROTOCOL_ERROR, `DATA on idle stream ${streamId}`);
      return; // A stream we closed or reset: the peer had not heard yet.
    }
    if (stream.remoteEnded) {
      this.resetStream(streamId, H2Code.STREAM_CLOSED);
      return;
    }
    stream.recvWindow -= payload.length;
    if (stream.recvWindow < 0) {
      this.resetStream(streamId, H2Code.FLOW_CONTROL_ERROR);
      return;
    }
    const endStream = (flags & Flag.END_STREAM) !== 0;
    stream.recvConsumed += payload.length;
    if (!endStream && stream.recvConsumed >= STREAM_WINDOW_BYTES / 2) {
      this.write(windowUpdateFrame(streamId, stream.recvConsumed));
      stream.recvWindow += stream.recvConsumed;
      stream.recvConsumed = 0;
    }
    let oversized = false;
    if (!stream.discarding && data.length > 0) {
      if (
        stream.bodyBytes + data.length > this.options.bodyBytesMax ||
        this.bufferedBytes + data.length > BUFFERED_BYTES_MAX
      ) {
        oversized = true;
        stream.discarding = true;
        this.bufferedBytes -= stream.dropBody();
        if (this.options.role === 'client') {
          this.cancel(stream);
          stream.listener?.onFail(stream, `answer over ${this.options.bodyBytesMax} bytes`, false);
          return;
        }
      } else {
        stream.addChunk(data);
        this.bufferedBytes += data.length;
      }
    }
    if (endStream) this.remoteEnd(stream);
    // After the END_STREAM of this frame is taken: an answer to a request that ended needs no reset.
    if (oversized) this.options.onOversized?.(stream);
  }

  private onHeaders(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(H2Code.PROTOCOL_ERROR, 'HEADERS on stream 0');
    const fragment = this.unpad(flags, payload, (flags & Flag.PRIORITY) !== 0 ? 5 : 0);
    const endStream = (flags & Flag.END_STREAM) !== 0;
    if ((flags & Flag.END_HEADERS) !== 0) {
      this.onHeaderBlock(streamId, endStream, fragment);
      return;
    }
    this.pendingBlock = { streamId, endStream, fragments: [fragment], bytes: fragment.length };
  }

  private onContinuation(flags: number, streamId: number, payload: Buffer): void {
    const pending = this.pendingBlock;
    if (pending === null) throw new ConnectionError(H2Code.PROTOCOL_ERROR, 'CONTINUATION without HEADERS');
    pending.fragments.push(payload);
    pending.bytes += payload.length;
    if (pending.bytes > HEADER_BLOCK_BYTES_MAX) {
      throw new ConnectionError(H2Code.ENHANCE_YOUR_CALM, `header block over ${HEADER_BLOCK_BYTES_MAX} bytes`);
    }
    if ((flags & Flag.END_HEADERS) === 0) return;
    this.pendingBlock = null;
    this.onHeaderBlock(streamId, pending.endStream, Buffer.concat(pending.fragments, pending.bytes));
  }

  private onHeaderBlock(streamId: number, endStream: boolean, block: Buffer): void {
    // Decoded first, whatever becomes of the stream: the HPACK table must follow the peer's.
    const headers = this.decoder.decode(block);
    const existing = this.streams.get(streamId);
    if (existing !== undefined) {
      if (existing.remoteEnded) {
        this.resetStream(streamId, H2Code.STREAM_CLOSED);
        return;
      }
      if (existing.headers === null) existing.headers = headers;
      else if (!endStream) {
        // A second header block must end the stream (trailers); anything else is malformed.
        this.resetStream(streamId, H2Code.PROTOCOL_ERROR);
        return;
      } else existing.trailers = headers;
      if (endStream) this.remoteEnd(existing);
      return;
    }
    if (this.options.role === 'client') {
      if (this.isIdle(streamId)) throw new ConnectionError(H2Code.PROTOCOL_ERROR, `HEADERS on idle stream ${streamId}`);
      return; // An answer to a stream we cancelled.
    }
    if ((streamId & 1) === 0) throw new ConnectionError(H2Code.PROTOCOL_ERROR, `client stream id ${streamId} is even`);
    if (streamId <= this.lastPeerStreamId) return; // A stream already closed (for example reset by us).
    this.lastPeerStreamId = streamId;
    if (this.goawaySent) return; // Not processed: the client learned the last id from our GOAWAY.
    // Refused also while answers wait for window the client does not open: no new work to hold.
    if (
      this.streams.size >= (this.options.maxConcurrentStreams ?? 4096) ||
      this.queuedBytes > (this.options.outputBytesMax ?? OUTPUT_BYTES_MAX)
    ) {
      this.write(rstStreamFrame(streamId, H2Code.REFUSED_STREAM));
      return;
    }
    const stream = new H2Stream(streamId, this.peerInitialWindow);
    stream.headers = headers;
    this.streams.set(streamId, stream);
    if (endStream) this.remoteEnd(stream);
  }

  private remoteEnd(stream: H2Stream): void {
    stream.remoteEnded = true;
    if (this.options.role === 'server') {
      if (stream.localEnded) this.removeStream(stream);
      else if (!stream.discarding) this.options.onRequest?.(stream);
      return;
    }
    // Client: the answer is complete; whatever of the request was still queued is moot.
    this.removeStream(stream);
    stream.listener?.onEnd(stream);
  }

  private onSettings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new ConnectionError(H2Code.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if ((flags & Flag.ACK) !== 0) {
      if (payload.length !== 0) throw new ConnectionError(H2Code.FRAME_SIZE_ERROR, 'SETTINGS ack with a payload');
      return;
    }
    if (payload.length % 6 !== 0) throw new ConnectionError(H2Code.FRAME_SIZE_ERROR, 'SETTINGS length not 6n');
    this.settingsReceived = true;
    for (let offset = 0; offset < payload.length; offset += 6) {
      const id = payload.readUInt16BE(offset);
      const value = payload.readUInt32BE(offset + 2);
      switch (id) {
        case Setting.INITIAL_WINDOW_SIZE: {
          if (value > WINDOW_MAX) throw new ConnectionError(H2Code.FLOW_CONTROL_ERROR, 'initial window over 2^31-1');
          const delta = value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          for (const stream of this.streams.values()) stream.sendWindow += delta;
          break;
        }
        case Setting.MAX_FRAME_SIZE:
          if (value < FRAME_PAYLOAD_BYTES_DEFAULT || value > 0xff_ffff) {
            throw new ConnectionError(H2Code.PROTOCOL_ERROR, `max frame size ${value} out of range`);
          }
          this.peerMaxFrameBytes = value;
          break;
        case Setting.ENABLE_PUSH:
          if (value > 1) throw new ConnectionError(H2Code.PROTOCOL_ERROR, 'ENABLE_PUSH not 0 or 1');
          break;
        case Setting.MAX_CONCURRENT_STREAMS:
          this.peerMaxConcurrentStreams = value;
          break;
        default:
          // HEADER_TABLE_SIZE: our encoder uses no dynamic table. MAX_HEADER_LIST_SIZE: our blocks are small.
          break;
      }
    }
    this.write(frame(FrameType.SETTINGS, Flag.ACK, 0, null));
    this.flushBlocked();
    this.startWaiting();
  }

  private onPing(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new ConnectionError(H2Code.PROTOCOL_ERROR, 'PING on a stream');
    if (payload.length !== 8) throw new ConnectionError(H2Code.FRAME_SIZE_ERROR, 'PING payload not 8 bytes');
    if ((flags & Flag.ACK) === 0) this.write(frame(FrameType.PING, Flag.ACK, 0, payload));
  }

  private onWindowUpdate(streamId: number, payload: Buffer): void {
    if (payload.length !== 4) throw new ConnectionError(H2Code.FRAME_SIZE_ERROR, 'WINDOW_UPDATE not 4 bytes');
    const increment = payload.readUInt32BE(0) & WINDOW_MAX;
    if (streamId === 0) {
      if (increment === 0) throw new ConnectionError(H2Code.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
      this.connectionSendWindow += increment;
      if (this.connectionSendWindow > WINDOW_MAX) {
        throw new ConnectionError(H2Code.FLOW_CONTROL_ERROR, 'connection window over 2^31-1');
      }
    } else {
      const stream = this.streams.get(streamId);
      if (stream === undefined) {
        if (this.isIdle(streamId)) throw new ConnectionError(H2Code.PROTOCOL_ERROR, 'WINDOW_UPDATE on idle stream');
        return;
      }
      if (increment === 0 || stream.sendWindow + increment > WINDOW_MAX) {
        this.resetStream(streamId, increment === 0 ? H2Code.PROTOCOL_ERROR : H2Code.FLOW_CONTROL_ERROR);
        return;
      }
      stream.sendWindow += increment;
    }
    this.flushBlocked();
  }

  private onRstStream(streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(H2Code.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (payload.length !== 4) throw new ConnectionError(H2Code.FRAME_SIZE_ERROR, 'RST_STREAM not 4 bytes');
    if (this.isIdle(streamId)) throw new ConnectionError(H2Code.PROTOCOL_ERROR, 'RST_STREAM on idle stream');
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    this.removeStream(stream);
    stream.cancelled = true;
    const code = payload.readUInt32BE(0);
    // REFUSED_STREAM means the server did not process it: safe to retry (RFC 9113 section 8.7).
    stream.listener?.onFail(stream, `stream reset by the peer (code ${code})`, code === H2Code.REFUSED_STREAM);
  }

  private onGoaway(streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new ConnectionError(H2Code.PROTOCOL_ERROR, 'GOAWAY on a stream');
    if (payload.length < 8) throw new ConnectionError(H2Code.FRAME_SIZE_ERROR, 'GOAWAY under 8 bytes');
    this.goawayReceived = true;
    const lastStreamId = payload.readUInt32BE(0) & WINDOW_MAX;
    const code = payload.readUInt32BE(4);
    const debug = payload.subarray(8).toString('utf8');
    if (this.options.role === 'client') {
      for (const stream of [...this.streams.values()]) {
        if (stream.id <= lastStreamId) continue;
        this.removeStream(stream);
        stream.cancelled = true;
        stream.listener?.onFail(stream, `server going away (code ${code}${debug ? `: ${debug}` : ''})`, true);
      }
      for (const entry of this.waiting.splice(0))
        entry.stream.listener?.onFail(entry.stream, 'server going away', true);
    }
    if (this.streams.size === 0) this.endSocket();
  }

  // ----------------------------------------------------------------------------------------------
  // Sending

  private sendHeaders(stream: H2Stream, block: Buffer, endStream: boolean): void {
    if (stream.queued.length > 0) {
      // Behind DATA that waits for window (trailers after the body).
      this.enqueue(stream, { kind: 'headers', bytes: block, end: endStream });
      return;
    }
    this.writeHeaders(stream, block, endStream);
  }

  private writeHeaders(stream: H2Stream, block: Buffer, endStream: boolean): void {
    const frameBytesMax = this.peerMaxFrameBytes;
    const endFlag = endStream ? Flag.END_STREAM : 0;
    if (block.length <= frameBytesMax) {
      this.write(frame(FrameType.HEADERS, Flag.END_HEADERS | endFlag, stream.id, block));
    } else {
      this.write(frame(FrameType.HEADERS, endFlag, stream.id, block.subarray(0, frameBytesMax)));
      for (let offset = frameBytesMax; offset < block.length; offset += frameBytesMax) {
        const last = offset + frameBytesMax >= block.length;
        const fragment = block.subarray(offset, offset + frameBytesMax);
        this.write(frame(FrameType.CONTINUATION, last ? Flag.END_HEADERS : 0, stream.id, fragment));
      }
    }
    if (endStream) this.localEnd(stream);
  }

  private sendData(stream: H2Stream, data: Buffer, endStream: boolean): void {
    if (stream.queued.length > 0) {
      this.enqueue(stream, { kind: 'data', bytes: data, end: endStream });
      return;
    }
    const rest = this.writeData(stream, data, endStream);
    if (rest !== null) {
      this.enqueue(stream, { kind: 'data', bytes: rest, end: endStream });
      this.blocked.add(stream);
    }
  }

  /** Writes as much of `data` as the windows allow; returns what is left (null when all went). */
  private writeData(stream: H2Stream, data: Buffer, endStream: boolean): Buffer | null {
    let offset = 0;
    while (offset < data.length) {
      const allowed = Math.min(
        data.length - offset,
        stream.sendWindow,
        this.connectionSendWindow,
        this.peerMaxFrameBytes,
      );
      if (allowed <= 0) return data.subarray(offset);
      const last = offset + allowed === data.length;
      this.write(
        frame(
          FrameType.DATA,
          last && endStream ? Flag.END_STREAM : 0,
          stream.id,
          data.subarray(offset, offset + allowed),
        ),
      );
      stream.sendWindow -= allowed;
      this.connectionSendWindow -= allowed;
      offset += allowed;
    }
    if (data.length === 0) this.write(frame(FrameType.DATA, endStream ? Flag.END_STREAM : 0, stream.id, null));
    if (endStream) this.localEnd(stream);
    return null;
  }

  private enqueue(stream: H2Stream, item: H2Stream['queued'][number]): void {
    stream.queued.push(item);
    this.queuedBytes += item.bytes.length;
  }

  private dropQueued(stream: H2Stream): void {
    for (const item of stream.queued) this.queuedBytes -= item.bytes.length;
    stream.queued = [];
  }

  /** Window opened: sends queued output, stream by stream in the order they blocked. */
  private flushBlocked(): void {
    for (const stream of this.blocked) {
      if (this.connectionSendWindow <= 0) return;
      if (!this.streams.has(stream.id) || stream.cancelled) {
        this.dropQueued(stream);
        this.blocked.delete(stream);
        continue;
      }
      while (stream.queued.length > 0) {
        const next = stream.queued[0]!;
        this.queuedBytes -= next.bytes.length;
        if (next.kind === 'headers') {
          stream.queued.shift();
          this.writeHeaders(stream, next.bytes, next.end);
          continue;
        }
        const rest = this.writeData(stream, next.bytes, next.end);
        if (rest !== null) {
          next.bytes = rest;
          this.queuedBytes += rest.length;
          break;
        }
        stream.queued.shift();
      }
      if (stream.queued.length === 0) this.blocked.delete(stream);
    }
  }

  private localEnd(stream: H2Stream): void {
    stream.localEnded = true;
    if (this.options.role === 'client') return;
    if (!stream.remoteEnded) {
      // Answered before the request ended (a refusal): tell the client to stop sending (as grpc-go does).
      this.write(rstStreamFrame(stream.id, H2Code.NO_ERROR));
    }
    this.removeStream(stream);
  }

  private resetStream(streamId: number, code: H2Code): void {
    this.write(rstStreamFrame(streamId, code));
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    this.removeStream(stream);
    stream.cancelled = true;
    stream.listener?.onFail(stream, `stream reset (code ${code})`, false);
  }

  private removeStream(stream: H2Stream): void {
    if (!this.streams.delete(stream.id)) return;
    // The body leaves this connection's accounting; an ended stream's reader still has it.
    this.bufferedBytes -= stream.bodyBytes;
    this.dropQueued(stream);
    this.blocked.delete(stream);
    if (this.options.role === 'client') this.startWaiting();
    if ((this.goawaySent || this.goawayReceived) && this.streams.size === 0) this.endSocket();
  }

  private write(bytes: Buffer): void {
    if (this.closed || this.ending) return;
    this.out.push(bytes);
    this.outBytes += bytes.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // After the current tick's other answers: they leave in the same write.
      process.nextTick(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.out.length === 0 || this.closed || this.socket.destroyed) return;
    const out = this.out;
    const bytes = this.outBytes;
    this.out = [];
    this.outBytes = 0;
    if (out.length === 1) this.socket.write(out[0]!);
    else if (bytes <= 64 * 1024) this.socket.write(Buffer.concat(out, bytes));
    else {
      this.socket.cork();
      for (const buffer of out) this.socket.write(buffer);
      this.socket.uncork();
    }
    // Servers only: a client that stopped reading its own requests' answers would deadlock with it.
    if (
      this.options.role === 'server' &&
      !this.socket.isPaused() &&
      this.socket.writableLength > (this.options.outputBytesMax ?? OUTPUT_BYTES_MAX)
    ) {
      this.socket.pause();
      this.socket.once('drain', () => this.socket.resume());
    }
  }

  /** A connection error: GOAWAY with the code, then the socket closes. */
  private fail(code: H2Code, message: string): void {
    this.closeError ??= message;
    if (!this.goawaySent) {
      this.goawaySent = true;
      this.write(goawayFrame(this.lastPeerStreamId, code, message));
    }
    this.endSocket();
  }

  private endSocket(): void {
    if (this.closed || this.ending) return;
    this.flush();
    this.ending = true;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  private onSocketClose(): void {
    if (this.closed) return;
    this.closed = true;
    const reason = this.closeError ?? 'connection closed';
    const failed = [...this.streams.values()];
    this.streams.clear();
    this.blocked.clear();
    for (const stream of failed) {
      stream.cancelled = true;
      // Unanswered requests on a connection that ended: the server may or may not have applied them.
      stream.listener?.onFail(stream, reason, false);
    }
    for (const entry of this.waiting.splice(0)) entry.stream.listener?.onFail(entry.stream, reason, true);
    this.options.onClose?.(this.closeError);
  }
}
