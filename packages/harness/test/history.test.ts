/**
 * History recording for real clients: outcome classification against @dsys/check's recorder, then
 * the pattern every system's real-process test follows: concurrent clients, kill -9 and restart of the
 * server mid-run, and the linearizability checker over the recorded history. The same workload run
 * against a node that does not persist its writes must be caught by the checker (a negative control:
 * the positive result is worth something only if this one fails).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  checkLinearizable,
  HistoryRecorder,
  type RegisterInput,
  type RegisterOutput,
  registerModel,
} from '@dsys/check';
import { Rng } from '@dsys/kit';
import {
  ClientNumbers,
  type Cluster,
  HistoryClient,
  type Outcome,
  recordOperation,
  startCluster,
  waitFor,
} from '../src/index.js';
import { relayCommand, request } from './helpers.js';

type Recorder = HistoryRecorder<RegisterInput, RegisterOutput>;

describe('recordOperation', () => {
  test('resolved -> ok, ECONNREFUSED -> fail, other errors -> info, timeout -> info', async () => {
    const recorder: Recorder = new HistoryRecorder();
    let now = 0;
    const clock = (): number => ++now;
    const write = { type: 'write', value: 'a' } as const;
    const ok = await recordOperation(recorder, 0, write, async () => ({ type: 'write' }) as const, { clock });
    const refused = await recordOperation(
      recorder,
      1,
      write,
      () => Promise.reject(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })),
      { clock },
    );
    const reset = await recordOperation(
      recorder,
      2,
      write,
      () => Promise.reject(Object.assign(new Error('reset'), { code: 'ECONNRESET' })),
      { clock },
    );
    const hung = await recordOperation(recorder, 3, write, () => new Promise<RegisterOutput>(() => undefined), {
      clock,
      timeoutMs: 20,
    });
    assert.deepEqual([ok.status, refused.status, reset.status, hung.status], ['ok', 'fail', 'info', 'info']);
    assert.equal(hung.timedOut, true);
    assert.equal(reset.timedOut, false);
    const history = recorder.history();
    assert.deepEqual(
      history.map((operation) => [operation.client, operation.status, operation.call, operation.return]),
      [
        [0, 'ok', 1, 2],
        [1, 'fail', 3, 4],
        [2, 'info', 5, Number.POSITIVE_INFINITY],
        [3, 'info', 6, Number.POSITIVE_INFINITY],
      ],
    );
  });

  test('classifiers decide: a "not leader" reply is a definite fail, any error can be made one', async () => {
    const recorder: Recorder = new HistoryRecorder();
    const classifyResult = (reply: string): Outcome<RegisterOutput> =>
      reply === 'not-leader' ? { status: 'fail' } : { status: 'ok', output: { type: 'write' } };
    const rejected = await recordOperation(recorder, 0, { type: 'write', value: 'x' }, async () => 'not-leader', {
      classifyResult,
    });
    const failed = await recordOperation(
      recorder,
      1,
      { type: 'write', value: 'y' },
      () => Promise.reject(new Error('validation')),
      { classifyError: () => 'fail' },
    );
    assert.deepEqual([rejected.status, rejected.result, failed.status], ['fail', 'not-leader', 'fail']);
    assert.ok(recorder.history().every((operation) => operation.return >= operation.call));
  });

  test('HistoryClient continues under a fresh client number after an indeterminate outcome', async () => {
    const recorder: Recorder = new HistoryRecorder();
    const numbers = new ClientNumbers(10);
    const first = new HistoryClient(recorder, numbers);
    const second = new HistoryClient(recorder, numbers);
    assert.deepEqual([first.client, second.client], [10, 11]);
    await first.run({ type: 'read' }, () => Promise.reject(new Error('connection lost')));
    assert.equal(first.client, 12, 'retired after info');
    await first.run({ type: 'read' }, async () => ({ type: 'read', value: null }) as const);
    assert.equal(first.client, 12, 'ok keeps the client');
    assert.deepEqual(
      recorder.history().map((operation) => operation.client),
      [10, 12],
    );
  });
});

/** Register operations over the fixture's line protocol. */
async function registerCall(cluster: Cluster, input: RegisterInput): Promise<RegisterOutput> {
  if (input.type === 'write') {
    const reply = await request(cluster.endpoint(1), `write ${input.value}`, 2000);
    assert.equal(reply, 'ok');
    return { type: 'write' };
  }
  assert.equal(input.type, 'read');
  const reply = await request(cluster.endpoint(1), 'read', 2000);
  const match = /^value (.*)$/.exec(reply);
  assert.ok(match !== null, `bad reply ${reply}`);
  return { type: 'read', value: JSON.parse(match[1]!) as string | null };
}

/**
 * Three clients write and read one register on node 1 while it is killed with SIGKILL and restarted.
 * A client whose call did not succeed waits until the node serves again and a probe read (the first
 * operation after the restart, so it sees exactly what survived the crash) has been recorded.
 * Returns the probe's value and the checker's verdict.
 */
async function registerWorkloadWithCrash(
  extraFlags: readonly string[],
): Promise<{ probe: string | null; result: ReturnType<typeof checkLinearizable> }> {
  const cluster = await startCluster({ nodes: 1, proxies: false, command: relayCommand(extraFlags) });
  try {
    const recorder: Recorder = new HistoryRecorder();
    const numbers = new ClientNumbers();
    const rng = Rng.fromSeed(0x5eed);
    let running = true;
    let serving = true;
    let written = 0;
    const worker = async (index: number): Promise<void> => {
      const client = new HistoryClient(recorder, numbers);
      const workerRng = rng.fork(`client:${index}`);
      while (running) {
        const input: RegisterInput = workerRng.chance(1, 2)
          ? { type: 'write', value: `v${index}-${written++}` }
          : { type: 'read' };
        const recorded = await client.run(input, () => registerCall(cluster, input), { timeoutMs: 3000 });
        if (recorded.status !== 'ok') {
          await waitFor(() => serving, { description: 'node 1 to serve again', timeoutMs: 20_000 });
        }
      }
    };
    const workers = [0, 1, 2].map(worker);
    await waitFor(() => recorder.size >= 30, { description: '30 operations before the crash' });
    serving = false;
    await cluster.kill(1);
    await cluster.start(1);
    const probe = await new HistoryClient(recorder, numbers).run({ type: 'read' }, () =>
      registerCall(cluster, { type: 'read' }),
    );
    assert.equal(probe.status, 'ok');
    serving = true;
    const afterRestart = recorder.size;
    await waitFor(() => recorder.size >= afterRestart + 30, { description: '30 operations after the restart' });
    running = false;
    await Promise.all(workers);
    const value = probe.result?.type === 'read' ? probe.result.value : null;
    return { probe: value, result: checkLinearizable(registerModel, recorder.history()) };
  } finally {
    await cluster.stopAll();
  }
}

describe('history of a real node across kill -9 and restart', () => {
  test('a node that fsyncs before replying yields a linearizable history', async () => {
    const { probe, result } = await registerWorkloadWithCrash([]);
    assert.notEqual(probe, null, 'the last acknowledged write survived the crash');
    assert.equal(result.ok, true, result.ok === false ? result.counterexample : String(result.ok));
  });

  test('negative control: a node that forgets acknowledged writes on crash is caught by the checker', async () => {
    const { probe, result } = await registerWorkloadWithCrash(['--volatile']);
    assert.equal(probe, null, 'the acknowledged writes were lost');
    assert.equal(result.ok, false, 'the checker must reject a history with lost acknowledged writes');
  });
});
