// Goal: `dsys kv` and `dsys raft` print what the README shows and exit with the codes:
// 0 took effect, 1 definitely did not, 2 outcome unknown, 64 usage; `--json` prints one object.
// Method: the command functions (`kvCli`, `raftCli`) with captured output against an in-process
// cluster. "Outcome unknown" is produced for real: a proxy in front of the leader forwards the
// client's requests but drops every answer after the session was opened, so the write is applied and
// the client cannot know it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { allocatePorts, waitFor } from '@dsys/harness';
import { KvClient, type KvCliIo, kvCli, raftCli } from '@dsys/raft/real';
import { startTestCluster, type TestCluster } from '../support/in-process.js';
import { startReplyDropper } from '../support/reply-dropper.js';

interface Run {
  code: number;
  out: string;
  err: string;
}

async function run(command: (argv: string[], io: KvCliIo) => Promise<number>, argv: string[]): Promise<Run> {
  let out = '';
  let err = '';
  const code = await command(argv, {
    out: (text) => {
      out += text;
    },
    err: (text) => {
      err += text;
    },
  });
  return { code, out, err };
}

const kv = (argv: string[]) => run(kvCli, argv);
const raft = (argv: string[]) => run(raftCli, argv);

describe('dsys kv', () => {
  let cluster: TestCluster;
  let endpoints: string;
  before(async () => {
    cluster = await startTestCluster({ nodes: 3 });
    endpoints = cluster.endpoints.join(',');
  });
  after(() => cluster.close());

  test('exit 0 when the operation took effect, with text and --json output', async () => {
    assert.deepEqual(await kv(['--endpoints', endpoints, 'put', 'greeting', 'hello']), {
      code: 0,
      out: 'OK\n',
      err: '',
    });
    assert.deepEqual(await kv(['--endpoints', endpoints, 'get', 'greeting']), { code: 0, out: 'hello\n', err: '' });
    assert.deepEqual(await kv(['get', 'nobody', '--endpoints', endpoints]), { code: 0, out: 'null\n', err: '' });
    const json = await kv(['--endpoints', endpoints, '--json', 'get', 'nobody']);
    assert.deepEqual(JSON.parse(json.out), { key: 'nobody', value: null });
    assert.equal(json.code, 0);
    assert.deepEqual(JSON.parse((await kv(['--endpoints', endpoints, '--json', 'put', 'a/1', 'x'])).out), { ok: true });
    await kv(['--endpoints', endpoints, 'put', 'a/2', 'y']);
    const scan = await kv(['--endpoints', endpoints, 'scan', 'a/']);
    assert.deepEqual(scan, { code: 0, out: 'a/1\tx\na/2\ty\n', err: '' });
    const scanJson = await kv(['--endpoints', endpoints, 'scan', 'a/', '--limit', '1', '--json']);
    assert.deepEqual(JSON.parse(scanJson.out), { entries: [{ key: 'a/1', value: 'x' }], more: true });
    const swapped = await kv(['--endpoints', endpoints, 'cas', 'greeting', '--expect', 'hello', 'bonjour', '--json']);
    assert.deepEqual({ code: swapped.code, out: JSON.parse(swapped.out) }, { code: 0, out: { swapped: true } });
    assert.equal((await kv(['--endpoints', endpoints, 'cas', 'fresh', '--expect-absent', 'new'])).code, 0);
    assert.deepEqual(await kv(['--endpoints', endpoints, 'del', 'a/1']), { code: 0, out: 'deleted\n', err: '' });
    assert.deepEqual(await kv(['--endpoints', endpoints, 'del', 'a/1']), { code: 0, out: 'absent\n', err: '' });
    assert.equal((await kv(['--endpoints', endpoints, 'cas', 'fresh', '--expect', 'new', '--delete'])).code, 0);
    assert.equal((await kv(['--endpoints', endpoints, 'get', 'fresh'])).out, 'null\n');
  });

  test('exit 1 when it definitely did not: a cas that did not match, no node reachable', async () => {
    const mismatch = await kv(['--endpoints', endpoints, 'cas', 'greeting', '--expect', 'nope', 'other']);
    assert.equal(mismatch.code, 1);
    assert.match(mismatch.out, /^not swapped/);
    const json = await kv(['--endpoints', endpoints, 'cas', 'greeting', '--expect', 'nope', 'other', '--json']);
    assert.deepEqual({ code: json.code, out: JSON.parse(json.out) }, { code: 1, out: { swapped: false } });
    const ports = await allocatePorts(2);
    const nobody = ports.map((port) => `127.0.0.1:${port}`).join(',');
    const unreachable = await kv(['--endpoints', nobody, '--timeout', '500', '--json', 'put', 'k', 'v']);
    assert.equal(unreachable.code, 1, unreachable.err);
    assert.equal(JSON.parse(unreachable.out).error.code, 'UNAVAILABLE');
    assert.equal(JSON.parse(unreachable.out).error.indeterminate, false);
    const tooBig = await kv(['--endpoints', endpoints, 'put', 'k', 'x'.repeat(1024 * 1024 + 1)]);
    assert.equal(tooBig.code, 1, 'a rejected request');
  });

  test('exit 2 when the outcome is unknown: the leader applied the write but the answer was lost', async () => {
    const leader = await cluster.leader();
    // Frames from the server: WELCOME (bind), then the openSession answer; the put's answer is dropped.
    const dropper = await startReplyDropper(cluster.endpoints[leader - 1]!, 2);
    try {
      const lost = await kv(['--endpoints', dropper.endpoint, '--timeout', '4000', 'put', 'lost', 'applied']);
      assert.equal(lost.code, 2, lost.err);
      assert.equal(lost.out, '');
      assert.match(lost.err, /outcome unknown/);
    } finally {
      await dropper.close();
    }
    const client = new KvClient(cluster.endpoints);
    try {
      assert.equal(await client.get('lost'), 'applied', 'the write did happen: only its answer was lost');
    } finally {
      await client.close();
    }
  });

  test('exit 64 for bad usage, before any connection', async () => {
    for (const argv of [
      [],
      ['get', 'k'],
      ['--endpoints', endpoints, 'frob'],
      ['--endpoints', endpoints, 'get'],
      ['--endpoints', endpoints, 'put', 'k'],
      ['--endpoints', 'not-an-endpoint', 'get', 'k'],
      ['--endpoints', endpoints, '--timeout', 'soon', 'get', 'k'],
      ['--endpoints', endpoints, 'cas', 'k', 'v'],
      ['--endpoints', endpoints, 'cas', 'k', '--expect', 'a', '--expect-absent', 'v'],
      ['--endpoints', endpoints, 'scan', 'a', '--limit', '0'],
      ['--endpoints', endpoints, '--bogus', 'get', 'k'],
    ]) {
      const result = await kv(argv);
      assert.equal(result.code, 64, `dsys kv ${argv.join(' ')}: ${result.err}`);
      if (argv.length > 0) assert.match(result.err, /dsys kv: /);
    }
    const help = await kv(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.out, /Exit codes: 0 the operation took effect/);
  });
});

describe('dsys raft', () => {
  let cluster: TestCluster;
  let endpoints: string;
  before(async () => {
    // Node 4 starts outside the configuration, waiting to be added.
    cluster = await startTestCluster({ nodes: 4, joining: [4] });
    endpoints = cluster.endpoints.join(',');
  });
  after(() => cluster.close());

  test('status prints role, term, commit index, applied index and members of every node', async () => {
    const leader = await cluster.leader();
    const text = await raft(['status', '--endpoints', endpoints]);
    assert.equal(text.code, 0, text.err);
    const lines = text.out.trimEnd().split('\n');
    assert.match(lines[0]!, /^node +endpoint +role +term +leader +commit +applied +voters +learners$/);
    assert.equal(lines.length, 5);
    assert.match(lines[leader]!, new RegExp(`^${leader} .* leader +\\d+ +${leader} +\\d+ +\\d+ +1,2,3 +-$`));
    const json = await raft(['status', '--endpoints', endpoints, '--json']);
    const statuses = JSON.parse(json.out) as { node: number; role: string; commit: number; applied: number }[];
    assert.equal(statuses.length, 4);
    assert.deepEqual(
      statuses.map((status) => status.node),
      [1, 2, 3, 4],
    );
    assert.equal(statuses.filter((status) => status.role === 'leader').length, 1);
    for (const status of statuses) assert.ok(status.applied <= status.commit);
    const ports = await allocatePorts(1);
    const partial = await raft(['status', '--endpoints', `${endpoints},127.0.0.1:${ports[0]}`]);
    assert.equal(partial.code, 1, 'an endpoint did not answer');
    assert.match(partial.out, /unreachable/);
  });

  test('member add, promote and remove; transfer-leader', async () => {
    const add = await raft(['member', 'add', '4', '--endpoints', endpoints]);
    assert.equal(add.code, 0, add.err);
    assert.match(add.out, /^added learner n4 \(log index \d+\)\n$/);
    const client = new KvClient(cluster.endpoints);
    try {
      // A learner is promoted only once it has caught up with the leader's log.
      await waitFor(
        async () => {
          const statuses = await client.statusAll();
          const learner = statuses[3]!;
          const leader = statuses.find((entry) => entry.ok && entry.status.role === 'leader');
          return learner.ok && leader?.ok === true && learner.status.applied >= leader.status.commit;
        },
        { description: 'n4 caught up' },
      );
      const promote = await raft(['member', 'promote', '4', '--endpoints', endpoints, '--json']);
      assert.equal(promote.code, 0, promote.err);
      assert.equal(JSON.parse(promote.out).change, 'addVoter');
      await waitFor(async () => (await client.status(cluster.endpoints[3]!)).voters.length === 4, {
        description: 'n4 votes',
      });
      const transfer = await raft(['transfer-leader', '4', '--endpoints', endpoints]);
      assert.equal(transfer.code, 0, transfer.err);
      assert.match(transfer.out, /^n4 leads \(term \d+\)\n$/);
      await client.put('under-n4', 'yes');
      const back = await raft(['transfer-leader', '1', '--endpoints', endpoints]);
      assert.equal(back.code, 0, back.err);
      const remove = await raft(['member', 'remove', '4', '--endpoints', endpoints]);
      assert.equal(remove.code, 0, remove.err);
      await waitFor(async () => (await client.status(cluster.endpoints[0]!)).voters.join(',') === '1,2,3', {
        description: 'n4 removed',
      });
      assert.equal(await client.get('under-n4'), 'yes');
      const refused = await raft(['member', 'promote', '9', '--endpoints', endpoints]);
      assert.equal(refused.code, 1, 'the core refuses to promote a node that is not a learner');
    } finally {
      await client.close();
    }
  });

  test('exit 64 for bad usage', async () => {
    for (const argv of [
      [],
      ['frob', '--endpoints', endpoints],
      ['status'],
      ['member', 'frob', '4', '--endpoints', endpoints],
      ['member', 'add', '--endpoints', endpoints],
      ['transfer-leader', 'x', '--endpoints', endpoints],
    ]) {
      const result = await raft(argv);
      assert.equal(result.code, 64, `dsys raft ${argv.join(' ')}: ${result.err}`);
    }
  });
});
