// Goal: the event queue pops in (time, insertion) order: a total order with no ties left to chance.
// Method: a fast-check property against a stable sort of the same events, plus the tie rule by hand.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { EventQueue } from '../src/index.js';

function pushAll(queue: EventQueue, times: readonly number[]): void {
  times.forEach((timeUs, index) => {
    const event = queue.allocate();
    event.timeUs = timeUs;
    event.target = index;
    queue.push(event);
  });
}

function drain(queue: EventQueue): number[] {
  const order: number[] = [];
  for (let event = queue.pop(); event !== undefined; event = queue.pop()) {
    order.push(event.target);
    queue.release(event);
  }
  return order;
}

test('ties at one instant pop in insertion order', () => {
  const queue = new EventQueue();
  pushAll(queue, [5, 3, 5, 3, 5]);
  assert.deepEqual(drain(queue), [1, 3, 0, 2, 4]);
});

test('pop order equals a stable sort by time (property)', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 200 }), (times) => {
      const queue = new EventQueue();
      pushAll(queue, times);
      const expected = times.map((time, index) => ({ time, index })).sort((a, b) => a.time - b.time);
      assert.deepEqual(
        drain(queue),
        expected.map((entry) => entry.index),
      );
    }),
    { seed: 1, numRuns: 300 },
  );
});

test('interleaved pushes and pops keep the order; released events are reused', () => {
  const queue = new EventQueue();
  pushAll(queue, [10, 20]);
  const first = queue.pop()!;
  assert.equal(first.timeUs, 10);
  queue.release(first);
  const reused = queue.allocate();
  assert.equal(reused, first);
  assert.equal(reused.payload, null);
  reused.timeUs = 15;
  reused.target = 99;
  queue.push(reused);
  assert.deepEqual(drain(queue), [99, 1]);
  assert.equal(queue.size, 0);
});

test('rejects a negative or fractional time (a simulator bug)', () => {
  const queue = new EventQueue();
  const event = queue.allocate();
  event.timeUs = 1.5;
  assert.throws(() => queue.push(event), /bad time/);
});
