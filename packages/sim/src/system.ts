/**
 * What a system registers to be simulated (`defineSimSystem`): its protocol, how a seed draws its
 * swarm options and config, the workload that drives it (client actors recording a history), the
 * global invariants checked after every step, the end-of-run check (linearizability), and when the
 * liveness phase counts as converged. Raft, the coordination service, Chord... each export one.
 *
 * The workload follows FoundationDB's workload shape (setup / start / check): `init` builds state
 * shared by all clients (e.g. the history recorder), `client` builds one actor per client, `check`
 * judges the run. Clients are actors on virtual time: they send requests across the simulated
 * network, set timers, and see replies (or nothing, when a packet or a node is lost).
 */
import type { ClientId, NodeId, Protocol, RequestId, Rng, Schema } from '@dsys/kit';
import type { SimOptions, SimOptionsBase } from './options.js';

export type Phase = 'safety' | 'liveness' | 'done';

export interface NodeView<State> {
  readonly id: NodeId;
  readonly up: boolean;
  /** The node's state; null while it is down (a crashed node's memory is gone). */
  readonly state: State | null;
  /** How many times this node booted (1 after the first start). */
  readonly boots: number;
}

/** What global invariants and `converged` see: every node, up or down. */
export interface ClusterView<State> {
  readonly nowMs: number;
  readonly phase: Phase;
  /** Index i holds node i + 1. */
  readonly nodes: readonly NodeView<State>[];
}

export interface ClientContext<Request> {
  readonly id: ClientId;
  /** Node ids of the cluster, ascending. */
  readonly nodes: readonly NodeId[];
  /** This client's own stream. */
  readonly rng: Rng;
  readonly options: SimOptions;
  /** Virtual time in ms (clients have no drift). */
  nowMs(): number;
  phase(): Phase;
  /** Sends `request` to `node` across the network; the reply (if any) comes to `onReply`. */
  send(node: NodeId, request: Request): RequestId;
  /** Calls `onTimer(timer)` after `delayMs` of virtual time; returns the timer id. */
  setTimer(delayMs: number): number;
  cancelTimer(timer: number): void;
}

export interface ClientActor<Response> {
  onStart(): void;
  onReply(node: NodeId, requestId: RequestId, response: Response): void;
  onTimer(timer: number): void;
  /** Called once when the liveness phase starts (faults stop). */
  onLiveness?(): void;
}

export type CheckOutcome =
  | { readonly ok: true; readonly summary: string }
  | { readonly ok: false; readonly message: string }
  /** Neither proven nor refuted (e.g. the checker's step budget ran out): reported, not a failure. */
  | { readonly ok: 'unknown'; readonly summary: string };

export interface SimWorkload<Request, Response, Shared> {
  /** State shared by all clients of one run (history recorder, counters). */
  init(context: { readonly options: SimOptions; readonly rng: Rng }): Shared;
  client(context: ClientContext<Request>, shared: Shared): ClientActor<Response>;
  /** Judges the whole run at its end (e.g. linearizability of the history). */
  check?(shared: Shared): CheckOutcome;
  /** A few words for the periodic status line (`ops 120 ok 100 info 3`). */
  status?(shared: Shared): string;
}

/** Schemas to push every message through (option `wireCodec`), as the real runtime will. */
export interface SimCodec<Message, Request, Response> {
  readonly message: Schema<Message>;
  readonly request: Schema<Request>;
  readonly response: Schema<Response>;
}

// Members are methods (not function-typed properties) on purpose: method parameters are bivariant
// in TypeScript, so a `SimSystem<AbdState, ...>` is assignable to the erased `SimSystem` that
// registries (`runSimCli(systems)`) hold.
export interface SimSystem<
  State = unknown,
  Message = unknown,
  Request = unknown,
  Response = unknown,
  Config = unknown,
  Shared = unknown,
> {
  /** Lower-case, used on the command line: `dsys sim <name>`. */
  readonly name: string;
  /** One line for `--help`. */
  readonly description: string;
  readonly protocol: Protocol<State, Message, Request, Response, Config>;
  readonly codec?: SimCodec<Message, Request, Response>;
  /** Adjusts the generic swarm draw (cluster size bounds, crash budget, knobs); default: keep it. */
  swarm?(rng: Rng, drawn: SimOptionsBase): SimOptionsBase;
  /** The protocol config for a run (the same for every node). */
  config(options: SimOptions, rng: Rng): Config;
  readonly workload: SimWorkload<Request, Response, Shared>;
  /** Cross-node checks after every step ("one leader per term"); throw (kit `assert`) on violation. */
  invariantsGlobal?(view: ClusterView<State>): void;
  /** Liveness: true once the healed cluster made the required progress. */
  converged(view: ClusterView<State>, shared: Shared): boolean;
}

const NAME = /^[a-z][a-z0-9-]{0,31}$/;

/** Validates and freezes a system registration. */
export function defineSimSystem<State, Message, Request, Response, Config, Shared>(
  system: SimSystem<State, Message, Request, Response, Config, Shared>,
): SimSystem<State, Message, Request, Response, Config, Shared> {
  if (!NAME.test(system.name)) throw new TypeError(`sim system name must match ${NAME}, got "${system.name}"`);
  if (system.description.length === 0) throw new TypeError(`sim system ${system.name}: empty description`);
  return Object.freeze(system);
}
