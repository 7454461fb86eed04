// Goal: the register's fault-tolerance claims, told as scripted stories on the simulator: a minority
// partitioned away does not stop writes or reads on the majority side, and writes there wait for the
// heal; a coordinator that crashes mid-write leaves the register consistent (later reads agree, the
// global "one tag, one value" invariant holds) and comes back under a new incarnation.
// Method: `createSimulation(abdSim, ...)` on a calm network, requests from the test client, faults by hand.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createSimulation, type SimRequest } from '@dsys/sim';
import { type AbdResponse, abdSim, compareTags } from '../src/index.js';

const arrived = (handle: SimRequest<AbdResponse>) => () => handle.response !== undefined;

test('a minority partitioned away: the majority keeps serving; the minority waits for the heal', () => {
  const sim = createSimulation(abdSim, { nodeCount: 5, seed: 21 });
  sim.partition([4, 5]);
  const write = sim.request(1, { type: 'write', value: 'during-partition' });
  sim.runUntil(arrived(write), { ticksMax: 50, what: 'a majority-side write' });
  assert.deepEqual(write.response, { type: 'write' });
  const read = sim.request(3, { type: 'read' });
  sim.runUntil(arrived(read), { ticksMax: 50, what: 'a majority-side read' });
  assert.deepEqual(read.response, { type: 'read', value: 'during-partition' });

  const stranded = sim.request(5, { type: 'write', value: 'from-the-minority' });
  sim.runFor(1000);
  assert.equal(stranded.response, undefined, 'a minority cannot gather a quorum');
  sim.heal();
  sim.runUntil(arrived(stranded), { ticksMax: 50, what: 'the minority write after the heal' });
  const after = sim.request(4, { type: 'read' });
  sim.runUntil(arrived(after), { ticksMax: 50 });
  assert.deepEqual(after.response, { type: 'read', value: 'from-the-minority' });
});

test('a one-way cut: a node that cannot be heard still serves through the others', () => {
  const sim = createSimulation(abdSim, { nodeCount: 3, seed: 5 });
  sim.cut(1, 2);
  sim.cut(1, 3); // n1 hears everyone, nobody hears n1
  const write = sim.request(2, { type: 'write', value: 'w' });
  sim.runUntil(arrived(write), { ticksMax: 50 });
  const stuck = sim.request(1, { type: 'read' });
  sim.runFor(500);
  assert.equal(stuck.response, undefined, "n1's queries never arrive");
  sim.heal();
  sim.runUntil(arrived(stuck), { ticksMax: 50 });
  assert.deepEqual(stuck.response, { type: 'read', value: 'w' });
});

test('the coordinator crashes mid-write: reads agree afterwards, and it returns under a new incarnation', () => {
  // Slow disks make the crash land after n2 took the store in memory but before anything was fsynced.
  const sim = createSimulation(abdSim, { nodeCount: 3, seed: 9, diskLatencyMsMin: 50, diskLatencyMsMax: 50 });
  const first = sim.request(1, { type: 'write', value: 'first' });
  sim.runUntil(arrived(first), { ticksMax: 100 });
  const doomed = sim.request(1, { type: 'write', value: 'doomed' });
  sim.runUntil(() => sim.state(2).value === 'doomed', { ticksMax: 100, what: 'the store reaching n2' });
  const doomedTag = sim.state(2).tag;
  sim.crash(1, { torn: true });
  sim.runFor(200);
  assert.equal(doomed.response, undefined, 'the client never hears back: the write is indeterminate');

  // n1 is down, so any majority is {n2, n3}: the read sees n2's copy and writes it back to n3.
  const read = sim.request(3, { type: 'read' });
  sim.runUntil(arrived(read), { ticksMax: 100 });
  assert.deepEqual(read.response, { type: 'read', value: 'doomed' });
  assert.equal(sim.state(3).value, 'doomed', 'written back');

  sim.restart(1);
  assert.equal(sim.state(1).value, 'first', "n1's own store of 'doomed' was never fsynced");
  assert.equal(sim.state(1).incarnation, 2);
  const next = sim.request(1, { type: 'write', value: 'after-restart' });
  sim.runUntil(arrived(next), { ticksMax: 100 });
  const tag = sim.state(1).tag;
  assert.equal(tag.incarnation, 2);
  assert.ok(compareTags(tag, doomedTag) > 0, 'the new tag outranks the half-done write');
  const last = sim.request(2, { type: 'read' });
  sim.runUntil(arrived(last), { ticksMax: 100 });
  assert.deepEqual(last.response, { type: 'read', value: 'after-restart' });
});

test('a crashed minority does not block; its replicas catch up through later writes', () => {
  const sim = createSimulation(abdSim, { nodeCount: 5, seed: 3 });
  sim.crash(2);
  sim.crash(4);
  for (const value of ['a', 'b', 'c']) {
    const write = sim.request(1, { type: 'write', value });
    sim.runUntil(arrived(write), { ticksMax: 100 });
  }
  sim.restart(2);
  sim.restart(4);
  assert.equal(sim.state(2).value, null, 'nothing reached n2 while it was down');
  const write = sim.request(5, { type: 'write', value: 'd' });
  sim.runUntil(() => write.response !== undefined && sim.state(2).value === 'd', { ticksMax: 100 });
});
