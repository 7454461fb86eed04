// What write coalescing buys on the peer transport: messages/s and CPU µs per message between two
// PeerTransports over loopback TCP (sender and receiver in this process, so the CPU figure is both
// ends of a link, as in a real node that sends and receives), with coalescing on (ours) and off (one
// socket write per frame, as before), in the same run. The sender puts `burst` messages of 64 bytes
// in each event-loop turn (a Raft leader sends a burst after each batch of client requests or fsync)
// and keeps at most WINDOW unacknowledged, so nothing is dropped and the link stays saturated.
// At 1 per turn the receiver answers within the next loop iteration, so that row measures the cost of
// an event-loop iteration with one send in it (coalescing adds one process-wide nextTick per turn).
// Run: npm run bench:peer -w @dsys/runtime-node [-- --quick]
import { median, quick, report, row } from '@dsys/benchkit';
import { RECEIVER, type SeqMessage, startPeerPair } from '../test/helpers/peer-pair.js';
import { waitFor } from '../test/helpers/util.js';

const BODY_BYTES = 64;
const WINDOW = 2048;
const BURSTS = [1, 16, 64] as const;
const DURATION_MS = quick ? 500 : 2_000;
const WARMUP_MS = quick ? 200 : 500;
const RUNS = quick ? 1 : 3;

interface Result {
  messagesPerSecond: number;
  cpuMicrosPerMessage: number;
}

async function measure(burst: number, coalesceWrites: boolean, durationMs: number): Promise<Result> {
  let received = 0;
  let sent = 0;
  let blocked = false;
  let running = true;
  const body = new Uint8Array(BODY_BYTES).fill(0x5a);
  const pair = await startPeerPair({
    coalesceWrites,
    onMessage: (message: SeqMessage) => {
      if (message.seq !== received) throw new Error(`message ${message.seq} arrived as number ${received}`);
      received++;
      if (blocked && sent - received <= WINDOW / 2) {
        blocked = false;
        setImmediate(pump);
      }
    },
  });
  function pump(): void {
    if (!running) return;
    for (let index = 0; index < burst; index++) {
      if (sent - received >= WINDOW) {
        blocked = true;
        return;
      }
      pair.sender.send(RECEIVER, { seq: sent++, body });
    }
    setImmediate(pump);
  }
  try {
    await waitFor('link up', () => pair.sender.isConnected(RECEIVER));
    pump();
    const startedMs = performance.now();
    const receivedAtStart = received;
    const cpuAtStart = process.cpuUsage();
    await new Promise((resolve) => setTimeout(resolve, durationMs));
    const cpu = process.cpuUsage(cpuAtStart);
    const messages = received - receivedAtStart;
    const elapsedMs = performance.now() - startedMs;
    running = false;
    const dropped = pair.senderMetrics.messagesDropped.child({ peer: String(RECEIVER), reason: 'queue_full' }).value;
    if (dropped > 0) throw new Error(`${dropped} messages dropped: the window is too large for the queue`);
    return {
      messagesPerSecond: (messages / elapsedMs) * 1000,
      cpuMicrosPerMessage: (cpu.user + cpu.system) / messages,
    };
  } finally {
    running = false;
    await pair.close();
  }
}

const rows = [];
for (const burst of BURSTS) {
  await measure(burst, true, WARMUP_MS);
  await measure(burst, false, WARMUP_MS);
  const ours: Result[] = [];
  const off: Result[] = [];
  // Alternate so that noise from other processes hurts both sides alike.
  for (let run = 0; run < RUNS; run++) {
    ours.push(await measure(burst, true, DURATION_MS));
    off.push(await measure(burst, false, DURATION_MS));
  }
  const PEER = 'one write per frame';
  const bench = `peer link, ${BODY_BYTES} B messages, ${burst}/turn`;
  const rate = (results: Result[]) => median(results.map((result) => result.messagesPerSecond));
  const cpu = (results: Result[]) => median(results.map((result) => result.cpuMicrosPerMessage));
  rows.push(row(bench, 'messages/s', 'msg/s', rate(ours), { name: PEER, value: rate(off) }, true));
  rows.push(row(bench, 'CPU per message (both ends)', 'µs', cpu(ours), { name: PEER, value: cpu(off) }, false));
}
report('runtime-node-peer', rows);
