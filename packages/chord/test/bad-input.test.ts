/**
 * Untrusted input: malformed bytes never decode into a message (and never throw); well-formed
 * messages that lie (identifiers outside the ring, a node claiming another's identifier or speaking
 * for another node, vnode indexes that do not exist) are rejected with a reason, counted, and leave
 * the node's state and the ring exactly as they were.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decode, encode, NodeId } from '@dsys/kit';
import fc from 'fast-check';
import { type ChordMessage, messageSchema, requestSchema } from '../src/messages.js';
import { chordProtocol } from '../src/protocol.js';
import { nodeId, ringOf } from '../src/ring.js';
import { isCorrect, report, stableRing, states, testConfig } from './support/rings.js';

describe('malformed bytes', () => {
  it('random bytes decode to an error, never an exception (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const message = decode(messageSchema, bytes);
        const request = decode(requestSchema, bytes);
        assert.equal(typeof message.ok, 'boolean');
        assert.equal(typeof request.ok, 'boolean');
      }),
      { seed: 3, numRuns: 3000 },
    );
  });

  it('a valid message round-trips; truncated, oversized and unknown-tag ones are rejected', () => {
    const ring = ringOf(160);
    const message: ChordMessage = {
      type: 'notify',
      vnode: 0,
      node: { id: nodeId(ring, 'n3', 0), addr: NodeId(3), vnode: 0 },
    };
    const bytes = encode(messageSchema, message);
    assert.deepEqual(decode(messageSchema, bytes), { ok: true, value: message });
    assert.equal(decode(messageSchema, bytes.subarray(0, bytes.length - 1)).ok, false);
    assert.equal(decode(messageSchema, new Uint8Array([99])).ok, false);
    // An identifier of 21 bytes is more than SHA-1 can produce.
    const tooLong = encode(messageSchema, { type: 'findStep', rpc: 1, target: 1n, avoid: [] });
    const patched = Uint8Array.from([...tooLong.subarray(0, 2), 21, ...new Uint8Array(21).fill(1), 0]);
    assert.equal(decode(messageSchema, patched).ok, false);
  });
});

describe('lying messages are rejected with a reason and change nothing', () => {
  const config = testConfig({ idBits: 16 });
  const ring = ringOf(16);

  function setup() {
    const { sim } = stableRing(12, config, 2);
    const target = sim.state(1)!;
    return { sim, target };
  }

  function deliver(state: ReturnType<typeof setup>['target'], from: number, message: ChordMessage) {
    const before = JSON.stringify(state.vnodes[0]!.predecessor?.id.toString());
    const rejected = state.stats.rejected;
    const effects = chordProtocol.step(state, { type: 'receive', from: NodeId(from), message });
    assert.equal(state.stats.rejected, rejected + 1, 'counted as rejected');
    assert.equal(effects.length, 0, 'no reaction');
    assert.equal(JSON.stringify(state.vnodes[0]!.predecessor?.id.toString()), before, 'predecessor unchanged');
    return state.rejections[state.rejections.length - 1]!;
  }

  it('an identifier outside the ring', () => {
    const { target } = setup();
    const reason = deliver(target, 3, { type: 'notify', vnode: 0, node: { id: 1n << 20n, addr: NodeId(3), vnode: 0 } });
    assert.match(reason, /outside the 16-bit ring/);
    assert.match(deliver(target, 3, { type: 'findStep', rpc: 1, target: 1n << 17n, avoid: [] }), /outside the ring/);
  });

  it("a node claiming another node's identifier", () => {
    const { target } = setup();
    const stolen = nodeId(ring, 'n5', 0);
    const reason = deliver(target, 3, { type: 'notify', vnode: 0, node: { id: stolen, addr: NodeId(3), vnode: 0 } });
    assert.match(reason, /claims identifier .* for n3#0, which hashes to/);
  });

  it('a node speaking for another node, or for a vnode that does not exist', () => {
    const { target } = setup();
    const five = { id: nodeId(ring, 'n5', 0), addr: NodeId(5), vnode: 0 };
    assert.match(deliver(target, 3, { type: 'notify', vnode: 0, node: five }), /on behalf of another node/);
    assert.match(deliver(target, 3, { type: 'getPred', rpc: 1, vnode: 7 }), /no vnode 7 here/);
    assert.match(deliver(target, 0, { type: 'ping', rpc: 1, vnode: 0 }), /not a valid address/);
  });

  it('a successor list with a forged entry', () => {
    const { target } = setup();
    const forged = { id: nodeId(ring, 'n9', 0), addr: NodeId(4), vnode: 0 };
    assert.match(
      deliver(target, 2, { type: 'predReply', rpc: 1, pred: null, successors: [forged] }),
      /claims identifier/,
    );
  });

  it('the ring is unharmed afterwards', () => {
    const { sim, target } = setup();
    for (let i = 0; i < 50; i++) {
      chordProtocol.step(target, {
        type: 'receive',
        from: NodeId(3),
        message: { type: 'notify', vnode: 0, node: { id: BigInt(i), addr: NodeId(3), vnode: 0 } },
      });
    }
    sim.runFor(500);
    assert.ok(isCorrect(report(sim)));
    const handle = sim.request(1, { type: 'lookup', key: 'still-works' });
    sim.drainRequests(5_000);
    assert.equal(handle.response?.type, 'lookup');
    assert.ok(states(sim).every((state) => state.stats.rejected === 0 || state.address === 1));
  });

  it('bad config is refused at init with the parameter named', () => {
    assert.throws(
      () =>
        chordProtocol.init({
          id: NodeId(1),
          peers: [],
          config: { ...config, replicas: 99 },
          rng: undefined as never,
          durable: { snapshot: null, records: [] },
          nowMs: 0,
        }),
      /replicas/,
    );
  });
});
