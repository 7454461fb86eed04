/**
 * A local cluster of real node processes on loopback, with a fault proxy on every directed link.
 *
 * Addresses: node i listens for peers on `peerAddress` and for clients on `clientAddress`. With proxies
 * on, for every ordered pair (i, j), i != j, a `FaultProxy` listens on its own port and forwards to j's
 * peer address; node i is told to dial j at that proxy. So `cut(i, j)` fails exactly the connections i
 * opens to j (in both byte directions), and a symmetric partition cuts both i->j and j->i.
 *
 * The harness knows nothing about the system under test: `command(spec)` turns the addresses it
 * allocated into a command line, and the node says it serves by printing a line matching
 * `readyPattern` (default `ready: <client endpoint>`).
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { assert } from '@dsys/kit';
import { type Endpoint, formatEndpoint, LOOPBACK } from './endpoint.js';
import { HarnessError } from './errors.js';
import { type CutMode, FaultProxy } from './fault-proxy.js';
import type { ProcessCommand } from './node-command.js';
import { NodeLog } from './node-log.js';
import { type ExitInfo, NodeProcess } from './node-process.js';
import { allocatePorts, assertPortsFree, basePortLayout, type NodePorts } from './ports.js';

export interface NodeSpec {
  /** 1..N. */
  readonly id: number;
  /** Where this node listens for its peers. */
  readonly peerAddress: Endpoint;
  /** Where this node listens for clients. */
  readonly clientAddress: Endpoint;
  /** This node's own directory (`<cluster dataDir>/node-<id>`), kept across restarts. */
  readonly dataDir: string;
  /**
   * Every node of the cluster, this one included, with the address this node must dial to reach it:
   * the i->j link proxy when proxies are on, else j's peer address. The entry for this node itself is
   * its own peer address.
   */
  readonly peers: ReadonlyMap<number, Endpoint>;
  /** How many times this node was started before (0 on the first start). */
  readonly restarts: number;
}

export interface ClusterOptions {
  /** Number of nodes, ids 1..nodes. */
  readonly nodes: number;
  /** Builds a node's command line from its addresses; called on every (re)start. */
  readonly command: (node: NodeSpec) => ProcessCommand;
  /** Default: a fresh temp directory, removed by `stopAll()` unless `keepDataDir`. */
  readonly dataDir?: string;
  readonly keepDataDir?: boolean;
  /** A fault proxy on every directed link; default true. */
  readonly proxies?: boolean;
  /** Fixed ports (see `basePortLayout`) instead of kernel-chosen ones. */
  readonly basePort?: number;
  /** A stdout line matching this marks a node ready; capture group 1 is its client endpoint. */
  readonly readyPattern?: RegExp;
  /** Default 15 s. */
  readonly readyTimeoutMs?: number;
  /** How long `stop` waits after SIGTERM before SIGKILL; default 5 s. */
  readonly stopTimeoutMs?: number;
  /** Log lines kept in memory per node for error messages; default 40. */
  readonly logTailLines?: number;
  /** Initial latency of every link proxy; default 0. */
  readonly latencyMs?: number;
}

export interface NodeExitEvent {
  readonly id: number;
  readonly pid: number;
  readonly exit: ExitInfo;
  /** False when the harness did not ask for it (a crash). */
  readonly expected: boolean;
  readonly logTail: readonly string[];
}

export const DEFAULT_READY_PATTERN = /^ready: (.*)$/;

type NodeState = 'stopped' | 'starting' | 'running';

interface ClusterNode {
  readonly spec: Omit<NodeSpec, 'restarts'>;
  readonly log: NodeLog;
  state: NodeState;
  process: NodeProcess | null;
  starts: number;
  /** Set when the harness itself causes the next exit (kill, stop, a failed start). */
  expectingExit: boolean;
  endpoint: string | null;
}

interface ClusterSettings {
  readonly command: (node: NodeSpec) => ProcessCommand;
  readonly readyPattern: RegExp;
  readonly readyTimeoutMs: number;
  readonly stopTimeoutMs: number;
  readonly removeDataDir: boolean;
}

export class Cluster {
  readonly dataDir: string;
  readonly ids: readonly number[];
  private readonly nodes: Map<number, ClusterNode>;
  private readonly proxies: Map<string, FaultProxy> | null;
  private readonly settings: ClusterSettings;
  private readonly exitListeners = new Set<(event: NodeExitEvent) => void>();
  private stopping: Promise<void> | null = null;

  /** Internal: use `startCluster`, which allocates ports and proxies and waits for every node. */
  constructor(
    dataDir: string,
    nodes: Map<number, ClusterNode>,
    proxies: Map<string, FaultProxy> | null,
    settings: ClusterSettings,
  ) {
    this.dataDir = dataDir;
    this.nodes = nodes;
    this.ids = [...nodes.keys()].sort((a, b) => a - b);
    this.proxies = proxies;
    this.settings = settings;
  }

  // --- inspection -------------------------------------------------------------------------------

  spec(id: number): NodeSpec {
    const node = this.node(id);
    return { ...node.spec, restarts: Math.max(0, node.starts - 1) };
  }

  /** PID of the node's current process, or null when it is not running. */
  pid(id: number): number | null {
    return this.node(id).process?.pid ?? null;
  }

  isRunning(id: number): boolean {
    return this.node(id).state === 'running';
  }

  /** The client endpoint from the node's last ready line, else its client address. */
  endpoint(id: number): string {
    const node = this.node(id);
    return node.endpoint ?? formatEndpoint(node.spec.clientAddress);
  }

  /** Client endpoints of all nodes, by ascending id. */
  endpoints(): string[] {
    return this.ids.map((id) => this.endpoint(id));
  }

  logTail(id: number): string[] {
    return this.node(id).log.lines();
  }

  logPath(id: number): string {
    return this.node(id).log.path;
  }

  /** The proxy of the directed link from -> to. */
  proxy(from: number, to: number): FaultProxy {
    if (this.proxies === null) throw new HarnessError({ code: 'NO_PROXIES' });
    this.node(from);
    this.node(to);
    if (from === to) throw new RangeError(`a link joins two different nodes, got ${from} -> ${to}`);
    const proxy = this.proxies.get(linkKey(from, to));
    assert(proxy !== undefined, `Cluster.proxy: no proxy for ${from}->${to}`);
    return proxy;
  }

  /** One line per node (pid, state) and every link that is not open: for failure messages. */
  describe(): string {
    const lines = this.ids.map((id) => {
      const node = this.node(id);
      return `node ${id}: ${node.state}${node.process ? ` pid ${node.process.pid}` : ''} client ${this.endpoint(id)}`;
    });
    for (const [key, proxy] of this.proxies ?? []) {
      if (proxy.mode !== 'open') lines.push(`link ${key}: ${proxy.mode}`);
    }
    return lines.join('\n');
  }

  /** Calls `listener` whenever a node process exits; returns the unsubscribe function. */
  onExit(listener: (event: NodeExitEvent) => void): () => void {
    this.exitListeners.add(listener);
    return () => this.exitListeners.delete(listener);
  }

  // --- processes --------------------------------------------------------------------------------

  /** Starts a stopped node (same ports, same data dir) and waits until it prints its ready line. */
  async start(id: number): Promise<string> {
    const node = this.node(id);
    if (this.stopping !== null) throw new HarnessError({ code: 'CLUSTER_STOPPED' });
    if (node.state !== 'stopped') throw new HarnessError({ code: 'NODE_BUSY', id, state: node.state });
    node.state = 'starting';
    node.expectingExit = false;
    let child: NodeProcess;
    try {
      await mkdir(node.spec.dataDir, { recursive: true });
      const command = this.settings.command({ ...node.spec, restarts: node.starts });
      child = await NodeProcess.spawn(id, command, node.log, this.settings.readyPattern);
    } catch (error) {
      node.state = 'stopped';
      throw error;
    }
    node.process = child;
    node.starts++;
    void child.waitExit().then((exit) => this.onProcessExit(node, child, exit));
    let endpoint: string;
    try {
      endpoint = await child.waitReady(this.settings.readyTimeoutMs);
    } catch (error) {
      node.expectingExit = true;
      child.signal('SIGKILL');
      await child.waitExit();
      throw error;
    }
    node.endpoint = endpoint;
    // It may already have died right after printing its ready line; then it stays 'stopped'.
    if (node.process === child) node.state = 'running';
    return endpoint;
  }

  /** Sends `signal` (default SIGKILL: a crash, no shutdown code runs) and waits until the process is gone. */
  async kill(id: number, signal: 'SIGKILL' | 'SIGTERM' | 'SIGINT' | 'SIGQUIT' = 'SIGKILL'): Promise<ExitInfo> {
    const child = this.runningProcess(id);
    this.node(id).expectingExit = true;
    child.signal(signal);
    return child.waitExit();
  }

  /** Graceful stop: SIGTERM, then SIGKILL after `stopTimeoutMs`. */
  async stop(id: number): Promise<ExitInfo> {
    const child = this.runningProcess(id);
    this.node(id).expectingExit = true;
    return child.stop(this.settings.stopTimeoutMs);
  }

  /** Stops the node if it runs (gracefully), then starts it again with the same ports and data dir. */
  async restart(id: number): Promise<string> {
    if (this.node(id).process !== null) await this.stop(id);
    return this.start(id);
  }

  /** SIGSTOP: the process freezes (as in a long GC pause or a VM stall) with its sockets open. */
  freeze(id: number): void {
    this.runningProcess(id).signal('SIGSTOP');
  }

  /** SIGCONT: a frozen process carries on. */
  thaw(id: number): void {
    this.runningProcess(id).signal('SIGCONT');
  }

  // --- links ------------------------------------------------------------------------------------

  /** Fails the directed link from -> to (connections `from` opens to `to`). */
  cut(from: number, to: number, mode: CutMode = 'reset'): void {
    this.proxy(from, to).cut(mode);
  }

  /** Heals one directed link, or every link when called without arguments. */
  heal(from?: number, to?: number): void {
    if (from !== undefined && to !== undefined) {
      this.proxy(from, to).heal();
    } else if (from === undefined && to === undefined) {
      for (const proxy of this.allProxies()) proxy.heal();
    } else {
      throw new RangeError('heal takes both ends of a link or none');
    }
  }

  /**
   * Sets the network to exactly these groups: links inside a group are healed, links between groups
   * are cut (both directions). Every node must appear in exactly one group.
   */
  partition(groups: readonly (readonly number[])[], mode: CutMode = 'reset'): void {
    const groupOf = new Map<number, number>();
    groups.forEach((group, index) => {
      for (const id of group) {
        this.node(id);
        if (groupOf.has(id)) throw new RangeError(`node ${id} appears in more than one partition group`);
        groupOf.set(id, index);
      }
    });
    const missing = this.ids.filter((id) => !groupOf.has(id));
    if (missing.length > 0) throw new RangeError(`partition must place every node; missing ${missing.join(', ')}`);
    for (const from of this.ids) {
      for (const to of this.ids) {
        if (from === to) continue;
        if (groupOf.get(from) === groupOf.get(to)) this.proxy(from, to).heal();
        else this.proxy(from, to).cut(mode);
      }
    }
  }

  /** Cuts every link to and from `id`; other links are left as they are. */
  isolate(id: number, mode: CutMode = 'reset'): void {
    for (const other of this.ids) {
      if (other === id) continue;
      this.proxy(id, other).cut(mode);
      this.proxy(other, id).cut(mode);
    }
  }

  /** Sets the per-chunk latency of every link proxy. */
  setLatency(latencyMs: number): void {
    for (const proxy of this.allProxies()) proxy.setLatency(latencyMs);
  }

  // --- shutdown ---------------------------------------------------------------------------------

  /**
   * Stops every node (SIGTERM, then SIGKILL after `stopTimeoutMs`), closes the proxies and logs, and
   * removes the data dir if the harness created it. Idempotent; safe to call from `after()` hooks.
   */
  stopAll(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    await Promise.all(
      [...this.nodes.values()].map(async (node) => {
        if (node.process === null) return;
        node.expectingExit = true;
        await node.process.stop(this.settings.stopTimeoutMs);
      }),
    );
    await Promise.all([...(this.proxies?.values() ?? [])].map((proxy) => proxy.close()));
    await Promise.all([...this.nodes.values()].map((node) => node.log.close()));
    if (this.settings.removeDataDir) await rm(this.dataDir, { recursive: true, force: true });
  }

  // --- internals --------------------------------------------------------------------------------

  private node(id: number): ClusterNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new HarnessError({ code: 'UNKNOWN_NODE', id });
    return node;
  }

  private runningProcess(id: number): NodeProcess {
    const child = this.node(id).process;
    if (child === null || child.exited !== null) throw new HarnessError({ code: 'NODE_NOT_RUNNING', id });
    return child;
  }

  private allProxies(): FaultProxy[] {
    if (this.proxies === null) throw new HarnessError({ code: 'NO_PROXIES' });
    return [...this.proxies.values()];
  }

  private onProcessExit(node: ClusterNode, child: NodeProcess, exit: ExitInfo): void {
    if (node.process !== child) return;
    const expected = node.expectingExit;
    node.process = null;
    node.state = 'stopped';
    node.expectingExit = false;
    const event: NodeExitEvent = { id: node.spec.id, pid: child.pid, exit, expected, logTail: node.log.lines() };
    for (const listener of this.exitListeners) {
      try {
        listener(event);
      } catch (error) {
        // A listener runs inside the exit callback; rethrowing would become an unhandled rejection.
        process.stderr.write(`harness: exit listener threw: ${String(error)}\n`);
      }
    }
  }
}

function linkKey(from: number, to: number): string {
  return `${from}->${to}`;
}

/** How many times `startCluster` tries fresh ports when a node lost its allocated port to someone else. */
const PORT_RACE_ATTEMPTS = 3;

/**
 * Starts a cluster and waits until every node is ready; on failure stops whatever started, then throws.
 * With allocated ports and a temp data dir (no `basePort`, no `dataDir`), a node that could not bind
 * its port because another process took it after allocation (EADDRINUSE in its log) makes the whole
 * start repeat on fresh ports and a fresh dir.
 */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  if (!Number.isSafeInteger(options.nodes) || options.nodes < 1) {
    throw new RangeError(`nodes must be a positive integer, got ${options.nodes}`);
  }
  for (let attempt = 1; ; attempt++) {
    try {
      return await startClusterOnce(options);
    } catch (error) {
      const portTaken = error instanceof HarnessError && error.logTail.some((line) => line.includes('EADDRINUSE'));
      // A given data dir may hold what the failed attempt wrote; only a fresh temp dir is safe to redo.
      const redoable = options.basePort === undefined && options.dataDir === undefined;
      if (!portTaken || !redoable || attempt >= PORT_RACE_ATTEMPTS) throw error;
    }
  }
}

async function startClusterOnce(options: ClusterOptions): Promise<Cluster> {
  const ids = Array.from({ length: options.nodes }, (_, index) => index + 1);
  const dataDir =
    options.dataDir !== undefined ? resolve(options.dataDir) : await mkdtemp(join(tmpdir(), 'dsys-cluster-'));
  await mkdir(dataDir, { recursive: true });
  let addresses: Map<number, { peerAddress: Endpoint; clientAddress: Endpoint }>;
  let proxies: Map<string, FaultProxy> | null;
  try {
    const ports = await nodePorts(options);
    addresses = new Map(ids.map((id, index) => [id, addressesOf(ports[index]!)]));
    proxies = options.proxies === false ? null : await startProxies(ids, addresses, options.latencyMs ?? 0);
  } catch (error) {
    if (options.dataDir === undefined) await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  const logTailLines = options.logTailLines ?? 40;
  const nodes = new Map<number, ClusterNode>();
  for (const id of ids) {
    const own = addresses.get(id)!;
    const peers = new Map<number, Endpoint>();
    for (const peer of ids) {
      const direct = addresses.get(peer)!.peerAddress;
      peers.set(peer, peer === id || proxies === null ? direct : proxies.get(linkKey(id, peer))!.address);
    }
    const spec = { id, ...own, dataDir: join(dataDir, `node-${id}`), peers };
    const log = new NodeLog(join(dataDir, `node-${id}.log`), logTailLines);
    nodes.set(id, { spec, log, state: 'stopped', process: null, starts: 0, expectingExit: false, endpoint: null });
  }
  const cluster = new Cluster(dataDir, nodes, proxies, {
    command: options.command,
    readyPattern: options.readyPattern ?? DEFAULT_READY_PATTERN,
    readyTimeoutMs: options.readyTimeoutMs ?? 15_000,
    stopTimeoutMs: options.stopTimeoutMs ?? 5_000,
    removeDataDir: options.dataDir === undefined && options.keepDataDir !== true,
  });
  try {
    await Promise.all(ids.map((id) => cluster.start(id)));
  } catch (error) {
    await cluster.stopAll();
    throw error;
  }
  return cluster;
}

async function nodePorts(options: ClusterOptions): Promise<NodePorts[]> {
  if (options.basePort === undefined) {
    const ports = await allocatePorts(options.nodes * 2);
    return Array.from({ length: options.nodes }, (_, i) => ({
      clientPort: ports[2 * i]!,
      peerPort: ports[2 * i + 1]!,
    }));
  }
  const layout = basePortLayout(options.basePort, options.nodes);
  await assertPortsFree(layout.flatMap((node) => [node.clientPort, node.peerPort]));
  return layout;
}

function addressesOf(ports: NodePorts): { peerAddress: Endpoint; clientAddress: Endpoint } {
  return {
    peerAddress: { host: LOOPBACK, port: ports.peerPort },
    clientAddress: { host: LOOPBACK, port: ports.clientPort },
  };
}

async function startProxies(
  ids: readonly number[],
  addresses: ReadonlyMap<number, { peerAddress: Endpoint }>,
  latencyMs: number,
): Promise<Map<string, FaultProxy>> {
  const proxies = new Map<string, FaultProxy>();
  try {
    for (const from of ids) {
      for (const to of ids) {
        if (from === to) continue;
        const target = addresses.get(to)!.peerAddress;
        const proxy = await FaultProxy.start({ target, name: linkKey(from, to), latencyMs });
        proxies.set(linkKey(from, to), proxy);
      }
    }
  } catch (error) {
    await Promise.all([...proxies.values()].map((proxy) => proxy.close()));
    throw error;
  }
  return proxies;
}
