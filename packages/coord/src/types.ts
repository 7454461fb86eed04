/**
 * The nouns of ZooKeeper (Hunt et al., "ZooKeeper: Wait-free coordination for Internet-scale
 * systems", USENIX ATC 2010, §2; Apache ZooKeeper 3.8 for the details): znodes with a full stat,
 * create modes, the numeric error codes and watch event types clients see on the wire.
 *
 * zxid: ZooKeeper numbers every state change with a 64-bit zxid, epoch << 32 | counter. Ours is
 * derived from the Raft entry that carries the change: `term * 2^32 + index`. Terms never decrease
 * along the log and indexes strictly increase, so zxids strictly increase with every committed entry
 * and compare like ZooKeeper's. It is kept as a JS number: exact while term < 2^21 (two million
 * elections) and index < 2^32; `zxidOf` asserts both.
 */
import { assert } from '@dsys/kit';

export const ZXID_TERM_MAX = 2 ** 21;
export const ZXID_INDEX_MAX = 2 ** 32;

export function zxidOf(term: number, index: number): number {
  assert(term < ZXID_TERM_MAX, `zxid: term ${term} beyond 2^21`);
  assert(index < ZXID_INDEX_MAX, `zxid: index ${index} beyond 2^32`);
  return term * ZXID_INDEX_MAX + index;
}

export function formatZxid(zxid: number): string {
  return `0x${zxid.toString(16)}`;
}

/** ZooKeeper's KeeperException.Code values, as sent in reply headers. */
export const Err = {
  OK: 0,
  SYSTEM_ERROR: -1,
  RUNTIME_INCONSISTENCY: -2,
  CONNECTION_LOSS: -4,
  MARSHALLING_ERROR: -5,
  UNIMPLEMENTED: -6,
  OPERATION_TIMEOUT: -7,
  BAD_ARGUMENTS: -8,
  UNKNOWN_SESSION: -12,
  API_ERROR: -100,
  NO_NODE: -101,
  NO_AUTH: -102,
  BAD_VERSION: -103,
  NO_CHILDREN_FOR_EPHEMERALS: -108,
  NODE_EXISTS: -110,
  NOT_EMPTY: -111,
  SESSION_EXPIRED: -112,
  INVALID_ACL: -114,
  AUTH_FAILED: -115,
  SESSION_MOVED: -118,
  NO_WATCHER: -121,
} as const;
export type ErrCode = (typeof Err)[keyof typeof Err];

const ERR_NAMES = new Map<number, string>(
  Object.entries({
    OK: 0,
    SystemError: -1,
    RuntimeInconsistency: -2,
    ConnectionLoss: -4,
    MarshallingError: -5,
    Unimplemented: -6,
    OperationTimeout: -7,
    BadArguments: -8,
    UnknownSession: -12,
    APIError: -100,
    NoNode: -101,
    NoAuth: -102,
    BadVersion: -103,
    NoChildrenForEphemerals: -108,
    NodeExists: -110,
    NotEmpty: -111,
    SessionExpired: -112,
    InvalidACL: -114,
    AuthFailed: -115,
    SessionMoved: -118,
    NoWatcher: -121,
  }).map(([name, code]) => [code, name]),
);

export function errName(code: number): string {
  return ERR_NAMES.get(code) ?? `Error(${code})`;
}

/** CreateMode flags as on the wire (ZooKeeper's CreateMode.toFlag). */
export const CreateMode = {
  PERSISTENT: 0,
  EPHEMERAL: 1,
  PERSISTENT_SEQUENTIAL: 2,
  EPHEMERAL_SEQUENTIAL: 3,
  CONTAINER: 4,
  PERSISTENT_WITH_TTL: 5,
  PERSISTENT_SEQUENTIAL_WITH_TTL: 6,
} as const;
export type CreateModeFlag = (typeof CreateMode)[keyof typeof CreateMode];

/** What kind of node a create mode makes, and whether its name gets a sequence suffix. */
export type NodeKind = 'persistent' | 'ephemeral' | 'container' | 'ttl';

export function modeKind(mode: number): { kind: NodeKind; sequential: boolean } | null {
  switch (mode) {
    case CreateMode.PERSISTENT:
      return { kind: 'persistent', sequential: false };
    case CreateMode.EPHEMERAL:
      return { kind: 'ephemeral', sequential: false };
    case CreateMode.PERSISTENT_SEQUENTIAL:
      return { kind: 'persistent', sequential: true };
    case CreateMode.EPHEMERAL_SEQUENTIAL:
      return { kind: 'ephemeral', sequential: true };
    case CreateMode.CONTAINER:
      return { kind: 'container', sequential: false };
    case CreateMode.PERSISTENT_WITH_TTL:
      return { kind: 'ttl', sequential: false };
    case CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL:
      return { kind: 'ttl', sequential: true };
    default:
      return null;
  }
}

/** Watch event types (Watcher.Event.EventType). */
export const EventType = {
  NONE: -1,
  NODE_CREATED: 1,
  NODE_DELETED: 2,
  NODE_DATA_CHANGED: 3,
  NODE_CHILDREN_CHANGED: 4,
  DATA_WATCH_REMOVED: 5,
  CHILD_WATCH_REMOVED: 6,
  PERSISTENT_WATCH_REMOVED: 7,
} as const;

/** Session states in watch events (Watcher.Event.KeeperState). */
export const KeeperState = {
  DISCONNECTED: 0,
  SYNC_CONNECTED: 3,
  EXPIRED: -112,
  CLOSED: 7,
} as const;

/** AddWatchMode. */
export const AddWatchMode = { PERSISTENT: 0, PERSISTENT_RECURSIVE: 1 } as const;
/** WatcherType of removeWatches / checkWatches. */
export const WatcherType = { CHILDREN: 1, DATA: 2, ANY: 3 } as const;

/**
 * A znode's stat (ZooKeeper's data.Stat). `ephemeralOwner` is the owning session for ephemeral nodes
 * and 0 otherwise; containers and TTL nodes are marked by `kind` (the wire adapter encodes them in
 * ephemeralOwner the way ZooKeeper does: 0x8000000000000000 and 0xFF00000000000000 | ttl).
 */
export interface Stat {
  readonly czxid: number;
  readonly mzxid: number;
  readonly pzxid: number;
  readonly ctime: number;
  readonly mtime: number;
  readonly version: number;
  readonly cversion: number;
  readonly aversion: number;
  readonly ephemeralOwner: number;
  readonly dataLength: number;
  readonly numChildren: number;
  readonly kind: NodeKind;
  readonly ttlMs: number;
}

/** Default data limit per znode (ZooKeeper's jute.maxbuffer, 1 MiB). */
export const DATA_BYTES_MAX = 1024 * 1024;
/** Longest path we accept, in UTF-8 bytes. */
export const PATH_BYTES_MAX = 4096;
