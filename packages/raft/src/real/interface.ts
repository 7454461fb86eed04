/**
 * The key-value service's client interface over `@dsys/rpc`: one procedure per kind of request, each
 * answering with the service's own `KvResponse` (so a NOT_LEADER refusal carries its leader hint and
 * the client sees exactly what the simulator's clients see): `get` answers `{type:'get'}` or
 * `{type:'error'}`, and so on.
 *
 * Writes are declared idempotent to the RPC layer: they carry the client session's `(sessionId, seq)`
 * and the replicated state machine applies each at most once (dissertation §6.3), so the RPC layer's
 * own reply cache would only duplicate that work. `openSession` and membership changes are not
 * idempotent and keep the RPC layer's at-most-once guarantee.
 */
import { s } from '@dsys/kit';
import { defineInterface, unary } from '@dsys/rpc';
import { CONF_CHANGES_MAX, KEY_BYTES_MAX, type KvResponse, kvResponseVariants, VALUE_BYTES_MAX } from '../kv/schema.js';

const key = s.string({ bytesMax: KEY_BYTES_MAX });
const value = s.string({ bytesMax: VALUE_BYTES_MAX });
/** Node ids as plain integers, so that `dsys rpc call` can rebuild these argument types from their text. */
const nodeId = s.u32;
const session = { sessionId: s.uint, seq: s.uint };

const confChange = s.union('type', {
  addVoter: s.struct({ node: nodeId }),
  addLearner: s.struct({ node: nodeId }),
  removeNode: s.struct({ node: nodeId }),
});

type Kind = Exclude<keyof typeof kvResponseVariants, 'error'>;
/** What a procedure answers: its own kind of response, or the service's error (with the leader hint). */
export type KvAnswer<K extends Kind> = Extract<KvResponse, { type: K | 'error' }>;

function answer<const K extends Kind>(kind: K) {
  const variants = { [kind]: kvResponseVariants[kind], error: kvResponseVariants.error };
  return s.union('type', variants as Pick<typeof kvResponseVariants, K | 'error'>);
}

export const raftKvInterface = defineInterface({
  name: 'raft_kv',
  version: 1,
  procedures: {
    openSession: unary({ args: s.struct({}), result: answer('openSession') }),
    put: unary({ args: s.struct({ ...session, key, value }), result: answer('put'), idempotent: true }),
    delete: unary({ args: s.struct({ ...session, key }), result: answer('delete'), idempotent: true }),
    /** `expected` null: the key must be absent; `value` null: delete it. */
    cas: unary({
      args: s.struct({ ...session, key, expected: s.nullable(value), value: s.nullable(value) }),
      result: answer('cas'),
      idempotent: true,
    }),
    get: unary({ args: s.struct({ key }), result: answer('get'), idempotent: true }),
    scan: unary({
      args: s.struct({ prefix: s.string({ bytesMax: KEY_BYTES_MAX }), limit: s.uint }),
      result: answer('scan'),
      idempotent: true,
    }),
    status: unary({ args: s.struct({}), result: answer('status'), idempotent: true }),
    changeMembership: unary({
      args: s.struct({ changes: s.array(confChange, { itemsMax: CONF_CHANGES_MAX }) }),
      result: answer('changeMembership'),
    }),
    transferLeader: unary({ args: s.struct({ to: nodeId }), result: answer('transferLeader') }),
  },
});
export type RaftKvInterface = typeof raftKvInterface;
