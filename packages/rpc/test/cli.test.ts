// Goal: `dsys rpc` lists a running server's interface and calls any procedure with JSON arguments,
// with the documented exit codes: 0 ok, 1 application error, 2 usage, 3 transport/timeout/bind.
// Method: a real counter server; rpcCli with captured output.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { memoryLogger, rpcCli, serve } from '../src/index.js';
import { Counter, counterHandlers, counterState } from './support/counter.js';

let server: Awaited<ReturnType<typeof serve<typeof Counter>>>;

before(async () => {
  server = await serve(Counter, counterHandlers(counterState()), { logger: memoryLogger().logger });
});

after(async () => {
  await server.close();
});

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await rpcCli(argv, { out: (text) => (out += text), err: (text) => (err += text) });
  return { code, out, err };
}

test('list shows the service and every procedure text', async () => {
  const { code, out } = await cli('list', server.address);
  assert.equal(code, 0);
  assert.match(out, /^service counter v1 {2}fingerprint [0-9a-f]{16}/);
  assert.match(out, /unary add\(struct\{delta:int,token:uint\}\) -> struct\{value:int\}\n/);
  assert.match(out, /unary get\(struct\{\}\) -> struct\{value:int\} idempotent/);
  assert.match(out, /stream watch\(/);
  const json = await cli('list', server.address, '--json');
  const described = JSON.parse(json.out) as { service: string; procedures: { name: string }[] };
  assert.equal(described.service, 'counter');
  assert.deepEqual(
    described.procedures.map((p) => p.name),
    Counter.names,
  );
});

test('call encodes JSON arguments from the server description and prints the result', async () => {
  const added = await cli('call', server.address, 'add', '{"delta":3,"token":1}');
  assert.equal(added.code, 0, added.err);
  assert.deepEqual(JSON.parse(added.out), { value: 3 });
  const echoed = await cli('call', server.address, 'echo', '{"$bytes":"AQID"}', '--json');
  assert.equal(echoed.out, '{"$bytes":"AQID"}\n');
  const streamed = await cli('call', server.address, 'watch', '{"count":3,"size":1}');
  assert.equal(streamed.code, 0);
  assert.deepEqual(
    streamed.out
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line).n),
    [0, 1, 2],
  );
});

test('exit codes: application error 1, usage 2, transport 3', async () => {
  const failed = await cli('call', server.address, 'fail', '{"code":"NOPE"}');
  assert.equal(failed.code, 1);
  assert.match(failed.err, /APPLICATION \[NOPE\]/);

  const unknown = await cli('call', server.address, 'nope', '{}');
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /has no procedure 'nope' \(it has: add, get/);
  const badJson = await cli('call', server.address, 'add', '{delta:1}');
  assert.equal(badJson.code, 2);
  assert.match(badJson.err, /not valid JSON/);
  const badType = await cli('call', server.address, 'add', '{"delta":"x","token":1}');
  assert.equal(badType.code, 2);
  assert.match(badType.err, /\$\.delta: expected int, got string/);
  assert.equal((await cli('call')).code, 2);
  assert.equal((await cli('frob', server.address)).code, 2);
  assert.equal((await cli('list', 'not-an-address')).code, 2);
  assert.equal((await cli('list', server.address, '--timeout', 'soon')).code, 2);

  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const down = await cli('list', `127.0.0.1:${port}`, '--timeout', '200');
  assert.equal(down.code, 3);
  assert.match(down.err, /UNAVAILABLE: could not bind to 127\.0\.0\.1:\d+ within 200 ms/);
});

test('help', async () => {
  const { code, out } = await cli('--help');
  assert.equal(code, 0);
  assert.match(out, /dsys rpc call <host:port> <procedure> '<json args>'/);
  assert.match(out, /Exit codes: 0 ok, 1 application error, 2 usage, 3 transport/);
});
