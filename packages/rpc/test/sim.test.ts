// Goal: the counter service of tcp.test.ts, same interface and the same RPC endpoints, inside the
// deterministic simulator: frames are messages that the network loses, duplicates and reorders, and the
// server crashes and restarts (losing its reply cache). No `add` may run twice, and every call must
// end acknowledged, definitely failed (and then it never ran), or reported indeterminate.
// Method: scripted faults on a seeded simulation; a ledger outside the nodes counts runs per token
// (checked after every step by a global invariant) and outcomes per call; then a seed swarm.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createSimulation, NEVER, ratio } from '@dsys/sim';
import { checkLedger, counterSystem, newLedger } from './support/sim-counter.js';

function run(seed: number) {
  const ledger = newLedger();
  const sim = createSimulation(counterSystem(ledger, { callsPerClient: 60, timeoutMs: 1500 }), {
    seed,
    nodeCount: 4,
    tickMs: 5,
    latencyMsMin: 1,
    latencyMsMax: 4,
    latencyTailMsMean: 6, // the tail's variance reorders messages
    lossRatio: ratio(1, 8),
    duplicateRatio: ratio(1, 8),
  });
  sim.runFor(400);
  sim.crash(1);
  sim.runFor(150);
  sim.restart(1);
  sim.runFor(500);
  sim.crash(1);
  sim.runFor(100);
  sim.restart(1);
  sim.runFor(300);
  sim.setLoss(NEVER);
  sim.setDuplicate(NEVER);
  const finished = (id: number) => {
    const node = sim.state(id);
    return node.role === 'client' && node.issued === 60 && node.outstanding === 0;
  };
  sim.runUntil(() => [2, 3, 4].every(finished), { msMax: 60_000, what: 'every call issued and settled' });
  // Let any straggling duplicates arrive: they must not run anything either.
  sim.runFor(3000);
  return { sim, ledger };
}

test('at-most-once under loss, duplication, reordering and server crashes (simulator)', () => {
  const { sim, ledger } = run(0x5eed);
  assert.deepEqual(checkLedger(ledger), []);
  const outcomes = [...ledger.outcomes.values()];
  const count = (outcome: string) => outcomes.filter((o) => o === outcome).length;
  // The faults must actually have bitten: some calls were retried, some were lost to the crashes.
  assert.ok(sim.stats.duplicated > 0 && sim.stats.droppedLoss > 0 && sim.stats.crashes === 2);
  assert.ok(count('ok') > 50, `acknowledged: ${count('ok')}`);
  assert.ok(count('indeterminate') > 0, 'a crash left some calls indeterminate');
  assert.ok(ledger.gets > 0);
  console.log(
    `ok ${count('ok')}, failed ${count('failed')}, indeterminate ${count('indeterminate')}, codes ${JSON.stringify(Object.fromEntries(ledger.codes))}`,
  );
});

test('the simulated run is deterministic: one seed, one trace', () => {
  const first = run(42);
  const second = run(42);
  assert.equal(first.sim.traceHash(), second.sim.traceHash());
  assert.deepEqual([...first.ledger.outcomes], [...second.ledger.outcomes]);
});

test('a small swarm of seeds keeps every call at most once', () => {
  for (let seed = 1; seed <= 6; seed++) {
    const { ledger } = run(seed * 7919);
    assert.deepEqual(checkLedger(ledger), [], `seed ${seed * 7919}`);
  }
});
