/**
 * A hand-driven cluster of bare `RaftCore`s for unit and scenario tests (etcd's `rafttest`
 * InteractionEnv): messages queue on a FIFO "wire" until a test delivers them, storage is in memory
 * and acknowledges writes at once (or holds them, for crash-point tests), and every delivery, role
 * change and application is written to a transcript that scenario files compare against.
 *
 * The application state machine is a list of the applied commands, which is also what its snapshot
 * holds; that is enough to see InstallSnapshot bring a follower back.
 */
import { decode, encode, NodeId, Rng, s } from '@dsys/kit';
import {
  type ConfState,
  describeMessage,
  type Entry,
  encodeEntriesRecord,
  encodeHardStateRecord,
  encodeSnapshot,
  type HardState,
  LogIndex,
  type PersistAck,
  type RaftConfig,
  RaftCore,
  type RaftMessage,
  RaftSafetyChecker,
  type Ready,
  recoverDurable,
  Term,
  validateRaftConfig,
} from '../../src/index.js';

const appliedSchema = s.array(s.bytes({ bytesMax: 1 << 20 }), { itemsMax: 1 << 20 });
const text = new TextDecoder();
const bytes = new TextEncoder();

export interface Wire {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly message: RaftMessage;
}

export class HarnessNode {
  core!: RaftCore;
  up = true;
  boots = 0;
  /** Applied commands since the state machine began (restored from snapshots). */
  applied: Uint8Array[] = [];
  appliedIndex = 0;
  durableSnapshot: Uint8Array | null = null;
  durableRecords: Uint8Array[] = [];
  /** Writes not yet acknowledged (hold mode). */
  held: { records: Uint8Array[]; ack: PersistAck | null; after: Wire[]; snapshot: Uint8Array | null }[] = [];
  holdWrites = false;
  readStates: { requestId: number; index: number }[] = [];
  readFailures: { requestId: number; reason: string }[] = [];
  lastRole = '';
  lastTerm = -1;

  constructor(readonly id: NodeId) {}
}

export interface ClusterOptions {
  readonly config?: Partial<RaftConfig>;
  /** Initial voters (default: every id). Others start empty (joining). */
  readonly voters?: readonly number[];
  readonly seed?: number;
  /** Record lines of everything that happens. */
  readonly verbose?: boolean;
}

export class CoreCluster {
  readonly nodes = new Map<number, HarnessNode>();
  wire: Wire[] = [];
  private readonly cuts = new Set<string>();
  readonly transcript: string[] = [];
  /** Raft's safety properties, checked after every step like the simulator does. */
  readonly checker = new RaftSafetyChecker();
  violation: string | null = null;
  readonly config: RaftConfig;
  private readonly rng: Rng;
  private readonly voters: readonly number[];

  constructor(ids: readonly number[], options: ClusterOptions = {}) {
    this.config = validateRaftConfig({ preVote: false, checkQuorum: false, ...options.config });
    this.rng = Rng.fromSeed(options.seed ?? 1);
    this.voters = options.voters ?? ids;
    for (const id of ids) {
      const node = new HarnessNode(NodeId(id));
      this.nodes.set(id, node);
      this.boot(node);
    }
  }

  node(id: number): HarnessNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new RangeError(`no node ${id}`);
    return node;
  }

  core(id: number): RaftCore {
    return this.node(id).core;
  }

  private bootstrapConfig(id: number): ConfState {
    if (!this.voters.includes(id)) return { voters: [], votersOutgoing: [], learners: [], autoLeave: false };
    return {
      voters: [...this.voters].sort((a, b) => a - b).map(NodeId),
      votersOutgoing: [],
      learners: [],
      autoLeave: false,
    };
  }

  private boot(node: HarnessNode): void {
    node.boots++;
    const recovered = recoverDurable({ snapshot: node.durableSnapshot, records: node.durableRecords });
    if (!recovered.ok) throw recovered.error;
    const { hardState, snapshot, entries } = recovered.value;
    node.applied =
      snapshot === null ? [] : (decode(appliedSchema, snapshot.data) as { ok: true; value: Uint8Array[] }).value;
    node.appliedIndex = snapshot?.meta.index ?? 0;
    node.core = new RaftCore({
      id: node.id,
      config: this.config,
      rng: this.rng.fork(`n${node.id}:boot${node.boots}`),
      hardState,
      snapshot,
      entries,
      bootstrapConfig: this.bootstrapConfig(node.id),
    });
    node.up = true;
    this.checker.reset(node.id, LogIndex(node.appliedIndex));
    node.lastRole = node.core.role;
    node.lastTerm = node.core.term;
  }

  log(line: string): void {
    this.transcript.push(line);
  }

  // ---------------------------------------------------------------------------------------------
  // Driving

  /** Takes every Ready of `id` until it has none: writes (or holds) its storage, queues its messages. */
  process(id: number): void {
    const node = this.node(id);
    if (!node.up) return;
    for (let round = 0; node.core.hasReady(); round++) {
      if (round > 100) throw new Error(`n${id} keeps producing Ready`);
      this.handleReady(node, node.core.ready());
    }
    this.noteRole(node);
    this.checkSafety();
  }

  private checkSafety(): void {
    if (this.violation !== null) return;
    const cores = [...this.nodes.values()].filter((node) => node.up).map((node) => node.core);
    try {
      for (const core of cores) core.invariants();
      this.checker.check(cores);
    } catch (error) {
      this.violation = error instanceof Error ? error.message : String(error);
      this.log(`SAFETY VIOLATION: ${this.violation}`);
    }
  }

  private noteRole(node: HarnessNode): void {
    const core = node.core;
    if (core.role !== node.lastRole || core.term !== node.lastTerm) {
      this.log(
        `n${node.id} is ${core.role} at term ${core.term}${core.leader !== null && core.role === 'follower' ? ` (leader n${core.leader})` : ''}`,
      );
      node.lastRole = core.role;
      node.lastTerm = core.term;
    }
  }

  private handleReady(node: HarnessNode, ready: Ready): void {
    for (const outgoing of ready.messages) this.enqueue(node.id, outgoing.to, outgoing.message);
    const records: Uint8Array[] = [];
    let snapshotBytes: Uint8Array | null = null;
    if (ready.snapshot !== null) {
      snapshotBytes = encodeSnapshot(ready.snapshot);
      node.applied = (decode(appliedSchema, ready.snapshot.data) as { ok: true; value: Uint8Array[] }).value;
      node.appliedIndex = ready.snapshot.meta.index;
      this.checker.reset(node.id, ready.snapshot.meta.index);
      this.log(`n${node.id} restored snapshot ${ready.snapshot.meta.term}/${ready.snapshot.meta.index}`);
    }
    if (ready.entries.length > 0) records.push(encodeEntriesRecord(ready.entries));
    if (ready.hardState !== null) records.push(encodeHardStateRecord(ready.hardState));
    const after = ready.messagesAfterPersist.map((outgoing) => ({
      from: node.id,
      to: outgoing.to,
      message: outgoing.message,
    }));
    if (node.holdWrites && (ready.persistAck !== null || after.length > 0)) {
      node.held.push({ records, ack: ready.persistAck, after, snapshot: snapshotBytes });
    } else {
      this.write(node, records, snapshotBytes);
      if (ready.persistAck !== null) node.core.persisted(ready.persistAck);
      for (const wire of after) this.enqueue(wire.from, wire.to, wire.message);
    }
    this.apply(node, ready.committedEntries);
    for (const state of ready.readStates) node.readStates.push({ requestId: state.requestId, index: state.index });
    for (const failure of ready.readFailures)
      node.readFailures.push({ requestId: failure.requestId, reason: failure.reason });
  }

  private write(node: HarnessNode, records: Uint8Array[], snapshot: Uint8Array | null): void {
    if (snapshot !== null) {
      node.durableSnapshot = snapshot;
      const tail = node.core.durableTail();
      node.durableRecords = [];
      if (tail.entries.length > 0) node.durableRecords.push(encodeEntriesRecord(tail.entries));
      node.durableRecords.push(encodeHardStateRecord(tail.hardState));
      return;
    }
    node.durableRecords.push(...records);
  }

  /** Acknowledges held writes of `id` (all, or the first `count`). */
  releaseWrites(id: number, count = Number.POSITIVE_INFINITY): void {
    const node = this.node(id);
    while (count-- > 0 && node.held.length > 0) {
      const write = node.held.shift()!;
      this.write(node, write.records, write.snapshot);
      if (write.ack !== null) node.core.persisted(write.ack);
      for (const wire of write.after) this.enqueue(wire.from, wire.to, wire.message);
    }
    this.process(id);
  }

  private apply(node: HarnessNode, entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    for (const entry of entries) {
      if (entry.index !== node.appliedIndex + 1)
        throw new Error(`n${node.id} applies ${entry.index} after ${node.appliedIndex}`);
      node.appliedIndex = entry.index;
      this.checker.applied(node.id, entry);
      if (entry.type === 'normal' && entry.data.length > 0) node.applied.push(entry.data);
    }
    this.log(`n${node.id} applied ${entries[0]!.index}..${entries[entries.length - 1]!.index}`);
  }

  private enqueue(from: NodeId, to: NodeId, message: RaftMessage): void {
    if (this.cuts.has(`${from}-${to}`)) return;
    this.wire.push({ from, to, message });
  }

  /** Delivers the messages on the wire now (in order); returns how many. */
  deliver(filter: (wire: Wire) => boolean = () => true): number {
    const batch = this.wire;
    this.wire = [];
    let delivered = 0;
    for (const wire of batch) {
      if (!filter(wire)) {
        this.wire.push(wire);
        continue;
      }
      const target = this.nodes.get(wire.to);
      if (target === undefined || !target.up || this.cuts.has(`${wire.from}-${wire.to}`)) continue;
      delivered++;
      this.log(`n${wire.from}->n${wire.to} ${describeMessage(wire.message)}`);
      target.core.step(wire.from, wire.message);
      this.process(wire.to);
    }
    return delivered;
  }

  /** Drops messages on the wire that match `filter` (all by default). */
  dropMessages(filter: (wire: Wire) => boolean = () => true): number {
    const before = this.wire.length;
    this.wire = this.wire.filter((wire) => !filter(wire));
    return before - this.wire.length;
  }

  /** Processes and delivers until nothing moves. */
  stabilize(roundsMax = 1000): void {
    for (let round = 0; round < roundsMax; round++) {
      for (const id of this.nodes.keys()) this.process(id);
      if (this.wire.length === 0) return;
      this.deliver();
    }
    throw new Error('stabilize: still busy after many rounds');
  }

  tick(id: number, times = 1): void {
    const node = this.node(id);
    for (let i = 0; i < times; i++) {
      if (!node.up) return;
      node.core.tick();
      this.process(id);
    }
  }

  /** Ticks every node, delivering all messages after each round (a fast network). */
  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const id of this.nodes.keys()) this.tick(id);
      this.stabilize();
    }
  }

  /** Ticks until `id` has campaigned (its election timer fired), then stabilizes. */
  elect(id: number): void {
    this.core(id).campaign();
    this.process(id);
    this.stabilize();
  }

  propose(id: number, data: string): ReturnType<RaftCore['propose']> {
    const result = this.core(id).propose(bytes.encode(data));
    this.process(id);
    return result;
  }

  crash(id: number): void {
    const node = this.node(id);
    node.up = false;
    node.held = [];
    this.wire = this.wire.filter((wire) => wire.to !== node.id);
    this.log(`n${id} crashed`);
  }

  restart(id: number): void {
    const node = this.node(id);
    this.boot(node);
    this.log(
      `n${id} restarted at term ${node.core.term} (commit ${node.core.log.committed}, last ${node.core.log.lastIndex()})`,
    );
  }

  /** Isolates groups from one another (both directions). */
  partition(...groups: readonly (readonly number[])[]): void {
    const groupOf = new Map<number, number>();
    groups.forEach((group, index) => {
      for (const id of group) groupOf.set(id, index);
    });
    for (const a of this.nodes.keys()) {
      for (const b of this.nodes.keys()) {
        if (a !== b && (groupOf.get(a) ?? -1) !== (groupOf.get(b) ?? -1)) this.cuts.add(`${a}-${b}`);
      }
    }
  }

  cut(from: number, to: number): void {
    this.cuts.add(`${from}-${to}`);
  }

  heal(): void {
    this.cuts.clear();
  }

  /** The application snapshot at the applied index, and log compaction. */
  compact(id: number): void {
    const node = this.node(id);
    const meta = node.core.compact(encode(appliedSchema, node.applied));
    node.durableSnapshot = encodeSnapshot({ meta, data: encode(appliedSchema, node.applied) });
    const tail = node.core.durableTail();
    node.durableRecords = [];
    if (tail.entries.length > 0) node.durableRecords.push(encodeEntriesRecord(tail.entries));
    node.durableRecords.push(encodeHardStateRecord(tail.hardState));
    this.log(`n${id} compacted through ${meta.index}`);
  }

  // ---------------------------------------------------------------------------------------------
  // Inspection

  appliedText(id: number): string[] {
    return this.node(id).applied.map((data) => text.decode(data));
  }

  leaders(): number[] {
    return [...this.nodes.values()].filter((node) => node.up && node.core.role === 'leader').map((node) => node.id);
  }

  logText(id: number): string {
    const core = this.core(id);
    const entries = core.log
      .allEntries()
      .map((entry) => `${entry.term}/${entry.index}${entry.type === 'config' ? 'C' : ''}`);
    return `[${core.log.snapshot.index > 0 ? `snap ${core.log.snapshot.term}/${core.log.snapshot.index} ` : ''}${entries.join(' ')}] commit=${core.log.committed}`;
  }

  statusText(id: number): string {
    const node = this.node(id);
    if (!node.up) return `n${id} down`;
    const core = node.core;
    return `n${id} ${core.role} term=${core.term} vote=${core.vote ?? '-'} leader=${core.leader ?? '-'} commit=${core.log.committed} applied=${core.log.applied} last=${core.log.lastIndex()}`;
  }
}

export function hard(term: number, vote: number | null, commit: number): HardState {
  return { term: Term(term), vote: vote === null ? null : NodeId(vote), commit: LogIndex(commit) };
}

export function entry(term: number, index: number, data = ''): Entry {
  return { type: 'normal', term: Term(term), index: LogIndex(index), data: bytes.encode(data) };
}
