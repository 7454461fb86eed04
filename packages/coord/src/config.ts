/**
 * The coordination service's configuration: the Raft core's, plus session, forwarding and limit
 * settings, validated once. Timeouts that the protocol measures are in ticks; session timeouts are
 * in milliseconds of the leader's clock (the `nowMs` of its ticks), as ZooKeeper's are.
 */
import { DsError, type NodeId } from '@dsys/kit';
import { type Entry, type LogIndex, type RaftConfig, validateRaftConfig } from '@dsys/raft';

/** Instrumentation for checkers (Raft safety, the simulator's oracle); never affects the protocol. */
export interface CoordObserver {
  /** The node's state now reflects the log through `index` (boot, or a snapshot restored). */
  reset(node: NodeId, index: LogIndex): void;
  /** The node applied `entry` (in order, each once per incarnation). */
  applied(node: NodeId, entry: Entry): void;
}

export interface CoordConfig {
  readonly raft: RaftConfig;
  /** Voters of the initial cluster (null: every peer). */
  readonly initialVoters: readonly NodeId[] | null;
  /**
   * Snapshot and compact once about this many entries are applied past the last snapshot: each member
   * draws its own point in [snapshotEntries/2, snapshotEntries] (ZooKeeper's snapCount).
   */
  readonly snapshotEntries: number;
  /** Negotiated session timeouts are clamped to [min, max] (ZooKeeper: 2 and 20 tickTimes). */
  readonly minSessionTimeoutMs: number;
  readonly maxSessionTimeoutMs: number;
  /** Real length of a tick, for status output only (the protocol counts ticks). */
  readonly tickMs: number;
  /** A follower reports its clients' session activity to the leader every this many ticks. */
  readonly touchEveryTicks: number;
  /** The leader looks for expired sessions every this many ticks. */
  readonly expiryCheckTicks: number;
  /** The leader looks for emptied containers and expired TTL nodes every this many ticks. */
  readonly reapEveryTicks: number;
  /** A forwarded batch without an acknowledgement is sent again after this many ticks. */
  readonly forwardResendTicks: number;
  /** Clients of a server that has known no leader for this many ticks are disconnected (they move on). */
  readonly noLeaderCloseTicks: number;
  /**
   * Log writes are acknowledged without holding later output (raft's `ReadyDriver`); a write still
   * unacknowledged after this many ticks gets an explicit synced persist, for drivers that sync lazily.
   */
  readonly syncNudgeTicks: number;
  readonly connectionsMax: number;
  /** Requests queued or buffered out of order on one connection; beyond it the connection is closed. */
  readonly requestsPerConnectionMax: number;
  readonly observer?: CoordObserver;
  /** TEST ONLY: deliberately broken rules, so tests can show the simulator's checks catch them. */
  readonly testOnlyBugs?: CoordTestOnlyBugs;
}

export interface CoordTestOnlyBugs {
  /** Hold watch notifications until the next tick: replies can then show a change before its notification. */
  readonly delayNotifications?: boolean;
  /** Answer reads at once, ahead of the connection's earlier writes (breaks FIFO client order). */
  readonly readsJumpWrites?: boolean;
}

export class CoordConfigError extends DsError<{ code: 'INVALID_COORD_CONFIG'; field: string; reason: string }> {
  constructor(field: string, reason: string) {
    super({ code: 'INVALID_COORD_CONFIG', field, reason }, `coord config ${field}: ${reason}`);
  }
}

export type CoordConfigInput = Partial<Omit<CoordConfig, 'raft'>> & { readonly raft?: Partial<RaftConfig> };

export function coordConfig(input: CoordConfigInput = {}): CoordConfig {
  const config: CoordConfig = {
    initialVoters: null,
    snapshotEntries: 100_000, // ZooKeeper's snapCount default
    minSessionTimeoutMs: 4_000,
    maxSessionTimeoutMs: 40_000,
    tickMs: 10,
    touchEveryTicks: 10,
    expiryCheckTicks: 5,
    reapEveryTicks: 100,
    forwardResendTicks: 50,
    noLeaderCloseTicks: 300,
    syncNudgeTicks: 2,
    connectionsMax: 10_000,
    requestsPerConnectionMax: 10_000,
    ...input,
    raft: validateRaftConfig(input.raft),
  };
  for (const field of [
    'snapshotEntries',
    'minSessionTimeoutMs',
    'maxSessionTimeoutMs',
    'tickMs',
    'touchEveryTicks',
    'expiryCheckTicks',
    'reapEveryTicks',
    'forwardResendTicks',
    'noLeaderCloseTicks',
    'syncNudgeTicks',
    'connectionsMax',
    'requestsPerConnectionMax',
  ] as const) {
    const value = config[field];
    if (!Number.isSafeInteger(value) || value < 1)
      throw new CoordConfigError(field, `must be a positive integer, got ${value}`);
  }
  if (config.minSessionTimeoutMs > config.maxSessionTimeoutMs) {
    throw new CoordConfigError('minSessionTimeoutMs', 'must not exceed maxSessionTimeoutMs');
  }
  if (config.initialVoters !== null && config.initialVoters.length === 0) {
    throw new CoordConfigError('initialVoters', 'must name at least one voter');
  }
  return Object.freeze(config);
}
