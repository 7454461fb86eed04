// Goal: the Simulation drives a protocol exactly as kit's effect-order contract says (synced persist
// is a barrier, `persisted` acks arrive once durable, a crash loses what was not fsynced and the
// node restarts from its disk), and the fault API (partition, one-way cut, heal, loss, drift) does
// what it claims. Method: the `ledger` test protocol on calm options, driven step by step.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createSimulation, ratio, SimFailure, type SimRequest } from '../src/index.js';
import { type LedgerResponse, ledgerSystem } from './support/ledger.js';

const quiet = ledgerSystem(0);

function replied(handle: SimRequest<LedgerResponse>): () => boolean {
  return () => handle.response !== undefined;
}

test('a synced persist is a barrier: the reply leaves only after the fsync completes', () => {
  const sim = createSimulation(quiet, { diskLatencyMsMin: 50, diskLatencyMsMax: 50 });
  const handle = sim.request(1, { type: 'append', value: 'v', sync: true });
  sim.runUntil(replied(handle), { ticksMax: 100 });
  // 1 ms to the node + 50 ms fsync + 1 ms back.
  assert.ok(sim.nowMs >= 52, `reply at ${sim.nowMs} ms came before the fsync`);
  assert.ok(sim.nowMs < 53);
  const unsynced = sim.request(1, { type: 'append', value: 'w', sync: false });
  const sentAt = sim.nowMs;
  sim.runUntil(replied(unsynced), { ticksMax: 100 });
  assert.ok(sim.nowMs - sentAt < 3, 'an unsynced persist does not delay later effects');
});

test('a crash loses unsynced records and keeps synced ones; restart recovers from disk', () => {
  const sim = createSimulation(quiet);
  for (const [value, sync] of [
    ['kept-1', true],
    ['kept-2', true],
    ['lost', false],
  ] as const) {
    const handle = sim.request(2, { type: 'append', value, sync });
    sim.runUntil(replied(handle), { ticksMax: 100 });
  }
  assert.deepEqual(sim.state(2).values, ['kept-1', 'kept-2', 'lost']);
  sim.crash(2);
  assert.equal(sim.node(2).up, false);
  assert.equal(sim.node(2).state, null);
  sim.restart(2);
  assert.deepEqual(sim.state(2).values, ['kept-1', 'kept-2']);
  assert.equal(sim.node(2).boots, 2);
});

test('a torn crash leaves a partial record that the real recovery routine drops', () => {
  const sim = createSimulation(quiet, { seed: 7 });
  const synced = sim.request(1, { type: 'append', value: 'durable', sync: true });
  sim.runUntil(replied(synced), { ticksMax: 100 });
  const unsynced = sim.request(1, { type: 'append', value: 'x'.repeat(40), sync: false });
  sim.runUntil(replied(unsynced), { ticksMax: 100 });
  sim.crash(1, { torn: true });
  sim.restart(1);
  assert.deepEqual(sim.state(1).values, ['durable']);
  assert.ok(sim.stats.bytesTruncated > 0, 'the torn tail was truncated by scanRecords');
  assert.ok(sim.stats.bytesTruncated < 52, 'only part of the last write survived');
});

test('persisted acks arrive once durable; a compaction replaces the durable state atomically', () => {
  const sim = createSimulation(quiet);
  const first = sim.request(3, { type: 'append', value: 'a', sync: false, ack: 1 });
  sim.runUntil(replied(first), { ticksMax: 100 });
  sim.runFor(100);
  assert.deepEqual(sim.state(3).acks, [], 'no fsync yet, so no ack');
  const second = sim.request(3, { type: 'append', value: 'b', sync: true, ack: 2 });
  sim.runUntil(() => sim.state(3).acks.length === 2 && second.response !== undefined, { ticksMax: 100 });
  assert.deepEqual(sim.state(3).acks, [1, 2]);
  const compact = sim.request(3, { type: 'compact', barrier: true });
  sim.runUntil(replied(compact), { ticksMax: 100 });
  sim.crash(3);
  sim.restart(3);
  assert.deepEqual(sim.state(3).values, ['a', 'b']);
  assert.equal(sim.state(3).recoveredRecords, 0, 'the values came back from the snapshot');
});

test('a barrier compaction holds its reply until durable; one without a barrier does not, and is still atomic', () => {
  const sim = createSimulation(quiet, { diskLatencyMsMin: 40, diskLatencyMsMax: 40 });
  const append = sim.request(2, { type: 'append', value: 'a', sync: true });
  sim.runUntil(replied(append), { ticksMax: 100 });
  let sentAt = sim.nowMs;
  const held = sim.request(2, { type: 'compact', barrier: true });
  sim.runUntil(replied(held), { ticksMax: 100 });
  assert.ok(sim.nowMs - sentAt >= 40, `barrier compaction replied after ${sim.nowMs - sentAt} ms`);
  const more = sim.request(2, { type: 'append', value: 'b', sync: true });
  sim.runUntil(replied(more), { ticksMax: 100 });
  sentAt = sim.nowMs;
  const free = sim.request(2, { type: 'compact', barrier: false });
  sim.runUntil(replied(free), { ticksMax: 100 });
  assert.ok(sim.nowMs - sentAt < 5, `compaction without a barrier replied after ${sim.nowMs - sentAt} ms`);
  // Crash before the free compaction completes: the old durable state (snapshot [a] + record b) survives.
  sim.crash(2);
  sim.restart(2);
  assert.deepEqual(sim.state(2).values, ['a', 'b']);
  assert.equal(sim.state(2).recoveredRecords, 1, 'the free compaction never became durable');
});

test('partition, one-way cut and heal', () => {
  const sim = createSimulation(ledgerSystem(1), { nodeCount: 3 });
  sim.runFor(100);
  const before = sim.nodeIds.map((id) => sim.state(id).pingsReceived);
  assert.ok(before.every((count) => count > 0));

  sim.partition([1]); // n1 alone, n2 n3 together
  const isolated = sim.state(1).pingsReceived;
  const pongs = sim.state(1).pongsReceived;
  sim.runFor(100);
  assert.ok(sim.state(1).pingsReceived - isolated <= 2, 'only packets already past the cut could arrive');
  assert.ok(sim.state(1).pongsReceived - pongs <= 2);
  assert.ok(sim.state(2).pingsReceived > before[1]! + 5, 'the majority side still talks');

  sim.heal();
  sim.cut(1, 2); // n1 can no longer reach n2; n2 still reaches n1
  sim.runFor(20);
  const n2Pings = sim.state(2).pingsReceived;
  const n1Pings = sim.state(1).pingsReceived;
  sim.runFor(100);
  const n2FromN3Only = sim.state(2).pingsReceived - n2Pings;
  assert.ok(n2FromN3Only >= 8 && n2FromN3Only <= 11, `n2 hears only n3: ${n2FromN3Only}`);
  assert.ok(sim.state(1).pingsReceived - n1Pings >= 18, 'n1 still hears both');
  assert.deepEqual(sim.network.cutLinks(), [[1, 2]]);
});

test('loss drops packets at the given ratio', () => {
  const sim = createSimulation(ledgerSystem(1), { nodeCount: 2, seed: 3 });
  sim.setLoss(ratio(1, 2));
  sim.runFor(2000);
  const { messagesSent, droppedLoss } = sim.stats;
  assert.ok(messagesSent > 300);
  const share = droppedLoss / messagesSent;
  assert.ok(share > 0.4 && share < 0.6, `lost ${share}`);
});

test('clock drift: each node ticks on its own clock', () => {
  const sim = createSimulation(quiet, { nodeCount: 3, clockDriftPpmMax: 50_000, seed: 11 });
  sim.runFor(1000);
  const ticks = sim.nodeIds.map((id) => sim.state(id).ticks);
  assert.ok(new Set(ticks).size > 1, `ticks per node all equal: ${ticks}`);
  for (const count of ticks) assert.ok(count >= 94 && count <= 106, `${count} ticks in 1 s at 10 ms ±5%`);
  const local = sim.state(1).tickTimesMs;
  for (let i = 1; i < local.length; i++) assert.ok(Math.abs(local[i]! - local[i - 1]! - 10) < 0.01);
});

test('runUntil fails with the seed when the budget runs out', () => {
  const sim = createSimulation(quiet, { seed: '0x5eed' });
  assert.throws(
    () => sim.runUntil(() => false, { ticksMax: 5, what: 'the impossible' }),
    (error: unknown) =>
      error instanceof SimFailure &&
      error.code === 'TIMEOUT' &&
      /the impossible not reached within 5 ticks/.test(error.message) &&
      /seed 0x5eed/.test(error.message),
  );
});

test('a broken node invariant fails the run with code INVARIANT and the node', () => {
  const sim = createSimulation(quiet);
  sim.runFor(10);
  const state = sim.state(2);
  state.tickTimesMs.push(...Array.from({ length: 100 }, () => 0));
  assert.throws(
    () => sim.runFor(100),
    (error: unknown) => error instanceof SimFailure && error.code === 'INVARIANT' && error.detail.node === 2,
  );
  assert.throws(() => sim.runFor(1), SimFailure, 'a failed simulation refuses to continue');
});

test('wire codec mode pushes every message through the schemas', () => {
  const sim = createSimulation(ledgerSystem(1), { wireCodec: true });
  const handle = sim.request(1, { type: 'append', value: 'v', sync: true });
  sim.runUntil(replied(handle), { ticksMax: 100 });
  assert.deepEqual(handle.response, { type: 'appended', count: 1 });
  sim.runFor(50);
  assert.ok(sim.state(2).pongsReceived > 0);
  // A value its schema rejects (string over 64 bytes) fails at the send, naming the path.
  assert.throws(
    () => sim.request(1, { type: 'append', value: 'x'.repeat(100), sync: true }),
    (error: unknown) => error instanceof SimFailure && error.code === 'CODEC' && /\$\.value/.test(error.message),
  );
});

test('scripted faults apply at their times and appear in the trace', () => {
  const lines: string[] = [];
  const sim = createSimulation(
    ledgerSystem(1),
    {},
    {
      trace: (line) => lines.push(line),
      script: [
        { atMs: 20, action: { type: 'crash', node: 2 } },
        { atMs: 40, action: { type: 'restart', node: 2 } },
      ],
    },
  );
  sim.runFor(30);
  assert.equal(sim.node(2).up, false);
  // The view global invariants see: every node, up or down, and the clock.
  assert.equal(sim.view.nowMs, 30);
  assert.equal(sim.view.phase, 'safety');
  assert.deepEqual(
    sim.view.nodes.map((node) => [node.id, node.up, node.state === null]),
    [
      [1, true, false],
      [2, false, true],
      [3, true, false],
    ],
  );
  sim.runFor(20);
  assert.equal(sim.node(2).up, true);
  assert.ok(lines.includes('20.000 fault crash n2'));
  assert.ok(lines.includes('40.000 fault restart n2'));
  assert.ok(lines.some((line) => / n1 receive from n3 \{"type":"ping"/.test(line)));
});

test('bad API use is a RangeError naming the problem', () => {
  const sim = createSimulation(quiet);
  assert.throws(() => sim.crash(9), /no node n9/);
  sim.crash(1);
  assert.throws(() => sim.crash(1), /already down/);
  assert.throws(() => sim.partition([2], [2]), /two groups/);
  assert.throws(() => createSimulation(quiet, { nodeCount: 0 }), /nodeCount/);
});
