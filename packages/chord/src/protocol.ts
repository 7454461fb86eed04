/**
 * `chordProtocol`: Chord as a kit `Protocol`. One instance is one physical node running
 * `config.vnodes` virtual nodes; `step` takes a tick, a message from another node, or a client
 * request, and returns the sends and replies (and, with `persist`, log writes) in order.
 *
 * Untrusted input: every message is checked before it touches the state (`checkMessage`): each node
 * reference must be on the ring and carry the identifier its address hashes to (so no node can claim
 * another's identifier), a node can only notify or say goodbye for itself, vnode indexes and hop
 * counts are bounded. A rejected message is counted, its reason kept (`state.rejections`), and dropped.
 */
import { assert, DsError, type Effect, type Event, type NodeContext, type NodeId, type Protocol } from '@dsys/kit';
import { addressName, isValidAddress } from './address.js';
import { type ChordConfig, validateConfig } from './config.js';
import type { ChordMessage, ChordRequest, ChordResponse, NodeRef, StatusResponse } from './messages.js';
import { VNODES_MAX } from './messages.js';
import { expire } from './ops.js';
import { isRingId, keyId, nodeId, ringOf } from './ring.js';
import { answerStep, onRoute, onRouteAck, onRouteDone, onStepReply, startLookup } from './routing.js';
import {
  answerGetPred,
  attemptJoin,
  checkPredecessor,
  createRing,
  fixFingers,
  onLeaving,
  onNotify,
  onPong,
  onPredReply,
  reconcile,
  sendLeaving,
  stabilize,
} from './stabilize.js';
import {
  type ChordState,
  type ClientTicket,
  heardFrom,
  isJoined,
  reject,
  reply,
  replyError,
  send,
  settle,
  type Vnode,
} from './state.js';
import {
  onFetch,
  onFetchDone,
  onHandoffAck,
  onPutItems,
  onReplicaAck,
  onStore,
  onStoreReply,
  onSyncOffer,
  onSyncWant,
  onTransferAck,
  primaryVnode,
  type RecoveryProblem,
  recoverStore,
  replicate,
  startGet,
  startLeave,
  startPut,
} from './store.js';

export type ChordEvent = Event<ChordMessage, ChordRequest>;
export type ChordEffect = Effect<ChordMessage, ChordResponse>;

/** The durable state cannot be used: it does not decode, or another node (address) wrote it. */
export class ChordStartError extends DsError<RecoveryProblem> {}

function newVnode(state: { ring: ReturnType<typeof ringOf>; name: string; address: NodeId }, index: number): Vnode {
  const self: NodeRef = { id: nodeId(state.ring, state.name, index), addr: state.address, vnode: index };
  return {
    index,
    self,
    status: 'idle',
    predecessor: null,
    successors: [self],
    fingers: new Array<NodeRef | null>(state.ring.bits).fill(null),
    fingerNext: 0,
    fingerPasses: 0,
    nextStabilizeTick: 0,
    nextFixTick: 0,
    nextCheckTick: 0,
    nextReconcileTick: 0,
    reconcileOp: null,
    stabilizing: false,
    fixing: false,
    checking: false,
    joinSeed: 0,
    nextJoinTick: 0,
    joinOp: null,
    isolated: false,
    reconcileMisses: 0,
  };
}

export function initChord(context: NodeContext<ChordConfig>): ChordState {
  const config = context.config;
  validateConfig(config);
  if (!isValidAddress(config.addressing, context.id)) {
    throw new RangeError(`chord: ${context.id} is not a valid ${config.addressing} address`);
  }
  const ring = ringOf(config.idBits);
  const name = addressName(config.addressing, context.id);
  const base = { ring, name, address: context.id };
  const state: ChordState = {
    config,
    ring,
    address: context.id,
    name,
    rng: context.rng,
    peers: context.peers.filter((peer) => peer !== context.id),
    tick: 0,
    vnodes: [],
    pending: new Map(),
    rpcNext: 1,
    ops: new Map(),
    opNext: 1,
    routeForwards: new Map(),
    suspects: new Map(),
    store: new Map(),
    handoffKeys: new Set(),
    rangeEvents: [],
    known: [],
    nonMembers: new Set(),
    joinSeeds: config.seeds,
    lamport: 0,
    nextReplicateTick: config.replicateTicks,
    member: false,
    records: 0,
    stats: {
      lookups: 0,
      lookupHops: 0,
      lookupFailures: 0,
      timeouts: 0,
      rejected: 0,
      rangeChanges: 0,
      itemsTransferred: 0,
    },
    rejections: [],
    out: [],
  };
  for (let i = 0; i < config.vnodes; i++) state.vnodes.push(newVnode(base, i));
  if (config.persist) {
    const problem = recoverStore(state, context.durable.snapshot, context.durable.records);
    if (problem !== null) throw new ChordStartError(problem);
  }
  bootstrap(state, context);
  return state;
}

function bootstrap(state: ChordState, context: NodeContext<ChordConfig>): void {
  const mode = state.config.bootstrap;
  if (mode === 'manual') return;
  let create = mode === 'create';
  if (mode === 'auto') {
    // A fresh lowest peer founds the ring; everyone else (and any restart) joins through the others.
    create = !state.member && context.peers.length > 0 && context.id === Math.min(...context.peers);
    state.joinSeeds = state.rng.shuffle([...state.peers]);
  }
  for (const vnode of state.vnodes) vnode.status = 'joining';
  if (create) createRing(state, state.vnodes[0]!);
}

// ---------------------------------------------------------------------------------------------
// step

export function stepChord(state: ChordState, event: ChordEvent): ChordEffect[] {
  switch (event.type) {
    case 'tick':
      onTick(state);
      break;
    case 'receive':
      onMessage(state, event.from, event.message);
      break;
    case 'request':
      onRequest(state, { client: event.client, requestId: event.requestId }, event.request);
      break;
    case 'persisted':
      break;
  }
  const effects = state.out;
  state.out = [];
  return effects;
}

function onTick(state: ChordState): void {
  state.tick++;
  expire(state);
  const tick = state.tick;
  for (const vnode of state.vnodes) {
    if (vnode.status === 'joined') {
      if (tick >= vnode.nextStabilizeTick) stabilize(state, vnode);
      if (tick >= vnode.nextFixTick) fixFingers(state, vnode);
      if (tick >= vnode.nextCheckTick) checkPredecessor(state, vnode);
      if (tick >= vnode.nextReconcileTick) reconcile(state, vnode);
    } else if (vnode.status === 'joining' && vnode.joinOp === null && tick >= vnode.nextJoinTick) {
      attemptJoin(state, vnode, state.joinSeeds);
    }
  }
  if (tick >= state.nextReplicateTick) replicate(state);
}

function onMessage(state: ChordState, from: NodeId, message: ChordMessage): void {
  const problem = checkMessage(state, from, message);
  if (problem !== null) {
    reject(state, from, `${message.type}: ${problem}`);
    return;
  }
  switch (message.type) {
    case 'getPred':
      answerGetPred(state, from, message.rpc, message.vnode);
      return;
    case 'predReply': {
      const pending = settle(state, message.rpc, from, 'getPred');
      if (pending === null) return;
      heardFrom(state, from);
      onPredReply(state, pending, message.pred, message.successors);
      return;
    }
    case 'notify':
      onNotify(state, from, message.vnode, message.node);
      return;
    case 'ping':
      send(state, from, { type: 'pong', rpc: message.rpc, member: state.vnodes[message.vnode]?.status === 'joined' });
      return;
    case 'pong': {
      const pending = settle(state, message.rpc, from, 'ping');
      if (pending !== null) onPong(state, pending, message.member);
      return;
    }
    case 'findStep':
      answerStep(state, from, message.rpc, message.target, message.avoid);
      return;
    case 'stepReply': {
      const pending = settle(state, message.rpc, from, 'step');
      const op = pending?.op === null || pending === null ? undefined : state.ops.get(pending.op);
      if (op?.kind === 'lookup' && op.awaiting === message.rpc) onStepReply(state, op, from, message);
      return;
    }
    default:
      onOtherMessage(state, from, message);
  }
}

function onOtherMessage(state: ChordState, from: NodeId, message: ChordMessage): void {
  switch (message.type) {
    case 'route':
      onRoute(state, from, message);
      return;
    case 'routeAck':
      if (settle(state, message.rpc, from, 'route') !== null) onRouteAck(state, message.rpc);
      return;
    case 'routeDone':
      onRouteDone(state, message.lookup, message.nodes, message.hops);
      return;
    case 'leaving':
      onLeaving(state, message.vnode, message.node, message.pred, message.successors);
      return;
    default:
      onStoreMessage(state, from, message);
  }
}

function onStoreMessage(state: ChordState, from: NodeId, message: ChordMessage): void {
  switch (message.type) {
    case 'store':
      onStore(state, from, message.rpc, message.key, message.value);
      return;
    case 'storeReply': {
      const pending = settle(state, message.rpc, from, 'store');
      const op = pending?.op == null ? undefined : state.ops.get(pending.op);
      if (op?.kind === 'put') onStoreReply(state, op, message);
      return;
    }
    case 'putItems':
      onPutItems(state, from, message.rpc, message.handoff, message.items);
      return;
    case 'itemsAck':
      onItemsAck(state, from, message.rpc, message.versions, message.keep);
      return;
    case 'fetch':
      onFetch(state, from, message.rpc, message.key);
      return;
    case 'fetchReply': {
      const pending = settle(state, message.rpc, from, 'fetch');
      const op = pending?.op == null ? undefined : state.ops.get(pending.op);
      if (op?.kind === 'get') onFetchDone(state, op, message.item, message.responsible);
      return;
    }
    case 'syncOffer':
      onSyncOffer(state, from, message.rpc, message.entries);
      return;
    case 'syncWant':
      if (settle(state, message.rpc, from, 'sync') !== null) onSyncWant(state, from, message.keys);
      return;
    default:
      // Every other type was handled by the callers above.
      assert(false, `chord: unhandled message ${message.type}`);
  }
}

function onItemsAck(
  state: ChordState,
  from: NodeId,
  rpc: number,
  versions: Parameters<typeof onHandoffAck>[2],
  keep: boolean[],
): void {
  const pending = state.pending.get(rpc);
  if (pending === undefined || pending.to !== from) return;
  state.pending.delete(rpc);
  heardFrom(state, from);
  const op = pending.op === null ? undefined : state.ops.get(pending.op);
  if (pending.kind === 'replicaPut' && op?.kind === 'store') onReplicaAck(state, op, from);
  else if (pending.kind === 'handoff' && op?.kind === 'handoff') onHandoffAck(state, op, versions, keep);
  else if (pending.kind === 'transfer' && op?.kind === 'leave') {
    onTransferAck(state, op, versions, (vnode) => sendLeaving(state, vnode));
  }
}

// ---------------------------------------------------------------------------------------------
// Client requests.

function onRequest(state: ChordState, ticket: ClientTicket, request: ChordRequest): void {
  switch (request.type) {
    case 'lookup': {
      if (!isJoined(state)) {
        replyError(state, ticket, 'NOT_JOINED', 'this node is not a ring member');
        return;
      }
      const purpose = { type: 'client' as const, ticket };
      const options = request.mode === undefined ? {} : { mode: request.mode };
      if (startLookup(state, keyId(state.ring, request.key), purpose, options) === null) {
        replyError(state, ticket, 'BUSY', 'too many operations in flight');
      }
      return;
    }
    case 'put':
      startPut(state, ticket, request.key, request.value);
      return;
    case 'get':
      startGet(state, ticket, request.key);
      return;
    case 'join':
      onJoinRequest(state, ticket, request.via);
      return;
    case 'leave':
      startLeave(state, ticket, (vnode) => sendLeaving(state, vnode));
      return;
    case 'status':
      reply(state, ticket, statusOf(state));
      return;
  }
}

function onJoinRequest(state: ChordState, ticket: ClientTicket, via: NodeId): void {
  if (!isValidAddress(state.config.addressing, via) || via === state.address) {
    replyError(state, ticket, 'INVALID', `cannot join through ${via}`);
    return;
  }
  if (state.vnodes.some((vnode) => vnode.status === 'leaving')) {
    replyError(state, ticket, 'BUSY', 'this node is still leaving');
    return;
  }
  const outside = state.vnodes.filter((vnode) => vnode.status === 'idle' || vnode.status === 'left');
  if (outside.length === 0) {
    replyError(state, ticket, 'ALREADY_JOINED', 'this node is already a member (or joining)');
    return;
  }
  state.joinSeeds = [via];
  for (const vnode of outside) {
    vnode.status = 'joining';
    vnode.nextJoinTick = state.tick + 1;
  }
  reply(state, ticket, { type: 'ok' });
}

export function statusOf(state: ChordState): StatusResponse {
  return {
    type: 'status',
    address: state.address,
    name: state.name,
    idBits: state.ring.bits,
    vnodes: state.vnodes.map((vnode) => {
      const fingers: { index: number; node: NodeRef }[] = [];
      let previous: NodeRef | null = null;
      vnode.fingers.forEach((finger, index) => {
        if (finger === null || finger === previous) return;
        previous = finger;
        fingers.push({ index, node: finger });
      });
      let primaryItems = 0;
      for (const stored of state.store.values()) if (primaryVnode(state, stored.keyId) === vnode) primaryItems++;
      return {
        self: vnode.self,
        status: vnode.status,
        pred: vnode.predecessor,
        successors: vnode.successors,
        fingers: fingers.slice(0, 256),
        primaryItems,
      };
    }),
    items: state.store.size,
    stats: { ...state.stats },
    recentRejections: state.rejections.map((reason) => reason.slice(0, 500)),
  };
}

// ---------------------------------------------------------------------------------------------
// Untrusted input.

/** Why `ref` cannot be a real node reference, or null. */
export function checkRef(state: ChordState, ref: NodeRef): string | null {
  if (!isRingId(state.ring, ref.id)) return `identifier ${ref.id} is outside the ${state.ring.bits}-bit ring`;
  if (!Number.isInteger(ref.vnode) || ref.vnode < 0 || ref.vnode >= VNODES_MAX) return `vnode index ${ref.vnode}`;
  if (!isValidAddress(state.config.addressing, ref.addr)) return `address ${ref.addr} is not valid`;
  const expected = nodeId(state.ring, addressName(state.config.addressing, ref.addr), ref.vnode);
  if (expected !== ref.id) {
    return `claims identifier ${ref.id.toString(16)} for ${addressName(state.config.addressing, ref.addr)}#${ref.vnode}, which hashes to ${expected.toString(16)}`;
  }
  return null;
}

function checkRefs(state: ChordState, refs: readonly NodeRef[]): string | null {
  for (const ref of refs) {
    const problem = checkRef(state, ref);
    if (problem !== null) return problem;
  }
  return null;
}

function checkLocalVnode(state: ChordState, vnode: number): string | null {
  return vnode < state.vnodes.length ? null : `no vnode ${vnode} here (this node runs ${state.vnodes.length})`;
}

export function checkMessage(state: ChordState, from: NodeId, message: ChordMessage): string | null {
  if (!isValidAddress(state.config.addressing, from)) return `sender ${from} is not a valid address`;
  switch (message.type) {
    case 'getPred':
    case 'ping':
      return checkLocalVnode(state, message.vnode);
    case 'notify':
      if (message.node.addr !== from) return `notify on behalf of another node (${message.node.addr})`;
      return checkLocalVnode(state, message.vnode) ?? checkRef(state, message.node);
    case 'leaving':
      if (message.node.addr !== from) return `leaving on behalf of another node (${message.node.addr})`;
      return (
        checkLocalVnode(state, message.vnode) ??
        checkRef(state, message.node) ??
        (message.pred === null ? null : checkRef(state, message.pred)) ??
        checkRefs(state, message.successors)
      );
    case 'predReply':
      return (message.pred === null ? null : checkRef(state, message.pred)) ?? checkRefs(state, message.successors);
    case 'stepReply':
    case 'routeDone':
      return checkRefs(state, message.nodes);
    case 'findStep':
      return isRingId(state.ring, message.target) ? null : `target ${message.target} is outside the ring`;
    case 'route':
      if (!isRingId(state.ring, message.target)) return `target ${message.target} is outside the ring`;
      if (!isValidAddress(state.config.addressing, message.origin)) return `origin ${message.origin} is not valid`;
      return message.hops > state.config.hopsMax ? `${message.hops} hops > max ${state.config.hopsMax}` : null;
    case 'putItems':
      return message.items.length > state.config.itemsPerMessageMax
        ? `${message.items.length} items > max ${state.config.itemsPerMessageMax}`
        : null;
    default:
      return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Invariants of one node (the simulator checks them after every step).

export function chordInvariants(state: ChordState): void {
  const r = state.config.successorListLength;
  for (const vnode of state.vnodes) {
    assert(vnode.fingers.length === state.ring.bits, `vnode ${vnode.index}: ${vnode.fingers.length} fingers`);
    if (vnode.status !== 'joined') continue;
    const successors = vnode.successors;
    assert(successors.length >= 1, `vnode ${vnode.index}: empty successor list`);
    assert(successors.length <= r, `vnode ${vnode.index}: ${successors.length} successors > r = ${r}`);
    const alone =
      successors.length === 1 && successors[0]!.addr === state.address && successors[0]!.vnode === vnode.index;
    for (let i = 0; i < successors.length; i++) {
      const node = successors[i]!;
      assert(alone || node !== vnode.self, `vnode ${vnode.index}: itself in its successor list`);
      for (let j = i + 1; j < successors.length; j++) {
        const other = successors[j]!;
        assert(other.addr !== node.addr || other.vnode !== node.vnode, `vnode ${vnode.index}: duplicate successor`);
      }
    }
  }
  assert(state.pending.size <= state.config.pendingRpcsMax, 'pending RPCs above the limit');
  assert(state.store.size <= state.config.itemsMax, 'store above its limit');
}

export const chordProtocol: Protocol<ChordState, ChordMessage, ChordRequest, ChordResponse, ChordConfig> = {
  name: 'chord',
  init: initChord,
  step: stepChord,
  invariants: chordInvariants,
};
