/**
 * Scenarios on the protocol core, each run through the real message handling (RingSim):
 * - Theorem 5: after the last join (one by one, or many at once through one node) every successor
 *   pointer, predecessor and successor list becomes correct;
 * - Theorem 4 (and key transfer on join): keys that could be found keep being found while nodes join;
 * - r - 1 consecutive successors failing at once: the ring repairs itself, lookups route around the
 *   failures, and every key is back on r live replicas (re-replication);
 * - graceful leave: the node hands its keys to its successor before it goes, nothing is lost;
 * - the application callback sees range changes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NodeId, toJsonValue } from '@dsys/kit';
import { RingOracle } from '../src/oracle.js';
import { keyId, ringOf } from '../src/ring.js';
import { converge, growRing, newSim, report, stableRing, states, testConfig } from './support/rings.js';

const ring = ringOf(160);
const text = new TextEncoder();

function putAll(sim: ReturnType<typeof newSim>, count: number, from: number) {
  const handles = [];
  for (let i = 0; i < count; i++)
    handles.push(sim.request(from, { type: 'put', key: `key-${i}`, value: text.encode(`v${i}`) }));
  assert.ok(sim.drainRequests(20_000), 'puts answered');
  for (const handle of handles)
    assert.equal(handle.response?.type, 'put', JSON.stringify(toJsonValue(handle.response)));
}

function getAll(sim: ReturnType<typeof newSim>, count: number, nodes: readonly number[]): number {
  const handles = [];
  for (let i = 0; i < count; i++) handles.push(sim.request(nodes[i % nodes.length]!, { type: 'get', key: `key-${i}` }));
  assert.ok(sim.drainRequests(20_000), 'gets answered');
  let found = 0;
  handles.forEach((handle, i) => {
    const response = handle.response;
    if (response?.type === 'get' && response.found && new TextDecoder().decode(response.value!) === `v${i}`) found++;
  });
  return found;
}

/** Every key is held by its first `replicas` live successors (on distinct nodes). */
function replicasInPlace(sim: ReturnType<typeof newSim>, count: number, replicas: number): number {
  const all = states(sim);
  const oracle = new RingOracle(ring, all);
  const byAddress = new Map(all.map((state) => [state.address as number, state]));
  let misplaced = 0;
  for (let i = 0; i < count; i++) {
    for (const address of oracle.replicaSet(keyId(ring, `key-${i}`), replicas)) {
      if (!byAddress.get(address)!.store.has(`key-${i}`)) misplaced++;
    }
  }
  return misplaced;
}

describe('Theorem 5: successor pointers become correct after the last join', () => {
  it('joins one by one', () => {
    const sim = newSim(testConfig());
    growRing(sim, 24, { together: 1, gapMs: 40 });
    assert.ok(converge(sim) >= 0, JSON.stringify(report(sim)));
  });

  it('24 nodes joining at once through the same node', () => {
    const sim = newSim(testConfig(), 3);
    growRing(sim, 25, { together: 24, gapMs: 0 });
    assert.ok(converge(sim) >= 0, JSON.stringify(report(sim)));
    // Fingers converge too: lookups from everywhere are right.
    sim.runFor(2_000);
    const oracle = new RingOracle(ring, states(sim));
    const handles = [];
    for (let i = 0; i < 100; i++) handles.push(sim.request(1 + (i % 25), { type: 'lookup', key: `k${i}` }));
    sim.drainRequests(10_000);
    for (const handle of handles) {
      const response = handle.response!;
      assert.ok(response.type === 'lookup' && handle.request.type === 'lookup');
      assert.equal(response.node.id, oracle.successorOf(keyId(ring, handle.request.key)).id);
    }
  });

  it('with 3 virtual nodes per node on a 16-bit ring', () => {
    const sim = newSim(testConfig({ idBits: 16, vnodes: 3 }), 5);
    growRing(sim, 8, { together: 2, gapMs: 30 });
    assert.ok(converge(sim) >= 0, JSON.stringify(report(sim)));
    assert.equal(report(sim).members, 24);
  });
});

describe('keys under joins, failures and leaves', () => {
  it('keys keep being found while nodes join (Theorem 4, key transfer on join)', () => {
    const sim = newSim(testConfig(), 11);
    growRing(sim, 6);
    assert.ok(converge(sim) >= 0);
    putAll(sim, 60, 1);
    for (let address = 7; address <= 20; address++) {
      sim.addNode(address, { bootstrap: 'join', seeds: [NodeId(1 + (address % 6))] });
      sim.runFor(25);
      assert.equal(getAll(sim, 60, [1, 2, 3, 4, 5, 6]), 60, `all keys found after node ${address} joined`);
    }
    assert.ok(converge(sim) >= 0);
    sim.runFor(3_000);
    assert.equal(replicasInPlace(sim, 60, 3), 0, 'keys moved to their new successors');
  });

  it('r - 1 consecutive successors fail at once: lookups route around them, replicas are restored', () => {
    const config = testConfig({ successorListLength: 6 });
    const { sim } = stableRing(20, config, 4);
    sim.runFor(200);
    putAll(sim, 80, 1);
    // Kill the two nodes that follow node 1 on the ring (replicas = 3, so 2 = r - 1 at once).
    const start = states(sim).find((state) => state.address === 1)!;
    const victims = start.vnodes[0]!.successors.slice(0, 2).map((node) => node.addr as number);
    for (const victim of victims) sim.kill(victim);
    const survivors = states(sim).map((state) => state.address as number);
    // Right away (before stabilization): lookups still answer, routing around the failed nodes.
    const handles = [];
    for (let i = 0; i < 50; i++)
      handles.push(sim.request(survivors[i % survivors.length]!, { type: 'lookup', key: `x${i}` }));
    assert.ok(sim.drainRequests(20_000));
    for (const handle of handles)
      assert.equal(handle.response?.type, 'lookup', JSON.stringify(toJsonValue(handle.response)));
    assert.ok(converge(sim) >= 0, JSON.stringify(report(sim)));
    assert.equal(getAll(sim, 80, survivors), 80, 'every key still found');
    sim.runFor(3_000);
    assert.equal(replicasInPlace(sim, 80, 3), 0, 'every key back on 3 live replicas');
  });

  it('graceful leave hands the keys over; the ring closes the gap', () => {
    const { sim } = stableRing(12, testConfig(), 8);
    sim.runFor(200);
    putAll(sim, 60, 2);
    const leave = sim.request(5, { type: 'leave' });
    sim.drainRequests(10_000);
    assert.deepEqual(leave.response, { type: 'ok' });
    const left = sim.state(5)!;
    assert.equal(left.vnodes[0]!.status, 'left');
    assert.equal(left.store.size, 0, 'a node that left holds nothing');
    const members = states(sim).filter((state) => state.address !== 5);
    assert.ok(
      sim.runUntil(() => {
        const oracle = new RingOracle(ring, members);
        return members.every((state) => state.vnodes[0]!.successors[0]!.id === oracle.next(state.vnodes[0]!.self).id);
      }, 10_000),
    );
    assert.equal(getAll(sim, 60, [1, 2, 3, 4, 6, 7]), 60);
    sim.runFor(3_000);
    assert.equal(replicasInPlace(sim, 60, 3), 0);
  });

  it('the application callback sees the range change when a node joins before it', () => {
    const sim = newSim(testConfig(), 9);
    growRing(sim, 5);
    assert.ok(converge(sim) >= 0);
    for (const state of states(sim)) state.rangeEvents.length = 0;
    sim.addNode(6, { bootstrap: 'join', seeds: [NodeId(2)] });
    assert.ok(sim.runUntil(() => sim.state(6)!.vnodes[0]!.status === 'joined', 5_000));
    assert.ok(converge(sim) >= 0);
    const newcomer = sim.state(6)!.vnodes[0]!.self;
    const successor = states(sim).find((state) => state.vnodes[0]!.predecessor?.addr === 6);
    assert.ok(successor !== undefined, JSON.stringify(toJsonValue(report(sim))));
    const event = successor.rangeEvents.find((candidate) => candidate.from === newcomer.id);
    assert.ok(event !== undefined, 'the successor was told its range is now (newcomer, self]');
    assert.equal(event.to, successor.vnodes[0]!.self.id);
  });
});
