/**
 * The counter service of the TCP tests, hosted in the deterministic simulator: node 1 runs the server
 * (SimServerHost), nodes 2.. run clients (SimClientHost) that call `add` (non-idempotent) and `get`
 * (idempotent) on their ticks. Frames travel as simulator messages between nodes, so they can be lost,
 * duplicated and reordered, and the server can crash and restart.
 *
 * A ledger outside the nodes records how many times each `add` token ran on the server (across
 * incarnations) and how each call ended for its client. The at-most-once checks read it: a global
 * invariant after every step (no token ran twice), and `checkLedger` at the end.
 */
import { assert, type Effect, type NodeId, type Protocol, type Rng } from '@dsys/kit';
import type { SimSystem } from '@dsys/sim';
import { defineSimSystem } from '@dsys/sim';
import { type HandlersOf, type RpcError, SimClientHost, SimServerHost } from '../../src/index.js';
import { Counter } from './counter.js';

export type Outcome = 'pending' | 'ok' | 'failed' | 'indeterminate';

export interface Ledger {
  /** Runs of each `add` token on the server, over every incarnation. */
  readonly executions: Map<number, number>;
  /** How each `add` ended for its caller. */
  readonly outcomes: Map<number, Outcome>;
  /** Error codes seen, for the summary. */
  readonly codes: Map<string, number>;
  gets: number;
}

export function newLedger(): Ledger {
  return { executions: new Map(), outcomes: new Map(), codes: new Map(), gets: 0 };
}

type ServerNode = { readonly role: 'server'; readonly host: SimServerHost<typeof Counter> };
type ClientNode = {
  readonly role: 'client';
  readonly id: NodeId;
  readonly host: SimClientHost<typeof Counter>;
  readonly rng: Rng;
  readonly config: CounterConfig;
  issued: number;
  outstanding: number;
};
export type CounterNode = ServerNode | ClientNode;

export interface CounterConfig {
  readonly callsPerClient: number;
  readonly timeoutMs: number;
}

/** Handlers must be synchronous in the simulator (a protocol step never waits). */
function simHandlers(ledger: Ledger): HandlersOf<typeof Counter> {
  let value = 0; // the counter's state dies with the incarnation, as a real process's memory would
  return {
    add({ delta, token }) {
      ledger.executions.set(token, (ledger.executions.get(token) ?? 0) + 1);
      value += delta;
      return { value };
    },
    get: () => ({ value }),
    slow: () => true,
    fail: ({ code }) => {
      throw new Error(code);
    },
    echo: (bytes) => bytes,
    watch: () => {},
  };
}

function record(ledger: Ledger, token: number, error: RpcError | null): void {
  if (error === null) {
    ledger.outcomes.set(token, 'ok');
    return;
  }
  ledger.codes.set(error.detail.code, (ledger.codes.get(error.detail.code) ?? 0) + 1);
  ledger.outcomes.set(token, error.executed === 'no' ? 'failed' : error.executed === 'yes' ? 'ok' : 'indeterminate');
}

function issue(node: ClientNode, ledger: Ledger, config: CounterConfig): void {
  if (node.issued >= config.callsPerClient || node.outstanding >= 3 || !node.rng.chance(1, 2)) return;
  node.issued++;
  node.outstanding++;
  if (node.rng.chance(1, 4)) {
    node.host.client.invoke('get', {}, () => {
      node.outstanding--;
      ledger.gets++;
    });
    return;
  }
  const token = node.id * 1_000_000 + node.issued;
  ledger.outcomes.set(token, 'pending');
  node.host.client.invoke(
    'add',
    { delta: 1, token },
    (error) => {
      node.outstanding--;
      record(ledger, token, error);
    },
    { timeoutMs: config.timeoutMs },
  );
}

export function counterProtocol(ledger: Ledger): Protocol<CounterNode, Uint8Array, never, never, CounterConfig> {
  return {
    name: 'rpc-counter',
    init(context): CounterNode {
      const boot = { rng: context.rng, nowMs: context.nowMs };
      if (context.id === 1) return { role: 'server', host: new SimServerHost(Counter, simHandlers(ledger), {}, boot) };
      const host = new SimClientHost(
        Counter,
        context.peers[0]!,
        { retransmitMs: 40, timeoutMs: context.config.timeoutMs },
        boot,
      );
      const rng = context.rng.fork('workload');
      return { role: 'client', id: context.id, host, rng, config: context.config, issued: 0, outstanding: 0 };
    },
    step(node, event): Effect<Uint8Array, never>[] {
      switch (event.type) {
        case 'tick':
          if (node.role === 'client') issue(node, ledger, node.config);
          return node.host.tick(event.nowMs);
        case 'receive':
          return node.host.receive(event.from, event.message);
        default:
          return [];
      }
    },
    invariants(node) {
      node.host.invariants();
    },
  };
}

export function counterSystem(
  ledger: Ledger,
  config: CounterConfig,
): SimSystem<CounterNode, Uint8Array, never, never, CounterConfig, null> {
  return defineSimSystem({
    name: 'rpc-counter',
    description: 'the RPC counter service: at-most-once add under loss, duplication, reordering and crashes',
    protocol: counterProtocol(ledger),
    config: () => config,
    workload: { init: () => null, client: () => ({ onStart() {}, onReply() {}, onTimer() {} }) },
    invariantsGlobal() {
      for (const [token, runs] of ledger.executions) assert(runs <= 1, `add token ${token} ran ${runs} times`);
    },
    converged: () => [...ledger.outcomes.values()].every((outcome) => outcome !== 'pending'),
  });
}

/** The end-of-run verdict: every call settled, and each outcome agrees with what the server ran. */
export function checkLedger(ledger: Ledger): string[] {
  const problems: string[] = [];
  for (const [token, outcome] of ledger.outcomes) {
    const runs = ledger.executions.get(token) ?? 0;
    if (runs > 1) problems.push(`token ${token} ran ${runs} times`);
    if (outcome === 'pending') problems.push(`token ${token} never settled`);
    if (outcome === 'ok' && runs !== 1) problems.push(`token ${token} acknowledged but ran ${runs} times`);
    if (outcome === 'failed' && runs !== 0) problems.push(`token ${token} reported not run but ran ${runs} times`);
  }
  return problems;
}
