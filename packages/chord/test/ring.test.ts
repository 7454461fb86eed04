/**
 * Ring arithmetic (Chord §4.2, TON §IV.A): intervals on the identifier circle, including wraparound
 * and the degenerate (a, a) interval, finger starts, and the hashing of keys and nodes. The interval
 * predicates are checked against a naive definition by clockwise distance (fast-check, fixed seed).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  addId,
  distance,
  fingerStart,
  hashToId,
  inClosedOpen,
  inOpen,
  inOpenClosed,
  keyId,
  nodeId,
  ringOf,
} from '../src/ring.js';

const ring8 = ringOf(8);

describe('intervals on the circle', () => {
  it('open interval without wraparound', () => {
    assert.equal(inOpen(5n, 3n, 9n), true);
    assert.equal(inOpen(3n, 3n, 9n), false);
    assert.equal(inOpen(9n, 3n, 9n), false);
    assert.equal(inOpen(10n, 3n, 9n), false);
  });

  it('open interval that wraps past zero', () => {
    assert.equal(inOpen(250n, 200n, 10n), true);
    assert.equal(inOpen(0n, 200n, 10n), true);
    assert.equal(inOpen(9n, 200n, 10n), true);
    assert.equal(inOpen(10n, 200n, 10n), false);
    assert.equal(inOpen(100n, 200n, 10n), false);
  });

  it('(a, a) is the whole circle except a; (a, a] and [a, a) are the whole circle', () => {
    assert.equal(inOpen(7n, 7n, 7n), false);
    assert.equal(inOpen(8n, 7n, 7n), true);
    assert.equal(inOpen(6n, 7n, 7n), true);
    assert.equal(inOpenClosed(7n, 7n, 7n), true);
    assert.equal(inClosedOpen(7n, 7n, 7n), true);
  });

  it('half-open intervals include the right (or left) end', () => {
    assert.equal(inOpenClosed(9n, 3n, 9n), true);
    assert.equal(inOpenClosed(3n, 3n, 9n), false);
    assert.equal(inOpenClosed(10n, 200n, 10n), true);
    assert.equal(inClosedOpen(200n, 200n, 10n), true);
    assert.equal(inClosedOpen(10n, 200n, 10n), false);
  });

  it('agree with the clockwise-distance definition (property)', () => {
    const id = fc.bigInt({ min: 0n, max: 255n });
    fc.assert(
      fc.property(id, id, id, (x, a, b) => {
        const dx = distance(ring8, a, x);
        const db = a === b ? ring8.size : distance(ring8, a, b);
        assert.equal(inOpen(x, a, b), dx > 0n && dx < db);
        assert.equal(inOpenClosed(x, a, b), dx > 0n ? dx <= db : a === b);
        assert.equal(inClosedOpen(x, a, b), dx < db);
      }),
      { seed: 42, numRuns: 2000 },
    );
  });
});

describe('identifiers', () => {
  it('distance and addition wrap modulo 2^m', () => {
    assert.equal(distance(ring8, 250n, 4n), 10n);
    assert.equal(distance(ring8, 4n, 250n), 246n);
    assert.equal(addId(ring8, 250n, 10n), 4n);
  });

  it('finger i starts at n + 2^i mod 2^m', () => {
    assert.equal(fingerStart(ring8, 0n, 0), 1n);
    assert.equal(fingerStart(ring8, 0n, 7), 128n);
    assert.equal(fingerStart(ring8, 200n, 7), 72n);
    assert.equal(fingerStart(ringOf(160), (1n << 160n) - 1n, 0), 0n);
  });

  it('keys hash with SHA-1 (FIPS 180 test vector) and smaller rings keep the top bits', () => {
    const full = ringOf(160);
    assert.equal(keyId(full, 'abc'), 0xa9993e364706816aba3e25717850c26c9cd0d89dn);
    assert.equal(keyId(ringOf(16), 'abc'), 0xa999n);
    assert.equal(hashToId(ring8, new TextEncoder().encode('abc')), 0xa9n);
  });

  it('node identifiers depend on the address and the virtual node index', () => {
    const full = ringOf(160);
    assert.notEqual(nodeId(full, 'n1', 0), nodeId(full, 'n1', 1));
    assert.notEqual(nodeId(full, 'n1', 0), nodeId(full, 'n2', 0));
    assert.equal(nodeId(full, 'n1', 0), keyId(full, 'n1#0'));
  });

  it('rejects ring sizes outside [3, 160]', () => {
    assert.throws(() => ringOf(2), RangeError);
    assert.throws(() => ringOf(161), RangeError);
  });
});
