/**
 * Goal: clients that nobody here wrote work against our Raft KV through its etcd v3 gateway: Debian's
 * etcdctl 3.4 (`apt-get install etcd-client`) puts, gets (with --prefix, --limit, -w json), deletes,
 * runs a compare-and-swap transaction typed on its stdin, lists members and reads endpoint status,
 * with the output etcd would give. Our own `EtcdClient` then checks the gRPC status codes of refused
 * requests, bad input on the gateway port (HTTP/1, garbage, an unknown method, an oversized or
 * undecodable message: each answered or closed, the cluster unharmed), and that writes through the
 * native RPC and through etcd see the same keys.
 *
 * Method: a 3-node cluster of real `dsys raft` processes started with `--etcd-listen` (one gateway per
 * node). The etcdctl tests skip, saying so, when etcdctl is not installed.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { allocatePorts, type Cluster, nodeCommand, startCluster, waitFor } from '@dsys/harness';
import {
  EtcdClient,
  etcdBytes,
  GrpcChannel,
  GrpcCode,
  GrpcError,
  KvClient,
  prefixRangeEnd,
  raftNodeArgs,
  raftNodeEntry,
} from '@dsys/raft/real';

const ETCDCTL = process.env.ETCDCTL ?? 'etcdctl';
const etcdctlMissing = spawnSync(ETCDCTL, ['version'], { env: { ...process.env, ETCDCTL_API: '3' } }).error;
const skipEtcdctl =
  etcdctlMissing === undefined
    ? false
    : `etcdctl not found (${etcdctlMissing.message}): apt-get install -y etcd-client to run these tests`;

interface Run {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** Runs etcdctl (API v3) with `args`, `input` on its stdin; resolves when it exits. */
function etcdctl(args: readonly string[], input = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(ETCDCTL, ['--command-timeout=10s', ...args], {
      env: { ...process.env, ETCDCTL_API: '3' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, out, err }));
    child.stdin.end(input);
  });
}

const b64 = (text: string) => Buffer.from(text).toString('base64');
const text = (value: Uint8Array | null | undefined) => (value == null ? null : Buffer.from(value).toString());

let cluster: Cluster;
let etcdEndpoints: string[];
let all: string;

before(async () => {
  const etcdPorts = await allocatePorts(3);
  etcdEndpoints = etcdPorts.map((port) => `127.0.0.1:${port}`);
  const list = etcdEndpoints.map((endpoint, i) => `${i + 1}=${endpoint}`).join(',');
  cluster = await startCluster({
    nodes: 3,
    proxies: false,
    command: (node) =>
      nodeCommand(
        raftNodeEntry,
        raftNodeArgs(node, [
          '--log-level',
          'warn',
          '--etcd-listen',
          etcdEndpoints[node.id - 1]!,
          '--etcd-endpoints',
          list,
        ]),
      ),
    readyTimeoutMs: 60_000,
  });
  all = etcdEndpoints.join(',');
  // Wait for a leader that every gateway knows.
  const client = new EtcdClient(etcdEndpoints, { timeoutMs: 2_000 });
  await waitFor(
    async () => {
      const statuses = await Promise.all(etcdEndpoints.map((endpoint) => client.status(endpoint).catch(() => null)));
      const leaders = new Set(statuses.map((status) => status?.leader ?? 0));
      return leaders.size === 1 && !leaders.has(0) ? true : null;
    },
    { description: 'a leader known to every member', timeoutMs: 30_000 },
  );
  client.close();
});

after(() => cluster?.stopAll());

describe('etcdctl 3.4 against the gateway', { skip: skipEtcdctl }, () => {
  test('put, get (plain, --prefix, --limit, -w json), del', async () => {
    assert.deepEqual(await etcdctl(['--endpoints', all, 'put', 'greeting', 'hello']), {
      code: 0,
      out: 'OK\n',
      err: '',
    });
    assert.deepEqual(await etcdctl(['--endpoints', all, 'get', 'greeting']), {
      code: 0,
      out: 'greeting\nhello\n',
      err: '',
    });
    const json = await etcdctl(['--endpoints', etcdEndpoints[0]!, 'get', 'greeting', '-w', 'json']);
    assert.equal(json.code, 0, json.err);
    const parsed = JSON.parse(json.out);
    assert.equal(parsed.header.member_id, 1);
    assert.equal(parsed.count, 1);
    assert.equal(parsed.kvs[0].key, b64('greeting'));
    assert.equal(parsed.kvs[0].value, b64('hello'));
    assert.equal(parsed.kvs[0].version, 1);
    assert.equal(parsed.kvs[0].create_revision, parsed.kvs[0].mod_revision);
    assert.equal(parsed.header.revision, parsed.kvs[0].mod_revision);
    for (const [key, value] of [
      ['dir/a', '1'],
      ['dir/b', '2'],
      ['dir/c', '3'],
      ['dis', 'not in dir/'],
    ]) {
      assert.equal((await etcdctl(['--endpoints', all, 'put', key!, value!])).code, 0);
    }
    assert.equal(
      (await etcdctl(['--endpoints', all, 'get', 'dir/', '--prefix'])).out,
      'dir/a\n1\ndir/b\n2\ndir/c\n3\n',
    );
    const limited = JSON.parse(
      (await etcdctl(['--endpoints', all, 'get', 'dir/', '--prefix', '--limit', '2', '-w', 'json'])).out,
    );
    assert.deepEqual(
      limited.kvs.map((kv: { key: string }) => Buffer.from(kv.key, 'base64').toString()),
      ['dir/a', 'dir/b'],
    );
    assert.equal(limited.more, true);
    assert.equal(limited.count, 3);
    assert.equal(
      (await etcdctl(['--endpoints', all, 'get', 'dir/', '--prefix', '--keys-only'])).out,
      'dir/a\n\ndir/b\n\ndir/c\n\n',
    );
    assert.deepEqual(await etcdctl(['--endpoints', all, 'del', 'dir/b']), { code: 0, out: '1\n', err: '' });
    assert.deepEqual(await etcdctl(['--endpoints', all, 'del', 'dir/', '--prefix']), { code: 0, out: '2\n', err: '' });
    assert.equal((await etcdctl(['--endpoints', all, 'get', 'dir/', '--prefix'])).out, '');
    assert.equal((await etcdctl(['--endpoints', all, 'get', 'dis'])).out, 'dis\nnot in dir/\n');
  });

  test('every member takes writes: a follower forwards them; reads anywhere see them', async () => {
    const client = new EtcdClient(etcdEndpoints);
    const leader = await client.leaderEndpoint();
    client.close();
    const followers = etcdEndpoints.filter((endpoint) => endpoint !== leader);
    assert.equal(followers.length, 2);
    const put = await etcdctl(['--endpoints', followers[0]!, 'put', 'via-follower', 'forwarded', '-w', 'json']);
    assert.equal(put.code, 0, put.err);
    const revision = JSON.parse(put.out).header.revision;
    const got = await etcdctl(['--endpoints', followers[1]!, 'get', 'via-follower', '-w', 'json']);
    const kv = JSON.parse(got.out).kvs[0];
    assert.equal(Buffer.from(kv.value, 'base64').toString(), 'forwarded');
    assert.equal(kv.mod_revision, revision);
    const serializable = await etcdctl(['--endpoints', followers[0]!, 'get', 'via-follower', '--consistency=s']);
    assert.equal(serializable.out, 'via-follower\nforwarded\n', 'the forwarding member applied it before answering');
  });

  test('txn (interactive, on stdin): compare-and-swap takes the success branch once, then the failure branch', async () => {
    assert.equal((await etcdctl(['--endpoints', all, 'put', 'lock', 'free'])).code, 0);
    const cas = 'value("lock") = "free"\n\nput lock taken\n\nget lock\n\n';
    assert.deepEqual(await etcdctl(['--endpoints', all, 'txn'], cas), { code: 0, out: 'SUCCESS\n\nOK\n', err: '' });
    assert.deepEqual(await etcdctl(['--endpoints', all, 'txn'], cas), {
      code: 0,
      out: 'FAILURE\n\nlock\ntaken\n',
      err: '',
    });
    const created = 'create("fresh") = "0"\n\nput fresh 1\n\n\n';
    assert.equal((await etcdctl(['--endpoints', all, 'txn'], created)).out, 'SUCCESS\n\nOK\n');
    assert.equal((await etcdctl(['--endpoints', all, 'txn'], created)).out, 'FAILURE\n');
    const byVersion = 'version("fresh") > "0"\nmod("fresh") < "1000000"\n\ndel fresh\n\n\n';
    assert.equal((await etcdctl(['--endpoints', all, 'txn', '-w', 'json'], byVersion)).code, 0);
    assert.equal((await etcdctl(['--endpoints', all, 'get', 'fresh'])).out, '');
  });

  test('member list and endpoint status', async () => {
    const members = await etcdctl(['--endpoints', all, 'member', 'list']);
    assert.equal(members.code, 0, members.err);
    const lines = members.out.trim().split('\n');
    assert.equal(lines.length, 3);
    for (const [i, line] of lines.entries()) {
      const [id, state, name, peer, client, learner] = line.split(', ');
      assert.deepEqual([id, state, name, learner], [String(i + 1), 'started', `n${i + 1}`, 'false']);
      assert.match(peer!, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(client, `http://${etcdEndpoints[i]}`);
    }
    const status = await etcdctl(['--endpoints', all, 'endpoint', 'status', '-w', 'json']);
    assert.equal(status.code, 0, status.err);
    const rows = JSON.parse(status.out) as {
      Endpoint: string;
      Status: Record<string, number & Record<string, number>>;
    }[];
    assert.deepEqual(
      rows.map((row) => row.Endpoint),
      etcdEndpoints,
    );
    const leaders = new Set(rows.map((row) => row.Status.leader));
    assert.equal(leaders.size, 1, 'every member names the same leader');
    assert.equal(rows.filter((row) => row.Status.leader === row.Status.header!.member_id).length, 1);
    const table = await etcdctl(['--endpoints', all, 'endpoint', 'status']);
    assert.match(table.out, /, 3\.4\.0-dsys, /);
  });

  test("refusals print etcd's messages and exit 1", async () => {
    const compacted = await etcdctl(['--endpoints', all, 'get', 'greeting', '--rev=1']);
    assert.equal(compacted.code, 1);
    assert.match(compacted.err, /etcdserver: mvcc: required revision has been compacted/);
    const lease = await etcdctl(['--endpoints', all, 'put', 'k', 'v', '--lease=1234']);
    assert.equal(lease.code, 1);
    assert.match(lease.err, /etcdserver: requested lease not found/);
  });
});

describe('the gateway with our EtcdClient', () => {
  test('native and etcd writes share the keys', async () => {
    const native = new KvClient(cluster.endpoints(), { timeoutMs: 10_000 });
    const etcd = new EtcdClient(etcdEndpoints);
    await native.put('shared/native', 'written by KvClient');
    assert.equal(text(await etcd.get('shared/native')), 'written by KvClient');
    await etcd.put({ key: etcdBytes('shared/etcd'), value: etcdBytes('written by etcd') });
    assert.equal(await native.get('shared/etcd'), 'written by etcd');
    const prefix = etcdBytes('shared/');
    const range = await etcd.range({ key: prefix, rangeEnd: prefixRangeEnd(prefix) });
    assert.deepEqual(
      range.kvs?.map((kv) => text(kv.key)),
      ['shared/etcd', 'shared/native'],
    );
    await native.close();
    etcd.close();
  });

  test('refused requests carry the gRPC status etcd uses', async () => {
    const etcd = new EtcdClient(etcdEndpoints);
    const status = async (call: Promise<unknown>) => {
      try {
        await call;
        return 'resolved';
      } catch (error) {
        assert.ok(error instanceof GrpcError, String(error));
        return `${error.status} ${error.detail.message}`;
      }
    };
    assert.equal(
      await status(etcd.range({ key: new Uint8Array(0) })),
      `${GrpcCode.INVALID_ARGUMENT} etcdserver: key is not provided`,
    );
    assert.equal(
      await status(
        etcd.txn({ success: [{ requestPut: { key: etcdBytes('d') } }, { requestPut: { key: etcdBytes('d') } }] }),
      ),
      `${GrpcCode.INVALID_ARGUMENT} etcdserver: duplicate key given in txn request`,
    );
    assert.equal(
      await status(etcd.put({ key: etcdBytes('missing'), ignoreValue: true })),
      `${GrpcCode.INVALID_ARGUMENT} etcdserver: key not found`,
    );
    assert.equal(
      await status(etcd.range({ key: etcdBytes('a'), revision: 1_000_000 })),
      `${GrpcCode.OUT_OF_RANGE} etcdserver: mvcc: required revision is a future revision`,
    );
    const channel = new GrpcChannel(etcdEndpoints[0]!);
    assert.equal(
      await status(channel.call('/etcdserverpb.Watch/Watch', new Uint8Array(0), 5_000)),
      `${GrpcCode.UNIMPLEMENTED} unknown method /etcdserverpb.Watch/Watch`,
    );
    assert.match(
      await status(channel.call('/etcdserverpb.KV/Range', new Uint8Array([0xff, 0xff, 0xff]), 5_000)),
      /^13 grpc: error unmarshalling request/,
    );
    assert.match(
      await status(channel.call('/etcdserverpb.KV/Put', new Uint8Array(2 * 1024 * 1024), 5_000)),
      new RegExp(`^${GrpcCode.RESOURCE_EXHAUSTED} `),
    );
    channel.close();
    etcd.close();
  });

  test('HTTP/1 and garbage on the gateway port close that connection; the cluster keeps serving', async () => {
    for (const garbage of ['GET / HTTP/1.1\r\nHost: x\r\n\r\n', '\x00\x01\x02 not http/2 at all \xff'.repeat(100)]) {
      await new Promise<void>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port: Number(etcdEndpoints[1]!.split(':')[1]) }, () => {
          socket.end(garbage);
        });
        socket.on('data', () => undefined);
        socket.on('error', reject);
        socket.on('close', () => resolve());
        socket.setTimeout(10_000, () => reject(new Error('the gateway kept a garbage connection open')));
      });
    }
    const etcd = new EtcdClient([etcdEndpoints[1]!]);
    await etcd.put({ key: etcdBytes('after-garbage'), value: etcdBytes('ok') });
    assert.equal(text(await etcd.get('after-garbage')), 'ok');
    etcd.close();
  });
});
