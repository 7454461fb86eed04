// Goal: `runSimCli` is the whole `dsys sim` behaviour: --list, --help, one seeded run whose last line
// is `trace-hash: <hex>` (identical with --trace), campaigns over derived seeds that stop at the
// first failure with a `reproduce:` line, exit code 1 on failure and 2 on bad usage.
// Method: call it with captured output over the `ledger` test system and deliberately broken variants.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defineSimSystem, runSimCli, runSystemCli, type SimCliIo, type SimSystem, seedForIndex } from '../src/index.js';
import { ledgerSystem } from './support/ledger.js';

const ledger = ledgerSystem(3);
/** Never converges: every run fails its liveness phase. */
const stuck = defineSimSystem({ ...ledger, name: 'stuck', converged: () => false });
/** Its end check refutes every history. */
const refuted = defineSimSystem({
  ...ledger,
  name: 'refuted',
  workload: { ...ledger.workload, check: () => ({ ok: false, message: 'history refuted on purpose' }) },
});
const systems = [ledger, stuck, refuted] as readonly SimSystem[];

async function run(argv: string[], io: SimCliIo = {}): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runSimCli(systems, argv, { out: (line) => out.push(line), err: (line) => err.push(line), ...io });
  return { code, out, err };
}

test('--list names the registered systems, one a line', async () => {
  const { code, out } = await run(['--list']);
  assert.equal(code, 0);
  assert.deepEqual(out, ['ledger', 'stuck', 'refuted']);
});

test('--help prints usage and the systems with their descriptions', async () => {
  const { code, out } = await run(['--help']);
  assert.equal(code, 0);
  assert.ok(out.some((line) => line.startsWith('usage: dsys sim --list')));
  assert.ok(out.some((line) => /^ {2}ledger +test protocol/.test(line)));
});

test('one seeded run prints every option, status lines, and the trace hash last', async () => {
  const { code, out } = await run(['ledger', '--seed', '0x2a']);
  assert.equal(code, 0);
  assert.equal(out[0], 'dsys sim ledger --seed 0x2a');
  for (const option of ['seed 0x2a', 'nodeCount ', 'lossRatio ', 'crashRatio ', 'safetyMs ', 'clockDriftPpmMax ']) {
    assert.ok(
      out.some((line) => line.trim().startsWith(option)),
      `option ${option} printed`,
    );
  }
  assert.ok(out.some((line) => /^\[ +\d+\.\ds\] safety/.test(line)));
  assert.match(out.at(-2)!, /^ok: /);
  assert.match(out.at(-1)!, /^trace-hash: [0-9a-f]{16}$/);
});

test('--trace prints events and leaves the hash unchanged; decimal and hex seeds agree', async () => {
  const plain = await run(['ledger', '--seed', '42']);
  const traced = await run(['ledger', '--seed=0x2a', '--trace']);
  assert.equal(traced.out.at(-1), plain.out.at(-1));
  assert.ok(traced.out.length > plain.out.length + 1000);
  assert.ok(traced.out.some((line) => /^\d+\.\d{3} n\d tick$/.test(line)));
});

test('a failing run exits 1 with the failure and a reproduce line', async () => {
  const liveness = await run(['stuck', '--seed', '5']);
  assert.equal(liveness.code, 1);
  assert.ok(liveness.out.some((line) => /^FAILED .*LIVENESS/.test(line)));
  assert.equal(liveness.out.at(-2), 'reproduce: npx dsys sim stuck --seed 0x5');
  assert.match(liveness.out.at(-1)!, /^trace-hash: /);

  const check = await run(['refuted', '--seed', '5'], { command: 'npm run sim -w @dsys/x --' });
  assert.equal(check.code, 1);
  assert.ok(check.out.some((line) => /CHECK .*history refuted on purpose/.test(line)));
  assert.ok(check.out.includes('reproduce: npm run sim -w @dsys/x -- refuted --seed 0x5'));
});

test('a campaign runs derived seeds and stops at the first failure', async () => {
  const passing = await run(['ledger', '--seeds', '3', '--from', '10'], { wallClockMs: () => 0 });
  assert.equal(passing.code, 0);
  assert.match(passing.out.at(-1)!, /^3 seeds passed: \d+ events/);
  assert.ok(passing.out.some((line) => line.includes(`seed 0x${seedForIndex(12).toString(16)}`)));

  const failing = await run(['refuted', '--seeds', '50']);
  assert.equal(failing.code, 1);
  assert.equal(failing.out.at(-1), `reproduce: npx dsys sim refuted --seed 0x${seedForIndex(0).toString(16)}`);
});

test('bad usage exits 2 with a clear message', async () => {
  const cases: [string[], RegExp][] = [
    [['ledger', '--sed', '1'], /unknown option --sed/],
    [['nope', '--seed', '1'], /unknown system "nope"; registered: ledger, stuck, refuted/],
    [['ledger', '--seed', 'banana'], /--seed: seed must be decimal or 0x-hex/],
    [['ledger', '--seed'], /--seed needs a value/],
    [['ledger', '--seed', '1', '--seeds', '2'], /exclude each other/],
    [['ledger', '--seeds', '0'], /--seeds must be an integer >= 1/],
    [['ledger', '--seeds', '2', '--trace'], /--trace needs a single --seed/],
    [['ledger'], /give --seed N or --seeds COUNT/],
    [[], /name a system/],
    [['ledger', 'extra', '--seed', '1'], /unexpected argument "extra"/],
  ];
  for (const [argv, message] of cases) {
    const { code, err } = await run(argv);
    assert.equal(code, 2, argv.join(' '));
    assert.match(err[0]!, message, argv.join(' '));
  }
});

test('without a seed, a provided random seed is used and printed', async () => {
  const { code, out } = await run(['ledger'], { randomSeed: () => 0xabcn });
  assert.equal(code, 0);
  assert.equal(out[0], 'dsys sim ledger --seed 0xabc');
});

test('runSystemCli preselects the system (for a package `npm run sim` script)', async () => {
  const out: string[] = [];
  const code = await runSystemCli(ledger as SimSystem, ['--seed', '1'], { out: (line) => out.push(line) });
  assert.equal(code, 0);
  assert.equal(out[0], 'dsys sim ledger --seed 0x1');
});
