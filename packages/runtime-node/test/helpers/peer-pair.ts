// Two PeerTransports in this process, node 1 sending to node 2, for the coalescing tests and the
// peer bench. Node 1's port is reserved first so that node 2 can name it in its peer list.
import { createServer } from 'node:net';
import { NodeId, type Schema, s } from '@dsys/kit';
import {
  DEFAULT_LIMITS,
  type Endpoint,
  Logger,
  MetricsRegistry,
  type PeerLimits,
  PeerTransport,
  TransportMetrics,
} from '../../src/index.js';

export const SENDER = NodeId(1);
export const RECEIVER = NodeId(2);

/** A test message: a sequence number (to check order) and an opaque body (to vary the size). */
export const SeqMessage = s.struct({ seq: s.u32, body: s.bytes({ bytesMax: 1 << 20 }) });
export interface SeqMessage {
  readonly seq: number;
  readonly body: Uint8Array;
}

export const PEER_TEST_LIMITS: PeerLimits = {
  frameBytesMax: DEFAULT_LIMITS.frameBytesMax,
  frameTimeoutMs: DEFAULT_LIMITS.frameTimeoutMs,
  writeBufferBytesMax: DEFAULT_LIMITS.writeBufferBytesMax,
  handshakeTimeoutMs: 2_000,
  connectTimeoutMs: 2_000,
  reconnectDelayMsMin: 10,
  reconnectDelayMsMax: 50,
  sendQueueMessagesMax: DEFAULT_LIMITS.sendQueueMessagesMax,
  sendQueueBytesMax: DEFAULT_LIMITS.sendQueueBytesMax,
  inboundConnectionsMax: 8,
};

export interface PeerPair {
  readonly sender: PeerTransport<SeqMessage>;
  readonly receiver: PeerTransport<SeqMessage>;
  readonly senderMetrics: TransportMetrics;
  readonly receiverMetrics: TransportMetrics;
  close(): Promise<void>;
}

export interface PeerPairOptions {
  readonly limits?: Partial<PeerLimits>;
  readonly coalesceWrites?: boolean;
  readonly onMessage: (message: SeqMessage) => void;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

function transport(
  self: NodeId,
  peers: Map<NodeId, Endpoint>,
  listen: Endpoint,
  options: PeerPairOptions,
  metrics: TransportMetrics,
  onMessage: (from: NodeId, message: SeqMessage) => void,
): Promise<PeerTransport<SeqMessage>> {
  return PeerTransport.start<SeqMessage>({
    self,
    clusterId: 'test',
    peers,
    listen,
    schema: SeqMessage as Schema<SeqMessage>,
    limits: { ...PEER_TEST_LIMITS, ...options.limits },
    logger: new Logger({ level: 'error', node: self }),
    metrics,
    onMessage,
    ...(options.coalesceWrites === undefined ? {} : { coalesceWrites: options.coalesceWrites }),
  });
}

export async function startPeerPair(options: PeerPairOptions): Promise<PeerPair> {
  const senderEndpoint = { host: '127.0.0.1', port: await freePort() };
  const senderMetrics = new TransportMetrics(new MetricsRegistry());
  const receiverMetrics = new TransportMetrics(new MetricsRegistry());
  const receiver = await transport(
    RECEIVER,
    new Map([[SENDER, senderEndpoint]]),
    { host: '127.0.0.1', port: 0 },
    options,
    receiverMetrics,
    (_from, message) => options.onMessage(message),
  );
  const sender = await transport(
    SENDER,
    new Map([[RECEIVER, receiver.endpoint]]),
    senderEndpoint,
    options,
    senderMetrics,
    () => undefined,
  );
  return {
    sender,
    receiver,
    senderMetrics,
    receiverMetrics,
    close: async () => {
      await sender.close();
      await receiver.close();
    },
  };
}
