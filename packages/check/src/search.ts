/**
 * The search for one (sub-)history: Wing & Gong's backtracking ("Testing and verifying concurrent
 * objects", 1993) with Lowe's improvements ("Testing for linearizability", 2017: just-in-time
 * linearization, memoized configurations), laid out as Porcupine's `checkSingle`:
 *
 * - completed operations become a doubly linked list of call and return events sorted by time
 *   (calls before returns on equal times, so touching intervals count as concurrent: the permissive
 *   reading);
 * - scanning from the head, a call whose operation the model accepts in the current state is
 *   linearized: pushed on a stack and "lifted" (its call and return unlinked), and the scan restarts
 *   at the head; the first return reached bounds the candidates (nothing called after it may go
 *   next); when no candidate is left it is a dead end: pop the last linearization, unlift it and
 *   go on with the candidates after it;
 * - a configuration (completed set, info set, state) known to fail is skipped (`FailedConfigs`).
 *
 * Indeterminate ('info') operations never return, so they never bound anything and may stay out of
 * the linearization for good; they sit in a second list, sorted by call. Two strategies order them:
 * - 'eager' (Porcupine's order): an info operation is tried as soon as its call is reached, so the
 *   search tends to apply it early and let the next write absorb it. Fast when the history is
 *   linearizable; refuting a violation may cost 2^(pending info operations), since "applied, then
 *   overwritten" and "never applied" are different configurations.
 * - 'lazy': info operations are tried only once every completed candidate failed, and a
 *   configuration is skipped when one with fewer info operations applied dominates it (see
 *   `dominated`). Much better at refuting, slower on long linearizable histories (every dead end
 *   retries the pending info operations).
 * `checkLinearizable` runs 'eager' first and hands what is left of the budget to 'lazy'.
 *
 * The step budget is a count of loop iterations (deterministic, unlike wall time).
 */
import { FailedConfigs } from './config-cache.js';
import { LinearizedSet } from './linearized-set.js';
import type { Model } from './types.js';

/** One operation as the search sees it. */
export interface SearchOperation<Input, Output> {
  readonly input: Input;
  /** `undefined` for 'info' operations: any output the model allows. */
  readonly output: Output | undefined;
  readonly call: number;
  /** +Infinity for 'info' operations. */
  readonly return: number;
}

export type SearchStrategy = 'eager' | 'lazy';

/** Where the search got stuck, reconstructed by re-running it (see `search`'s `stopAtDepth`). */
export interface DeadEnd<State> {
  /** Operation indices (into the searched array) in the order they were linearized. */
  readonly linearized: readonly number[];
  readonly state: State;
  /** Operations that could go next in real-time order (called before the earliest pending return). */
  readonly candidates: readonly number[];
}

export type SearchResult =
  | { readonly kind: 'linearizable'; readonly steps: number }
  | { readonly kind: 'violation'; readonly steps: number; readonly deepest: number }
  | { readonly kind: 'budget'; readonly steps: number };

/**
 * Searches `operations` (any order). With `stopAtDepth`, stops at the first dead end with exactly
 * that many operations linearized and returns it: the search is deterministic, so re-running it with
 * the depth of the deepest dead end reconstructs the longest linearizable prefix it found.
 */
export function search<State, Input, Output>(
  model: Model<State, Input, Output>,
  operations: readonly SearchOperation<Input, Output>[],
  strategy: SearchStrategy,
  stepsMax: number,
  stopAtDepth = -1,
): SearchResult | DeadEnd<State> {
  return new Search(model, operations, strategy).run(stepsMax, stopAtDepth);
}

export function isDeadEnd<State>(value: SearchResult | DeadEnd<State>): value is DeadEnd<State> {
  return 'candidates' in value;
}

/** A doubly linked list through `nodes` in order, with sentinels `head` and `head + 1`. */
function link(nodes: Int32Array, head: number): [next: Int32Array, prev: Int32Array] {
  const next = new Int32Array(head + 2);
  const prev = new Int32Array(head + 2);
  linkInto(next, prev, nodes, head);
  return [next, prev];
}

function linkInto(next: Int32Array, prev: Int32Array, nodes: Iterable<number>, head: number): void {
  let last = head;
  for (const node of nodes) {
    next[last] = node;
    prev[node] = last;
    last = node;
  }
  next[last] = head + 1;
  prev[head + 1] = last;
}

/** Unlinks `first` and then `second` (the same node for info operations). */
function lift(next: Int32Array, prev: Int32Array, first: number, second: number): void {
  next[prev[first]!] = next[first]!;
  prev[next[first]!] = prev[first]!;
  if (second === first) return;
  next[prev[second]!] = next[second]!;
  prev[next[second]!] = prev[second]!;
}

/** Relinks in reverse order of `lift` (dancing links: removed nodes keep their own pointers). */
function unlift(next: Int32Array, prev: Int32Array, first: number, second: number): void {
  if (second !== first) {
    next[prev[second]!] = second;
    prev[next[second]!] = second;
  }
  next[prev[first]!] = first;
  prev[next[first]!] = first;
}

class StateInterner<State> {
  private readonly ids = new Map<string, number>();
  constructor(private readonly model: Model<State, unknown, unknown>) {}
  id(state: State): number {
    const key = this.model.key(state);
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.ids.size;
      this.ids.set(key, id);
    }
    return id;
  }
}

class Search<State, Input, Output> {
  private readonly completed: SearchOperation<Input, Output>[] = [];
  private readonly info: SearchOperation<Input, Output>[] = [];
  /** Index into the caller's array, for completed and info operations. */
  private readonly completedOrigin: number[] = [];
  private readonly infoOrigin: number[] = [];
  private readonly lazy: boolean;

  // Completed operation i is nodes 2i (call) and 2i+1 (return) of `next`/`prev`, with sentinels
  // `head` = 2n and `head + 1`. Info operation j is node j of `infoNext`/`infoPrev`, in one of two
  // lists sorted by call: the first (sentinels m and m+1 for m info operations) holds all of them
  // for 'eager', and for 'lazy' those that do not overwrite; the second (m+2, m+3) holds the
  // overwriting ones for 'lazy', which are never candidates inside a block (see `dominated`).
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private readonly head: number;
  private readonly infoNext: Int32Array;
  private readonly infoPrev: Int32Array;
  private readonly infoHead: number;
  private readonly overwritingHead: number;
  /** Per info operation: which list holds it (1: the overwriting ones). */
  private readonly infoList: Uint8Array;
  /** Per completed operation: 1 if read-only (see `backtrack`). */
  private readonly readOnly: Uint8Array;
  /** Per completed operation: 1 if its outcome does not depend on the state (`Model.overwrites`). */
  private readonly completedOverwrites: Uint8Array;

  private readonly interner: StateInterner<State>;
  private readonly failed: FailedConfigs;
  private readonly completedSet: LinearizedSet;
  private readonly infoSet: LinearizedSet;
  // Per depth d, i.e. the configuration after d linearizations: the operation pushed to leave it
  // (completed i as i, info j as ~j), the scan position when it was pushed, its state and state id,
  // and the depth where its trailing block of info operations starts (d itself if there is none).
  private readonly stack: Int32Array;
  private readonly stackNode: Int32Array;
  private readonly stackInfoNode: Int32Array;
  private readonly states: State[] = [];
  private readonly stateIds: Int32Array;
  private readonly blockStart: Int32Array;
  private depth = 0;
  private deepest = 0;
  /** Scan position in the completed list and in the info list. */
  private node: number;
  private infoNode: number;

  constructor(
    private readonly model: Model<State, Input, Output>,
    operations: readonly SearchOperation<Input, Output>[],
    strategy: SearchStrategy,
  ) {
    this.lazy = strategy === 'lazy';
    this.failed = new FailedConfigs(this.lazy);
    const order = operations
      .map((_, index) => index)
      .sort((a, b) => operations[a]!.call - operations[b]!.call || a - b);
    for (const index of order) {
      const operation = operations[index]!;
      const isInfo = operation.return === Number.POSITIVE_INFINITY;
      (isInfo ? this.info : this.completed).push(operation);
      (isInfo ? this.infoOrigin : this.completedOrigin).push(index);
    }
    const { completed, info } = this;
    this.head = 2 * completed.length;
    [this.next, this.prev] = link(this.eventOrder(), this.head);
    const overwrites = (operation: SearchOperation<Input, Output>) =>
      this.lazy && model.overwrites?.(operation.input) === true ? 1 : 0;
    this.readOnly = Uint8Array.from(completed, (operation) => (model.readOnly?.(operation.input) === true ? 1 : 0));
    this.completedOverwrites = Uint8Array.from(completed, overwrites);
    this.infoList = Uint8Array.from(info, overwrites);
    this.infoHead = info.length;
    this.overwritingHead = info.length + 2;
    this.infoNext = new Int32Array(info.length + 4);
    this.infoPrev = new Int32Array(info.length + 4);
    const infoKeys = [...info.keys()];
    linkInto(
      this.infoNext,
      this.infoPrev,
      infoKeys.filter((j) => overwrites(info[j]!) === 0),
      this.infoHead,
    );
    linkInto(
      this.infoNext,
      this.infoPrev,
      infoKeys.filter((j) => overwrites(info[j]!) === 1),
      this.overwritingHead,
    );
    this.interner = new StateInterner(model as Model<State, unknown, unknown>);
    this.completedSet = new LinearizedSet(completed.length);
    this.infoSet = new LinearizedSet(info.length);
    const depthMax = completed.length + info.length;
    this.stack = new Int32Array(depthMax);
    this.stackNode = new Int32Array(depthMax);
    this.stackInfoNode = new Int32Array(depthMax);
    this.stateIds = new Int32Array(depthMax + 1);
    this.blockStart = new Int32Array(depthMax + 1);
    this.states.push(model.init());
    this.stateIds[0] = this.interner.id(this.states[0]!);
    this.node = this.next[this.head]!;
    this.infoNode = this.infoNext[this.infoHead]!;
  }

  /** Completed calls and returns by time; calls first on equal times, then by operation. */
  private eventOrder(): Int32Array {
    const nodes = Int32Array.from({ length: 2 * this.completed.length }, (_, i) => i);
    const time = (node: number) => {
      const operation = this.completed[node >> 1]!;
      return (node & 1) === 0 ? operation.call : operation.return;
    };
    return nodes.sort((a, b) => time(a) - time(b) || (a & 1) - (b & 1) || a - b);
  }

  run(stepsMax: number, stopAtDepth: number): SearchResult | DeadEnd<State> {
    const { completed, next, head, infoNext } = this;
    const tail = head + 1;
    let steps = 0;
    while (next[head] !== tail) {
      if (++steps > stepsMax) return { kind: 'budget', steps: stepsMax };
      const node = this.node;
      const isReturn = (node & 1) === 1;
      const time = isReturn ? completed[node >> 1]!.return : completed[node >> 1]!.call;
      if ((isReturn || !this.lazy) && this.infoCandidate(time)) {
        if (!this.tryInfo(this.infoNode)) this.infoNode = infoNext[this.infoNode]!;
      } else if (!isReturn) {
        if (!this.tryCompleted(node >> 1)) this.node = next[node]!;
      } else {
        // Dead end: no candidate called before the return at `node` works.
        if (this.depth > this.deepest) this.deepest = this.depth;
        if (this.depth === stopAtDepth) return this.deadEnd(node);
        if (!this.backtrack()) return { kind: 'violation', steps, deepest: this.deepest };
      }
    }
    return { kind: 'linearizable', steps };
  }

  /**
   * Moves `infoNode` to the next info candidate called no later than `time`, if any: through the
   * first list, then (for 'lazy', outside a block) through the overwriting ones.
   */
  private infoCandidate(time: number): boolean {
    for (;;) {
      const j = this.infoNode;
      const first = j < this.info.length ? this.infoList[j] === 0 : j === this.infoHead + 1;
      if (j < this.info.length && this.info[j]!.call <= time) return true;
      if (!first || !this.lazy || this.blockStart[this.depth]! < this.depth) return false;
      this.infoNode = this.infoNext[this.overwritingHead]!;
    }
  }

  private tryCompleted(index: number): boolean {
    if (this.lazy && this.completedOverwrites[index] === 1 && this.blockStart[this.depth]! < this.depth) return false;
    const operation = this.completed[index]!;
    const result = this.model.step(this.states[this.depth]!, operation.input, operation.output);
    if (!result.ok) return false;
    const id = this.interner.id(result.state);
    this.completedSet.add(index);
    if (this.dominated(operation, false, id)) {
      this.completedSet.delete(index);
      return false;
    }
    lift(this.next, this.prev, 2 * index, 2 * index + 1);
    this.push(index, result.state, id, this.depth + 1);
    return true;
  }

  private tryInfo(index: number): boolean {
    const operation = this.info[index]!;
    const result = this.model.step(this.states[this.depth]!, operation.input, undefined);
    if (!result.ok) return false;
    const id = this.interner.id(result.state);
    this.infoSet.add(index);
    if (this.dominated(operation, true, id)) {
      this.infoSet.delete(index);
      return false;
    }
    lift(this.infoNext, this.infoPrev, index, index);
    this.push(~index, result.state, id, this.blockStart[this.depth]!);
    return true;
  }

  /**
   * Whether the configuration just reached (`operation` applied, giving state `id`) can be skipped
   * because one with the same completed set and state, but fewer info operations applied, fails or
   * is explored anyway ('lazy' only; 'eager' skips only configurations known to fail):
   * - one such configuration is known to fail (`FailedConfigs` with subsumption);
   * - an info operation that leaves the state unchanged: the current configuration dominates;
   * - the current configuration ends a block of info operations applied since configuration B
   *   (the last one reached by a completed operation), and applying `operation` straight at B
   *   gives the same state: B's own child dominates (a write overwriting an info write, say).
   * Sound because a completion that applies the fewest info operations never passes through a
   * skipped configuration (see the README, "How the search works").
   */
  private dominated(operation: SearchOperation<Input, Output>, isInfo: boolean, id: number): boolean {
    const depth = this.depth;
    if (this.lazy) {
      if (isInfo && id === this.stateIds[depth]) return true;
      const start = this.blockStart[depth]!;
      if (start < depth) {
        const direct = this.model.step(this.states[start]!, operation.input, operation.output);
        if (direct.ok && this.interner.id(direct.state) === id) return true;
      }
    }
    return this.failed.has(this.completedSet, this.infoSet, id);
  }

  private push(entry: number, state: State, id: number, blockStart: number): void {
    const depth = this.depth;
    this.stack[depth] = entry;
    this.stackNode[depth] = this.node;
    this.stackInfoNode[depth] = this.infoNode;
    this.depth = depth + 1;
    this.states[depth + 1] = state;
    this.stateIds[depth + 1] = id;
    this.blockStart[depth + 1] = blockStart;
    this.node = this.next[this.head]!;
    this.infoNode = this.infoNext[this.infoHead]!;
  }

  /**
   * Pops back to the last configuration with candidates left; false if there is none. A read-only
   * operation is linearized as soon as the model accepts it, and that choice is never wrong: it was
   * callable before every pending return, so any completion can move it to the front without
   * breaking real-time order or changing the states that follow. So a dead end below it is a dead
   * end of its parent too: pop through it without trying its siblings.
   */
  private backtrack(): boolean {
    let top: number;
    do {
      if (this.depth === 0) return false;
      this.failed.add(this.completedSet, this.infoSet, this.stateIds[this.depth]!);
      this.depth--;
      top = this.stack[this.depth]!;
      if (top >= 0) {
        this.completedSet.delete(top);
        unlift(this.next, this.prev, 2 * top, 2 * top + 1);
      } else {
        this.infoSet.delete(~top);
        unlift(this.infoNext, this.infoPrev, ~top, ~top);
      }
    } while (top >= 0 && this.readOnly[top] === 1);
    this.node = this.stackNode[this.depth]!;
    this.infoNode = this.stackInfoNode[this.depth]!;
    if (top >= 0) this.node = this.next[this.node]!;
    else this.infoNode = this.infoNext[this.infoNode]!;
    return true;
  }

  private deadEnd(bound: number): DeadEnd<State> {
    const origin = (entry: number) => (entry >= 0 ? this.completedOrigin[entry]! : this.infoOrigin[~entry]!);
    const linearized = Array.from(this.stack.subarray(0, this.depth), origin);
    const candidates: number[] = [];
    for (let node = this.next[this.head]!; node !== bound; node = this.next[node]!)
      if ((node & 1) === 0) candidates.push(this.completedOrigin[node >> 1]!);
    const boundTime = this.completed[bound >> 1]!.return;
    for (const head of [this.infoHead, this.overwritingHead])
      for (let j = this.infoNext[head]!; j < this.info.length && this.info[j]!.call <= boundTime; j = this.infoNext[j]!)
        candidates.push(this.infoOrigin[j]!);
    return { linearized, state: this.states[this.depth]!, candidates };
  }
}
