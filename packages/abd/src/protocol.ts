/**
 * The ABD atomic register (Attiya, Bar-Noy, Dolev, "Sharing memory robustly in message-passing
 * systems", JACM 1995), multi-writer variant (Lynch & Shvartsman, FTCS 1997): a linearizable
 * read/write register over N replicas that tolerates any minority crashed or partitioned away,
 * with no leader.
 *
 * Every node is a replica, and any node coordinates the requests clients send it, in two phases:
 * 1. query: ask every replica for its (tag, value); wait for a majority; keep the maximum;
 * 2. store: send (tag', value') to every replica; wait for a majority of acks.
 *    - write(v): tag' = (max.counter + 1, me, incarnation, seq), value' = v;
 *    - read: tag' = max tag, value' = its value (the write-back: without it, two reads could see a
 *      new then an old value while a write is half done; Attiya et al. §3 "read ... writes back");
 * then reply. Any two majorities intersect, so phase 1 of a later operation sees every completed
 * phase 2 (the linearization argument of Lynch & Shvartsman §4).
 *
 * Durability: a replica acks a store only once a tag at least as new is fsynced (persist with an ack
 * number; the ack is sent on the `persisted` event), so a crash cannot un-store an acknowledged
 * write. Tags stay unique across restarts because the incarnation is fsynced at boot, before the
 * node coordinates anything (see `tagSchema`).
 *
 * Limits: operations in flight (`opsInflightMax`, beyond: `busy`), requests queued during boot,
 * acks waiting for the disk, and the log (compacted after `recordsMax` records).
 */
import {
  assert,
  type ClientId,
  DsError,
  type Durable,
  decode,
  describeDecodeError,
  type Effect,
  encode,
  type NodeContext,
  type NodeId,
  type Protocol,
  type RequestId,
  utf8ByteLength,
  Writer,
} from '@dsys/kit';
import {
  type AbdMessage,
  type AbdRequest,
  type AbdResponse,
  compareTags,
  recordSchema,
  snapshotSchema,
  TAG_ZERO,
  type Tag,
  VALUE_BYTES_MAX,
} from './messages.js';

/**
 * Deliberate bugs, for mutation testing: a harness that cannot fail proves nothing, so the tests
 * run these variants and require the checker to catch them.
 */
export type AbdMutation = 'none' | 'read-without-write-back' | 'quorum-of-one';

export interface AbdConfig {
  /** Resend a phase's message to replicas that have not answered after this many ticks. */
  readonly retransmitTicks: number;
  /** Abandon an operation after this many ticks (its client has long timed out). */
  readonly opTicksMax: number;
  /** Operations one coordinator runs at once; more are answered `busy`. */
  readonly opsInflightMax: number;
  /** Requests held while the node boots (its incarnation is not yet durable); more are `busy`. */
  readonly requestsQueuedMax: number;
  /** Store acks waiting for the disk; beyond this a store is dropped (its coordinator resends). */
  readonly acksWaitingMax: number;
  /** Compact the log into a snapshot after this many records. */
  readonly recordsMax: number;
  /** Largest value a write may carry, in UTF-8 bytes (at most `VALUE_BYTES_MAX`). */
  readonly valueBytesMax: number;
  readonly mutation: AbdMutation;
}

export const ABD_CONFIG_DEFAULT: AbdConfig = Object.freeze({
  retransmitTicks: 5,
  opTicksMax: 500,
  opsInflightMax: 64,
  requestsQueuedMax: 64,
  acksWaitingMax: 1024,
  recordsMax: 64,
  valueBytesMax: VALUE_BYTES_MAX,
  mutation: 'none',
});

export type AbdErrorDetail =
  | { readonly code: 'INVALID_CONFIG'; readonly field: string; readonly reason: string }
  | { readonly code: 'DURABLE_STATE_INVALID'; readonly reason: string };

export class AbdError extends DsError<AbdErrorDetail> {}

interface Operation {
  readonly seq: number;
  readonly client: ClientId;
  readonly requestId: RequestId;
  readonly request: AbdRequest;
  phase: 'query' | 'store';
  /** Replicas that answered the current phase. */
  readonly answered: Set<NodeId>;
  /** Phase 1: the maximum (tag, value) seen; phase 2: what is being stored. */
  tag: Tag;
  value: string | null;
  readonly startedTick: number;
  sentTick: number;
}

interface AckWaiting {
  readonly to: NodeId;
  readonly incarnation: number;
  readonly seq: number;
  /** The persist ack after which the stored tag is durable. */
  readonly ack: number;
}

interface Queued {
  readonly client: ClientId;
  readonly requestId: RequestId;
  readonly request: AbdRequest;
}

export interface AbdState {
  readonly id: NodeId;
  readonly peers: readonly NodeId[];
  readonly config: AbdConfig;
  /** Answers needed per phase: a majority (or 1 under the 'quorum-of-one' mutation). */
  readonly quorum: number;
  // Replica.
  tag: Tag;
  value: string | null;
  /** Persist ack that makes `tag` durable (0: durable since boot). */
  tagAck: number;
  /** `tag` changed in this step and goes into the step's durable write. */
  tagDirty: boolean;
  /** Highest persist ack reported durable. */
  durableAck: number;
  ackNext: number;
  readonly acksWaiting: AckWaiting[];
  recordsSinceSnapshot: number;
  // Coordinator.
  /** This boot's incarnation: recovered + 1, fsynced before the first operation starts. */
  readonly incarnation: number;
  bootAck: number;
  booted: boolean;
  readonly queued: Queued[];
  readonly ops: Map<number, Operation>;
  seqNext: number;
  ticks: number;
}

type Effects = Effect<AbdMessage, AbdResponse>[];

/**
 * Scratch buffer for encoding records: `encode` resets it and returns a copy, so it holds nothing
 * between calls (steps are synchronous). Saves a 256-byte allocation per durable write (measured:
 * about 4% of simulator time).
 */
const scratch = new Writer();

function validateConfig(config: AbdConfig): void {
  const positive = (field: keyof AbdConfig, value: number) => {
    if (!Number.isSafeInteger(value) || value < 1)
      throw new AbdError({ code: 'INVALID_CONFIG', field, reason: `must be a positive integer, got ${value}` });
  };
  positive('retransmitTicks', config.retransmitTicks);
  positive('opTicksMax', config.opTicksMax);
  positive('opsInflightMax', config.opsInflightMax);
  positive('requestsQueuedMax', config.requestsQueuedMax);
  positive('acksWaitingMax', config.acksWaitingMax);
  positive('recordsMax', config.recordsMax);
  positive('valueBytesMax', config.valueBytesMax);
  if (config.valueBytesMax > VALUE_BYTES_MAX)
    throw new AbdError({ code: 'INVALID_CONFIG', field: 'valueBytesMax', reason: `over ${VALUE_BYTES_MAX}` });
  if (config.retransmitTicks >= config.opTicksMax)
    throw new AbdError({ code: 'INVALID_CONFIG', field: 'retransmitTicks', reason: 'must be below opTicksMax' });
}

interface Recovered {
  incarnation: number;
  tag: Tag;
  value: string | null;
}

/** Rebuilds (incarnation, tag, value) from the snapshot and records; bad bytes are a typed error. */
export function recover(durable: Durable): Recovered {
  const state: Recovered = { incarnation: 0, tag: TAG_ZERO, value: null };
  const invalid = (reason: string) => new AbdError({ code: 'DURABLE_STATE_INVALID', reason });
  if (durable.snapshot !== null) {
    const snapshot = decode(snapshotSchema, durable.snapshot);
    if (!snapshot.ok) throw invalid(`snapshot: ${describeDecodeError(snapshot.error)}`);
    Object.assign(state, snapshot.value);
  }
  durable.records.forEach((bytes, index) => {
    const record = decode(recordSchema, bytes);
    if (!record.ok) throw invalid(`record ${index}: ${describeDecodeError(record.error)}`);
    const value = record.value;
    if (value.type === 'incarnation') state.incarnation = Math.max(state.incarnation, value.incarnation);
    else if (compareTags(value.tag, state.tag) > 0) {
      state.tag = value.tag;
      state.value = value.value;
    }
  });
  return state;
}

function init(context: NodeContext<AbdConfig>): AbdState {
  validateConfig(context.config);
  assert(context.peers.includes(context.id), 'abd: a node is one of its peers');
  const recovered = recover(context.durable);
  const majority = Math.floor(context.peers.length / 2) + 1;
  return {
    id: context.id,
    peers: context.peers,
    config: context.config,
    quorum: context.config.mutation === 'quorum-of-one' ? 1 : majority,
    tag: recovered.tag,
    value: recovered.value,
    tagAck: 0,
    tagDirty: false,
    durableAck: 0,
    ackNext: 1,
    acksWaiting: [],
    recordsSinceSnapshot: context.durable.records.length,
    incarnation: recovered.incarnation + 1,
    bootAck: 0,
    booted: false,
    queued: [],
    ops: new Map(),
    seqNext: 1,
    ticks: 0,
  };
}

/**
 * Every step ends with at most one durable write (persist or compaction), placed last so it holds
 * back no other effect. One write per step, numbered in issue order, on a FIFO disk: `persisted`
 * acks arrive in increasing order. (Two synced persists in one batch would break that: the second
 * waits behind the first's barrier while later steps issue theirs.)
 */
function step(state: AbdState, event: Parameters<AbdProtocol['step']>[1]): Effects {
  const effects: Effects = [];
  switch (event.type) {
    case 'tick':
      onTick(state, effects);
      break;
    case 'receive':
      onMessage(state, event.from, event.message, effects);
      break;
    case 'request':
      onRequest(state, { client: event.client, requestId: event.requestId, request: event.request }, effects);
      break;
    case 'persisted':
      onPersisted(state, event.ack, effects);
      break;
  }
  // Boot: the new incarnation becomes durable before the node coordinates anything.
  if (state.bootAck === 0 || state.tagDirty) effects.push(persistDurable(state));
  return effects;
}

/** The step's durable write: the boot record and/or the new tag, or a snapshot once the log is long. */
function persistDurable(state: AbdState): Effects[number] {
  const ack = state.ackNext++;
  const records: Uint8Array[] = [];
  if (state.bootAck === 0) {
    state.bootAck = ack;
    records.push(encode(recordSchema, { type: 'incarnation', incarnation: state.incarnation }, scratch));
  }
  if (state.tagDirty) {
    assert(state.tagAck === ack, 'abd: the stored tag waits for this write');
    state.tagDirty = false;
    records.push(encode(recordSchema, { type: 'store', tag: state.tag, value: state.value }, scratch));
  }
  state.recordsSinceSnapshot += records.length;
  if (state.recordsSinceSnapshot <= state.config.recordsMax) return { type: 'persist', records, sync: true, ack };
  state.recordsSinceSnapshot = 0;
  const snapshot = encode(
    snapshotSchema,
    { incarnation: state.incarnation, tag: state.tag, value: state.value },
    scratch,
  );
  return { type: 'compact', snapshot, records: [], barrier: true, ack };
}

// -----------------------------------------------------------------------------------------------
// Replica side.

function onMessage(state: AbdState, from: NodeId, message: AbdMessage, effects: Effects): void {
  switch (message.type) {
    case 'query':
      effects.push({
        type: 'send',
        to: from,
        message: {
          type: 'queryAck',
          incarnation: message.incarnation,
          seq: message.seq,
          tag: state.tag,
          value: state.value,
        },
      });
      return;
    case 'store':
      storeLocally(state, from, message, effects);
      return;
    case 'queryAck':
      onQueryAck(state, from, message, effects);
      return;
    case 'storeAck':
      onStoreAck(state, from, message.incarnation, message.seq, effects);
      return;
  }
}

/**
 * Stores (tag, value) if newer, and acks once a tag at least as new is durable. Acking an older
 * store immediately would be wrong while our newer tag's fsync is still in flight: a crash would
 * lose it, and the ack would vouch for a tag we no longer hold.
 */
function storeLocally(
  state: AbdState,
  from: NodeId,
  store: { incarnation: number; seq: number; tag: Tag; value: string | null },
  effects: Effects,
): void {
  if (compareTags(store.tag, state.tag) > 0) {
    state.tag = store.tag;
    state.value = store.value;
    // Durable with this step's write, which takes the next ack number (`persistDurable`).
    state.tagAck = state.ackNext;
    state.tagDirty = true;
  }
  if (state.tagAck <= state.durableAck) {
    ackStore(state, from, store.incarnation, store.seq, effects);
    return;
  }
  // Bounded: beyond the limit drop the ack; the coordinator retransmits the store.
  if (state.acksWaiting.length >= state.config.acksWaitingMax) return;
  state.acksWaiting.push({ to: from, incarnation: store.incarnation, seq: store.seq, ack: state.tagAck });
}

function ackStore(state: AbdState, to: NodeId, incarnation: number, seq: number, effects: Effects): void {
  if (to === state.id) {
    onStoreAck(state, to, incarnation, seq, effects);
    return;
  }
  effects.push({ type: 'send', to, message: { type: 'storeAck', incarnation, seq } });
}

function onPersisted(state: AbdState, ack: number, effects: Effects): void {
  assert(ack > state.durableAck, 'abd: persist acks arrive in increasing order');
  state.durableAck = ack;
  if (ack === state.bootAck) {
    state.booted = true;
    for (const queued of state.queued.splice(0)) onRequest(state, queued, effects);
  }
  let kept = 0;
  const waiting = state.acksWaiting;
  for (const entry of waiting.splice(0)) {
    if (entry.ack <= ack) ackStore(state, entry.to, entry.incarnation, entry.seq, effects);
    else waiting[kept++] = entry;
  }
}

// -----------------------------------------------------------------------------------------------
// Coordinator side.

function onRequest(state: AbdState, queued: Queued, effects: Effects): void {
  const { client, requestId, request } = queued;
  if (request.type === 'write' && utf8ByteLength(request.value) > state.config.valueBytesMax) {
    const reason = `value over ${state.config.valueBytesMax} bytes`;
    effects.push({ type: 'reply', client, requestId, response: { type: 'invalid', reason } });
    return;
  }
  if (!state.booted) {
    if (state.queued.length < state.config.requestsQueuedMax) state.queued.push(queued);
    else effects.push({ type: 'reply', client, requestId, response: { type: 'busy' } });
    return;
  }
  if (state.ops.size >= state.config.opsInflightMax) {
    effects.push({ type: 'reply', client, requestId, response: { type: 'busy' } });
    return;
  }
  const op: Operation = {
    seq: state.seqNext++,
    client,
    requestId,
    request,
    phase: 'query',
    answered: new Set(),
    tag: TAG_ZERO,
    value: null,
    startedTick: state.ticks,
    sentTick: state.ticks,
  };
  state.ops.set(op.seq, op);
  sendPhase(state, op, effects);
  // Our own replica answers at once (no message to ourselves).
  onQueryAck(
    state,
    state.id,
    { incarnation: state.incarnation, seq: op.seq, tag: state.tag, value: state.value },
    effects,
  );
}

/** Sends the current phase's message to every replica that has not answered (never to ourselves). */
function sendPhase(state: AbdState, op: Operation, effects: Effects): void {
  const message: AbdMessage =
    op.phase === 'query'
      ? { type: 'query', incarnation: state.incarnation, seq: op.seq }
      : { type: 'store', incarnation: state.incarnation, seq: op.seq, tag: op.tag, value: op.value };
  for (const peer of state.peers) {
    if (peer !== state.id && !op.answered.has(peer)) effects.push({ type: 'send', to: peer, message });
  }
  op.sentTick = state.ticks;
}

function ownOperation(state: AbdState, incarnation: number, seq: number, phase: Operation['phase']): Operation | null {
  // Answers to an earlier incarnation's operations are stale: that operation died with the crash.
  if (incarnation !== state.incarnation) return null;
  const op = state.ops.get(seq);
  return op !== undefined && op.phase === phase ? op : null;
}

function onQueryAck(
  state: AbdState,
  from: NodeId,
  answer: { incarnation: number; seq: number; tag: Tag; value: string | null },
  effects: Effects,
): void {
  const op = ownOperation(state, answer.incarnation, answer.seq, 'query');
  if (op === null || op.answered.has(from)) return;
  op.answered.add(from);
  if (compareTags(answer.tag, op.tag) > 0) {
    op.tag = answer.tag;
    op.value = answer.value;
  }
  if (op.answered.size < state.quorum) return;
  if (op.request.type === 'read' && state.config.mutation === 'read-without-write-back') {
    finish(state, op, effects);
    return;
  }
  if (op.request.type === 'write') {
    op.tag = { counter: op.tag.counter + 1, node: state.id, incarnation: state.incarnation, seq: op.seq };
    op.value = op.request.value;
  }
  op.phase = 'store';
  op.answered.clear();
  // Peers first, then our own store: its fsync (a barrier) must not hold back the sends.
  sendPhase(state, op, effects);
  storeLocally(state, state.id, { incarnation: state.incarnation, seq: op.seq, tag: op.tag, value: op.value }, effects);
}

function onStoreAck(state: AbdState, from: NodeId, incarnation: number, seq: number, effects: Effects): void {
  const op = ownOperation(state, incarnation, seq, 'store');
  if (op === null) return;
  op.answered.add(from);
  if (op.answered.size >= state.quorum) finish(state, op, effects);
}

function finish(state: AbdState, op: Operation, effects: Effects): void {
  state.ops.delete(op.seq);
  const response: AbdResponse = op.request.type === 'read' ? { type: 'read', value: op.value } : { type: 'write' };
  effects.push({ type: 'reply', client: op.client, requestId: op.requestId, response });
}

function onTick(state: AbdState, effects: Effects): void {
  state.ticks++;
  for (const op of state.ops.values()) {
    if (state.ticks - op.startedTick > state.config.opTicksMax) state.ops.delete(op.seq);
    else if (state.ticks - op.sentTick >= state.config.retransmitTicks) sendPhase(state, op, effects);
  }
}

// -----------------------------------------------------------------------------------------------

function invariants(state: AbdState): void {
  assert(state.quorum >= 1 && state.quorum <= state.peers.length, 'abd: quorum within the cluster');
  assert(state.ops.size <= state.config.opsInflightMax, 'abd: operations within opsInflightMax');
  assert(state.queued.length <= state.config.requestsQueuedMax, 'abd: queue within requestsQueuedMax');
  assert(state.acksWaiting.length <= state.config.acksWaitingMax, 'abd: waiting acks within acksWaitingMax');
  assert(state.durableAck < state.ackNext && state.tagAck < state.ackNext, 'abd: acks issued before durable');
  assert(!state.tagDirty, "abd: a new tag is always in its step's durable write");
  assert(state.booted === (state.bootAck !== 0 && state.bootAck <= state.durableAck), 'abd: booted iff boot durable');
  assert(state.booted || state.ops.size === 0, 'abd: no operation before boot');
  for (const op of state.ops.values()) {
    assert(op.answered.size < state.quorum, 'abd: an operation with a quorum of answers is still open');
    if (op.phase === 'store' && op.request.type === 'write') {
      assert(op.tag.node === state.id, 'abd: a write tag names its coordinator');
      assert(op.tag.incarnation === state.incarnation, 'abd: a write tag carries the current incarnation');
      assert(op.tag.seq === op.seq, 'abd: write tag carries its operation seq');
    }
  }
}

type AbdProtocol = Protocol<AbdState, AbdMessage, AbdRequest, AbdResponse, AbdConfig>;

export const abdProtocol: AbdProtocol = { name: 'abd', init, step, invariants };
