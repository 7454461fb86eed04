/**
 * The leader's request preparation (ZooKeeper's PrepRequestProcessor): a client write becomes a
 * transaction whose every outcome is decided here, against the leader's speculative view (the
 * applied tree plus every proposal still in flight), before it is replicated. Replicas then apply
 * it without judging anything, in log order.
 *
 * A write that fails (NoNode, BadVersion, ...) still becomes a transaction, an `error` one: its
 * answer observes the state, so it must be ordered in the log like a success (ZooKeeper logs error
 * transactions for the same reason), and a follower answers it only once it has applied everything
 * the leader's judgement rested on.
 *
 * FIFO per session: each write carries `(attach, writeSeq)`; the view's session records the last
 * write placed in the log. A write that is not the next one of the current attach is a duplicate
 * (ignored: it is in the log already) or proof that the connection lost a write (refused: the
 * follower breaks that connection, as a TCP failure would).
 */
import { assert, type Rng } from '@dsys/kit';
import { type DataTree, SPECIAL_PATHS } from './data-tree.js';
import { parentOf, pathProblem, sequenceSuffix } from './path.js';
import { type ForwardItem, type MultiOp, PASSWORD_BYTES, type Txn, type TxnOp, type WriteOp } from './schema.js';
import { Err, modeKind } from './types.js';

/** Largest TTL ZooKeeper accepts (EphemeralType.TTL: 40 bits of milliseconds). */
export const TTL_MS_MAX = 2 ** 40 - 1;

export type Prepared =
  | { readonly type: 'txn'; readonly txn: Txn }
  /** Already in the log (a duplicate forward): nothing to do. */
  | { readonly type: 'duplicate' }
  /** Out of order or from a stale attach: the follower must break the connection. */
  | { readonly type: 'reject' };

export interface PrepContext {
  readonly view: DataTree;
  readonly nowMs: number;
  readonly rng: Rng;
}

class PrepError {
  constructor(readonly err: number) {}
}

export function prepare(item: ForwardItem, context: PrepContext): Prepared {
  if (item.kind === 'connect') return prepareConnect(item, context);
  const { view } = context;
  const chain = { sessionId: item.sessionId, attach: item.attach, writeSeq: item.writeSeq };
  const session = view.session(item.sessionId);
  if (session === undefined) {
    // The session was closed (or expired) before this write: it fails like ZooKeeper's SessionExpired.
    return { type: 'txn', txn: { type: 'error', ...chain, err: Err.SESSION_EXPIRED, multiErrs: null } };
  }
  if (item.attach !== session.attach) return { type: 'reject' };
  if (item.writeSeq <= session.lastWriteSeq) return { type: 'duplicate' };
  if (item.writeSeq !== session.lastWriteSeq + 1) return { type: 'reject' };
  const op = item.op as WriteOp;
  assert(
    op.type === 'create' || op.type === 'delete' || op.type === 'setData' || op.type === 'multi' || op.type === 'close',
    `prepare: ${op.type} is not a write`,
  );
  const time = Math.floor(context.nowMs);
  if (op.type === 'close') return { type: 'txn', txn: { type: 'closeSession', ...chain, expired: false, time } };
  if (op.type === 'multi') return { type: 'txn', txn: prepareMulti(op.ops, chain, time, context) };
  try {
    const txnOp = prepareOp(op, view, item.sessionId);
    return { type: 'txn', txn: { type: 'write', ...chain, time, multi: false, ops: [txnOp] } };
  } catch (error) {
    if (!(error instanceof PrepError)) throw error;
    return { type: 'txn', txn: { type: 'error', ...chain, err: error.err, multiErrs: null } };
  }
}

function prepareConnect(item: Extract<ForwardItem, { kind: 'connect' }>, context: PrepContext): Prepared {
  const { view } = context;
  if (item.sessionId === 0) {
    if (view.sessionForToken(item.token) !== undefined) return { type: 'duplicate' };
    const password = context.rng.bytes(PASSWORD_BYTES);
    return {
      type: 'txn',
      txn: {
        type: 'createSession',
        token: item.token,
        timeoutMs: item.timeoutMs,
        password,
        time: Math.floor(context.nowMs),
      },
    };
  }
  const session = view.session(item.sessionId);
  const refused = (err: number): Prepared => ({
    type: 'txn',
    txn: { type: 'connectRefused', token: item.token, sessionId: item.sessionId, err },
  });
  // ZooKeeper answers a wrong password like an expired session: the client must start over.
  if (session === undefined || !sameBytes(session.password, item.password)) return refused(Err.SESSION_EXPIRED);
  if (session.attachToken === item.token) return { type: 'duplicate' };
  return {
    type: 'txn',
    txn: {
      type: 'attachSession',
      token: item.token,
      sessionId: item.sessionId,
      attach: session.attach + 1,
      time: Math.floor(context.nowMs),
    },
  };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * A multi is all or nothing: each op is prepared against a scratch view that already holds the ops
 * before it. On the first failure the whole multi becomes an error transaction whose per-op codes
 * follow ZooKeeper: OK for the ops before, the error for the failing one, RuntimeInconsistency after.
 */
function prepareMulti(
  ops: readonly MultiOp[],
  chain: { sessionId: number; attach: number; writeSeq: number },
  time: number,
  context: PrepContext,
): Txn {
  const scratch = context.view.overlay();
  const txnOps: TxnOp[] = [];
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    try {
      const txnOp = op.type === 'check' ? prepareCheck(op, scratch) : prepareOp(op, scratch, chain.sessionId);
      scratch.apply({ type: 'write', ...chain, time, multi: true, ops: [txnOp] }, 0, 0);
      txnOps.push(txnOp);
    } catch (error) {
      if (!(error instanceof PrepError)) throw error;
      const multiErrs = ops.map((_, j) => (j < i ? Err.OK : j === i ? error.err : Err.RUNTIME_INCONSISTENCY));
      return { type: 'error', ...chain, err: Err.OK, multiErrs };
    }
  }
  return { type: 'write', ...chain, time, multi: true, ops: txnOps };
}

function prepareCheck(op: Extract<MultiOp, { type: 'check' }>, view: DataTree): TxnOp {
  if (pathProblem(op.path) !== null) throw new PrepError(Err.BAD_ARGUMENTS);
  const node = view.node(op.path);
  if (node === undefined) throw new PrepError(Err.NO_NODE);
  if (op.version !== -1 && op.version !== node.version) throw new PrepError(Err.BAD_VERSION);
  return { type: 'check', path: op.path };
}

function prepareOp(
  op: Extract<WriteOp, { type: 'create' | 'delete' | 'setData' }>,
  view: DataTree,
  sessionId: number,
): TxnOp {
  switch (op.type) {
    case 'create':
      return prepareCreate(op, view, sessionId);
    case 'delete': {
      if (pathProblem(op.path) !== null || SPECIAL_PATHS.has(op.path)) throw new PrepError(Err.BAD_ARGUMENTS);
      if (view.node(parentOf(op.path)) === undefined) throw new PrepError(Err.NO_NODE);
      const node = view.node(op.path);
      if (node === undefined) throw new PrepError(Err.NO_NODE);
      if (op.version !== -1 && op.version !== node.version) throw new PrepError(Err.BAD_VERSION);
      if (node.numChildren > 0) throw new PrepError(Err.NOT_EMPTY);
      return { type: 'delete', path: op.path };
    }
    case 'setData': {
      if (pathProblem(op.path) !== null) throw new PrepError(Err.BAD_ARGUMENTS);
      const node = view.node(op.path);
      if (node === undefined) throw new PrepError(Err.NO_NODE);
      if (op.version !== -1 && op.version !== node.version) throw new PrepError(Err.BAD_VERSION);
      return { type: 'setData', path: op.path, data: op.data, version: node.version + 1 };
    }
  }
}

function prepareCreate(op: Extract<WriteOp, { type: 'create' }>, view: DataTree, sessionId: number): TxnOp {
  const mode = modeKind(op.mode);
  if (mode === null) throw new PrepError(Err.BAD_ARGUMENTS);
  // A sequential create may name the directory itself ("/queue/"): the suffix completes the name.
  const probe = mode.sequential ? `${op.path}0` : op.path;
  if (op.path === '/' || pathProblem(probe) !== null) throw new PrepError(Err.BAD_ARGUMENTS);
  if (mode.kind === 'ttl' ? op.ttlMs < 1 || op.ttlMs > TTL_MS_MAX : op.ttlMs !== 0) {
    throw new PrepError(Err.BAD_ARGUMENTS);
  }
  const parentPath = parentOf(probe);
  const parent = view.node(parentPath);
  if (parent === undefined) throw new PrepError(Err.NO_NODE);
  const path = mode.sequential ? op.path + sequenceSuffix(parent.cversion) : op.path;
  if (view.node(path) !== undefined) throw new PrepError(Err.NODE_EXISTS);
  if (parent.kind === 'ephemeral') throw new PrepError(Err.NO_CHILDREN_FOR_EPHEMERALS);
  if (mode.kind === 'ephemeral' && view.session(sessionId) === undefined) throw new PrepError(Err.SESSION_EXPIRED);
  return {
    type: 'create',
    path,
    data: op.data,
    kind: mode.kind,
    ttlMs: op.ttlMs,
    parentCversion: parent.cversion + 1,
    withStat: op.withStat,
  };
}

/** The reaper's judgement (ZooKeeper's ContainerManager): an emptied container, or an idle TTL node past its TTL. */
export function reapable(view: DataTree, path: string, nowMs: number): boolean {
  const node = view.node(path);
  if (node === undefined || node.numChildren > 0) return false;
  if (node.kind === 'container') return node.cversion > 0;
  if (node.kind === 'ttl') return nowMs - node.mtime > node.ttlMs;
  return false;
}
