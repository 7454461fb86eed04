/**
 * Counters, gauges and histograms rendered in the Prometheus text exposition format (version 0.0.4),
 * served at `/metrics` by `startMetricsServer`. Systems add their own series (Raft term, commit index)
 * with the same registry, and refresh state-derived gauges in an `onCollect` hook, which runs just
 * before every scrape.
 *
 * Hot paths bind labels once with `child(...)`, so counting a frame is an addition, not a string build.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Endpoint } from './endpoint.js';

export type Labels = Readonly<Record<string, string>>;

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}

function labelText(names: readonly string[], values: readonly string[], extra = ''): string {
  const parts = names.map((name, i) => `${name}="${escapeLabelValue(values[i]!)}"`);
  if (extra !== '') parts.push(extra);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

abstract class Metric<Child> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  protected readonly children = new Map<string, { values: string[]; child: Child }>();

  constructor(name: string, help: string, labelNames: readonly string[]) {
    if (!NAME.test(name)) throw new TypeError(`metric name "${name}" is not a valid Prometheus name`);
    for (const label of labelNames) {
      if (!LABEL.test(label) || label === 'le') throw new TypeError(`metric ${name}: bad label name "${label}"`);
    }
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  abstract readonly type: 'counter' | 'gauge' | 'histogram';
  protected abstract create(): Child;
  protected abstract renderChild(values: readonly string[], child: Child, out: string[]): void;

  /** `childOf`'s cache: label value -> series (one-label metrics only). */
  private readonly byValue = new Map<string, Child>();

  /**
   * The series of a one-label metric for `value`, for per-event counting (by event or effect type):
   * one Map lookup and nothing allocated once the series exists, where `child` builds a key string.
   */
  childOf(value: string): Child {
    let child = this.byValue.get(value);
    if (child === undefined) {
      if (this.labelNames.length !== 1) throw new TypeError(`metric ${this.name}: childOf needs exactly one label`);
      child = this.child({ [this.labelNames[0]!]: value });
      this.byValue.set(value, child);
    }
    return child;
  }

  /** The series for these label values, created on first use. */
  child(labels: Labels = {}): Child {
    const values = this.labelNames.map((name) => {
      const value = labels[name];
      if (value === undefined) throw new TypeError(`metric ${this.name}: missing label "${name}"`);
      return value;
    });
    if (Object.keys(labels).length !== this.labelNames.length) {
      throw new TypeError(`metric ${this.name}: expected labels ${this.labelNames.join(',')}`);
    }
    const key = values.join('\u0000');
    let entry = this.children.get(key);
    if (entry === undefined) {
      entry = { values, child: this.create() };
      this.children.set(key, entry);
    }
    return entry.child;
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`);
    out.push(`# TYPE ${this.name} ${this.type}`);
    // An unlabelled metric shows 0 before its first update, so dashboards see it exists.
    if (this.labelNames.length === 0 && this.children.size === 0) this.child();
    for (const { values, child } of this.children.values()) this.renderChild(values, child, out);
  }
}

export class CounterChild {
  value = 0;
  inc(amount = 1): void {
    if (!(amount >= 0)) throw new RangeError(`counter increment must be >= 0, got ${amount}`);
    this.value += amount;
  }
}

export class Counter extends Metric<CounterChild> {
  readonly type = 'counter';
  protected create(): CounterChild {
    return new CounterChild();
  }
  inc(amount = 1, labels: Labels = {}): void {
    this.child(labels).inc(amount);
  }
  protected renderChild(values: readonly string[], child: CounterChild, out: string[]): void {
    out.push(`${this.name}${labelText(this.labelNames, values)} ${formatValue(child.value)}`);
  }
}

export class GaugeChild {
  value = 0;
  set(value: number): void {
    this.value = value;
  }
  inc(amount = 1): void {
    this.value += amount;
  }
  dec(amount = 1): void {
    this.value -= amount;
  }
}

export class Gauge extends Metric<GaugeChild> {
  readonly type = 'gauge';
  protected create(): GaugeChild {
    return new GaugeChild();
  }
  set(value: number, labels: Labels = {}): void {
    this.child(labels).set(value);
  }
  protected renderChild(values: readonly string[], child: GaugeChild, out: string[]): void {
    out.push(`${this.name}${labelText(this.labelNames, values)} ${formatValue(child.value)}`);
  }
}

export class HistogramChild {
  readonly bucketCounts: number[];
  sum = 0;
  count = 0;
  constructor(private readonly bounds: readonly number[]) {
    this.bucketCounts = bounds.map(() => 0);
  }
  observe(value: number): void {
    this.sum += value;
    this.count++;
    // Non-cumulative here; render() accumulates (one increment per observation).
    for (let i = 0; i < this.bounds.length; i++) {
      if (value <= this.bounds[i]!) {
        this.bucketCounts[i]!++;
        return;
      }
    }
  }
}

export class Histogram extends Metric<HistogramChild> {
  readonly type = 'histogram';
  readonly buckets: readonly number[];
  constructor(name: string, help: string, buckets: readonly number[], labelNames: readonly string[]) {
    super(name, help, labelNames);
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i]! > buckets[i - 1]!)) throw new TypeError(`histogram ${name}: buckets must increase`);
    }
    this.buckets = buckets;
  }
  protected create(): HistogramChild {
    return new HistogramChild(this.buckets);
  }
  observe(value: number, labels: Labels = {}): void {
    this.child(labels).observe(value);
  }
  protected renderChild(values: readonly string[], child: HistogramChild, out: string[]): void {
    let cumulative = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      cumulative += child.bucketCounts[i]!;
      const le = `le="${formatValue(this.buckets[i]!)}"`;
      out.push(`${this.name}_bucket${labelText(this.labelNames, values, le)} ${cumulative}`);
    }
    out.push(`${this.name}_bucket${labelText(this.labelNames, values, 'le="+Inf"')} ${child.count}`);
    out.push(`${this.name}_sum${labelText(this.labelNames, values)} ${formatValue(child.sum)}`);
    out.push(`${this.name}_count${labelText(this.labelNames, values)} ${child.count}`);
  }
}

/** `count` buckets starting at `start`, each `factor` times the previous (Prometheus client convention). */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  const buckets: number[] = [];
  for (let i = 0, bound = start; i < count; i++, bound *= factor) buckets.push(Number(bound.toPrecision(6)));
  return buckets;
}

export class MetricsRegistry {
  private readonly metrics = new Map<string, Metric<unknown>>();
  private readonly collectors: (() => void)[] = [];

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.register(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.register(new Gauge(name, help, labelNames));
  }

  histogram(name: string, help: string, buckets: readonly number[], labelNames: readonly string[] = []): Histogram {
    return this.register(new Histogram(name, help, buckets, labelNames));
  }

  /** A gauge whose value is read at scrape time (e.g. `() => node.inspect((s) => s.term)`). */
  gaugeFrom(name: string, help: string, read: () => number): Gauge {
    const gauge = this.gauge(name, help);
    this.onCollect(() => gauge.set(read()));
    return gauge;
  }

  /** Runs before every render; use it to copy state into gauges. */
  onCollect(collect: () => void): void {
    this.collectors.push(collect);
  }

  get(name: string): Metric<unknown> | undefined {
    return this.metrics.get(name);
  }

  render(): string {
    for (const collect of this.collectors) collect();
    const out: string[] = [];
    for (const metric of this.metrics.values()) metric.render(out);
    return `${out.join('\n')}\n`;
  }

  private register<M extends Metric<unknown>>(metric: M): M {
    if (this.metrics.has(metric.name)) throw new TypeError(`metric ${metric.name} is already registered`);
    this.metrics.set(metric.name, metric);
    return metric;
  }
}

export interface MetricsServer {
  readonly endpoint: Endpoint;
  close(): Promise<void>;
}

/** Serves `GET /metrics` (Prometheus text) and `GET /healthz` on `listen`. */
export async function startMetricsServer(
  registry: MetricsRegistry,
  listen: Endpoint,
  onError: (error: Error) => void,
): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
    } else if (path === '/metrics') {
      let body: string;
      try {
        body = registry.render();
      } catch (error) {
        onError(error instanceof Error ? error : new Error(String(error)));
        response.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n');
        return;
      }
      response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      response.end(request.method === 'HEAD' ? undefined : body);
    } else if (path === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  server.on('clientError', (_error, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', onError);
  const address = server.address() as AddressInfo;
  return {
    endpoint: { host: listen.host, port: address.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
