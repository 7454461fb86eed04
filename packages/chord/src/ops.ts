/**
 * Where finished lookups go (by purpose), and what happens when an RPC or an operation runs out of
 * time: a missing answer is the failure detector's only signal (TON §IV.E "failure detection by
 * timeouts"), so every timeout suspects the silent node before the operation goes on without it.
 */
import type { NodeRef } from './messages.js';
import { failLookup, onRouteTimeout, onStepTimeout, suspect } from './routing.js';
import {
  onFingerLookup,
  onGetPredTimeout,
  onJoinLookup,
  onPingTimeout,
  onReconcileLookup,
  sendLeaving,
} from './stabilize.js';
import type { ChordState, LookupOp, Operation, Pending } from './state.js';
import { replyError } from './state.js';
import {
  abandonLeave,
  endOp,
  expireStore,
  onOpLookup,
  onOpRpcTimeout,
  onReplicaTimeout,
  onTransferAck,
} from './store.js';

export function lookupDone(state: ChordState, op: LookupOp, nodes: NodeRef[] | null, reason: string): void {
  const purpose = op.purpose;
  switch (purpose.type) {
    case 'client':
      if (nodes === null) {
        replyError(state, purpose.ticket, 'LOOKUP_FAILED', reason);
        return;
      }
      state.out.push({
        type: 'reply',
        client: purpose.ticket.client,
        requestId: purpose.ticket.requestId,
        response: {
          type: 'lookup',
          keyId: op.target,
          node: nodes[0]!,
          successors: nodes,
          hops: op.hops,
          timeouts: op.timeouts,
        },
      });
      return;
    case 'join':
      onJoinLookup(state, state.vnodes[purpose.vnode]!, nodes, op.nonMembers);
      return;
    case 'finger':
      onFingerLookup(state, state.vnodes[purpose.vnode]!, purpose.index, nodes);
      return;
    case 'reconcile':
      onReconcileLookup(state, state.vnodes[purpose.vnode]!, nodes);
      return;
    case 'op': {
      const owner = state.ops.get(purpose.op);
      if (owner?.kind === 'put' || owner?.kind === 'get' || owner?.kind === 'handoff') {
        onOpLookup(state, owner, nodes, reason);
      }
      return;
    }
  }
}

export function onRpcTimeout(state: ChordState, pending: Pending): void {
  const op = pending.op === null ? undefined : state.ops.get(pending.op);
  switch (pending.kind) {
    case 'getPred':
      onGetPredTimeout(state, pending);
      return;
    case 'ping':
      onPingTimeout(state, pending);
      return;
    case 'step':
      if (op?.kind === 'lookup' && op.awaiting === pending.rpc) {
        suspect(state, pending.to);
        onStepTimeout(state, op, pending.to);
      }
      return;
    case 'route':
      suspect(state, pending.to);
      onRouteTimeout(state, pending.rpc);
      return;
    case 'store':
    case 'fetch':
    case 'handoff':
      if (op?.kind === 'put' || op?.kind === 'get' || op?.kind === 'handoff') onOpRpcTimeout(state, pending, op);
      else suspect(state, pending.to);
      return;
    case 'replicaPut':
      if (op?.kind === 'store') onReplicaTimeout(state, op, pending.to);
      else suspect(state, pending.to);
      return;
    case 'transfer':
      suspect(state, pending.to);
      if (op?.kind === 'leave') onTransferAck(state, op, null, (vnode) => sendLeaving(state, vnode));
      return;
    case 'sync':
    case 'push':
      suspect(state, pending.to);
      return;
  }
}

/** Expires RPCs and operations whose deadline has come. */
export function expire(state: ChordState): void {
  const tick = state.tick;
  let expired: Pending[] | null = null;
  for (const pending of state.pending.values()) {
    if (pending.deadlineTick > tick) continue;
    expired ??= [];
    expired.push(pending);
  }
  if (expired !== null) {
    for (const pending of expired) {
      if (!state.pending.delete(pending.rpc)) continue;
      onRpcTimeout(state, pending);
    }
  }
  let late: Operation[] | null = null;
  for (const op of state.ops.values()) {
    if (op.deadlineTick > tick) continue;
    late ??= [];
    late.push(op);
  }
  if (late === null) return;
  for (const op of late) if (state.ops.get(op.id) === op) expireOp(state, op);
}

function expireOp(state: ChordState, op: Operation): void {
  switch (op.kind) {
    case 'lookup':
      failLookup(state, op, `no answer within ${state.config.operationTimeoutTicks} ticks`);
      return;
    case 'put':
    case 'get':
    case 'handoff':
      endOp(state, op, 'TIMEOUT', `no answer within ${state.config.operationTimeoutTicks} ticks`);
      return;
    case 'store':
      // Answer with the copies made so far; the coordinator reports the count to its client.
      expireStore(state, op);
      return;
    case 'leave':
      abandonLeave(state, op, `not done within ${state.config.operationTimeoutTicks} ticks`);
      return;
  }
}
