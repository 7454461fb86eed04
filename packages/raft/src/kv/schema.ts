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

/** Largest key, in UTF-8 bytes. */
export const KEY_BYTES_MAX = 4096;
/** Largest value, in UTF-8 bytes (the "values up to 1 MiB"). */
export const VALUE_BYTES_MAX = 1024 * 1024;
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
  error: s.struct({
    code: s.enum(KV_ERROR_CODES),
    leaderHint: s.nullable(nodeIdSchema),
    message: s.string({ bytesMax: 1024 }),
  }),
};

export const kvResponseSchema = s.union('type', kvResponseVariants);
export type KvResponse = Infer<typeof kvResponseSchema>;
export type KvErrorResponse = Extract<KvResponse, { type: 'error' }>;

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
});
export type KvCommand = Infer<typeof kvCommandSchema>;

/** What applying a write returns (cached per session for retries). */
export const kvWriteResultSchema = s.union('type', {
  put: s.struct({}),
  delete: s.struct({ existed: s.bool }),
  cas: s.struct({ ok: s.bool }),
});
export type KvWriteResult = Infer<typeof kvWriteResultSchema>;
