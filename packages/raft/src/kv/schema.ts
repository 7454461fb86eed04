/**
 * The key-value service's client protocol and log commands, as kit schemas (so that phase 2 puts the
 * same requests and responses on the wire, and the simulator can push them through the codec).
 *
 * Exactly-once writes follow the dissertation §6.3 ("Implementing linearizable semantics"): a client
 * first opens a session (a logged command whose log index becomes the session id), then numbers its
 * writes 1, 2, 3...; the replicated state machine remembers each session's last sequence number and
 * response, so a write retried after a leader change is applied once and answered from the cache.
 * Reads are not logged: they use ReadIndex (or the lease), so they need no session.
 */
import { type Infer, s } from '@dsys/kit';
import { nodeIdSchema } from '../messages.js';
import { etcdOpResultsSchema, etcdTxnSchema, rangeQuerySchema, rangeResultSchema } from './etcd-schema.js';
import { KEY_BYTES_MAX, VALUE_BYTES_MAX } from './limits.js';

export { KEY_BYTES_MAX, VALUE_BYTES_MAX } from './limits.js';
/** Most keys one scan returns. */
export const SCAN_LIMIT_MAX = 1000;
/** Most membership changes in one request. */
export const CONF_CHANGES_MAX = 16;

const key = s.string({ bytesMax: KEY_BYTES_MAX });
const value = s.string({ bytesMax: VALUE_BYTES_MAX });
const session = { sessionId: s.uint, seq: s.uint };

const confChangeSchema = s.union('type', {
  addVoter: s.struct({ node: nodeIdSchema }),
  addLearner: s.struct({ node: nodeIdSchema }),
  removeNode: s.struct({ node: nodeIdSchema }),
});

export const kvRequestSchema = s.union('type', {
  openSession: s.struct({}),
  put: s.struct({ ...session, key, value }),
  delete: s.struct({ ...session, key }),
  /** Compare-and-swap: `expected` null means "absent"; `value` null deletes. */
  cas: s.struct({ ...session, key, expected: s.nullable(value), value: s.nullable(value) }),
  get: s.struct({ key }),
  /** Keys starting with `prefix`, in ascending order, at most `limit` of them. */
  scan: s.struct({ prefix: s.string({ bytesMax: KEY_BYTES_MAX }), limit: s.uint }),
  /** Administration: joint-consensus membership change (see the core's `proposeConfChange`). */
  changeMembership: s.struct({ changes: s.array(confChangeSchema, { itemsMax: CONF_CHANGES_MAX }) }),
  transferLeader: s.struct({ to: nodeIdSchema }),
  status: s.struct({}),
  /**
   * etcd's Range (the gateway's KV.Range): linearizable through ReadIndex on any node (a follower asks
   * its leader for the read index), or `serializable`: this node's applied state, at once.
   */
  etcdRange: s.struct({ query: rangeQuerySchema, serializable: s.bool }),
  /**
   * etcd's Txn (also its Put and DeleteRange, as one-operation transactions). One that may write goes
   * through the log (a follower forwards it to its leader); a read-only one is served like a range.
   */
  etcdTxn: s.struct({ txn: etcdTxnSchema, serializable: s.bool }),
});
export type KvRequest = Infer<typeof kvRequestSchema>;

export const KV_ERROR_CODES = [
  /** This node is not the leader; try `leaderHint` (null: unknown, try another node). */
  'NOT_LEADER',
  /** The session expired or never existed; the write may or may not have happened: open a new session. */
  'SESSION_EXPIRED',
  /** A sequence number below the session's last one: a stale duplicate, not applied. */
  'SEQ_STALE',
  /** Too many requests pending at this node (proposals or reads); back off and retry. */
  'BUSY',
  /** The request is malformed or over a limit (`message` says which). */
  'BAD_REQUEST',
  /** The consensus core refused (membership change pending, learner behind...). */
  'REFUSED',
  /**
   * This node stopped leading while the write was in its log: the write may still commit under the
   * next leader, or may be lost. Its outcome is unknown; retry it in the same session (exactly once).
   */
  'LEADER_CHANGED',
  /**
   * A write forwarded to the leader was not seen applied within the node's forwarding timeout: it may
   * still apply, or may be lost (etcd's "request timed out").
   */
  'TIMED_OUT',
  /** etcd: a put that keeps the value or lease names a missing key; nothing of the transaction applied. */
  'KEY_NOT_FOUND',
  /** etcd: a read at a revision older than the newest (only the newest is kept). */
  'COMPACTED',
  /** etcd: a read at a revision the store has not reached. */
  'FUTURE_REV',
] as const;
export type KvErrorCode = (typeof KV_ERROR_CODES)[number];

const scanEntry = s.struct({ key, value });

/** Each kind of response by its `type` (the RPC interface answers each procedure with its own and `error`). */
export const kvResponseVariants = {
  openSession: s.struct({ sessionId: s.uint }),
  put: s.struct({}),
  delete: s.struct({ existed: s.bool }),
  cas: s.struct({ ok: s.bool }),
  get: s.struct({ value: s.nullable(value) }),
  scan: s.struct({ entries: s.array(scanEntry, { itemsMax: SCAN_LIMIT_MAX }), more: s.bool }),
  changeMembership: s.struct({ index: s.uint }),
  transferLeader: s.struct({}),
  status: s.struct({
    node: nodeIdSchema,
    role: s.enum(['follower', 'preCandidate', 'candidate', 'leader']),
    term: s.uint,
    leader: s.nullable(nodeIdSchema),
    commit: s.uint,
    applied: s.uint,
    voters: s.array(nodeIdSchema, { itemsMax: 64 }),
    votersOutgoing: s.array(nodeIdSchema, { itemsMax: 64 }),
    learners: s.array(nodeIdSchema, { itemsMax: 64 }),
  }),
  /** etcd answers carry the node's term and the store revision they reflect (etcd's response header). */
  etcdRange: s.struct({ term: s.uint, revision: s.uint, result: rangeResultSchema }),
  etcdTxn: s.struct({ term: s.uint, revision: s.uint, succeeded: s.bool, responses: etcdOpResultsSchema }),
  error: s.struct({
    code: s.enum(KV_ERROR_CODES),
    leaderHint: s.nullable(nodeIdSchema),
    message: s.string({ bytesMax: 1024 }),
  }),
};

export const kvResponseSchema = s.union('type', kvResponseVariants);
export type KvResponse = Infer<typeof kvResponseSchema>;
export type KvErrorResponse = Extract<KvResponse, { type: 'error' }>;

/** Who waits for a forwarded write: node, its incarnation (start time) and a request number there. */
export const originSchema = s.struct({ node: s.uint, boot: s.uint, seq: s.uint });
export type Origin = Infer<typeof originSchema>;

const writeOpSchema = s.union('type', {
  put: s.struct({ key, value }),
  delete: s.struct({ key }),
  cas: s.struct({ key, expected: s.nullable(value), value: s.nullable(value) }),
});
export type KvWriteOp = Infer<typeof writeOpSchema>;

/**
 * A log entry's command. `timeMs` is the proposing leader's clock: the state machine's clock is the
 * maximum seen so far, which drives session expiry identically on every replica (dissertation §6.3).
 */
export const kvCommandSchema = s.union('type', {
  openSession: s.struct({ timeMs: s.uint }),
  write: s.struct({ sessionId: s.uint, seq: s.uint, timeMs: s.uint, op: writeOpSchema }),
  /**
   * An etcd transaction (no session: etcd's writes are at-least-once for a client that retries).
   * `origin` names the node that forwarded it to the leader and the request there, which that node
   * answers when it applies the entry (etcd's wait registry); null when the leader proposed it.
   */
  etcdTxn: s.struct({ timeMs: s.uint, origin: s.nullable(originSchema), txn: etcdTxnSchema }),
});
export type KvCommand = Infer<typeof kvCommandSchema>;

/** What applying a write returns (cached per session for retries). */
export const kvWriteResultSchema = s.union('type', {
  put: s.struct({}),
  delete: s.struct({ existed: s.bool }),
  cas: s.struct({ ok: s.bool }),
});
export type KvWriteResult = Infer<typeof kvWriteResultSchema>;
