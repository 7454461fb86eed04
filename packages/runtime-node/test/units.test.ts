// Goal: the small pieces behave at their edges: flag parsing (every error is a message, never a
// throw), endpoints, the metrics text format, the logger's level filter and line shape, the bounded
// queue, backoff bounds, and tsNodeArgs resolving tsx from anywhere.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { test } from 'node:test';
import {
  BoundedQueue,
  backoffDelayMs,
  formatEndpoint,
  Logger,
  MetricsRegistry,
  parseEndpoint,
  parseNodeFlags,
  tsNodeArgs,
} from '../src/index.js';

const BASE = ['--id', '2', '--peers', '1=127.0.0.1:7001,2=127.0.0.1:7002', '--data-dir', '/tmp/d'];

test('flags: defaults, = syntax, own --peers entry as the peer listener, declared extra flags', () => {
  const parsed = parseNodeFlags(
    [...BASE, '--tick-ms=25', '--election-ticks', '7'],
    [
      { name: 'election-ticks', description: 'x' },
      { name: 'heartbeat-ticks', description: 'y', default: '2' },
    ],
  );
  assert.ok(parsed.ok === true);
  const { flags } = parsed;
  assert.equal(flags.id, 2);
  assert.deepEqual(flags.listenPeer, { host: '127.0.0.1', port: 7002 });
  assert.deepEqual(flags.listenClient, { host: '127.0.0.1', port: 0 });
  assert.equal(flags.tickMs, 25);
  assert.equal(flags.logLevel, 'info');
  assert.equal(flags.metrics, null);
  assert.equal(flags.clusterId, 'dsys');
  assert.deepEqual(
    [...flags.extra],
    [
      ['election-ticks', '7'],
      ['heartbeat-ticks', '2'],
    ],
  );
  const withMetrics = parseNodeFlags([...BASE, '--metrics-port', '0', '--seed', '0x10', '--frame-timeout-ms', '500']);
  assert.ok(withMetrics.ok === true);
  assert.deepEqual(withMetrics.flags.metrics, { host: '127.0.0.1', port: 0 });
  assert.equal(withMetrics.flags.seed, 16n);
  assert.deepEqual(withMetrics.flags.limits, { frameTimeoutMs: 500 });
  assert.deepEqual(parseNodeFlags(['--help']), { ok: 'help' });
});

test('flags: each mistake is a clear error, never an exception', () => {
  const cases: [string[], RegExp][] = [
    [[], /--id is required/],
    [[...BASE, '--bogus', '1'], /unknown flag --bogus/],
    [[...BASE, '--tick-ms'], /--tick-ms needs a value/],
    [[...BASE, '--tick-ms', 'fast'], /--tick-ms: expected a positive integer/],
    [[...BASE, '--tick-ms', '1', '--tick-ms', '2'], /given twice/],
    [['--id', '3', '--peers', '1=127.0.0.1:7001', '--data-dir', 'd'], /--id 3 is not listed in --peers/],
    [['--id', '1', '--peers', '1=localhost', '--data-dir', 'd'], /expected host:port/],
    [['--id', '1', '--peers', '1=a:1,1=b:2', '--data-dir', 'd'], /listed twice/],
    [['--id', '1', '--peers', '1=a:70000', '--data-dir', 'd'], /port 70000 out of range/],
    [[...BASE, '--log-level', 'loud'], /--log-level: expected one of debug\|info\|warn\|error/],
    [[...BASE, '--seed', 'xyz'], /--seed/],
    [[...BASE, 'stray'], /unexpected argument "stray"/],
    [[...BASE, '--cluster-id', ''], /--cluster-id must be/],
  ];
  for (const [argv, pattern] of cases) {
    const parsed = parseNodeFlags(argv);
    assert.ok(parsed.ok === false, argv.join(' '));
    assert.match(parsed.error, pattern);
  }
});

test('endpoints: IPv4, names, IPv6 in brackets; round trip', () => {
  for (const text of ['127.0.0.1:7001', 'node-1.local:80', '[::1]:9000']) {
    const parsed = parseEndpoint(text);
    assert.ok(parsed.ok);
    assert.equal(formatEndpoint(parsed.value), text);
  }
  assert.equal(parseEndpoint('127.0.0.1:0').ok, false);
  assert.equal(parseEndpoint('127.0.0.1:0', { allowPortZero: true }).ok, true);
  assert.equal(parseEndpoint('::1:9000').ok, false);
});

test('metrics: text format, label escaping, cumulative histogram, collectors, name checks', () => {
  const registry = new MetricsRegistry();
  const counter = registry.counter('requests_total', 'Requests\nby kind', ['kind']);
  counter.inc(2, { kind: 'a"b\\c\nd' });
  registry.gauge('idle', 'Unlabelled gauge');
  const histogram = registry.histogram('latency_seconds', 'Latency', [0.1, 1]);
  for (const value of [0.05, 0.5, 0.5, 5]) histogram.observe(value);
  let collected = 0;
  registry.gaugeFrom('collected', 'Read at scrape', () => ++collected);
  const text = registry.render();
  assert.equal(
    text,
    [
      '# HELP requests_total Requests\\nby kind',
      '# TYPE requests_total counter',
      'requests_total{kind="a\\"b\\\\c\\nd"} 2',
      '# HELP idle Unlabelled gauge',
      '# TYPE idle gauge',
      'idle 0',
      '# HELP latency_seconds Latency',
      '# TYPE latency_seconds histogram',
      'latency_seconds_bucket{le="0.1"} 1',
      'latency_seconds_bucket{le="1"} 3',
      'latency_seconds_bucket{le="+Inf"} 4',
      'latency_seconds_sum 6.05',
      'latency_seconds_count 4',
      '# HELP collected Read at scrape',
      '# TYPE collected gauge',
      'collected 1',
      '',
    ].join('\n'),
  );
  assert.throws(() => registry.counter('requests_total', 'again'), TypeError);
  assert.throws(() => registry.counter('bad-name', 'x'), TypeError);
  assert.throws(() => registry.counter('ok', 'x', ['le']), TypeError);
  assert.throws(() => counter.inc(1, {}), /missing label/);
  assert.throws(() => counter.inc(-1, { kind: 'a' }), RangeError);
});

test('metrics: childOf is the same series as child with that one label, and refuses other label counts', () => {
  const registry = new MetricsRegistry();
  const events = registry.counter('events_total', 'Events by type', ['type']);
  events.childOf('tick').inc();
  events.childOf('tick').inc(2);
  events.child({ type: 'tick' }).inc();
  events.inc(5, { type: 'receive' });
  events.childOf('receive').inc();
  assert.equal(events.childOf('tick'), events.child({ type: 'tick' }));
  const text = registry.render();
  assert.match(text, /^events_total\{type="tick"\} 4$/m);
  assert.match(text, /^events_total\{type="receive"\} 6$/m);
  assert.throws(() => registry.counter('plain_total', 'No labels').childOf('x'), /exactly one label/);
  assert.throws(() => registry.counter('pair_total', 'Two labels', ['a', 'b']).childOf('x'), /exactly one label/);
});

test('logger: one JSON object per line, level filter, child fields, core keys win', () => {
  const lines: string[] = [];
  const logger = new Logger({ level: 'info', node: 3, sink: (line) => lines.push(line) });
  logger.debug('hidden');
  logger.child({ component: 'x' }).warn('shown', { msg: 'cannot override', bytes: new Uint8Array([1]), big: 5n });
  logger.error('failed', { error: Object.assign(new Error('boom'), { code: 'EIO' }) });
  assert.equal(lines.length, 2);
  const first = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.deepEqual(Object.keys(first).slice(0, 4), ['time', 'level', 'node', 'msg']);
  assert.deepEqual([first.level, first.node, first.msg, first.component], ['warn', 3, 'shown', 'x']);
  assert.deepEqual([first.bytes, first.big], [{ $bytes: 'AQ==' }, { $bigint: '5' }]);
  assert.match(String(first.time), /^\d{4}-\d\d-\d\dT/);
  assert.deepEqual((JSON.parse(lines[1]!) as { error: unknown }).error, { message: 'boom', code: 'EIO' });
});

test('bounded queue drops the oldest past either bound', () => {
  const queue = new BoundedQueue(3, 10);
  const item = (n: number, size = 1) => new Uint8Array(size).fill(n);
  assert.equal(queue.push(item(1)) + queue.push(item(2)) + queue.push(item(3)), 0);
  assert.equal(queue.push(item(4)), 1);
  assert.deepEqual([queue.length, queue.peek()?.[0]], [3, 2]);
  assert.equal(queue.push(item(5, 9)), 2, 'bytes bound: the oldest go until the new item fits');
  assert.deepEqual([queue.length, queue.bytes], [2, 10]);
  assert.equal(queue.shift()?.[0], 4);
  assert.equal(queue.shift()?.[0], 5);
  assert.equal(queue.shift(), undefined);
});

test('backoff grows exponentially, capped, with equal jitter', () => {
  const limits = { reconnectDelayMsMin: 50, reconnectDelayMsMax: 2000 };
  for (let attempt = 0; attempt < 40; attempt++) {
    const expected = Math.min(2000, 50 * 2 ** attempt);
    for (let i = 0; i < 20; i++) {
      const delay = backoffDelayMs(attempt, limits);
      assert.ok(delay >= expected / 2 && delay <= expected, `attempt ${attempt}: ${delay}`);
    }
  }
});

test('tsNodeArgs runs a TypeScript file from any working directory', () => {
  const args = tsNodeArgs();
  assert.equal(args[0], '--import');
  assert.match(args[1]!, /^file:\/\/.*tsx/);
  const script = new URL('./fixtures/counter-main.ts', import.meta.url).pathname;
  const result = spawnSync(process.execPath, [...args, script, '--help'], { cwd: tmpdir(), encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /usage: dsys-counter/);
});
