/**
 * Finger tables and routing against naive models: fingers equal successor(n + 2^i) computed by brute
 * force; closest_preceding_node returns the known node closest before the target; the key range of a
 * vnode is (predecessor, n]. Then lookups on a stable ring, in both modes, return the true successor
 * in O(log N) hops.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { distance, fingerStart, inOpen, keyId, ringOf } from '../src/ring.js';
import { closestPreceding, localAnswer } from '../src/routing.js';
import { primaryVnode } from '../src/store.js';
import { stableRing, states, testConfig } from './support/rings.js';

function bruteSuccessor(ids: readonly bigint[], id: bigint, size: bigint): bigint {
  let best = ids[0]!;
  let bestDist = size;
  for (const candidate of ids) {
    const dist = (candidate - id + size) % size;
    if (dist < bestDist) {
      best = candidate;
      bestDist = dist;
    }
  }
  return best;
}

describe('finger tables', () => {
  it('finger[i] = successor(n + 2^i) for every i (brute force, 16-bit ring)', () => {
    const config = testConfig({ idBits: 16 });
    const { sim } = stableRing(40, config);
    const ring = ringOf(16);
    const all = states(sim);
    const ids = all.map((state) => state.vnodes[0]!.self.id);
    for (const state of all) {
      const vnode = state.vnodes[0]!;
      for (let i = 0; i < 16; i++) {
        const expected = bruteSuccessor(ids, fingerStart(ring, vnode.self.id, i), ring.size);
        const finger = vnode.fingers[i];
        assert.equal(
          finger === null || finger === undefined ? vnode.self.id : finger.id,
          expected,
          `n${state.address} finger ${i}`,
        );
      }
    }
  });

  it('closest preceding node is the known node closest before the target (property)', () => {
    const config = testConfig({ idBits: 16 });
    const { sim } = stableRing(64, config);
    const ring = ringOf(16);
    const all = states(sim);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 63 }), fc.bigInt({ min: 0n, max: 65535n }), (index, target) => {
        const state = all[index]!;
        const vnode = state.vnodes[0]!;
        const known = [...vnode.fingers.filter((f) => f !== null), ...vnode.successors];
        const preceding = known.filter((node) => inOpen(node!.id, vnode.self.id, target));
        const got = closestPreceding(state, target, 4);
        if (preceding.length === 0) {
          assert.equal(got.length, 0);
          return;
        }
        const best = preceding.reduce((a, b) =>
          distance(ring, a!.id, target) <= distance(ring, b!.id, target) ? a : b,
        );
        assert.equal(got[0]!.addr, best!.addr);
        for (let i = 1; i < got.length; i++) assert.ok(got[i - 1]!.dist <= got[i]!.dist, 'closest first');
      }),
      { seed: 7, numRuns: 500 },
    );
  });

  it('a vnode answers for (n, successor] and is primary for (predecessor, n]', () => {
    const config = testConfig({ idBits: 16 });
    const { sim, oracle } = stableRing(10, config);
    const state = states(sim)[3]!;
    const vnode = state.vnodes[0]!;
    const successor = vnode.successors[0]!;
    const answer = localAnswer(state, successor.id);
    assert.equal(answer?.nodes[0]?.id, successor.id);
    assert.equal(localAnswer(state, vnode.self.id), null, 'its own id is not in (n, successor]');
    assert.equal(primaryVnode(state, vnode.self.id), vnode);
    assert.equal(primaryVnode(state, vnode.predecessor!.id), null);
    assert.equal(oracle.successorOf(vnode.predecessor!.id + 1n).id, vnode.self.id);
  });
});

describe('lookups on a stable ring', () => {
  for (const mode of ['iterative', 'recursive'] as const) {
    it(`${mode}: every lookup returns the true successor within O(log N) hops`, () => {
      const { sim, oracle } = stableRing(256, testConfig({ lookupMode: mode }));
      const ring = ringOf(160);
      const handles = [];
      for (let i = 0; i < 400; i++)
        handles.push(sim.request(1 + ((i * 37) % 256), { type: 'lookup', key: `key-${i}` }));
      assert.ok(sim.drainRequests(10_000));
      let hops = 0;
      for (const handle of handles) {
        const response = handle.response!;
        assert.equal(response.type, 'lookup');
        if (response.type !== 'lookup' || handle.request.type !== 'lookup') continue;
        assert.equal(response.node.id, oracle.successorOf(keyId(ring, handle.request.key)).id);
        assert.ok(response.hops <= 2 * Math.log2(256), `${response.hops} hops`);
        hops += response.hops;
      }
      const mean = hops / handles.length + 1;
      assert.ok(mean > 2.5 && mean < 5.5, `mean path length ${mean} should be near ½ log2 256 = 4`);
    });
  }
});
