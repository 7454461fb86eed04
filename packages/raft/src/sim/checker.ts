/**
 * Raft's safety properties (Figure 3 of the paper), checked from outside the nodes after every step
 * of the simulation (TigerBeetle keeps its state checker outside the replicas for the same reason: a
 * bug inside a node cannot also hide itself):
 *
 * - Election Safety: at most one leader can be elected in a given term.
 * - Log Matching: if two logs contain an entry with the same index and term, the logs are identical
 *   in all entries up through that index. Checked inductively: every (index, term) ever seen in any
 *   log must always name the same entry and the same previous term.
 * - Leader Completeness: a leader's log contains every entry committed before it was elected.
 * - State Machine Safety: no two nodes apply (or commit) different entries at the same index; and each
 *   node applies each index exactly once, in order, within one incarnation.
 *
 * Each check is incremental (a node's log is verified only past the point verified before), so the
 * cost per step stays small on long runs.
 */
import { assert, crc32c, type NodeId } from '@dsys/kit';
import type { KvObserver } from '../kv/protocol.js';
import type { RaftCore } from '../raft-core.js';
import { describeConfig, type Entry, type LogIndex } from '../types.js';

interface Identity {
  readonly term: number;
  readonly hash: number;
}

const configText = new TextEncoder();

export class RaftSafetyChecker implements KvObserver {
  private readonly hashes = new WeakMap<Entry, number>();
  /** index -> the entry first applied there by any node. */
  private readonly appliedAt = new Map<number, Identity>();
  private readonly nextApply = new Map<NodeId, number>();
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** `${index}:${term}` -> entry hash and previous term. */
  private readonly logEntries = new Map<string, { hash: number; previousTerm: number }>();
  private readonly verified = new Map<NodeId, { index: number; term: number }>();
  /** index -> the entry committed there (as some node's commit index showed). */
  private readonly committed = new Map<number, Identity>();
  private committedMax = 0;
  private readonly commitSeen = new Map<NodeId, number>();
  /** The first violation found; `check` throws it, observers only record it (they run inside a node's step). */
  violation: string | null = null;
  /** Entries applied by all nodes (for reports). */
  appliedCount = 0;
  leadersSeen = 0;

  private hash(entry: Entry): number {
    let hash = this.hashes.get(entry);
    if (hash === undefined) {
      hash =
        entry.type === 'normal'
          ? crc32c(entry.data) ^ entry.data.length
          : crc32c(configText.encode(describeConfig(entry.config))) ^ 0x5bd1e995;
      this.hashes.set(entry, hash);
    }
    return hash;
  }

  private violate(message: string): void {
    this.violation ??= message;
  }

  reset(node: NodeId, index: LogIndex): void {
    this.nextApply.set(node, index + 1);
  }

  applied(node: NodeId, entry: Entry): void {
    this.appliedCount++;
    const expected = this.nextApply.get(node);
    if (expected !== entry.index) {
      this.violate(`n${node} applied index ${entry.index} but ${expected} was next (applied twice or out of order)`);
    }
    this.nextApply.set(node, entry.index + 1);
    const identity = { term: entry.term, hash: this.hash(entry) };
    const first = this.appliedAt.get(entry.index);
    if (first === undefined) this.appliedAt.set(entry.index, identity);
    else if (first.term !== identity.term || first.hash !== identity.hash) {
      this.violate(
        `state machine safety: n${node} applied term ${entry.term} at index ${entry.index}, another node applied term ${first.term}`,
      );
    }
  }

  /** Checks every up node's core; throws (kit `assert`) on the first violation. */
  check(cores: readonly RaftCore[]): void {
    for (const core of cores) {
      this.checkElection(core);
      this.checkLog(core);
      this.checkCommit(core);
    }
    assert(this.violation === null, this.violation ?? '');
  }

  private checkElection(core: RaftCore): void {
    if (core.role !== 'leader') return;
    const existing = this.leaderOfTerm.get(core.term);
    if (existing === core.id) return;
    if (existing !== undefined) {
      this.violate(`election safety: n${existing} and n${core.id} both led term ${core.term}`);
      return;
    }
    this.leaderOfTerm.set(core.term, core.id);
    this.leadersSeen++;
    this.checkCompleteness(core);
  }

  /** Leader Completeness at the moment a node becomes leader. */
  private checkCompleteness(core: RaftCore): void {
    const log = core.log;
    if (log.lastIndex() < this.committedMax) {
      this.violate(
        `leader completeness: n${core.id} leads term ${core.term} with last index ${log.lastIndex()} < committed ${this.committedMax}`,
      );
      return;
    }
    for (let index = log.firstIndex(); index <= this.committedMax; index++) {
      const committed = this.committed.get(index);
      if (committed !== undefined && log.term(index) !== committed.term) {
        this.violate(
          `leader completeness: n${core.id} leads term ${core.term} without committed entry ${committed.term}/${index}`,
        );
        return;
      }
    }
  }

  private checkLog(core: RaftCore): void {
    const log = core.log;
    const verified = this.verified.get(core.id);
    let from: number = log.firstIndex();
    if (verified !== undefined && verified.index >= from && log.term(verified.index) === verified.term)
      from = verified.index + 1;
    const last = log.lastIndex();
    for (let index = from; index <= last; index++) {
      const entry = log.entryAt(index);
      const previousTerm: number = log.term(index - 1) ?? -1;
      const key = `${index}:${entry.term}`;
      const hash = this.hash(entry);
      const seen = this.logEntries.get(key);
      if (seen === undefined) this.logEntries.set(key, { hash, previousTerm });
      else if (
        seen.hash !== hash ||
        (seen.previousTerm !== previousTerm && seen.previousTerm !== -1 && previousTerm !== -1)
      ) {
        this.violate(`log matching: n${core.id} holds a different entry ${entry.term}/${index} than another log`);
        return;
      }
    }
    this.verified.set(core.id, { index: last, term: log.lastTerm() });
  }

  private checkCommit(core: RaftCore): void {
    const log = core.log;
    const seen = this.commitSeen.get(core.id) ?? 0;
    if (log.committed <= seen) return;
    for (let index = Math.max(seen + 1, log.firstIndex()); index <= log.committed; index++) {
      const entry = log.entryAt(index);
      const identity = { term: entry.term, hash: this.hash(entry) };
      const first = this.committed.get(index);
      if (first === undefined) this.committed.set(index, identity);
      else if (first.term !== identity.term || first.hash !== identity.hash) {
        this.violate(
          `state machine safety: n${core.id} committed ${entry.term}/${index}, another node committed term ${first.term} there`,
        );
        return;
      }
    }
    this.commitSeen.set(core.id, log.committed);
    if (log.committed > this.committedMax) this.committedMax = log.committed;
  }
}
