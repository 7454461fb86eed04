/**
 * Chord's parameters, validated once in `init` (etcd's `Config.validate`). Periods and timeouts are
 * in ticks; the driver decides how long a tick is (the simulator's `tickMs`, the real node's timer).
 */
import type { NodeId } from '@dsys/kit';
import { type Addressing, isValidAddress } from './address.js';
import type { LookupMode } from './messages.js';
import { ITEMS_PER_MESSAGE_MAX, REFS_MAX, VNODES_MAX } from './messages.js';
import { ID_BITS_MAX, ID_BITS_MIN } from './ring.js';

/**
 * How a node enters the ring when it starts:
 * - `create`: it is the first node (TON Fig. 6 `create()`);
 * - `join`: it joins through any of `seeds` (TON `join(n')`), trying them in turn;
 * - `auto` (simulator): a first boot of the lowest peer creates, every other start joins through the
 *   other peers (a restarted node remembers on disk that it has been a member, so it never creates a
 *   second ring);
 * - `manual`: it waits idle for a `join` request.
 */
export type Bootstrap = 'create' | 'join' | 'auto' | 'manual';

export interface ChordConfig {
  /** m: identifiers are m-bit (SHA-1 gives 160). */
  readonly idBits: number;
  /** Virtual nodes run by this physical node (§6.2: log N of them even out the load). */
  readonly vnodes: number;
  /** r of the successor list (TON §IV.E.3: 2 log2 N keeps lookups alive when half the nodes fail). */
  readonly successorListLength: number;
  /** Copies of each key on distinct physical nodes: the key's first `replicas` successors. */
  readonly replicas: number;
  readonly stabilizeTicks: number;
  readonly fixFingersTicks: number;
  readonly checkPredecessorTicks: number;
  /**
   * Period of the ring reconciliation: each vnode looks itself up through a random other node it
   * knows and adopts a closer successor if that finds one. Chord's stabilization cannot merge two
   * rings (a partition, or every successor suspected at once, can leave a node alone on a ring of its
   * own; Zave 2012 shows such loops persist); this periodic lookup through another node joins them.
   */
  readonly reconcileTicks: number;
  /** Other node addresses remembered for reconciliation (learned from successor lists). */
  readonly knownMax: number;
  /** Period of the replica sync (primaries push, stale holders hand off). */
  readonly replicateTicks: number;
  /** A replica not re-confirmed by its primary for this long is handed back to the primary. */
  readonly replicaLeaseTicks: number;
  /** An RPC unanswered after this long counts its target as failed (the failure detector). */
  readonly rpcTimeoutTicks: number;
  /** A lookup (and a client operation) gives up after this long. */
  readonly operationTimeoutTicks: number;
  /** A node that timed out is ignored in routing tables for this long (unless heard from again). */
  readonly suspectTicks: number;
  readonly lookupMode: LookupMode;
  /**
   * closest_preceding_node also searches the successor list (TON §IV.E.3: "modify
   * closest_preceding_node to search not only the finger table but also the successor list"). Off, it
   * is TON Fig. 5's finger-table-only version, which the path-length experiment compares against.
   */
  readonly routeViaSuccessors: boolean;
  readonly addressing: Addressing;
  readonly bootstrap: Bootstrap;
  /** Known nodes to join through (`join` bootstrap). */
  readonly seeds: readonly NodeId[];
  /** Randomize each period in [period/2, 3 period/2] (TON §V.D) so nodes do not act in lockstep. */
  readonly jitter: boolean;
  /** Keep items in the durable log so that a restarted node still has them. */
  readonly persist: boolean;
  /** Log records between compactions. */
  readonly compactRecordsMax: number;
  // Limits (TigerStyle: a bound on everything).
  readonly pendingRpcsMax: number;
  readonly operationsMax: number;
  readonly itemsMax: number;
  readonly itemsPerMessageMax: number;
  readonly hopsMax: number;
  readonly suspectsMax: number;
  /** Items handed off per replicate period. */
  readonly handoffItemsMax: number;
}

export const CHORD_CONFIG_DEFAULT: ChordConfig = Object.freeze({
  idBits: 160,
  vnodes: 1,
  successorListLength: 8,
  replicas: 3,
  stabilizeTicks: 5,
  fixFingersTicks: 2,
  checkPredecessorTicks: 5,
  reconcileTicks: 50,
  knownMax: 32,
  replicateTicks: 20,
  replicaLeaseTicks: 100,
  rpcTimeoutTicks: 10,
  operationTimeoutTicks: 200,
  suspectTicks: 50,
  lookupMode: 'iterative',
  routeViaSuccessors: true,
  addressing: 'sim',
  bootstrap: 'auto',
  seeds: Object.freeze([]) as readonly NodeId[],
  jitter: true,
  persist: false,
  compactRecordsMax: 4096,
  pendingRpcsMax: 4096,
  operationsMax: 1024,
  itemsMax: 1_000_000,
  itemsPerMessageMax: 64,
  hopsMax: 64,
  suspectsMax: 1024,
  handoffItemsMax: 64,
}) satisfies ChordConfig;

function positiveInteger(config: ChordConfig, name: keyof ChordConfig, max = Number.MAX_SAFE_INTEGER): void {
  const value = config[name];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new RangeError(`chord config ${name} must be an integer in [1, ${max}], got ${String(value)}`);
  }
}

export function validateConfig(config: ChordConfig): void {
  if (!Number.isInteger(config.idBits) || config.idBits < ID_BITS_MIN || config.idBits > ID_BITS_MAX) {
    throw new RangeError(`chord config idBits must be in [${ID_BITS_MIN}, ${ID_BITS_MAX}], got ${config.idBits}`);
  }
  positiveInteger(config, 'vnodes', VNODES_MAX);
  positiveInteger(config, 'successorListLength', REFS_MAX);
  positiveInteger(config, 'replicas', config.successorListLength);
  for (const name of [
    'stabilizeTicks',
    'fixFingersTicks',
    'checkPredecessorTicks',
    'reconcileTicks',
    'knownMax',
    'replicateTicks',
    'replicaLeaseTicks',
    'rpcTimeoutTicks',
    'operationTimeoutTicks',
    'suspectTicks',
    'compactRecordsMax',
    'pendingRpcsMax',
    'operationsMax',
    'itemsMax',
    'hopsMax',
    'suspectsMax',
    'handoffItemsMax',
  ] as const) {
    positiveInteger(config, name);
  }
  positiveInteger(config, 'itemsPerMessageMax', ITEMS_PER_MESSAGE_MAX);
  // A lease shorter than two sync periods would hand replicas back between two confirmations.
  if (config.replicaLeaseTicks < 2 * config.replicateTicks) {
    throw new RangeError('chord config replicaLeaseTicks must be at least 2 * replicateTicks');
  }
  // An operation must outlive at least a few RPC timeouts, or routing around one failure fails it.
  if (config.operationTimeoutTicks < 2 * config.rpcTimeoutTicks) {
    throw new RangeError('chord config operationTimeoutTicks must be at least 2 * rpcTimeoutTicks');
  }
  for (const seed of config.seeds) {
    if (!isValidAddress(config.addressing, seed)) throw new RangeError(`chord config seeds: bad address ${seed}`);
  }
  if (config.bootstrap === 'join' && config.seeds.length === 0) {
    throw new RangeError('chord config bootstrap "join" needs at least one seed');
  }
}
