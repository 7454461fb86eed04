/**
 * Every value that crosses a boundary, declared once as kit schemas: client requests and responses
 * (the protocol's own client interface; the ZooKeeper wire adapter in `real/` translates jute to
 * these), the transactions the leader replicates through Raft, and the messages between servers.
 *
 * Connections: a client talks to one server over one connection at a time (`conn`, chosen by the
 * client). Requests carry a per-connection sequence number `seq` and server-to-client messages carry
 * their own, so that over the simulator's reordering network a connection behaves like TCP: in order,
 * or broken. The real adapter numbers them in arrival order over an actual TCP connection.
 */
import { type Infer, type Schema, s } from '@dsys/kit';
import { raftMessageSchema } from '@dsys/raft';
import { DATA_BYTES_MAX, PATH_BYTES_MAX } from './types.js';

export const MULTI_OPS_MAX = 1000;
export const WATCH_PATHS_MAX = 100_000;
export const CHILDREN_MAX = 1_000_000;
export const FORWARD_ITEMS_MAX = 4096;
export const PASSWORD_BYTES = 16;

const path = s.string({ bytesMax: PATH_BYTES_MAX });
const data = s.bytes({ bytesMax: DATA_BYTES_MAX });
const uint = s.uint;
const int = s.int;

export const statSchema = s.struct({
  czxid: uint,
  mzxid: uint,
  pzxid: uint,
  ctime: int,
  mtime: int,
  version: int,
  cversion: int,
  aversion: int,
  ephemeralOwner: uint,
  dataLength: uint,
  numChildren: uint,
  kind: s.enum(['persistent', 'ephemeral', 'container', 'ttl']),
  ttlMs: uint,
});

const createOp = s.struct({ path, data, mode: uint, ttlMs: uint, withStat: s.bool });
const deleteOp = s.struct({ path, version: int });
const setDataOp = s.struct({ path, data, version: int });
const checkOp = s.struct({ path, version: int });

export const multiOpSchema = s.union('type', {
  create: createOp,
  delete: deleteOp,
  setData: setDataOp,
  check: checkOp,
});
export type MultiOp = Infer<typeof multiOpSchema>;

const pathList = s.array(path, { itemsMax: WATCH_PATHS_MAX });

/** An operation of a client request (ZooKeeper's OpCodes, grouped by what the server does with them). */
export const opSchema = s.union('type', {
  create: createOp,
  delete: deleteOp,
  setData: setDataOp,
  multi: s.struct({ ops: s.array(multiOpSchema, { itemsMax: MULTI_OPS_MAX }) }),
  close: s.struct({}),
  exists: s.struct({ path, watch: s.bool }),
  getData: s.struct({ path, watch: s.bool }),
  getChildren: s.struct({ path, watch: s.bool, withStat: s.bool }),
  getACL: s.struct({ path }),
  getEphemerals: s.struct({ prefix: path }),
  getAllChildrenNumber: s.struct({ path }),
  sync: s.struct({ path }),
  ping: s.struct({}),
  setWatches: s.struct({
    relativeZxid: uint,
    data: pathList,
    exist: pathList,
    child: pathList,
    persistent: pathList,
    persistentRecursive: pathList,
  }),
  addWatch: s.struct({ path, mode: uint }),
  removeWatches: s.struct({ path, watcherType: uint, checkOnly: s.bool }),
});
export type Op = Infer<typeof opSchema>;
export type WriteOp = Extract<Op, { type: 'create' | 'delete' | 'setData' | 'multi' | 'close' }>;

export function isWriteOp(op: Op): op is WriteOp {
  return (
    op.type === 'create' || op.type === 'delete' || op.type === 'setData' || op.type === 'multi' || op.type === 'close'
  );
}

export const coordRequestSchema = s.union('type', {
  connect: s.struct({
    conn: uint,
    sessionId: uint,
    password: s.bytes({ bytesMax: 64 }),
    timeoutMs: uint,
    lastZxidSeen: uint,
  }),
  op: s.struct({ conn: uint, seq: uint, xid: int, op: opSchema }),
  disconnect: s.struct({ conn: uint }),
  status: s.struct({}),
});
export type CoordRequest = Infer<typeof coordRequestSchema>;

export const multiResultSchema = s.union('type', {
  create: s.struct({ path, stat: s.nullable(statSchema) }),
  delete: s.struct({}),
  setData: s.struct({ stat: statSchema }),
  check: s.struct({}),
  error: s.struct({ err: int }),
});
export type MultiResult = Infer<typeof multiResultSchema>;

export const resultSchema = s.union('type', {
  none: s.struct({}),
  created: s.struct({ path, stat: s.nullable(statSchema) }),
  stat: s.struct({ stat: statSchema }),
  data: s.struct({ data, stat: statSchema }),
  children: s.struct({
    children: s.array(s.string({ bytesMax: PATH_BYTES_MAX }), { itemsMax: CHILDREN_MAX }),
    stat: s.nullable(statSchema),
  }),
  path: s.struct({ path }),
  multi: s.struct({ results: s.array(multiResultSchema, { itemsMax: MULTI_OPS_MAX }) }),
  paths: s.struct({ paths: s.array(path, { itemsMax: CHILDREN_MAX }) }),
  count: s.struct({ count: uint }),
  acl: s.struct({ stat: statSchema }),
});
export type Result = Infer<typeof resultSchema>;

export const serverStatusSchema = s.struct({
  node: uint,
  role: s.string({ bytesMax: 32 }),
  leader: uint,
  term: uint,
  lastZxid: uint,
  appliedIndex: uint,
  commitIndex: uint,
  nodeCount: uint,
  ephemeralCount: uint,
  sessionCount: uint,
  connections: uint,
  watchCount: uint,
  dataBytes: uint,
  outstanding: uint,
  readsServed: uint,
  writesForwarded: uint,
  forwardBatchesSent: uint,
  forwardItemsReceived: uint,
  peers: s.array(uint, { itemsMax: 64 }),
  minSessionTimeoutMs: uint,
  maxSessionTimeoutMs: uint,
  tickMs: uint,
});
export type ServerStatus = Infer<typeof serverStatusSchema>;

export const coordResponseSchema = s.union('type', {
  connected: s.struct({
    conn: uint,
    seq: uint,
    sessionId: uint,
    password: s.bytes({ bytesMax: 64 }),
    timeoutMs: uint,
    zxid: uint,
  }),
  reply: s.struct({ conn: uint, seq: uint, xid: int, zxid: uint, err: int, result: resultSchema }),
  event: s.struct({
    conn: uint,
    seq: uint,
    eventType: int,
    state: int,
    path: s.string({ bytesMax: PATH_BYTES_MAX }),
    zxid: uint,
  }),
  /** The server ended the connection; `expired` says the session is gone for good. */
  closed: s.struct({ conn: uint, seq: uint, expired: s.bool, reason: s.string({ bytesMax: 256 }) }),
  status: serverStatusSchema,
});
export type CoordResponse = Infer<typeof coordResponseSchema>;

// ------------------------------------------------------------------------------------------------
// Transactions: what the leader replicates. Every value a replica needs is decided before replication
// (ZooKeeper's PrepRequestProcessor): sequence names, new versions, the parent's new cversion, the
// owner of an ephemeral node, times from the leader's clock, session passwords and attach numbers.

const txnOp = s.union('type', {
  create: s.struct({
    path,
    data,
    kind: s.enum(['persistent', 'ephemeral', 'container', 'ttl']),
    ttlMs: uint,
    parentCversion: int,
    withStat: s.bool,
  }),
  delete: s.struct({ path }),
  setData: s.struct({ path, data, version: int }),
  check: s.struct({ path }),
});
export type TxnOp = Infer<typeof txnOp>;

const chain = { sessionId: uint, attach: uint, writeSeq: uint };

export const txnSchema = s.union('type', {
  createSession: s.struct({ token: uint, timeoutMs: uint, password: s.bytes({ bytesMax: PASSWORD_BYTES }), time: int }),
  attachSession: s.struct({ token: uint, sessionId: uint, attach: uint, time: int }),
  connectRefused: s.struct({ token: uint, sessionId: uint, err: int }),
  closeSession: s.struct({ ...chain, expired: s.bool, time: int }),
  write: s.struct({ ...chain, time: int, multi: s.bool, ops: s.array(txnOp, { itemsMax: MULTI_OPS_MAX }) }),
  /** A write that failed in preparation still takes its place in the log, so its error is ordered too. */
  error: s.struct({ ...chain, err: int, multiErrs: s.nullable(s.array(int, { itemsMax: MULTI_OPS_MAX })) }),
  /** The leader deletes an emptied container or an expired TTL node. */
  reap: s.struct({ path, time: int }),
});
export type Txn = Infer<typeof txnSchema>;

// ------------------------------------------------------------------------------------------------
// Server-to-server messages.

export const forwardItemSchema = s.union('kind', {
  connect: s.struct({ token: uint, sessionId: uint, password: s.bytes({ bytesMax: 64 }), timeoutMs: uint }),
  write: s.struct({ ...chain, op: opSchema }),
});
export type ForwardItem = Infer<typeof forwardItemSchema>;

export const coordMessageSchema = s.union('type', {
  raft: s.struct({ message: raftMessageSchema }),
  /** A follower's writes and connects for the leader, in order; at most one batch in flight. */
  forward: s.struct({
    term: uint,
    incarnation: uint,
    batch: uint,
    items: s.array(forwardItemSchema, { itemsMax: FORWARD_ITEMS_MAX }),
  }),
  forwardAck: s.struct({
    term: uint,
    incarnation: uint,
    batch: uint,
    /** Writes the leader refused without a transaction (stale attach or a gap): their connection is broken. */
    rejected: s.array(s.struct(chain), { itemsMax: FORWARD_ITEMS_MAX }),
  }),
  /** Sessions that showed activity at a follower since its last report (ZooKeeper's session touches). */
  touch: s.struct({ sessions: s.array(uint, { itemsMax: 1_000_000 }) }),
});
export type CoordMessage = Infer<typeof coordMessageSchema>;

export const schemas: {
  message: Schema<CoordMessage>;
  request: Schema<CoordRequest>;
  response: Schema<CoordResponse>;
} = { message: coordMessageSchema, request: coordRequestSchema, response: coordResponseSchema };
