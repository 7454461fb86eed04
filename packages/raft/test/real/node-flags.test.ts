// Goal: a node's command line becomes the config the README's flag table promises, and bad flags are
// errors that name the flag (the process then exits 2) rather than a node running with a surprise.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseRaftNodeArgs } from '@dsys/raft/real';

const base = ['--id', '2', '--peers', '1=127.0.0.1:7300,2=127.0.0.1:7301,3=127.0.0.1:7302', '--data-dir', '/tmp/x'];

test('defaults: every peer votes, batching on, safe reads, etcd-like snapshot interval', () => {
  const parsed = parseRaftNodeArgs(base);
  assert.ok(parsed.ok === true, parsed.ok === false ? parsed.error : 'help');
  const { config } = parsed;
  assert.deepEqual(config.initialVoters, [1, 2, 3]);
  assert.equal(config.batchRequests, true);
  assert.equal(config.snapshotEntries, 100_000);
  assert.equal(config.raft.electionTicks, 30);
  assert.equal(config.raft.heartbeatTicks, 3);
  assert.equal(config.raft.readOnly, 'safe');
  assert.equal(config.raft.checkQuorum, true);
  assert.equal(config.raft.preVote, true);
});

test('--join (bare or with a value) starts the node outside the configuration', () => {
  for (const join of [['--join'], ['--join', 'true'], ['--join=true']]) {
    const parsed = parseRaftNodeArgs([...join, ...base]);
    assert.ok(parsed.ok === true, `${join.join(' ')}: ${parsed.ok === false ? parsed.error : 'help'}`);
    assert.deepEqual(parsed.config.initialVoters, [1, 3]);
  }
  const voters = parseRaftNodeArgs([...base, '--initial-voters', '1,2']);
  assert.ok(voters.ok === true);
  assert.deepEqual(voters.config.initialVoters, [1, 2]);
});

test('lease reads take a third of the election timeout as margin unless told', () => {
  const lease = parseRaftNodeArgs([...base, '--read-mode', 'lease', '--election-ticks', '30']);
  assert.ok(lease.ok === true);
  assert.equal(lease.config.raft.readOnly, 'lease');
  assert.equal(lease.config.raft.leaseMarginTicks, 10);
});

test('bad flags are errors naming the flag', () => {
  const cases: [string[], RegExp][] = [
    [['--read-mode', 'fast'], /--read-mode/],
    [['--election-ticks', 'ten'], /--election-ticks/],
    [['--heartbeat-ticks', '40'], /heartbeatTicks/],
    [['--initial-voters', '1,9'], /node 9 is not listed in --peers/],
    [['--join', 'maybe'], /--join/],
    [['--snapshot-entries', '0'], /--snapshot-entries/],
    [['--frobnicate', '1'], /unknown flag --frobnicate/],
  ];
  for (const [extra, message] of cases) {
    const parsed = parseRaftNodeArgs([...base, ...extra]);
    assert.ok(parsed.ok === false, extra.join(' '));
    assert.match(parsed.error, message);
  }
  assert.equal(parseRaftNodeArgs(['--help']).ok, 'help');
});
