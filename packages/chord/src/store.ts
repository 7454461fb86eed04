/**
 * The key-value layer on top of Chord (what the paper leaves to the application, §3: "replication";
 * built the way DHash does it). Chord tells it which keys a node is responsible for; it keeps each
 * key on the key's first `replicas` successors on distinct physical nodes:
 *
 * - put: the coordinator looks the key up and sends it to the primary (the key's successor), which
 *   gives it a version `(seq, writer)` above every version it has seen (Lamport) and copies it to its
 *   next `replicas - 1` distinct successors; the put is acknowledged with the number of copies made.
 * - get: the coordinator asks the primary and the replicas, and returns the newest version.
 * - range change ("notify higher layer software", seed notes, join step 3): when a node gets a new
 *   predecessor inside its range, it copies the keys that moved to it.
 * - re-replication: every `replicateTicks` each primary offers the versions it holds to its replica
 *   targets, which ask for what they lack (after a failure the next successor is a new target). A copy
 *   held by a node that no primary has confirmed for `replicaLeaseTicks` is handed back to the key's
 *   primary, which says whether the holder is still one of its replicas; only then is it dropped, so a
 *   handoff never loses the last copy.
 * - leave: a leaving node sends its items to its successors before it goes.
 *
 * Versions are last-writer-wins; concurrent puts of one key keep one of them (this is a DHT, not a
 * linearizable store). With `persist`, every item is in the node's durable log, so a node that
 * crashes and restarts still has its copies.
 */
import { assert, decode, encode, type NodeId, s } from '@dsys/kit';
import {
  compareVersions,
  ITEMS_PER_MESSAGE_MAX,
  type Item,
  itemSchema,
  KEY_BYTES_MAX,
  type NodeRef,
  VERSIONS_PER_MESSAGE_MAX,
  type Version,
} from './messages.js';
import { inOpenClosed, keyId } from './ring.js';
import { isAlone, startLookup, suspect } from './routing.js';
import {
  addOp,
  type ChordState,
  type ClientTicket,
  expect,
  type GetOp,
  type HandoffOp,
  isJoined,
  isSuspected,
  type LeaveOp,
  newOpId,
  nextPeriod,
  type Pending,
  type PutOp,
  reply,
  replyError,
  type StoredItem,
  type StoreOp,
  send,
  type Vnode,
} from './state.js';

// ---------------------------------------------------------------------------------------------
// Durable records.

/** A node's name (its address, `host:port` or `n<k>`): a data directory belongs to one identity. */
const nameSchema = s.string({ bytesMax: 64 });

export const recordSchema = s.union('type', {
  item: itemSchema,
  remove: s.struct({ key: s.string({ bytesMax: KEY_BYTES_MAX }) }),
  /** Written (synced) when the node first joins or creates a ring. */
  member: s.struct({ name: nameSchema }),
});
export const snapshotSchema = s.struct({
  name: nameSchema,
  member: s.bool,
  items: s.array(itemSchema, { itemsMax: 10_000_000 }),
});

function persist(state: ChordState, record: Parameters<typeof recordSchema.encode>[1], sync = false): void {
  if (!state.config.persist) return;
  state.out.push({ type: 'persist', records: [encode(recordSchema, record)], sync });
  state.records++;
}

/** A barrier: effects after it wait until everything persisted before is durable. */
function durableBarrier(state: ChordState): void {
  if (state.config.persist) state.out.push({ type: 'persist', records: [], sync: true });
}

export function persistMember(state: ChordState): void {
  if (state.member) return;
  state.member = true;
  // Synced: a node that forgot it had joined would found a second ring after a crash.
  persist(state, { type: 'member', name: state.name }, true);
}

export type RecoveryProblem =
  | { readonly code: 'CORRUPT_LOG'; readonly reason: string }
  | { readonly code: 'IDENTITY_MISMATCH'; readonly reason: string };

/**
 * The name of the node that wrote this durable state (null when it never joined). Pure, so that a
 * real host can read it before it listens: a restarted node takes back the address it had, which is
 * its identity (its ring identifiers are hashes of it).
 */
export function recoveredName(snapshot: Uint8Array | null, records: readonly Uint8Array[]): string | null {
  let name: string | null = null;
  if (snapshot !== null) {
    const decoded = decode(snapshotSchema, snapshot);
    if (decoded.ok) name = decoded.value.name;
  }
  for (const bytes of records) {
    const decoded = decode(recordSchema, bytes);
    if (decoded.ok && decoded.value.type === 'member') name = decoded.value.name;
  }
  return name;
}

/** Rebuilds the store from a snapshot and the records after it (kit `Durable`). */
export function recoverStore(
  state: ChordState,
  snapshot: Uint8Array | null,
  records: readonly Uint8Array[],
): RecoveryProblem | null {
  const names: string[] = [];
  if (snapshot !== null) {
    const decoded = decode(snapshotSchema, snapshot);
    if (!decoded.ok) return { code: 'CORRUPT_LOG', reason: `snapshot does not decode: ${decoded.error.code}` };
    state.member = decoded.value.member;
    if (decoded.value.member) names.push(decoded.value.name);
    for (const item of decoded.value.items) storeLocal(state, item);
  }
  for (const bytes of records) {
    const decoded = decode(recordSchema, bytes);
    if (!decoded.ok) return { code: 'CORRUPT_LOG', reason: `log record does not decode: ${decoded.error.code}` };
    const record = decoded.value;
    if (record.type === 'member') {
      state.member = true;
      names.push(record.name);
    } else if (record.type === 'remove') state.store.delete(record.key);
    else storeLocal(state, { key: record.key, value: record.value, seq: record.seq, writer: record.writer });
  }
  const other = names.find((name) => name !== state.name);
  if (other !== undefined) {
    return { code: 'IDENTITY_MISMATCH', reason: `the durable state belongs to ${other}, this node is ${state.name}` };
  }
  state.records = records.length;
  return null;
}

/** Replaces the log with a snapshot once it has grown long (kit `compact` effect). */
export function maybeCompact(state: ChordState): void {
  if (!state.config.persist || state.records < state.config.compactRecordsMax) return;
  const items: Item[] = [];
  for (const stored of state.store.values()) items.push(toItem(stored));
  const snapshot = encode(snapshotSchema, { name: state.name, member: state.member, items });
  state.out.push({ type: 'compact', snapshot, records: [], barrier: true });
  state.records = 0;
}

function storeLocal(state: ChordState, item: Item): StoredItem {
  const existing = state.store.get(item.key);
  if (existing !== undefined) {
    existing.value = item.value;
    existing.seq = item.seq;
    existing.writer = item.writer;
    existing.confirmedTick = state.tick;
    return existing;
  }
  const stored: StoredItem = {
    key: item.key,
    keyId: keyId(state.ring, item.key),
    value: item.value,
    seq: item.seq,
    writer: item.writer,
    confirmedTick: state.tick,
  };
  state.store.set(item.key, stored);
  if (item.seq > state.lamport) state.lamport = item.seq;
  return stored;
}

/** Keeps `item` if it is newer than the local copy; returns whether it changed anything. */
function mergeItem(state: ChordState, item: Item): boolean {
  if (item.seq > state.lamport) state.lamport = item.seq;
  const existing = state.store.get(item.key);
  if (existing !== undefined && compareVersions(item, existing) <= 0) return false;
  if (existing === undefined && state.store.size >= state.config.itemsMax) return false;
  storeLocal(state, item);
  persist(state, { type: 'item', ...item });
  return true;
}

function removeLocal(state: ChordState, key: string): void {
  if (!state.store.delete(key)) return;
  persist(state, { type: 'remove', key });
}

function toItem(stored: StoredItem): Item {
  return { key: stored.key, value: stored.value, seq: stored.seq, writer: stored.writer };
}

function toVersion(stored: { key: string; seq: number; writer: number }): Version {
  return { key: stored.key, seq: stored.seq, writer: stored.writer };
}

// ---------------------------------------------------------------------------------------------
// Responsibility.

/** The local vnode that is the key's successor (key in (predecessor, n]), if any. */
export function primaryVnode(state: ChordState, id: bigint): Vnode | null {
  for (const vnode of state.vnodes) {
    if (vnode.status !== 'joined') continue;
    // Alone on the ring (and not merely cut off from it): the successor of every key (TON Fig. 5).
    if (vnode.predecessor === null && isAlone(vnode) && !vnode.isolated) return vnode;
    if (vnode.predecessor === null) continue;
    if (inOpenClosed(id, vnode.predecessor.id, vnode.self.id)) return vnode;
  }
  return null;
}

/** The next distinct physical nodes after `vnode` (its successor list), not this node, not suspected. */
export function replicaTargets(state: ChordState, vnode: Vnode, count: number): NodeId[] {
  const targets: NodeId[] = [];
  for (const node of vnode.successors) {
    if (targets.length >= count) break;
    if (node.addr === state.address || isSuspected(state, node.addr) || targets.includes(node.addr)) continue;
    targets.push(node.addr);
  }
  return targets;
}

// ---------------------------------------------------------------------------------------------
// put

export function startPut(state: ChordState, ticket: ClientTicket | null, key: string, value: Uint8Array): void {
  if (!isJoined(state)) {
    if (ticket !== null) replyError(state, ticket, 'NOT_JOINED', 'this node is not a ring member');
    return;
  }
  const op: PutOp = {
    kind: 'put',
    id: newOpId(state),
    ticket,
    key,
    keyId: keyId(state.ring, key),
    value,
    deadlineTick: state.tick + state.config.operationTimeoutTicks,
    attempts: 0,
  };
  addOp(state, op);
  lookupFor(state, op);
}

const ATTEMPTS_MAX = 4;

function lookupFor(state: ChordState, op: PutOp | GetOp | HandoffOp): void {
  const lookup = startLookup(state, op.kind === 'handoff' ? keyId(state.ring, op.key) : op.keyId, {
    type: 'op',
    op: op.id,
  });
  if (lookup === null) endOp(state, op, 'BUSY', 'too many operations in flight');
}

/** A lookup started for a put, get or handoff ended. */
export function onOpLookup(state: ChordState, op: PutOp | GetOp | HandoffOp, nodes: NodeRef[] | null, reason: string) {
  if (nodes === null) {
    endOp(state, op, 'LOOKUP_FAILED', reason);
    return;
  }
  if (op.kind === 'put') sendStore(state, op, nodes[0]!);
  else if (op.kind === 'get') sendFetches(state, op, nodes);
  else sendHandoff(state, op, nodes[0]!);
}

function sendStore(state: ChordState, op: PutOp, primary: NodeRef): void {
  const rpc = expect(state, primary.addr, 'store', { op: op.id });
  if (rpc === null) {
    endOp(state, op, 'BUSY', 'too many RPCs in flight');
    return;
  }
  send(state, primary.addr, { type: 'store', rpc, key: op.key, value: op.value });
}

export function onStoreReply(
  state: ChordState,
  op: PutOp,
  message: { outcome: 'ok' | 'notResponsible' | 'failed'; seq: number; writer: number; replicas: number },
): void {
  if (message.outcome === 'ok') {
    state.ops.delete(op.id);
    if (op.ticket !== null) {
      reply(state, op.ticket, { type: 'put', seq: message.seq, writer: message.writer, replicas: message.replicas });
    }
    return;
  }
  retryOrEnd(state, op, message.outcome === 'notResponsible' ? 'the primary is not responsible yet' : 'store failed');
}

/** Looks the key up again (the ring may have changed), up to ATTEMPTS_MAX times. */
function retryOrEnd(state: ChordState, op: PutOp | GetOp, reason: string): void {
  op.attempts++;
  if (op.attempts >= ATTEMPTS_MAX) {
    endOp(state, op, 'LOOKUP_FAILED', `${reason} after ${op.attempts} attempts`);
    return;
  }
  if (op.kind === 'get') {
    op.outstanding = 0;
    op.done = false;
  }
  lookupFor(state, op);
}

export function onOpRpcTimeout(state: ChordState, pending: Pending, op: PutOp | GetOp | HandoffOp): void {
  suspect(state, pending.to);
  if (op.kind === 'put') retryOrEnd(state, op, 'the primary did not answer');
  else if (op.kind === 'get') onFetchDone(state, op, null, false);
  else endHandoff(state, op);
}

/** Ends an operation, answering its client (if any) with an error. */
export function endOp(
  state: ChordState,
  op: PutOp | GetOp | HandoffOp | LeaveOp | StoreOp,
  code: 'LOOKUP_FAILED' | 'TIMEOUT' | 'BUSY' | 'REPLICATION_FAILED',
  reason: string,
): void {
  state.ops.delete(op.id);
  if (op.kind === 'handoff') state.handoffKeys.delete(op.key);
  if ((op.kind === 'put' || op.kind === 'get' || op.kind === 'leave') && op.ticket !== null) {
    replyError(state, op.ticket, code, reason);
  }
}

// ---------------------------------------------------------------------------------------------
// At the primary: store and replicate.

export function onStore(state: ChordState, from: NodeId, rpc: number, key: string, value: Uint8Array): void {
  const primary = primaryVnode(state, keyId(state.ring, key));
  if (primary === null) {
    send(state, from, { type: 'storeReply', rpc, outcome: 'notResponsible', seq: 0, writer: 0, replicas: 0 });
    return;
  }
  const existing = state.store.get(key);
  const seq = Math.max(existing?.seq ?? 0, state.lamport) + 1;
  const item: Item = { key, value, seq, writer: state.address };
  mergeItem(state, item);
  const wanted = state.config.replicas - 1;
  const all = replicaTargets(state, primary, state.config.successorListLength);
  const op: StoreOp = {
    kind: 'store',
    id: newOpId(state),
    coordinator: from,
    coordinatorRpc: rpc,
    item,
    spares: all.slice(wanted),
    outstanding: 0,
    acked: new Set(),
    deadlineTick: state.tick + state.config.operationTimeoutTicks,
  };
  addOp(state, op);
  for (const target of all.slice(0, wanted)) sendReplica(state, op, target);
  finishStoreIfDone(state, op);
}

function sendReplica(state: ChordState, op: StoreOp, target: NodeId): void {
  const rpc = expect(state, target, 'replicaPut', { op: op.id });
  if (rpc === null) return;
  op.outstanding++;
  send(state, target, { type: 'putItems', rpc, handoff: false, items: [op.item] });
}

export function onReplicaAck(state: ChordState, op: StoreOp, from: NodeId): void {
  op.outstanding--;
  op.acked.add(from);
  finishStoreIfDone(state, op);
}

export function onReplicaTimeout(state: ChordState, op: StoreOp, to: NodeId): void {
  suspect(state, to);
  op.outstanding--;
  const spare = op.spares.shift();
  if (spare !== undefined && !op.acked.has(spare)) sendReplica(state, op, spare);
  finishStoreIfDone(state, op);
}

export function expireStore(state: ChordState, op: StoreOp): void {
  op.outstanding = 0;
  op.spares = [];
  finishStoreIfDone(state, op);
}

function finishStoreIfDone(state: ChordState, op: StoreOp): void {
  if (op.outstanding > 0) return;
  state.ops.delete(op.id);
  durableBarrier(state);
  send(state, op.coordinator, {
    type: 'storeReply',
    rpc: op.coordinatorRpc,
    outcome: 'ok',
    seq: op.item.seq,
    writer: op.item.writer,
    replicas: 1 + op.acked.size,
  });
}

/** At a replica (or a primary receiving a handoff or a transfer): merge, confirm, acknowledge. */
export function onPutItems(state: ChordState, from: NodeId, rpc: number, handoff: boolean, items: Item[]): void {
  const versions: Version[] = [];
  const keep: boolean[] = [];
  for (const item of items) {
    mergeItem(state, item);
    const stored = state.store.get(item.key);
    if (stored === undefined) {
      // Full store: report version 0 so the sender keeps its copy.
      versions.push({ key: item.key, seq: 0, writer: 0 });
      keep.push(true);
      continue;
    }
    stored.confirmedTick = state.tick;
    versions.push(toVersion(stored));
    keep.push(!handoff || shouldKeep(state, stored, from));
  }
  durableBarrier(state);
  send(state, from, { type: 'itemsAck', rpc, versions, keep });
}

/** Handoff: the sender keeps its copy unless this node is the key's primary and the sender is not a replica. */
function shouldKeep(state: ChordState, stored: StoredItem, holder: NodeId): boolean {
  const primary = primaryVnode(state, stored.keyId);
  if (primary === null) return true;
  return replicaTargets(state, primary, state.config.replicas - 1).includes(holder);
}

// ---------------------------------------------------------------------------------------------
// get

export function startGet(state: ChordState, ticket: ClientTicket | null, key: string): void {
  if (!isJoined(state)) {
    if (ticket !== null) replyError(state, ticket, 'NOT_JOINED', 'this node is not a ring member');
    return;
  }
  const op: GetOp = {
    kind: 'get',
    id: newOpId(state),
    ticket,
    key,
    keyId: keyId(state.ring, key),
    deadlineTick: state.tick + state.config.operationTimeoutTicks,
    attempts: 0,
    outstanding: 0,
    best: null,
    done: false,
  };
  addOp(state, op);
  lookupFor(state, op);
}

/** Asks the key's first `replicas` distinct successors at once. */
function sendFetches(state: ChordState, op: GetOp, nodes: NodeRef[]): void {
  const asked: NodeId[] = [];
  for (const node of nodes) {
    if (asked.length >= state.config.replicas) break;
    if (asked.includes(node.addr) || isSuspected(state, node.addr)) continue;
    const rpc = expect(state, node.addr, 'fetch', { op: op.id });
    if (rpc === null) break;
    asked.push(node.addr);
    op.outstanding++;
    send(state, node.addr, { type: 'fetch', rpc, key: op.key });
  }
  if (asked.length === 0) retryOrEnd(state, op, 'no live replica to ask');
}

export function onFetch(state: ChordState, from: NodeId, rpc: number, key: string): void {
  const stored = state.store.get(key);
  const responsible = primaryVnode(state, keyId(state.ring, key)) !== null;
  send(state, from, { type: 'fetchReply', rpc, responsible, item: stored === undefined ? null : toItem(stored) });
}

/**
 * One replica answered (`responsible`: it is the key's primary by its own tables) or timed out
 * (`item` null, `responsible` false). The newest version found decides. "Not found" needs the
 * primary's word: a lookup answered from stale tables (swarm seed 0x195c7c9847c1cfc6: a node whose
 * successors had all timed out answered, alone, that it was every key's successor) can name nodes
 * that never held the key, and their silence must not read as the key's absence. Without the
 * primary's answer the get looks the key up again.
 */
export function onFetchDone(state: ChordState, op: GetOp, item: Item | null, responsible: boolean): void {
  op.outstanding--;
  if (responsible || item !== null) op.done = true;
  if (item !== null && (op.best === null || compareVersions(item, op.best) > 0)) op.best = item;
  if (op.outstanding > 0) return;
  if (!op.done) {
    retryOrEnd(state, op, "neither the key's primary nor a copy answered");
    return;
  }
  state.ops.delete(op.id);
  if (op.ticket === null) return;
  const best = op.best;
  reply(state, op.ticket, {
    type: 'get',
    found: best !== null,
    value: best === null ? null : best.value,
    seq: best?.seq ?? 0,
    writer: best?.writer ?? 0,
  });
}

// ---------------------------------------------------------------------------------------------
// Range changes and re-replication.

/**
 * The "notify higher layer software" hook (seed notes, join step 3): `vnode`'s predecessor changed
 * from `old` to `next`, so it is now responsible for (next, n]. When the new predecessor lies inside
 * the old range, the keys in (old, next] belong to the newcomer: copy them there (this node stays a
 * replica of them, so it keeps its copy).
 */
export function onRangeChange(state: ChordState, vnode: Vnode, old: NodeRef | null, next: NodeRef | null): void {
  state.stats.rangeChanges++;
  state.rangeEvents.push({ vnode: vnode.index, from: next?.id ?? null, to: vnode.self.id });
  if (state.rangeEvents.length > RANGE_EVENTS_KEPT) state.rangeEvents.shift();
  if (old === null || next === null || next.addr === state.address) return;
  if (!inOpenClosed(next.id, old.id, vnode.self.id)) return;
  const moved: Item[] = [];
  for (const stored of state.store.values()) {
    if (inOpenClosed(stored.keyId, old.id, next.id)) moved.push(toItem(stored));
  }
  sendItems(state, next.addr, moved, 'transfer', null);
  state.stats.itemsTransferred += moved.length;
}

export const RANGE_EVENTS_KEPT = 64;

function sendItems(state: ChordState, to: NodeId, items: Item[], kind: 'transfer' | 'push', op: LeaveOp | null): void {
  const chunk = Math.min(state.config.itemsPerMessageMax, ITEMS_PER_MESSAGE_MAX);
  for (let start = 0; start < items.length; start += chunk) {
    const rpc = expect(state, to, kind, op === null ? {} : { op: op.id });
    if (rpc === null) return;
    if (op !== null) op.outstanding++;
    send(state, to, { type: 'putItems', rpc, handoff: false, items: items.slice(start, start + chunk) });
  }
}

/** Every `replicateTicks`: primaries offer their versions to their replicas; stale copies go home. */
export function replicate(state: ChordState): void {
  state.nextReplicateTick = nextPeriod(state, state.config.replicateTicks);
  if (!isJoined(state) || state.store.size === 0) return;
  offerToReplicas(state);
  handOffStale(state);
  maybeCompact(state);
}

function offerToReplicas(state: ChordState): void {
  for (const vnode of state.vnodes) {
    if (vnode.status !== 'joined' || vnode.predecessor === null) continue;
    const entries: Version[] = [];
    for (const stored of state.store.values()) {
      if (!inOpenClosed(stored.keyId, vnode.predecessor.id, vnode.self.id)) continue;
      stored.confirmedTick = state.tick;
      entries.push(toVersion(stored));
    }
    if (entries.length === 0) continue;
    for (const target of replicaTargets(state, vnode, state.config.replicas - 1)) {
      for (let start = 0; start < entries.length; start += VERSIONS_PER_MESSAGE_MAX) {
        const rpc = expect(state, target, 'sync');
        if (rpc === null) return;
        send(state, target, {
          type: 'syncOffer',
          rpc,
          entries: entries.slice(start, start + VERSIONS_PER_MESSAGE_MAX),
        });
      }
    }
  }
}

export function onSyncOffer(state: ChordState, from: NodeId, rpc: number, entries: Version[]): void {
  const keys: string[] = [];
  const newer: Item[] = [];
  for (const entry of entries) {
    const stored = state.store.get(entry.key);
    if (stored === undefined || compareVersions(stored, entry) < 0) {
      keys.push(entry.key);
      continue;
    }
    stored.confirmedTick = state.tick;
    // This replica has a newer version than its primary (the primary changed since the write):
    // send it back, so that every copy converges to the newest.
    if (compareVersions(stored, entry) > 0) newer.push(toItem(stored));
  }
  send(state, from, { type: 'syncWant', rpc, keys });
  sendItems(state, from, newer, 'push', null);
}

export function onSyncWant(state: ChordState, from: NodeId, keys: string[]): void {
  const items: Item[] = [];
  for (const key of keys) {
    const stored = state.store.get(key);
    if (stored !== undefined) items.push(toItem(stored));
  }
  sendItems(state, from, items, 'push', null);
}

function handOffStale(state: ChordState): void {
  let started = 0;
  for (const stored of state.store.values()) {
    if (started >= state.config.handoffItemsMax || state.ops.size >= state.config.operationsMax) return;
    if (state.tick - stored.confirmedTick <= state.config.replicaLeaseTicks) continue;
    if (state.handoffKeys.has(stored.key)) continue;
    if (primaryVnode(state, stored.keyId) !== null) {
      stored.confirmedTick = state.tick;
      continue;
    }
    const op: HandoffOp = {
      kind: 'handoff',
      id: newOpId(state),
      key: stored.key,
      seq: stored.seq,
      writer: stored.writer,
      startTick: state.tick,
      deadlineTick: state.tick + state.config.operationTimeoutTicks,
    };
    addOp(state, op);
    state.handoffKeys.add(stored.key);
    started++;
    lookupFor(state, op);
  }
}

function sendHandoff(state: ChordState, op: HandoffOp, primary: NodeRef): void {
  const stored = state.store.get(op.key);
  if (stored === undefined || primary.addr === state.address) {
    if (stored !== undefined) stored.confirmedTick = state.tick;
    endHandoff(state, op);
    return;
  }
  const rpc = expect(state, primary.addr, 'handoff', { op: op.id });
  if (rpc === null) {
    endHandoff(state, op);
    return;
  }
  send(state, primary.addr, { type: 'putItems', rpc, handoff: true, items: [toItem(stored)] });
}

function endHandoff(state: ChordState, op: HandoffOp): void {
  state.ops.delete(op.id);
  state.handoffKeys.delete(op.key);
}

/** The primary answered a handoff: drop the copy only if it holds a version at least as new and says so. */
export function onHandoffAck(state: ChordState, op: HandoffOp, versions: Version[], keep: boolean[]): void {
  endHandoff(state, op);
  const version = versions[0];
  const stored = state.store.get(op.key);
  if (version === undefined || stored === undefined || version.key !== op.key) return;
  if (keep[0] !== false) {
    stored.confirmedTick = state.tick;
    return;
  }
  const unchanged = stored.seq === op.seq && stored.writer === op.writer && stored.confirmedTick <= op.startTick;
  if (unchanged && compareVersions(version, stored) >= 0) removeLocal(state, op.key);
}

// ---------------------------------------------------------------------------------------------
// Graceful leave (TON §IV.E.4): hand every item to the successors first; only when every transfer is
// acknowledged say goodbye (stabilize.ts `sendLeaving`) and drop the items. A transfer that is not
// acknowledged abandons the leave: the node stays a member rather than lose the only copy it may hold.

const LEAVE_ROUNDS_MAX = 3;

export function startLeave(state: ChordState, ticket: ClientTicket | null, sendLeaving: (vnode: Vnode) => void) {
  if (!state.vnodes.some((vnode) => vnode.status === 'joined')) {
    if (ticket !== null) replyError(state, ticket, 'NOT_JOINED', 'this node is not a ring member');
    return;
  }
  if (state.ops.size >= state.config.operationsMax) {
    if (ticket !== null) replyError(state, ticket, 'BUSY', 'too many operations in flight');
    return;
  }
  const op: LeaveOp = {
    kind: 'leave',
    id: newOpId(state),
    ticket,
    outstanding: 0,
    deadlineTick: state.tick + state.config.operationTimeoutTicks,
    failed: false,
    rounds: 0,
    handedOver: new Map(),
  };
  addOp(state, op);
  leaveRound(state, op, sendLeaving);
}

/** Sends every item not yet handed over at its current version; commits the leave when there is none. */
function leaveRound(state: ChordState, op: LeaveOp, sendLeaving: (vnode: Vnode) => void): void {
  const members = state.vnodes.filter((vnode) => vnode.status === 'joined');
  const byTarget = new Map<NodeId, Item[]>();
  for (const stored of state.store.values()) {
    const given = op.handedOver.get(stored.key);
    if (given !== undefined && compareVersions(given, stored) >= 0) continue;
    const heir = members.length === 0 ? null : heirOf(state, members, stored.keyId);
    if (heir === null) {
      op.failed = true;
      continue;
    }
    const items = byTarget.get(heir) ?? [];
    items.push(toItem(stored));
    byTarget.set(heir, items);
  }
  if (op.failed) {
    abandonLeave(state, op, 'no live successor to hand the keys to');
    return;
  }
  if (byTarget.size === 0) {
    commitLeave(state, op, sendLeaving);
    return;
  }
  op.rounds++;
  if (op.rounds > LEAVE_ROUNDS_MAX) {
    abandonLeave(state, op, `keys kept changing during ${LEAVE_ROUNDS_MAX} transfer rounds`);
    return;
  }
  for (const [target, items] of byTarget) sendItems(state, target, items, 'transfer', op);
}

/** The first off-node successor of the local vnode that follows `id` most closely. */
function heirOf(state: ChordState, members: readonly Vnode[], id: bigint): NodeId | null {
  let owner: Vnode | null = null;
  let best = state.ring.size;
  for (const vnode of members) {
    const dist = (vnode.self.id - id) & state.ring.mask;
    if (dist < best) {
      best = dist;
      owner = vnode;
    }
  }
  assert(owner !== null, 'heirOf: no member vnode');
  for (const node of owner.successors) {
    if (node.addr !== state.address && !isSuspected(state, node.addr)) return node.addr;
  }
  return null;
}

export function onTransferAck(
  state: ChordState,
  op: LeaveOp,
  versions: readonly Version[] | null,
  sendLeaving: (vnode: Vnode) => void,
): void {
  op.outstanding--;
  if (versions === null) op.failed = true;
  else for (const version of versions) if (version.seq > 0) op.handedOver.set(version.key, version);
  if (op.outstanding > 0) return;
  if (op.failed) abandonLeave(state, op, 'a successor did not acknowledge the hand-over');
  else leaveRound(state, op, sendLeaving);
}

function commitLeave(state: ChordState, op: LeaveOp, sendLeaving: (vnode: Vnode) => void): void {
  state.ops.delete(op.id);
  for (const vnode of state.vnodes) {
    if (vnode.status === 'joined') sendLeaving(vnode);
    if (vnode.status === 'joined' || vnode.status === 'joining') {
      vnode.status = 'left';
      vnode.predecessor = null;
      vnode.successors = [vnode.self];
      vnode.fingers.fill(null);
    }
  }
  for (const key of [...state.store.keys()]) removeLocal(state, key);
  durableBarrier(state);
  if (op.ticket !== null) reply(state, op.ticket, { type: 'ok' });
}

export function abandonLeave(state: ChordState, op: LeaveOp, reason: string): void {
  state.ops.delete(op.id);
  if (op.ticket !== null) replyError(state, op.ticket, 'BUSY', `leave abandoned, still a member: ${reason}`);
}
