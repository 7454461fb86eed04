// What group commit buys: durable appends/s of 256-byte records from 64 concurrent appenders through
// DurableLog, against a plain loop that writes and fdatasyncs each record, in the same run, on the
// same disk (a temp dir), with the same record framing. Also fdatasync latency p50/p99 of both.
// Run: npm run bench -w @dsys/runtime-node [-- --quick]
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { median, percentile, quick, report, row } from '@dsys/benchkit';
import { encodeRecords } from '@dsys/kit';
import { DurableLog } from '../src/index.js';
import { tempDir } from '../test/helpers/util.js';

const RECORD_BYTES = 256;
const APPENDERS = 64;
const DURATION_MS = quick ? 1_000 : 3_000;
const WARMUP_MS = quick ? 200 : 500;
const RUNS = quick ? 1 : 3;

interface Result {
  appendsPerSecond: number;
  fsyncMs: number[];
  records: number;
  fsyncs: number;
}

const record = new Uint8Array(RECORD_BYTES).fill(0xab);

async function groupCommit(durationMs: number): Promise<Result> {
  const dir = await tempDir('bench-group');
  const fsyncMs: number[] = [];
  let syncStarted = 0;
  const { log } = await DurableLog.open({
    dir: dir.path,
    hooks: {
      beforeSync: () => {
        syncStarted = performance.now();
      },
      afterSync: () => {
        fsyncMs.push(performance.now() - syncStarted);
      },
    },
  });
  let records = 0;
  const started = performance.now();
  const deadline = started + durationMs;
  const appender = async () => {
    while (performance.now() < deadline) {
      await log.appendAndWait([record]);
      records++;
    }
  };
  await Promise.all(Array.from({ length: APPENDERS }, appender));
  const elapsedMs = performance.now() - started;
  await log.close();
  await dir.remove();
  return { appendsPerSecond: (records / elapsedMs) * 1000, fsyncMs, records, fsyncs: fsyncMs.length };
}

async function writeFsyncLoop(durationMs: number): Promise<Result> {
  const dir = await tempDir('bench-loop');
  const handle = await open(join(dir.path, 'plain.log'), 'w');
  const framed = encodeRecords([record]);
  const fsyncMs: number[] = [];
  let position = 0;
  let records = 0;
  const started = performance.now();
  const deadline = started + durationMs;
  while (performance.now() < deadline) {
    await handle.write(framed, 0, framed.length, position);
    position += framed.length;
    const syncStarted = performance.now();
    await handle.datasync();
    fsyncMs.push(performance.now() - syncStarted);
    records++;
  }
  const elapsedMs = performance.now() - started;
  await handle.close();
  await dir.remove();
  return { appendsPerSecond: (records / elapsedMs) * 1000, fsyncMs, records, fsyncs: fsyncMs.length };
}

await groupCommit(WARMUP_MS);
await writeFsyncLoop(WARMUP_MS);
const ours: Result[] = [];
const peer: Result[] = [];
// Alternate so that a noisy neighbour on the disk hurts both sides alike.
for (let run = 0; run < RUNS; run++) {
  ours.push(await groupCommit(DURATION_MS));
  peer.push(await writeFsyncLoop(DURATION_MS));
}
const latencies = (results: Result[]) => results.flatMap((result) => result.fsyncMs);
const PEER = 'write+fsync loop';
const oursRate = median(ours.map((result) => result.appendsPerSecond));
const peerRate = median(peer.map((result) => result.appendsPerSecond));
const recordsPerFsync = ours.reduce((sum, r) => sum + r.records, 0) / ours.reduce((sum, r) => sum + r.fsyncs, 0);
report('runtime-node', [
  row(
    'durable log append',
    `appends/s, ${RECORD_BYTES} B, ${APPENDERS} appenders`,
    'ops/s',
    oursRate,
    { name: PEER, value: peerRate },
    true,
  ),
  row(
    'durable log append',
    'fdatasync latency p50',
    'ms',
    percentile(latencies(ours), 50),
    {
      name: PEER,
      value: percentile(latencies(peer), 50),
    },
    false,
  ),
  row(
    'durable log append',
    'fdatasync latency p99',
    'ms',
    percentile(latencies(ours), 99),
    {
      name: PEER,
      value: percentile(latencies(peer), 99),
    },
    false,
  ),
  row('durable log append', 'records per fdatasync (mean)', 'records', recordsPerFsync, { name: PEER, value: 1 }, true),
]);
