/**
 * The Raft consensus core: a pure, synchronous state machine in the style of etcd-io/raft's `raft` and
 * `RawNode`. Inputs are method calls (`tick`, `step`, `propose`, `readIndex`, ...); outputs accumulate
 * and are taken as one `Ready` batch whose fields carry an order contract:
 *
 *   1. send `messages` (they do not depend on this batch's write: a leader's AppendEntries may go out
 *      in parallel with its own fsync, Raft dissertation §10.2.1);
 *   2. restore and persist `snapshot` (if any), then persist `hardState` and `entries` (entries from
 *      index i replace any stored suffix from i on), synced when `mustSync`;
 *   3. only once that write (and every earlier one) is durable, send `messagesAfterPersist` (votes and
 *      AppendEntries acknowledgements are promises about durable state: Figure 2 "respond after
 *      persisting"), and report the write back with `persisted(ready.persistAck)`;
 *   4. apply `committedEntries` in order, each exactly once, then serve `readStates` whose index is applied.
 *
 * The core never reads a clock (time is a count of `tick` calls) and draws randomness only from the
 * seeded Rng it is given (the randomized election timeout, Raft §5.2).
 *
 * The leader counts its own log toward a quorum only through the index its storage acknowledged, and a
 * candidate counts its own vote only once term and vote are durable: a node that crashed before its
 * write landed then comes back in the old term, and nothing it promised was ever relied upon.
 */
import { assert, maybe, type NodeId, type Rng, unreachable } from '@dsys/kit';
import type { RaftConfig } from './config.js';
import { RaftLog } from './log.js';
import { applyConfChanges, type ConfChange, leaveJoint } from './membership.js';
import { ENTRY_OVERHEAD_BYTES, type Outgoing, PROPOSE_ENTRIES_MAX, type RaftMessage } from './messages.js';
import { Progress } from './progress.js';
import { hasQuorum, jointCommitted, jointVoteResult } from './quorum.js';
import { type PendingRead, ReadQueue, RoundTicks } from './read-only.js';
import { SnapshotReceiver } from './snapshot-transfer.js';
import {
  allMembers,
  type ConfState,
  type Entry,
  entryPayloadBytes,
  type HardState,
  isJoint,
  isVoter,
  LogIndex,
  type RaftRole,
  type Snapshot,
  type SnapshotMeta,
  Term,
} from './types.js';

/** What a node starts from: fresh (empty log) or recovered from its durable state. */
export interface RaftCoreInit {
  readonly id: NodeId;
  /** Validated by `validateRaftConfig`. */
  readonly config: RaftConfig;
  readonly rng: Rng;
  readonly hardState: HardState;
  /** The last snapshot, or null: then the log starts empty at index 0 under `bootstrapConfig`. */
  readonly snapshot: Snapshot | null;
  readonly entries: readonly Entry[];
  /** Configuration at index 0 when there is no snapshot: the initial cluster, or empty for a joining node. */
  readonly bootstrapConfig: ConfState;
  /**
   * Vets a snapshot received from the leader before the log is replaced by it (the application
   * decodes its part); false drops it as invalid input. Default: accept.
   */
  readonly acceptSnapshot?: (snapshot: Snapshot) => boolean;
}

export type RaftError =
  | { readonly code: 'NOT_LEADER'; readonly leader: NodeId | null }
  | { readonly code: 'TRANSFERRING'; readonly to: NodeId }
  | { readonly code: 'UNCOMMITTED_LIMIT'; readonly bytes: number; readonly bytesMax: number }
  | { readonly code: 'CONF_CHANGE_PENDING'; readonly index: LogIndex }
  | { readonly code: 'INVALID_CONF_CHANGE'; readonly reason: string }
  | {
      readonly code: 'LEARNER_BEHIND';
      readonly node: NodeId;
      readonly lagEntries: number;
      readonly lagEntriesMax: number;
    }
  | { readonly code: 'NOT_A_VOTER'; readonly node: NodeId }
  | { readonly code: 'READS_FULL'; readonly readsMax: number }
  | { readonly code: 'NO_LEADER' };

export type Proposed = { ok: true; index: LogIndex; term: Term } | { ok: false; error: RaftError };
export type Accepted = { ok: true } | { ok: false; error: RaftError };

/** A read that may be served once the state machine has applied through `index`. */
export interface ReadState {
  readonly requestId: number;
  readonly index: LogIndex;
}

export interface ReadFailure {
  readonly requestId: number;
  readonly reason: 'NOT_LEADER' | 'LEADER_CHANGED' | 'TIMEOUT';
}

/** Opaque description of one batch's write, handed back with `persisted()` once durable. */
export interface PersistAck {
  readonly hardState: HardState | null;
  readonly lastEntry: { readonly index: LogIndex; readonly term: Term } | null;
  readonly snapshotIndex: LogIndex | null;
}

export interface Ready {
  readonly messages: readonly Outgoing[];
  readonly snapshot: Snapshot | null;
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly mustSync: boolean;
  /** Null when the batch writes nothing. */
  readonly persistAck: PersistAck | null;
  readonly messagesAfterPersist: readonly Outgoing[];
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
  readonly readFailures: readonly ReadFailure[];
}

export interface RaftStatus {
  readonly id: NodeId;
  readonly role: RaftRole;
  readonly term: Term;
  readonly vote: NodeId | null;
  readonly leader: NodeId | null;
  readonly commit: LogIndex;
  readonly applied: LogIndex;
  readonly persisted: LogIndex;
  readonly firstIndex: LogIndex;
  readonly lastIndex: LogIndex;
  readonly config: ConfState;
  readonly transferee: NodeId | null;
  readonly progress: ReadonlyMap<NodeId, string>;
}

/** Counters of dropped input, for logs and metrics (bad input is counted and dropped, never thrown). */
export interface RaftCounters {
  droppedMessages: number;
  staleTermMessages: number;
  invalidMessages: number;
  lastDropReason: string;
}

/** How far a forwarded read may wait for the leader's answer before it is failed. */
const FORWARDED_READ_TIMEOUT_ELECTIONS = 2;
/** Heartbeat intervals without chunk acknowledgements before a snapshot transfer rewinds. */
const SNAPSHOT_STALL_BEATS = 4;
const NO_COMMIT_HINT = { commitIndex: LogIndex(0), commitTerm: Term(0) } as const;

/** Most committed bytes handed out for application in one batch (the rest in the next batches). */
const APPLY_BYTES_MAX = 16 * 1024 * 1024;

type CampaignKind = 'preVote' | 'election' | 'transfer';

export class RaftCore {
  readonly id: NodeId;
  readonly config: RaftConfig;
  private readonly rng: Rng;
  readonly log: RaftLog;

  role: RaftRole = 'follower';
  term: Term;
  vote: NodeId | null;
  leader: NodeId | null = null;
  /** The configuration as of the applied index (etcd: changes take effect when applied). */
  conf: ConfState;

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTicks = 0;
  /** Ticks since start; dates heartbeat rounds for leases. */
  private ticks = 0;
  /** Lease mode: ticks left during which this freshly started node refuses votes (it may have promised before a crash). */
  private bootGuardTicks: number;

  private readonly votes = new Map<NodeId, boolean>();
  readonly progress = new Map<NodeId, Progress>();
  private transferee: NodeId | null = null;
  /** Index of the latest configuration entry proposed by this leader (no new change until it is applied). */
  private pendingConfIndex = LogIndex(0);
  private uncommittedBytes = 0;
  private appendPending = false;
  /** Some follower's `appendDue` is set (see `sendAppend`). */
  private appendsDue = false;
  /** `sendDeferredAppends` is running: `sendAppend` sends empty appends instead of deferring them. */
  private sendingDeferred = false;

  private heartbeatRound = 0;
  /** The current round's heartbeats are still in `msgs` (not yet handed out by `ready`). */
  private heartbeatRoundQueued = false;
  private readonly roundTicks = new RoundTicks();
  private readonly reads: ReadQueue;
  /** Reads asked before this leader committed an entry of its term (dissertation §6.4 step 1). */
  private readsAwaitingCommit: { requestId: number; from: NodeId | null }[] = [];
  /** Reads this follower forwarded to the leader: requestId -> tick sent. */
  private readonly forwardedReads = new Map<number, number>();
  private readonly snapshotReceiver: SnapshotReceiver;
  private readonly acceptSnapshot: (snapshot: Snapshot) => boolean;
  /** The application snapshot behind the compacted log prefix (sent to followers that need it). */
  private snapshotData: Uint8Array;

  private msgs: Outgoing[] = [];
  private msgsAfterPersist: Outgoing[] = [];
  /** Bytes in the last `propose` message of `msgs` (forwarded proposals share a message up to a size). */
  private forwardBytes = 0;
  private readStates: ReadState[] = [];
  private readFailures: ReadFailure[] = [];
  /** The hard state last handed out for persistence. */
  private emittedHardState: HardState;

  readonly counters: RaftCounters = {
    droppedMessages: 0,
    staleTermMessages: 0,
    invalidMessages: 0,
    lastDropReason: '',
  };

  constructor(init: RaftCoreInit) {
    this.id = init.id;
    this.config = init.config;
    this.rng = init.rng;
    const snapshotMeta: SnapshotMeta = init.snapshot?.meta ?? {
      index: LogIndex(0),
      term: Term(0),
      config: init.bootstrapConfig,
    };
    this.snapshotData = init.snapshot?.data ?? new Uint8Array(0);
    const commit = LogIndex(Math.max(init.hardState.commit, snapshotMeta.index));
    this.log = new RaftLog(snapshotMeta, init.entries, commit);
    this.term = init.hardState.term;
    this.vote = init.hardState.vote;
    this.conf = snapshotMeta.config;
    this.emittedHardState = { term: this.term, vote: this.vote, commit };
    this.reads = new ReadQueue(init.config.pendingReadsMax);
    this.snapshotReceiver = new SnapshotReceiver(init.config.snapshotBytesMax);
    this.acceptSnapshot = init.acceptSnapshot ?? (() => true);
    // Lease mode: before a crash this node may have promised a leader not to vote for an election
    // timeout; it keeps that promise after restarting. A node that never saw a term made no promise.
    this.bootGuardTicks = init.config.readOnly === 'lease' && init.hardState.term > 0 ? init.config.electionTicks : 0;
    this.resetElectionTimer();
  }

  // ------------------------------------------------------------------------------------------
  // Inputs

  /** One logical tick (etcd's tickElection / tickHeartbeat). */
  tick(): void {
    this.ticks++;
    if (this.bootGuardTicks > 0) this.bootGuardTicks--;
    this.expireForwardedReads();
    if (this.role === 'leader') this.tickLeader();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTicks) {
      this.electionElapsed = 0;
      this.campaign(this.config.preVote ? 'preVote' : 'election');
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.config.electionTicks) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum && !this.checkQuorumActive()) {
        // Dissertation §6.2: a leader that cannot reach a quorum steps down, so clients go elsewhere.
        this.becomeFollower(this.term, null);
        return;
      }
      // A transfer that has not finished within an election timeout is abandoned (dissertation §3.10);
      // a removed leader that could not hand over in that time steps down regardless.
      if (this.transferee !== null) this.transferee = null;
      if (!isVoter(this.conf, this.id)) {
        this.becomeFollower(this.term, null);
        return;
      }
    }
    if (this.heartbeatElapsed >= this.config.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
      this.tickSnapshotTransfers();
    }
  }

  /** Starts an election now, as if the election timeout had elapsed (tests and operators). */
  campaign(kind: CampaignKind = this.config.preVote ? 'preVote' : 'election'): void {
    if (!this.promotable() || this.role === 'leader') return;
    if (this.hasUnappliedConfig()) {
      // etcd: our idea of the configuration may be stale until committed changes are applied.
      return;
    }
    if (kind === 'preVote') this.becomePreCandidate();
    else this.becomeCandidate();
    const voteTerm = kind === 'preVote' ? Term(this.term + 1) : this.term;
    const message: RaftMessage = {
      type: 'requestVote',
      term: voteTerm,
      lastIndex: this.log.lastIndex(),
      lastTerm: this.log.lastTerm(),
      preVote: kind === 'preVote',
      transfer: kind === 'transfer',
    };
    for (const voter of this.voterIds()) if (voter !== this.id) this.send(voter, message);
    // A pre-vote costs nothing durable, so the node's own pre-vote counts now; a real vote counts once
    // term and vote are persisted (see `persisted`).
    if (kind === 'preVote') this.recordVote(this.id, true);
  }

  /** Handles one message from `from`. Bad or stale input is counted and dropped, never thrown. */
  step(from: NodeId, message: RaftMessage): void {
    if (from === this.id) {
      this.drop('message from self');
      return;
    }
    if (message.type === 'localFlush') {
      // Only a node's note to itself; from anyone else it is malformed (and its term must not count).
      this.counters.invalidMessages++;
      this.drop(`localFlush from n${from}`);
      return;
    }
    if (message.term > this.term && !this.stepHigherTerm(from, message)) return;
    if (message.term < this.term) {
      this.stepLowerTerm(from, message);
      return;
    }
    switch (message.type) {
      case 'requestVote':
        this.handleRequestVote(from, message);
        return;
      case 'requestVoteResponse':
        this.handleVoteResponse(from, message);
        return;
      case 'appendEntries':
      case 'heartbeat':
      case 'commit':
      case 'installSnapshot':
        this.stepFromLeader(from, message);
        return;
      case 'appendEntriesResponse':
        this.handleAppendResponse(from, message);
        return;
      case 'heartbeatResponse':
        this.handleHeartbeatResponse(from, message);
        return;
      case 'installSnapshotResponse':
        this.handleSnapshotResponse(from, message);
        return;
      case 'timeoutNow':
        this.handleTimeoutNow(from);
        return;
      case 'readIndex':
        this.handleForwardedRead(from, message.requestId);
        return;
      case 'readIndexResponse':
        this.handleReadIndexResponse(from, message);
        return;
      case 'propose':
        this.handleForwardedProposals(from, message.entries);
        return;
      default:
        unreachable(message, 'RaftCore.step');
        return;
    }
  }

  /** Returns false when the message must be dropped without touching our term (etcd `Step`). */
  private stepHigherTerm(from: NodeId, message: RaftMessage): boolean {
    if (message.type === 'requestVote') {
      if (!message.transfer && this.inLease()) {
        // Check-quorum's lease: we heard from a live leader within an election timeout, so this
        // candidate is disruptive (a partitioned or removed node); ignore it entirely (dissertation §4.2.3).
        this.drop('vote request in lease');
        return false;
      }
      // A pre-vote request carries a future term; it never changes ours.
      if (message.preVote) return true;
    }
    if (message.type === 'requestVoteResponse' && message.preVote && message.granted) {
      // A granted pre-vote carries the term we would campaign in; we adopt it only by winning.
      return true;
    }
    const fromLeader =
      message.type === 'appendEntries' ||
      message.type === 'heartbeat' ||
      message.type === 'commit' ||
      message.type === 'installSnapshot';
    this.becomeFollower(message.term, fromLeader ? from : null);
    return true;
  }

  private stepLowerTerm(from: NodeId, message: RaftMessage): void {
    this.counters.staleTermMessages++;
    if (
      (this.config.checkQuorum || this.config.preVote) &&
      (message.type === 'appendEntries' || message.type === 'heartbeat' || message.type === 'commit')
    ) {
      // etcd: a leader of an older term is talking to us; maybe we raised our term while partitioned
      // and can no longer win (pre-vote or lease keep us out). Tell it our term so it steps down and
      // the cluster converges on a term we can rejoin.
      this.send(from, {
        type: 'appendEntriesResponse',
        term: this.term,
        index: LogIndex(0),
        reject: true,
        hintIndex: LogIndex(0),
        hintTerm: Term(0),
      });
    } else if (message.type === 'requestVote' && message.preVote) {
      // Let the pre-candidate learn our higher term, or it would keep asking.
      this.send(from, {
        type: 'requestVoteResponse',
        term: this.term,
        preVote: true,
        granted: false,
        ...this.commitHintFor(message.lastIndex),
      });
    }
  }

  private inLease(): boolean {
    const heardFromLeader = this.leader !== null && this.electionElapsed < this.config.electionTicks;
    return (this.config.checkQuorum && heardFromLeader) || this.bootGuardTicks > 0;
  }

  /**
   * Proposes an application command. The entry is appended to the leader's log and replicated; the
   * caller learns its fate when an entry at `index` is applied: the same term means it committed.
   */
  propose(data: Uint8Array): Proposed {
    const refused = this.checkProposal(
      entryPayloadBytes({ type: 'normal', term: this.term, index: LogIndex(0), data }),
    );
    if (refused !== null) return { ok: false, error: refused };
    const index = LogIndex(this.log.lastIndex() + 1);
    this.appendEntries([{ type: 'normal', term: this.term, index, data }]);
    return { ok: true, index, term: this.term };
  }

  /**
   * etcd's proposal forwarding (a follower's MsgProp goes to its leader): hands `data` to the leader
   * this follower knows, which appends it as its own proposal. Fire and forget: the message may be
   * lost, the leader may refuse it or lose it in a leader change, so the caller learns the outcome only
   * by applying an entry it can recognize as its own (the application tags its commands) and must
   * time out otherwise. Proposals of one batch share a message.
   */
  forwardProposal(data: Uint8Array): Accepted {
    if (this.role !== 'follower' || this.leader === null) return { ok: false, error: { code: 'NO_LEADER' } };
    const last = this.msgs[this.msgs.length - 1];
    if (
      last !== undefined &&
      last.to === this.leader &&
      last.message.type === 'propose' &&
      last.message.entries.length < PROPOSE_ENTRIES_MAX &&
      this.forwardBytes + data.length <= this.config.maxSizePerMsgBytes
    ) {
      last.message.entries.push(data);
      this.forwardBytes += data.length;
      return { ok: true };
    }
    this.send(this.leader, { type: 'propose', term: this.term, entries: [data] });
    this.forwardBytes = data.length;
    return { ok: true };
  }

  private handleForwardedProposals(from: NodeId, entries: readonly Uint8Array[]): void {
    if (this.role !== 'leader') {
      this.drop(`proposals from n${from} while not leading`);
      return;
    }
    for (const data of entries) {
      const proposed = this.propose(data);
      if (!proposed.ok) this.drop(`forwarded proposal from n${from}: ${proposed.error.code}`);
    }
  }

  /** Proposes a membership change (joint consensus when voters change; see membership.ts). */
  proposeConfChange(changes: readonly ConfChange[]): Proposed {
    const refused = this.checkProposal(8 * (changes.length + this.conf.voters.length + this.conf.learners.length));
    if (refused !== null) return { ok: false, error: refused };
    if (this.pendingConfIndex > this.log.applied) {
      return { ok: false, error: { code: 'CONF_CHANGE_PENDING', index: this.pendingConfIndex } };
    }
    const outcome = applyConfChanges(this.conf, changes);
    if (!outcome.ok) return { ok: false, error: { code: 'INVALID_CONF_CHANGE', reason: outcome.reason } };
    for (const change of changes) {
      if (change.type !== 'addVoter' || this.conf.voters.includes(change.node)) continue;
      const lagging = this.learnerLag(change.node);
      if (lagging !== null) return { ok: false, error: lagging };
    }
    return this.appendConfig(outcome.config);
  }

  /** A learner must have caught up before it may vote (dissertation §4.2.1), or it stalls commitment. */
  private learnerLag(node: NodeId): RaftError | null {
    const progress = this.progress.get(node);
    if (progress === undefined || !this.conf.learners.includes(node)) {
      return { code: 'INVALID_CONF_CHANGE', reason: `n${node} must first be added as a learner` };
    }
    const lagEntries = this.log.lastIndex() - progress.match;
    const lagEntriesMax = this.config.promotionLagEntriesMax;
    return lagEntries <= lagEntriesMax ? null : { code: 'LEARNER_BEHIND', node, lagEntries, lagEntriesMax };
  }

  private appendConfig(config: ConfState): Proposed {
    const index = LogIndex(this.log.lastIndex() + 1);
    this.appendEntries([{ type: 'config', term: this.term, index, config }]);
    this.pendingConfIndex = index;
    return { ok: true, index, term: this.term };
  }

  private checkProposal(bytes: number): RaftError | null {
    if (this.role !== 'leader') return { code: 'NOT_LEADER', leader: this.leader };
    // Dissertation §3.10: while handing over, the old leader stops taking requests.
    if (this.transferee !== null) return { code: 'TRANSFERRING', to: this.transferee };
    const total = this.uncommittedBytes + bytes + ENTRY_OVERHEAD_BYTES;
    // Like etcd, a lone large entry is always admitted so that progress is possible.
    if (this.uncommittedBytes > 0 && total > this.config.maxUncommittedEntriesBytes) {
      return { code: 'UNCOMMITTED_LIMIT', bytes: total, bytesMax: this.config.maxUncommittedEntriesBytes };
    }
    return null;
  }

  private appendEntries(entries: Entry[]): void {
    for (const entry of entries) this.uncommittedBytes += entryPayloadBytes(entry) + ENTRY_OVERHEAD_BYTES;
    this.log.append(entries);
    // Sent at `ready()`, so that proposals made in one step share AppendEntries messages (batching).
    this.appendPending = true;
  }

  /**
   * Asks for a linearizable read. The answer comes as a `ReadState` (serve once applied through its
   * index) or a `ReadFailure` in a later Ready. A follower forwards the request to its leader.
   */
  readIndex(requestId: number): Accepted {
    if (this.role !== 'leader') return this.forwardRead(requestId);
    if (this.reads.full() || this.readsAwaitingCommit.length >= this.config.pendingReadsMax) {
      return { ok: false, error: { code: 'READS_FULL', readsMax: this.config.pendingReadsMax } };
    }
    this.leaderRead(requestId, null);
    return { ok: true };
  }

  private forwardRead(requestId: number): Accepted {
    if (this.leader === null || this.role !== 'follower') return { ok: false, error: { code: 'NO_LEADER' } };
    if (this.forwardedReads.size >= this.config.pendingReadsMax) {
      return { ok: false, error: { code: 'READS_FULL', readsMax: this.config.pendingReadsMax } };
    }
    this.forwardedReads.set(requestId, this.ticks);
    this.send(this.leader, { type: 'readIndex', term: this.term, requestId });
    return { ok: true };
  }

  private leaderRead(requestId: number, from: NodeId | null): void {
    if (this.log.term(this.log.committed) !== this.term) {
      // Dissertation §6.4 step 1: until the leader commits an entry of its own term it does not know
      // the latest commit index; reads wait for its no-op to commit.
      this.readsAwaitingCommit.push({ requestId, from });
      return;
    }
    const index = this.log.committed;
    if (this.voterIds().length === 1 && this.voterIds()[0] === this.id) {
      this.releaseRead({ requestId, from, index, round: 0 });
      return;
    }
    const unconfirmed = this.config.testOnlyBugs?.readWithoutQuorum === true;
    if (unconfirmed || (this.config.readOnly === 'lease' && this.leaseValid())) {
      this.releaseRead({ requestId, from, index, round: 0 });
      return;
    }
    // Reads share a round whose heartbeats have not left yet: they leave after every such read arrived.
    if (!this.heartbeatRoundQueued) this.broadcastHeartbeat();
    this.reads.push({ requestId, from, index, round: this.heartbeatRound });
  }

  /** Hands leadership to `to` (dissertation §3.10): catch it up, then tell it to start an election now. */
  transferLeader(to: NodeId): Accepted {
    if (this.role !== 'leader') return { ok: false, error: { code: 'NOT_LEADER', leader: this.leader } };
    if (to === this.id) return { ok: true };
    if (!this.conf.voters.includes(to)) return { ok: false, error: { code: 'NOT_A_VOTER', node: to } };
    if (this.transferee === to) return { ok: true };
    this.transferee = to;
    // The transfer must finish within one election timeout (checked in tickLeader).
    this.electionElapsed = 0;
    const progress = this.progress.get(to)!;
    if (progress.match === this.log.lastIndex()) this.send(to, { type: 'timeoutNow', term: this.term });
    else this.sendAppend(to, true);
    return { ok: true };
  }

  /**
   * The application took a snapshot of its state machine at the applied index: drop the log prefix it
   * covers. Returns the snapshot's metadata (the caller persists snapshot + `durableTail()` atomically).
   */
  compact(data: Uint8Array): SnapshotMeta {
    const index = this.log.applied;
    this.log.compact(index, this.conf);
    this.snapshotData = data;
    return this.log.snapshot;
  }

  /** The snapshot behind the compacted prefix (meta and application bytes). */
  currentSnapshot(): Snapshot {
    return { meta: this.log.snapshot, data: this.snapshotData };
  }

  /** The hard state and every entry after the snapshot: what a compaction must re-persist. */
  durableTail(): { hardState: HardState; entries: readonly Entry[] } {
    return { hardState: this.currentHardState(), entries: this.log.allEntries() };
  }

  /** Storage finished the write described by `ack` (and every write before it). */
  persisted(ack: PersistAck): void {
    if (ack.snapshotIndex !== null) this.log.persistedSnapshot(ack.snapshotIndex);
    if (ack.lastEntry !== null) this.log.persistedTo(ack.lastEntry.index, ack.lastEntry.term);
    const hard = ack.hardState;
    if (hard !== null && this.role === 'candidate' && hard.term === this.term && hard.vote === this.id) {
      this.recordVote(this.id, true);
    }
    if (this.role === 'leader') {
      const self = this.progress.get(this.id);
      if (self?.maybeUpdate(this.log.persisted) && this.maybeCommit()) this.broadcastAppend();
    }
  }

  // ------------------------------------------------------------------------------------------
  // Output

  hasReady(): boolean {
    return (
      this.msgs.length > 0 ||
      this.msgsAfterPersist.length > 0 ||
      this.appendPending ||
      this.appendsDue ||
      this.log.pendingSnapshot !== null ||
      this.log.unstableFrom <= this.log.lastIndex() ||
      this.log.hasCommittedToApply() ||
      this.readStates.length > 0 ||
      this.readFailures.length > 0 ||
      !sameHardState(this.currentHardState(), this.emittedHardState)
    );
  }

  /** Takes everything produced since the last call, in the order contract of the module comment. */
  ready(): Ready {
    if (this.appendPending) {
      this.appendPending = false;
      if (this.role === 'leader') this.broadcastAppend(false);
    }
    if (this.appendsDue) this.sendDeferredAppends();
    const committedEntries = this.log.takeCommitted(APPLY_BYTES_MAX);
    for (const entry of committedEntries) if (entry.type === 'config') this.applyConfig(entry.config);
    if (committedEntries.length > 0) this.afterApply();
    const snapshot = this.log.pendingSnapshot;
    this.log.pendingSnapshot = null;
    const entries = this.log.takeUnstable();
    const current = this.currentHardState();
    const hardChanged = !sameHardState(current, this.emittedHardState);
    const hardState = hardChanged ? current : null;
    const mustSync =
      snapshot !== null ||
      entries.length > 0 ||
      (hardChanged && (current.term !== this.emittedHardState.term || current.vote !== this.emittedHardState.vote));
    if (hardChanged) this.emittedHardState = current;
    const last = entries[entries.length - 1];
    const writes = snapshot !== null || entries.length > 0 || hardState !== null;
    const ready: Ready = {
      messages: this.msgs,
      snapshot,
      hardState,
      entries,
      mustSync,
      persistAck: writes
        ? {
            hardState,
            lastEntry: last === undefined ? null : { index: last.index, term: last.term },
            snapshotIndex: snapshot === null ? null : snapshot.meta.index,
          }
        : null,
      messagesAfterPersist: this.msgsAfterPersist,
      committedEntries,
      readStates: this.readStates,
      readFailures: this.readFailures,
    };
    this.msgs = [];
    this.heartbeatRoundQueued = false;
    this.msgsAfterPersist = [];
    this.readStates = [];
    this.readFailures = [];
    return ready;
  }

  private currentHardState(): HardState {
    // The commit index written never exceeds what has been handed to storage, so that on recovery
    // the commit index always lies within the recovered log.
    const commit = LogIndex(Math.min(this.log.committed, this.log.unstableFrom - 1));
    return { term: this.term, vote: this.vote, commit };
  }

  // ------------------------------------------------------------------------------------------
  // Role changes

  private becomeFollower(term: Term, leader: NodeId | null): void {
    const wasLeader = this.role === 'leader';
    this.reset(term);
    this.role = 'follower';
    this.leader = leader;
    if (wasLeader) this.failLeaderReads('NOT_LEADER');
  }

  private becomePreCandidate(): void {
    assert(this.role !== 'leader', 'becomePreCandidate: a leader does not campaign');
    // Pre-vote changes neither term nor vote (dissertation §9.6).
    this.role = 'preCandidate';
    this.votes.clear();
    this.leader = null;
    this.electionElapsed = 0;
    this.resetElectionTimer();
  }

  private becomeCandidate(): void {
    assert(this.role !== 'leader', 'becomeCandidate: a leader does not campaign');
    this.reset(Term(this.term + 1));
    this.role = 'candidate';
    this.vote = this.id;
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', 'becomeLeader: only a candidate wins');
    this.reset(this.term);
    this.role = 'leader';
    this.leader = this.id;
    this.progress.clear();
    for (const member of allMembers(this.conf)) this.addProgress(member);
    const self = this.progress.get(this.id);
    if (self !== undefined) {
      self.maybeUpdate(this.log.persisted);
      self.becomeReplicate();
    }
    // Entries in our log at election time may include a configuration change of an earlier term that
    // is not applied yet; no new change until everything up to here is applied (etcd).
    this.pendingConfIndex = this.log.lastIndex();
    // Raft §8: commit a no-op of the new term at the start, so that earlier entries commit (Figure 8
    // rule) and reads learn the commit index.
    this.appendEntries([
      { type: 'normal', term: this.term, index: LogIndex(this.log.lastIndex() + 1), data: new Uint8Array(0) },
    ]);
    this.uncommittedBytes = 0;
  }

  private addProgress(member: NodeId): void {
    const progress = new Progress(
      LogIndex(this.log.lastIndex() + 1),
      this.conf.learners.includes(member),
      this.config.maxInflightMsgs,
      this.config.maxInflightBytes,
    );
    progress.recentActive = member === this.id;
    this.progress.set(member, progress);
  }

  private reset(term: Term): void {
    if (term !== this.term) {
      assert(term > this.term, `reset: term goes back from ${this.term} to ${term}`);
      this.term = term;
      this.vote = null;
    }
    this.leader = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetElectionTimer();
    this.votes.clear();
    this.transferee = null;
    this.appendPending = false;
    this.appendsDue = false;
    this.uncommittedBytes = 0;
    this.progress.clear();
    this.failForwardedReads('LEADER_CHANGED');
  }

  private resetElectionTimer(): void {
    // Raft §5.2: randomized in [T, 2T) so that split votes are rare.
    const base = this.config.electionTicks;
    this.randomizedElectionTicks = base + this.rng.int(base);
  }

  private promotable(): boolean {
    return isVoter(this.conf, this.id);
  }

  private voterIds(): NodeId[] {
    const ids = new Set<NodeId>([...this.conf.voters, ...this.conf.votersOutgoing]);
    return [...ids].sort((a, b) => a - b);
  }

  private hasUnappliedConfig(): boolean {
    for (let index = this.log.applied + 1; index <= this.log.committed; index++) {
      if (this.log.entryAt(index).type === 'config') return true;
    }
    return false;
  }

  // ------------------------------------------------------------------------------------------
  // Elections

  private handleRequestVote(from: NodeId, message: Extract<RaftMessage, { type: 'requestVote' }>): void {
    // Raft §5.2 "first-come-first-served" one vote per term; a pre-vote for a future term promises nothing.
    const bug = this.config.testOnlyBugs?.voteTwicePerTerm === true && !message.preVote && this.role === 'follower';
    const canVote =
      this.vote === from ||
      (this.vote === null && this.leader === null) ||
      (message.preVote && message.term > this.term) ||
      bug;
    // Raft §5.4.1 election restriction: never vote for a candidate whose log is less up to date.
    const upToDate = this.log.isUpToDate(message.lastIndex, message.lastTerm);
    const granted = canVote && upToDate;
    if (granted && !message.preVote) {
      this.electionElapsed = 0;
      this.vote = from;
    }
    // A granted pre-vote answers in the candidate's future term so that it does not step down.
    const term = granted && message.preVote ? message.term : this.term;
    const hint = granted ? NO_COMMIT_HINT : this.commitHintFor(message.lastIndex);
    this.send(from, { type: 'requestVoteResponse', term, preVote: message.preVote, granted, ...hint });
  }

  /**
   * What we know to be committed, up to `lastIndex` (the asker's last entry), as an (index, term) the
   * asker can check against its own log. Sent with a refused vote: a candidate that missed the commit
   * of a configuration change (a removed leader's successor that got TimeoutNow before the commit
   * index, then crashed) keeps campaigning under the joint configuration and needs the vote of the
   * removed member, who refuses it once it holds a longer log and never campaigns itself (it is no
   * voter in its committed configuration). With the hint the candidate commits and applies the new
   * configuration, and wins without that vote (sim seed 0xc00d5583c8b94004).
   */
  private commitHintFor(lastIndex: number): { commitIndex: LogIndex; commitTerm: Term } {
    const index = Math.min(this.log.committed, lastIndex);
    const term = this.log.term(index);
    if (index <= 0 || term === undefined) return NO_COMMIT_HINT;
    return { commitIndex: LogIndex(index), commitTerm: term };
  }

  private handleVoteResponse(from: NodeId, message: Extract<RaftMessage, { type: 'requestVoteResponse' }>): void {
    // Committed is committed, whoever says it; our entry at that index having that term means our log
    // through it is the responder's (Log Matching), so it is committed here too. Never on a leader:
    // a leader learns commitment only from its own count.
    if (
      this.role !== 'leader' &&
      message.commitIndex > this.log.committed &&
      message.commitIndex <= this.log.lastIndex() &&
      this.log.term(message.commitIndex) === message.commitTerm
    ) {
      this.log.commitTo(message.commitIndex);
    }
    const expected = message.preVote ? 'preCandidate' : 'candidate';
    if (this.role !== expected) {
      this.drop('vote response in another role');
      return;
    }
    this.recordVote(from, message.granted);
  }

  private recordVote(from: NodeId, granted: boolean): void {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    const result = jointVoteResult(this.conf, this.votes);
    if (result === 'pending') return;
    if (result === 'lost') {
      this.becomeFollower(this.term, null);
      return;
    }
    // A candidate has won only once its own vote (term and vote) is durable.
    if (this.role === 'candidate' && this.votes.get(this.id) !== true) return;
    if (this.role === 'preCandidate') this.campaign('election');
    else if (this.role === 'candidate') this.becomeLeader();
  }

  private handleTimeoutNow(from: NodeId): void {
    if (this.role === 'leader') {
      this.drop('timeoutNow to a leader');
      return;
    }
    // Any node of our term may ask (etcd does the same); only the leader has reason to.
    maybe(from === this.leader);
    // Dissertation §3.10: the target starts an election at once, skipping pre-vote and the lease.
    this.campaign('transfer');
  }

  // ------------------------------------------------------------------------------------------
  // Follower side

  private stepFromLeader(
    from: NodeId,
    message: Extract<RaftMessage, { type: 'appendEntries' | 'heartbeat' | 'commit' | 'installSnapshot' }>,
  ): void {
    if (this.role === 'leader') {
      // Two leaders in one term would break election safety; the message is bogus. Count it.
      this.counters.invalidMessages++;
      this.drop(`${message.type} from n${from} to the leader of the same term`);
      return;
    }
    if (this.role !== 'follower') this.becomeFollower(this.term, from);
    this.leader = from;
    this.electionElapsed = 0;
    if (message.type === 'appendEntries') this.handleAppendEntries(from, message);
    else if (message.type === 'heartbeat') this.handleHeartbeat(from, message);
    else if (message.type === 'commit') this.log.commitTo(LogIndex(Math.min(message.commit, this.log.lastIndex())));
    else this.handleSnapshotChunk(from, message);
  }

  private handleAppendEntries(from: NodeId, message: Extract<RaftMessage, { type: 'appendEntries' }>): void {
    const first = message.entries[0];
    if (first !== undefined && (first.index !== message.prevIndex + 1 || first.term < message.prevTerm)) {
      this.counters.invalidMessages++;
      this.drop('entries do not follow prevIndex');
      return;
    }
    if (message.entries.some((entry) => entry.term > message.term)) {
      this.counters.invalidMessages++;
      this.drop('entry term above message term');
      return;
    }
    if (message.prevIndex < this.log.committed) {
      // Everything through our commit index matches any leader (Leader Completeness); say so.
      this.respondAppend(from, this.log.committed);
      return;
    }
    const lastNew = this.log.maybeAppend(message.prevIndex, message.prevTerm, message.commit, message.entries);
    if (lastNew !== undefined) {
      this.respondAppend(from, lastNew);
      return;
    }
    // Fast backtracking (Raft §5.3): point the leader at the last index whose term is at most prevTerm.
    const hint = this.log.findConflictByTerm(Math.min(message.prevIndex, this.log.lastIndex()), message.prevTerm);
    this.send(from, {
      type: 'appendEntriesResponse',
      term: this.term,
      index: message.prevIndex,
      reject: true,
      hintIndex: hint.index,
      hintTerm: hint.term,
    });
  }

  private respondAppend(to: NodeId, index: LogIndex): void {
    this.send(to, {
      type: 'appendEntriesResponse',
      term: this.term,
      index,
      reject: false,
      hintIndex: LogIndex(0),
      hintTerm: Term(0),
    });
  }

  private handleHeartbeat(from: NodeId, message: Extract<RaftMessage, { type: 'heartbeat' }>): void {
    // The leader sends min(our match, its commit), which our log is known to hold; clamp anyway.
    this.log.commitTo(LogIndex(Math.min(message.commit, this.log.lastIndex())));
    this.send(from, { type: 'heartbeatResponse', term: this.term, round: message.round });
  }

  private handleSnapshotChunk(from: NodeId, message: Extract<RaftMessage, { type: 'installSnapshot' }>): void {
    const meta = message.meta;
    if (meta.index <= this.log.committed) {
      // We already have everything it covers: tell the leader where we are.
      this.snapshotReceiver.reset();
      this.respondAppend(from, this.log.committed);
      return;
    }
    const outcome = this.snapshotReceiver.accept(meta, message.totalBytes, message.offset, message.chunk);
    if (outcome.type === 'invalid') {
      this.counters.invalidMessages++;
      this.drop(outcome.reason);
      return;
    }
    if (outcome.type === 'progress') {
      this.send(from, { type: 'installSnapshotResponse', term: this.term, index: meta.index, offset: outcome.offset });
      return;
    }
    const snapshot: Snapshot = { meta, data: outcome.data };
    if (!this.log.matchTerm(meta.index, meta.term) && !this.acceptSnapshot(snapshot)) {
      this.counters.invalidMessages++;
      this.drop('the application refused the snapshot');
      return;
    }
    const restored = this.restoreSnapshot(snapshot);
    // After a restore the log ends at the snapshot; after a fast-forward only the commit index is
    // known to match (entries past it may still conflict with the leader's).
    this.respondAppend(from, restored ? this.log.lastIndex() : this.log.committed);
  }

  /** Dissertation §5.3 receiver steps 6-8; etcd `restore`. False when the log already had it. */
  private restoreSnapshot(snapshot: Snapshot): boolean {
    const meta = snapshot.meta;
    if (this.log.matchTerm(meta.index, meta.term)) {
      // Our log already contains the snapshot's last entry: keep the log, just commit through it.
      this.log.commitTo(meta.index);
      return false;
    }
    this.log.restore(snapshot);
    this.snapshotData = snapshot.data;
    this.conf = meta.config;
    return true;
  }

  private handleReadIndexResponse(from: NodeId, message: Extract<RaftMessage, { type: 'readIndexResponse' }>): void {
    if (!this.forwardedReads.delete(message.requestId)) {
      this.drop('unknown read id');
      return;
    }
    maybe(from === this.leader);
    if (message.ok) this.readStates.push({ requestId: message.requestId, index: message.index });
    else this.readFailures.push({ requestId: message.requestId, reason: 'NOT_LEADER' });
  }

  private expireForwardedReads(): void {
    if (this.forwardedReads.size === 0) return;
    const timeoutTicks = FORWARDED_READ_TIMEOUT_ELECTIONS * this.config.electionTicks;
    for (const [requestId, sentTick] of this.forwardedReads) {
      if (this.ticks - sentTick < timeoutTicks) continue;
      this.forwardedReads.delete(requestId);
      this.readFailures.push({ requestId, reason: 'TIMEOUT' });
    }
  }

  private failForwardedReads(reason: ReadFailure['reason']): void {
    for (const requestId of this.forwardedReads.keys()) this.readFailures.push({ requestId, reason });
    this.forwardedReads.clear();
  }

  // ------------------------------------------------------------------------------------------
  // Leader side

  private handleAppendResponse(from: NodeId, message: Extract<RaftMessage, { type: 'appendEntriesResponse' }>): void {
    const progress = this.leaderProgress(from);
    if (progress === undefined) return;
    progress.recentActive = true;
    if (message.reject) {
      this.handleAppendRejection(from, progress, message);
      return;
    }
    if (message.index > this.log.lastIndex()) {
      this.counters.invalidMessages++;
      this.drop('acknowledged an index beyond our log');
      return;
    }
    const wasPaused = progress.isPaused();
    const advanced = progress.maybeUpdate(message.index);
    if (advanced || (progress.match === message.index && progress.state === 'probe')) {
      if (progress.state === 'probe') progress.becomeReplicate();
      else if (progress.state === 'snapshot' && progress.match + 1 >= this.log.firstIndex()) {
        progress.becomeProbe();
        progress.becomeReplicate();
      } else if (progress.state === 'replicate') progress.inflights.freeThrough(message.index);
      if (this.maybeCommit()) this.broadcastAppend();
      else if (wasPaused) this.sendAppend(from, false);
      // Keep the pipeline full while the window allows.
      while (this.sendAppend(from, false)) {
        /* each call sends one message */
      }
      if (from === this.transferee && progress.match === this.log.lastIndex()) {
        this.send(from, { type: 'timeoutNow', term: this.term });
      }
    }
  }

  private handleAppendRejection(
    from: NodeId,
    progress: Progress,
    message: Extract<RaftMessage, { type: 'appendEntriesResponse' }>,
  ): void {
    if (message.index === 0 && message.hintIndex === 0) return; // The lower-term nudge, nothing to probe.
    let probeFrom = message.hintIndex;
    if (message.hintTerm > 0) probeFrom = this.log.findConflictByTerm(message.hintIndex, message.hintTerm).index;
    if (progress.maybeDecreaseTo(message.index, probeFrom)) {
      if (progress.state === 'replicate') progress.becomeProbe();
      this.sendAppend(from, true);
    }
  }

  private handleHeartbeatResponse(from: NodeId, message: Extract<RaftMessage, { type: 'heartbeatResponse' }>): void {
    const progress = this.leaderProgress(from);
    if (progress === undefined) return;
    progress.recentActive = true;
    progress.paused = false;
    if (progress.state !== 'snapshot' && (progress.match < this.log.lastIndex() || progress.state === 'probe')) {
      this.sendAppend(from, true);
    }
    if (message.round > progress.ackedRound && message.round <= this.heartbeatRound)
      progress.ackedRound = message.round;
    this.releaseConfirmedReads();
  }

  private handleSnapshotResponse(
    from: NodeId,
    message: Extract<RaftMessage, { type: 'installSnapshotResponse' }>,
  ): void {
    const progress = this.leaderProgress(from);
    if (progress === undefined) return;
    progress.recentActive = true;
    const transfer = progress.snapshot;
    if (progress.state !== 'snapshot' || transfer === null || transfer.index !== message.index) return;
    if (message.offset > this.snapshotData.length) {
      this.counters.invalidMessages++;
      this.drop('snapshot offset beyond the snapshot');
      return;
    }
    transfer.idleBeats = 0;
    if (message.offset < transfer.acked || message.offset > transfer.sent) {
      // The follower lost or skipped chunks: resend from where it is.
      transfer.sent = message.offset;
      transfer.sentFinal = false;
    }
    transfer.acked = message.offset;
    this.sendSnapshotChunks(from, progress);
  }

  private handleForwardedRead(from: NodeId, requestId: number): void {
    if (this.role !== 'leader') {
      this.send(from, { type: 'readIndexResponse', term: this.term, requestId, index: LogIndex(0), ok: false });
      return;
    }
    if (this.reads.full() || this.readsAwaitingCommit.length >= this.config.pendingReadsMax) {
      this.send(from, { type: 'readIndexResponse', term: this.term, requestId, index: LogIndex(0), ok: false });
      return;
    }
    this.leaderRead(requestId, from);
  }

  private leaderProgress(from: NodeId): Progress | undefined {
    if (this.role !== 'leader') {
      this.drop('leader message to a non-leader');
      return undefined;
    }
    const progress = this.progress.get(from);
    if (progress === undefined) this.drop(`n${from} is not a member`);
    return progress;
  }

  /**
   * Figure 2 "Rules for Servers", leaders: advance commitIndex to N if a majority has matchIndex >= N
   * and log[N].term == currentTerm. Raft §5.4.2: entries of earlier terms are never committed by
   * counting replicas (Figure 8); they commit indirectly, when an entry of the current term does.
   */
  private maybeCommit(): boolean {
    const index = jointCommitted(this.conf, (id) => this.progress.get(id)?.match ?? 0);
    if (!Number.isFinite(index) || index <= this.log.committed) return false;
    const commitAny = this.config.testOnlyBugs?.commitPreviousTermByCount === true;
    if (this.log.term(index) !== this.term && !commitAny) return false;
    const previous = this.log.committed;
    this.log.commitTo(LogIndex(index));
    for (let i = previous + 1; i <= index; i++) {
      this.uncommittedBytes = Math.max(
        0,
        this.uncommittedBytes - entryPayloadBytes(this.log.entryAt(i)) - ENTRY_OVERHEAD_BYTES,
      );
    }
    if (this.log.term(previous) !== this.term && this.log.term(index) === this.term) this.releaseReadsAwaitingCommit();
    return true;
  }

  private broadcastAppend(sendIfEmpty = true): void {
    for (const member of this.progress.keys()) if (member !== this.id) this.sendAppend(member, sendIfEmpty);
  }

  private broadcastHeartbeat(): void {
    this.heartbeatRound++;
    this.heartbeatRoundQueued = true;
    this.roundTicks.record(this.heartbeatRound, this.ticks);
    for (const [member, progress] of this.progress) {
      if (member === this.id) continue;
      // Never let a follower commit past what it is known to match (it may hold a divergent suffix).
      const commit = LogIndex(Math.min(progress.match, this.log.committed));
      this.send(member, { type: 'heartbeat', term: this.term, commit, round: this.heartbeatRound });
    }
  }

  /** Sends one AppendEntries (or snapshot chunks) to `to`; false when nothing was sent. */
  private sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const progress = this.progress.get(to);
    if (progress === undefined || progress.isPaused()) return false;
    const prevIndex = LogIndex(progress.next - 1);
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) {
      if (progress.next <= this.log.snapshot.index) return this.startSnapshot(to, progress);
      // next is beyond our log (a stale optimistic update): fall back to probing from the match.
      progress.becomeProbe();
      return false;
    }
    const last = this.log.lastIndex();
    // etcd: a replicate window that is full sends only empty appends; if every message in the window
    // was lost, the follower's answer to an empty one (reject or ack) unblocks the window.
    const throttled = progress.state === 'replicate' && progress.inflights.full();
    const entries =
      progress.next <= last && !throttled ? this.log.slice(progress.next, last, this.config.maxSizePerMsgBytes) : [];
    if (entries.length === 0 && !sendIfEmpty) return false;
    if (entries.length === 0 && !this.sendingDeferred) {
      // Nothing new for this follower: an empty append (or commit notice) would carry only the commit
      // index. It leaves with the Ready, and only if no AppendEntries to this follower joined it
      // meanwhile: with batched writes, the step that commits a batch proposes the next, so it would
      // be a second message to the follower (and, for an empty append, a second answer) for nothing.
      progress.appendDue = true;
      this.appendsDue = true;
      return true;
    }
    if (entries.length === 0 && progress.state === 'replicate' && progress.match === prevIndex && !throttled) {
      // The follower has everything and nothing is in flight: all an empty append would tell it is
      // the commit index, and its answer would tell us nothing. Send just that, unanswered (one
      // message per write per follower less: the commit round of every write sent one).
      // (match = lastIndex here, so the commit index is within what the follower is known to hold.)
      if (progress.committedSent >= this.log.committed) return false;
      progress.committedSent = this.log.committed;
      this.send(to, { type: 'commit', term: this.term, commit: this.log.committed });
      return true;
    }
    progress.appendDue = false;
    let bytes = 0;
    for (const entry of entries) bytes += entryPayloadBytes(entry) + ENTRY_OVERHEAD_BYTES;
    this.send(to, { type: 'appendEntries', term: this.term, prevIndex, prevTerm, entries, commit: this.log.committed });
    progress.sentEntries(entries.length, bytes, LogIndex(prevIndex + entries.length));
    return true;
  }

  /** The empty appends and commit notices `sendAppend` deferred to the Ready, for the followers no
   * AppendEntries reached meanwhile. */
  private sendDeferredAppends(): void {
    this.appendsDue = false;
    const leading = this.role === 'leader';
    this.sendingDeferred = true;
    for (const [member, progress] of this.progress) {
      if (!progress.appendDue) continue;
      progress.appendDue = false;
      if (leading) this.sendAppend(member, true);
    }
    this.sendingDeferred = false;
  }

  private startSnapshot(to: NodeId, progress: Progress): boolean {
    // Dissertation §5.3: the follower needs entries we compacted; send the snapshot instead.
    progress.becomeSnapshot(this.log.snapshot.index);
    this.sendSnapshotChunks(to, progress);
    return true;
  }

  private sendSnapshotChunks(to: NodeId, progress: Progress): void {
    const transfer = progress.snapshot;
    assert(transfer !== null, 'sendSnapshotChunks: no transfer');
    if (transfer.index !== this.log.snapshot.index) {
      // A newer snapshot replaced the one being sent; start over with it.
      progress.becomeSnapshot(this.log.snapshot.index);
      this.sendSnapshotChunks(to, progress);
      return;
    }
    const data = this.snapshotData;
    const chunkBytes = this.config.snapshotChunkBytes;
    const windowBytes = chunkBytes * this.config.maxInflightMsgs;
    while (!transfer.sentFinal && transfer.sent - transfer.acked < windowBytes) {
      const end = Math.min(transfer.sent + chunkBytes, data.length);
      const chunk = data.subarray(transfer.sent, end);
      this.send(to, {
        type: 'installSnapshot',
        term: this.term,
        meta: this.log.snapshot,
        totalBytes: data.length,
        offset: transfer.sent,
        chunk,
      });
      transfer.sent = end;
      if (end === data.length) transfer.sentFinal = true;
    }
  }

  private tickSnapshotTransfers(): void {
    for (const [member, progress] of this.progress) {
      const transfer = progress.snapshot;
      if (progress.state !== 'snapshot' || transfer === null) continue;
      transfer.idleBeats++;
      if (transfer.idleBeats < SNAPSHOT_STALL_BEATS) continue;
      // Chunks or the final acknowledgement were lost: resend from the last acknowledged offset.
      transfer.idleBeats = 0;
      transfer.sent = transfer.acked;
      transfer.sentFinal = false;
      this.sendSnapshotChunks(member, progress);
    }
  }

  private checkQuorumActive(): boolean {
    const active = new Set<NodeId>();
    for (const [member, progress] of this.progress) {
      if (progress.recentActive || member === this.id) active.add(member);
      if (member !== this.id) progress.recentActive = false;
    }
    return hasQuorum(this.conf, active);
  }

  private confirmedRound(): number {
    return jointCommitted(this.conf, (id) =>
      id === this.id ? this.heartbeatRound : (this.progress.get(id)?.ackedRound ?? 0),
    );
  }

  /** The lease (dissertation §6.4.1): a quorum answered a round sent recently enough. */
  private leaseValid(): boolean {
    if (this.transferee !== null) return false;
    const leaseStart = jointCommitted(this.conf, (id) => {
      if (id === this.id) return this.ticks;
      const round = this.progress.get(id)?.ackedRound ?? 0;
      return round === 0 ? -1 : (this.roundTicks.tickOf(round) ?? -1);
    });
    if (!Number.isFinite(leaseStart) || leaseStart < 0) return false;
    return this.ticks - leaseStart < this.config.electionTicks - this.config.leaseMarginTicks;
  }

  private releaseConfirmedReads(): void {
    if (this.reads.size === 0) return;
    for (const read of this.reads.releaseThrough(this.confirmedRound())) this.releaseRead(read);
  }

  private releaseRead(read: PendingRead): void {
    if (read.from === null) this.readStates.push({ requestId: read.requestId, index: read.index });
    else
      this.send(read.from, {
        type: 'readIndexResponse',
        term: this.term,
        requestId: read.requestId,
        index: read.index,
        ok: true,
      });
  }

  private releaseReadsAwaitingCommit(): void {
    const waiting = this.readsAwaitingCommit;
    this.readsAwaitingCommit = [];
    for (const read of waiting) this.leaderRead(read.requestId, read.from);
  }

  private failLeaderReads(reason: ReadFailure['reason']): void {
    const failed: { requestId: number; from: NodeId | null }[] = [...this.readsAwaitingCommit, ...this.reads.drain()];
    this.readsAwaitingCommit = [];
    for (const read of failed) {
      if (read.from === null) this.readFailures.push({ requestId: read.requestId, reason });
      // Forwarded reads fail at their follower on its own timeout or leader change.
    }
  }

  // ------------------------------------------------------------------------------------------
  // Configuration

  /** A configuration entry was applied: it is now the configuration (etcd `applyConfChange`). */
  private applyConfig(config: ConfState): void {
    this.conf = config;
    if (this.role !== 'leader') return;
    const added: NodeId[] = [];
    for (const member of allMembers(config)) {
      const existing = this.progress.get(member);
      if (existing === undefined) {
        this.addProgress(member);
        added.push(member);
      } else existing.isLearner = config.learners.includes(member);
    }
    for (const member of [...this.progress.keys()])
      if (!allMembers(config).includes(member)) this.progress.delete(member);
    if (this.transferee !== null && !config.voters.includes(this.transferee)) this.transferee = null;
    if (this.maybeCommit()) this.broadcastAppend();
    // Probe new members now rather than at the next heartbeat answer.
    for (const member of added) if (member !== this.id) this.sendAppend(member, true);
    if (!isVoter(config, this.id)) this.handOffRemoved();
  }

  /**
   * Dissertation §4.2.2: a leader removed from the configuration steps down once C_new is committed.
   * Stepping down at once can leave the cluster stuck: the remaining voters may not know yet that
   * C_new is committed (they still need this node's vote under C_old,new) while its log, longer than
   * theirs, makes it refuse to vote for them. So it keeps leading without taking proposals, as in a
   * leadership transfer (§3.10) to the most caught-up remaining voter: once that voter has the whole
   * log it gets TimeoutNow; if the handover does not finish within an election timeout, the removed
   * leader steps down anyway (tickLeader).
   */
  private handOffRemoved(): void {
    let best: NodeId | null = null;
    let bestMatch = -1;
    for (const voter of this.conf.voters) {
      const match = this.progress.get(voter)?.match ?? 0;
      if (match > bestMatch) {
        best = voter;
        bestMatch = match;
      }
    }
    if (best === null) {
      this.becomeFollower(this.term, null);
      return;
    }
    if (this.transferee === best) return;
    this.transferee = best;
    this.electionElapsed = 0;
    if (bestMatch === this.log.lastIndex()) this.send(best, { type: 'timeoutNow', term: this.term });
    else this.sendAppend(best, true);
  }

  private afterApply(): void {
    // Leave the joint configuration automatically once it is applied (etcd's AutoLeave).
    if (this.role !== 'leader' || !isJoint(this.conf) || !this.conf.autoLeave) return;
    if (this.pendingConfIndex > this.log.applied || this.transferee !== null) return;
    this.appendConfig(leaveJoint(this.conf));
  }

  // ------------------------------------------------------------------------------------------
  // Plumbing

  private send(to: NodeId, message: RaftMessage): void {
    assert(to !== this.id, 'send: to self');
    // Votes and AppendEntries acknowledgements promise durable state: they wait for the write.
    const promise = message.type === 'requestVoteResponse' || message.type === 'appendEntriesResponse';
    (promise ? this.msgsAfterPersist : this.msgs).push({ to, message });
  }

  private drop(reason: string): void {
    this.counters.droppedMessages++;
    this.counters.lastDropReason = reason;
  }

  status(): RaftStatus {
    const progress = new Map<NodeId, string>();
    for (const [member, entry] of this.progress) progress.set(member, entry.describe());
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.leader,
      commit: this.log.committed,
      applied: this.log.applied,
      persisted: this.log.persisted,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      config: this.conf,
      transferee: this.transferee,
      progress,
    };
  }

  /** Cross-field checks of this node (Tigerbeetle's `invariants()`); the sim calls it after every step. */
  invariants(): void {
    this.log.invariants();
    assert(this.log.lastTerm() <= this.term, 'core: log holds an entry from a future term');
    assert(this.role !== 'leader' || this.leader === this.id, 'core: a leader names itself');
    assert(this.role !== 'candidate' || this.vote === this.id, 'core: a candidate votes for itself');
    assert(this.role === 'leader' || this.progress.size === 0, 'core: only a leader tracks progress');
    if (this.role === 'leader') {
      // Run after every step: nothing allocated (no [key, value] pairs), messages built only on failure.
      for (const member of this.progress.keys()) {
        const progress = this.progress.get(member)!;
        if (progress.match >= progress.next)
          assert(false, `core: n${member} match ${progress.match} >= next ${progress.next}`);
        if (progress.match > this.log.lastIndex()) assert(false, `core: n${member} matches beyond the log`);
      }
      const self = this.progress.get(this.id);
      assert(self === undefined || self.match <= this.log.persisted, 'core: leader counts unpersisted entries');
    }
  }
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
