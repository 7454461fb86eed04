/**
 * `RingSim`: a small deterministic discrete-event driver for Chord at the paper's scale (10^4 nodes,
 * 10^5 lookups). The generic simulator (`@dsys/sim`) hosts at most 64 nodes and carries disk, clock
 * drift, codecs and per-step global checks that this evaluation does not need; this driver runs the
 * *same* `chordProtocol.init`/`step` (routing, stabilization, failure handling are not re-implemented)
 * on a plain event queue: per-node ticks, messages with a seeded uniform latency, kills (fail-stop)
 * and joins at any time. Seeded: one seed, one run.
 *
 * Measured on the development machine (2 cores, Node 20): about 1 µs of queue work per event on top
 * of the protocol's step; see README "Evaluation" for end-to-end numbers.
 */
import { assert, ClientId, type NodeId, RequestId, Rng, NodeId as toNodeId } from '@dsys/kit';
import type { ChordConfig } from '../config.js';
import type { ChordMessage, ChordRequest, ChordResponse } from '../messages.js';
import { chordProtocol } from '../protocol.js';
import type { ChordState } from '../state.js';

const TICK = 0;
const DELIVER = 1;
const REQUEST = 2;

interface QueuedEvent {
  time: number;
  seq: number;
  kind: number;
  to: number;
  from: number;
  incarnation: number;
  payload: ChordMessage | ChordRequest | null;
  requestId: number;
}

/** A binary min-heap on (time, seq): a total order, so equal times replay identically. */
class EventHeap {
  private readonly items: QueuedEvent[] = [];

  get size(): number {
    return this.items.length;
  }

  push(event: QueuedEvent): void {
    const items = this.items;
    items.push(event);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }

  peek(): QueuedEvent | undefined {
    return this.items[0];
  }

  pop(): QueuedEvent | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    items[0] = last;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < items.length && before(items[left]!, items[smallest]!)) smallest = left;
      if (right < items.length && before(items[right]!, items[smallest]!)) smallest = right;
      if (smallest === i) break;
      [items[i], items[smallest]] = [items[smallest]!, items[i]!];
      i = smallest;
    }
    return top;
  }
}

function before(a: QueuedEvent, b: QueuedEvent): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}

export interface RingSimOptions {
  readonly seed: number | bigint;
  readonly config: ChordConfig;
  /** Virtual ms between two ticks of one node. */
  readonly tickMs: number;
  /** One-way message latency, drawn uniformly in [min, max] ms per message. */
  readonly latencyMsMin: number;
  readonly latencyMsMax: number;
  /** False: no ticks at all (a frozen, stable ring answering lookups: no timeouts, no maintenance). */
  readonly ticks?: boolean;
  /** Run every node's invariants after each of its steps (slow; tests only). */
  readonly checkInvariants?: boolean;
}

export interface RequestHandle {
  readonly node: NodeId;
  readonly request: ChordRequest;
  readonly sentMs: number;
  response: ChordResponse | null;
  doneMs: number;
}

interface SimNode {
  state: ChordState | null;
  incarnation: number;
}

export class RingSim {
  readonly options: RingSimOptions;
  nowMs = 0;
  events = 0;
  messages = 0;
  private readonly heap = new EventHeap();
  private seq = 0;
  private readonly nodes: (SimNode | undefined)[] = [];
  private readonly netRng: Rng;
  private readonly root: Rng;
  private readonly requests = new Map<number, RequestHandle>();
  private requestNext = 1;
  private outstanding = 0;

  constructor(options: RingSimOptions) {
    assert(options.config.addressing === 'sim', 'RingSim: sim addressing only');
    this.options = options;
    this.root = Rng.fromSeed(options.seed);
    this.netRng = this.root.fork('net');
  }

  /** Starts node `address` with `config` overrides (e.g. bootstrap and seeds); it ticks from now on. */
  addNode(address: number, overrides: Partial<ChordConfig> = {}): ChordState {
    const existing = this.nodes[address];
    assert(existing === undefined || existing.state === null, `RingSim: n${address} is already up`);
    const incarnation = (existing?.incarnation ?? 0) + 1;
    const rng = this.root.fork(`node:${address}`).fork(`boot:${incarnation}`);
    const state = chordProtocol.init({
      id: toNodeId(address),
      peers: [],
      config: { ...this.options.config, ...overrides },
      rng,
      durable: { snapshot: null, records: [] },
      nowMs: this.nowMs,
    });
    this.nodes[address] = { state, incarnation };
    if (this.options.ticks === false) return state;
    const phase = rng.fork('phase').int(Math.max(1, Math.round(this.options.tickMs)));
    this.schedule(this.nowMs + 1 + phase, TICK, address, 0, incarnation, null, 0);
    return state;
  }

  /** Fail-stop: the node's memory is gone and messages to it are lost. */
  kill(address: number): void {
    const node = this.nodes[address];
    assert(node?.state != null, `RingSim: n${address} is not up`);
    node.state = null;
    node.incarnation++;
  }

  state(address: number): ChordState | null {
    return this.nodes[address]?.state ?? null;
  }

  /** Every live node's state, by address. */
  *liveStates(): Generator<ChordState> {
    for (const node of this.nodes) if (node?.state != null) yield node.state;
  }

  get liveCount(): number {
    let count = 0;
    for (const node of this.nodes) if (node?.state != null) count++;
    return count;
  }

  /** Sends a client request to `address`; the handle's `response` is set when the reply arrives. */
  request(address: number, request: ChordRequest): RequestHandle {
    const requestId = this.requestNext++;
    const handle: RequestHandle = { node: toNodeId(address), request, sentMs: this.nowMs, response: null, doneMs: 0 };
    this.requests.set(requestId, handle);
    this.outstanding++;
    this.schedule(this.nowMs, REQUEST, address, 0, 0, request, requestId);
    return handle;
  }

  get outstandingRequests(): number {
    return this.outstanding;
  }

  /** Runs events up to `nowMs + ms`. */
  runFor(ms: number): void {
    const deadline = this.nowMs + ms;
    while (this.step(deadline)) {}
    this.nowMs = Math.max(this.nowMs, deadline);
  }

  /** Runs until `done()` holds (checked every `everyMs` of virtual time) or `msMax` passes; returns done(). */
  runUntil(done: () => boolean, msMax: number, everyMs = 10): boolean {
    const deadline = this.nowMs + msMax;
    while (!done()) {
      if (this.nowMs >= deadline) return false;
      this.runFor(Math.min(everyMs, deadline - this.nowMs));
    }
    return true;
  }

  /** Runs until every request sent so far has its reply (or `msMax` passes). */
  drainRequests(msMax: number): boolean {
    return this.runUntil(() => this.outstanding === 0, msMax, 5);
  }

  private schedule(
    time: number,
    kind: number,
    to: number,
    from: number,
    incarnation: number,
    payload: ChordMessage | ChordRequest | null,
    requestId: number,
  ): void {
    this.heap.push({ time, seq: this.seq++, kind, to, from, incarnation, payload, requestId });
  }

  private step(deadline: number): boolean {
    const event = this.heap.peek();
    if (event === undefined || event.time > deadline) return false;
    this.heap.pop();
    this.nowMs = event.time;
    this.events++;
    const node = this.nodes[event.to];
    const state = node?.state ?? null;
    if (event.kind === TICK) {
      if (state === null || node!.incarnation !== event.incarnation) return true;
      this.schedule(event.time + this.options.tickMs, TICK, event.to, 0, event.incarnation, null, 0);
      this.run(event.to, state, { type: 'tick', nowMs: this.nowMs });
    } else if (event.kind === DELIVER) {
      if (state === null) return true;
      this.run(event.to, state, {
        type: 'receive',
        from: toNodeId(event.from),
        message: event.payload as ChordMessage,
      });
    } else {
      if (state === null) {
        this.finishRequest(event.requestId, { type: 'error', code: 'TIMEOUT', reason: 'node is down' });
        return true;
      }
      this.run(event.to, state, {
        type: 'request',
        client: ClientId(1),
        requestId: RequestId(event.requestId),
        request: event.payload as ChordRequest,
      });
    }
    return true;
  }

  private run(address: number, state: ChordState, event: Parameters<typeof chordProtocol.step>[1]): void {
    const effects = chordProtocol.step(state, event);
    if (this.options.checkInvariants === true) chordProtocol.invariants(state);
    const { latencyMsMin, latencyMsMax } = this.options;
    const spread = latencyMsMax - latencyMsMin;
    for (const effect of effects) {
      if (effect.type === 'send') {
        this.messages++;
        const latency = latencyMsMin + (spread > 0 ? this.netRng.float() * spread : 0);
        this.schedule(this.nowMs + latency, DELIVER, effect.to, address, 0, effect.message, 0);
      } else if (effect.type === 'reply') {
        this.finishRequest(effect.requestId, effect.response);
      }
    }
  }

  private finishRequest(requestId: number, response: ChordResponse): void {
    const handle = this.requests.get(requestId);
    if (handle === undefined) return;
    this.requests.delete(requestId);
    this.outstanding--;
    handle.response = response;
    handle.doneMs = this.nowMs;
  }
}

/** The node ids a RingSim run uses: 1..count. */
export function addresses(count: number): NodeId[] {
  return Array.from({ length: count }, (_, i) => toNodeId(i + 1));
}
