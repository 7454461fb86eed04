/**
 * A tiny protocol for testing the simulator itself (it must not depend on any real system):
 * - `append` persists one record (synced or not, with or without an ack) and replies after it;
 * - `compact` replaces the durable state with a snapshot of all values (`barrier`: hold later replies);
 * - `read` replies with the values the node holds;
 * - every `pingEveryTicks` ticks a node pings every peer; pings are answered with pongs.
 * Ticks record the local clock so drift is observable.
 */
import {
  assert,
  type ClientId,
  decode,
  type Effect,
  type Event,
  encode,
  type NodeId,
  type Protocol,
  type RequestId,
  s,
} from '@dsys/kit';
import { type CheckOutcome, type ClientContext, defineSimSystem, type SimSystem } from '../../src/index.js';

export const messageSchema = s.union('type', {
  ping: s.struct({ n: s.uint }),
  pong: s.struct({ n: s.uint }),
});
export const requestSchema = s.union('type', {
  append: s.struct({ value: s.string({ bytesMax: 64 }), sync: s.bool, ack: s.optional(s.uint) }),
  compact: s.struct({ barrier: s.bool }),
  read: s.struct({}),
});
export const responseSchema = s.union('type', {
  appended: s.struct({ count: s.uint }),
  compacted: s.struct({}),
  values: s.struct({ values: s.array(s.string({ bytesMax: 64 }), { itemsMax: 100_000 }) }),
});
const snapshotSchema = s.array(s.string({ bytesMax: 64 }), { itemsMax: 100_000 });

export type LedgerMessage = ReturnType<typeof messageSchema.read>;
export type LedgerRequest = ReturnType<typeof requestSchema.read>;
export type LedgerResponse = ReturnType<typeof responseSchema.read>;

export interface LedgerConfig {
  readonly pingEveryTicks: number;
}

export interface LedgerState {
  readonly id: NodeId;
  readonly peers: readonly NodeId[];
  readonly config: LedgerConfig;
  values: string[];
  ticks: number;
  tickTimesMs: number[];
  pingsReceived: number;
  pongsReceived: number;
  acks: number[];
  /** Debug: what init recovered. */
  readonly recoveredRecords: number;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

export const ledgerProtocol: Protocol<LedgerState, LedgerMessage, LedgerRequest, LedgerResponse, LedgerConfig> = {
  name: 'ledger',
  init(context) {
    const values: string[] = [];
    if (context.durable.snapshot !== null) {
      const decoded = decode(snapshotSchema, context.durable.snapshot);
      assert(decoded.ok, 'ledger: bad snapshot');
      values.push(...decoded.value);
    }
    for (const record of context.durable.records) values.push(textDecoder.decode(record));
    return {
      id: context.id,
      peers: context.peers,
      config: context.config,
      values,
      ticks: 0,
      tickTimesMs: [],
      pingsReceived: 0,
      pongsReceived: 0,
      acks: [],
      recoveredRecords: context.durable.records.length,
    };
  },
  step(state, event) {
    switch (event.type) {
      case 'tick':
        return onTick(state, event.nowMs);
      case 'receive':
        return onReceive(state, event.from, event.message);
      case 'request':
        return onRequest(state, event.client, event.requestId, event.request);
      case 'persisted':
        state.acks.push(event.ack);
        return [];
    }
  },
  invariants(state) {
    assert(state.tickTimesMs.length <= Math.min(64, state.ticks), 'ledger: tick bookkeeping');
  },
};

type Out = Effect<LedgerMessage, LedgerResponse>[];

function onTick(state: LedgerState, nowMs: number): Out {
  state.ticks++;
  if (state.tickTimesMs.length < 64) state.tickTimesMs.push(nowMs);
  const every = state.config.pingEveryTicks;
  if (every === 0 || state.ticks % every !== 0) return [];
  return state.peers
    .filter((peer) => peer !== state.id)
    .map((to) => ({ type: 'send', to, message: { type: 'ping', n: state.ticks } }));
}

function onReceive(state: LedgerState, from: NodeId, message: LedgerMessage): Out {
  if (message.type === 'ping') {
    state.pingsReceived++;
    return [{ type: 'send', to: from, message: { type: 'pong', n: message.n } }];
  }
  state.pongsReceived++;
  return [];
}

function onRequest(state: LedgerState, client: ClientId, requestId: RequestId, request: LedgerRequest): Out {
  switch (request.type) {
    case 'append': {
      state.values.push(request.value);
      const persist: Out[number] = {
        type: 'persist',
        records: [textEncoder.encode(request.value)],
        sync: request.sync,
        ...(request.ack === undefined ? {} : { ack: request.ack }),
      };
      return [
        persist,
        { type: 'reply', client, requestId, response: { type: 'appended', count: state.values.length } },
      ];
    }
    case 'compact':
      return [
        { type: 'compact', snapshot: encode(snapshotSchema, state.values), records: [], barrier: request.barrier },
        { type: 'reply', client, requestId, response: { type: 'compacted' } },
      ];
    case 'read':
      return [{ type: 'reply', client, requestId, response: { type: 'values', values: [...state.values] } }];
  }
}

/** Workload: each client appends synced values, waits for the reply (or a timeout), repeats. */
interface LedgerShared {
  acknowledged: Set<string>;
  completed: number;
  livenessCompleted: number;
}

function ledgerClient(context: ClientContext<LedgerRequest>, shared: LedgerShared) {
  let sequence = 0;
  // Exponential backoff: a timeout doubles the next timeout (up to 32x), a reply resets it, so a
  // slow network cannot starve the client forever.
  let timeouts = 0;
  let pending: { requestId: RequestId; value: string; timer: number } | null = null;
  const next = () => {
    if (context.phase() === 'done') return;
    const node = context.rng.pick(context.nodes);
    const value = `c${context.id}-${sequence++}`;
    const requestId = context.send(node, { type: 'append', value, sync: true });
    const timeoutMs = context.options.requestTimeoutMs * 2 ** Math.min(timeouts, 5);
    pending = { requestId, value, timer: context.setTimer(timeoutMs) };
  };
  return {
    onStart: next,
    onReply(_node: NodeId, requestId: RequestId, response: LedgerResponse) {
      if (pending === null || requestId !== pending.requestId || response.type !== 'appended') return;
      context.cancelTimer(pending.timer);
      shared.acknowledged.add(pending.value);
      shared.completed++;
      if (context.phase() === 'liveness') shared.livenessCompleted++;
      pending = null;
      timeouts = 0;
      context.setTimer(context.rng.int(context.options.thinkMsMax + 1));
    },
    onTimer(timer: number) {
      if (pending !== null && timer === pending.timer) {
        pending = null;
        timeouts++;
      }
      if (pending === null) next();
    },
  };
}

export function ledgerSystem(
  pingEveryTicks = 5,
): SimSystem<LedgerState, LedgerMessage, LedgerRequest, LedgerResponse, LedgerConfig, LedgerShared> {
  return defineSimSystem({
    name: 'ledger',
    description: 'test protocol: appends, pings, compaction',
    protocol: ledgerProtocol,
    codec: { message: messageSchema, request: requestSchema, response: responseSchema },
    config: () => ({ pingEveryTicks }),
    workload: {
      init: () => ({ acknowledged: new Set<string>(), completed: 0, livenessCompleted: 0 }),
      client: ledgerClient,
      check(shared): CheckOutcome {
        return { ok: true, summary: `${shared.completed} appends acknowledged` };
      },
      status: (shared) => `appends ${shared.completed}`,
    },
    converged: (_view, shared) => shared.livenessCompleted >= 3,
  });
}

export type LedgerEvent = Event<LedgerMessage, LedgerRequest>;
