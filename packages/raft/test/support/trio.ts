/**
 * Three `KvNode`s wired by hand for unit tests: messages are delivered only when the test says so,
 * storage acknowledges at once, replies are kept by request id. n1 times out first and leads.
 */
import assert from 'node:assert/strict';
import { ClientId, type Effect, NodeId, RequestId, Rng } from '@dsys/kit';
import {
  type KvConfigInput,
  KvNode,
  type KvRequest,
  type KvResponse,
  kvConfig,
  type RaftMessage,
} from '../../src/index.js';

export type Kv = Effect<RaftMessage, KvResponse>;

export interface Sent {
  readonly from: number;
  readonly to: number;
  readonly message: RaftMessage;
}

export class Trio {
  readonly nodes: KvNode[];
  /** Messages in flight, delivered by `deliver`. */
  readonly wire: Sent[] = [];
  readonly replies = new Map<number, KvResponse>();
  private requestIdNext = 1;
  private nowMs = 0;

  constructor(batchRequests: boolean, config: KvConfigInput = {}) {
    const peers = [NodeId(1), NodeId(2), NodeId(3)];
    this.nodes = peers.map(
      (id) =>
        new KvNode({
          id,
          peers,
          // n1 times out first: the others wait much longer, so n1 leads.
          config: kvConfig({
            batchRequests,
            ...config,
            raft: { electionTicks: id === 1 ? 5 : 50, preVote: false, ...config.raft },
          }),
          rng: Rng.fromSeed(id),
          durable: { snapshot: null, records: [] },
          nowMs: 0,
        }),
    );
    for (let i = 0; i < 20 && this.leader.core.role !== 'leader'; i++) {
      this.tick(1);
      this.deliver();
    }
    assert.equal(this.leader.core.role, 'leader');
    this.deliver();
  }

  get leader(): KvNode {
    return this.nodes[0]!;
  }

  /** Runs effects: sends are queued on the wire, storage acknowledges at once, replies are kept. */
  run(from: number, effects: readonly Kv[]): void {
    for (const effect of effects) {
      if (effect.type === 'send') this.wire.push({ from, to: effect.to, message: effect.message });
      else if (effect.type === 'reply') this.replies.set(effect.requestId, effect.response);
      else if (effect.ack !== undefined) this.run(from, this.step(from, { type: 'persisted', ack: effect.ack }));
    }
  }

  step(id: number, event: Parameters<KvNode['step']>[0]): Kv[] {
    const effects = this.nodes[id - 1]!.step(event);
    this.nodes[id - 1]!.invariants();
    return effects;
  }

  tick(id: number): void {
    this.nowMs += 10;
    this.run(id, this.step(id, { type: 'tick', nowMs: this.nowMs }));
  }

  /** Delivers messages (and those they cause) until the wire is empty or `filter` holds none. */
  deliver(filter: (sent: Sent) => boolean = () => true): void {
    for (let rounds = 0; rounds < 1000; rounds++) {
      const index = this.wire.findIndex(filter);
      if (index < 0) return;
      const [sent] = this.wire.splice(index, 1) as [Sent];
      this.run(sent.to, this.step(sent.to, { type: 'receive', from: NodeId(sent.from), message: sent.message }));
    }
    assert.fail('deliver: messages keep coming');
  }

  /** One request to node `to` (the leader by default) as its own step; returns the step's effects (not yet run). */
  request(request: KvRequest, to = 1): { requestId: number; effects: Kv[] } {
    const requestId = this.requestIdNext++;
    const effects = this.step(to, { type: 'request', client: ClientId(1), requestId: RequestId(requestId), request });
    return { requestId, effects };
  }

  openSession(): number {
    const { requestId, effects } = this.request({ type: 'openSession' });
    this.run(1, effects);
    this.deliver();
    const reply = this.replies.get(requestId);
    assert.ok(reply?.type === 'openSession', JSON.stringify(reply));
    return reply.sessionId;
  }
}
