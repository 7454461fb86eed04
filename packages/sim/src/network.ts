/**
 * The network model: every packet (node to node, client to node, node to client) crosses a
 * directed link with its own latency distribution, may be lost or duplicated, and node-to-node
 * links can be cut (partitions, symmetric or one-way) and healed.
 *
 * Latency = the link's base (drawn once per link in [latencyMsMin, latencyMsMax]) + an exponential
 * tail per packet whose mean is also per link (0.5x to 1.5x `latencyTailMsMean`). Reordering is not
 * a separate fault: it falls out of the tail's variance, as on a real network.
 *
 * Streams: per-packet draws (loss, duplication, tail) come from the `net` stream; each link's profile
 * comes from its own fork `link:<from>-><to>` of `net-links`, which depends only on the labels, so
 * growing the cluster never changes an existing link's profile.
 */
import { assert, type Rng } from '@dsys/kit';
import type { Ratio } from './options.js';

/** Endpoints are dense indexes: node `id` is `id - 1`, client `c` is `nodeCount + c`. */
export type Endpoint = number;

const UNKNOWN = -1;

export class Network {
  lossRatio: Ratio;
  duplicateRatio: Ratio;
  readonly nodeCount: number;
  private readonly endpointCount: number;
  /** Base latency per directed link in µs, lazily drawn (UNKNOWN until first use). */
  private readonly baseUs: Float64Array;
  private readonly tailMeanUs: Float64Array;
  /** cut[from * nodeCount + to] = 1 when packets from node `from` to node `to` (indexes) are dropped. */
  private readonly cut: Uint8Array;
  private cutCount = 0;

  constructor(
    private readonly rng: Rng,
    private readonly linkRng: Rng,
    nodeCount: number,
    clientCount: number,
    private readonly latencyUsMin: number,
    private readonly latencyUsMax: number,
    private readonly latencyTailUsMean: number,
    lossRatio: Ratio,
    duplicateRatio: Ratio,
  ) {
    this.nodeCount = nodeCount;
    // One extra client slot: client 0 is the simulation's own test client.
    this.endpointCount = nodeCount + clientCount + 1;
    this.baseUs = new Float64Array(this.endpointCount * this.endpointCount).fill(UNKNOWN);
    this.tailMeanUs = new Float64Array(this.endpointCount * this.endpointCount);
    this.cut = new Uint8Array(nodeCount * nodeCount);
    this.lossRatio = lossRatio;
    this.duplicateRatio = duplicateRatio;
  }

  endpointOfNode(id: number): Endpoint {
    return id - 1;
  }

  endpointOfClient(id: number): Endpoint {
    return this.nodeCount + id;
  }

  /** Labels use ids, not indexes, so a link keeps its profile whatever the cluster size. */
  private endpointLabel(endpoint: Endpoint): string {
    return endpoint < this.nodeCount ? `n${endpoint + 1}` : `c${endpoint - this.nodeCount}`;
  }

  private drawProfile(link: number, from: Endpoint, to: Endpoint): void {
    const rng = this.linkRng.fork(`link:${this.endpointLabel(from)}->${this.endpointLabel(to)}`);
    const spanUs = this.latencyUsMax - this.latencyUsMin;
    this.baseUs[link] = this.latencyUsMin + (spanUs > 0 ? rng.int(spanUs + 1) : 0);
    this.tailMeanUs[link] = (this.latencyTailUsMean * rng.between(50, 150)) / 100;
  }

  /** Base latency of a link in µs (drawing its profile if needed); exposed for tests. */
  linkBaseUs(from: Endpoint, to: Endpoint): number {
    const link = from * this.endpointCount + to;
    if (this.baseUs[link] === UNKNOWN) this.drawProfile(link, from, to);
    return this.baseUs[link]!;
  }

  /** True when node-to-node packets from `from` to `to` (node indexes) are cut. */
  isCut(from: Endpoint, to: Endpoint): boolean {
    if (from >= this.nodeCount || to >= this.nodeCount) return false;
    return this.cut[from * this.nodeCount + to] === 1;
  }

  /** Draws one packet's fate: its delay in µs, or -1 when it is lost. Cuts are checked separately. */
  delayUs(from: Endpoint, to: Endpoint): number {
    const loss = this.lossRatio;
    if (loss.numerator !== 0 && this.rng.chance(loss.numerator, loss.denominator)) return -1;
    const link = from * this.endpointCount + to;
    if (this.baseUs[link] === UNKNOWN) this.drawProfile(link, from, to);
    const tailMean = this.tailMeanUs[link]!;
    const tail = tailMean > 0 ? Math.round(this.rng.exponential(tailMean)) : 0;
    // At least 1 µs: a packet never arrives in the instant it was sent.
    return Math.max(1, this.baseUs[link]! + tail);
  }

  /** Whether this packet is delivered twice. */
  duplicates(): boolean {
    const duplicate = this.duplicateRatio;
    return duplicate.numerator !== 0 && this.rng.chance(duplicate.numerator, duplicate.denominator);
  }

  get cuts(): number {
    return this.cutCount;
  }

  /** One-way cut: packets from node index `from` to node index `to` are dropped. */
  setCut(from: Endpoint, to: Endpoint, isCut: boolean): void {
    assert(from < this.nodeCount && to < this.nodeCount, `Network.setCut: not a node link ${from}->${to}`);
    if (from === to) return;
    const index = from * this.nodeCount + to;
    const value = isCut ? 1 : 0;
    if (this.cut[index] === value) return;
    this.cut[index] = value;
    this.cutCount += isCut ? 1 : -1;
  }

  heal(): void {
    this.cut.fill(0);
    this.cutCount = 0;
  }

  /** Directed links currently cut, as `[fromId, toId]` pairs in ascending order. */
  cutLinks(): [number, number][] {
    const links: [number, number][] = [];
    for (let from = 0; from < this.nodeCount; from++) {
      for (let to = 0; to < this.nodeCount; to++) {
        if (this.cut[from * this.nodeCount + to] === 1) links.push([from + 1, to + 1]);
      }
    }
    return links;
  }
}
