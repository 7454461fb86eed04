/**
 * ZooKeeper recipes on top of a client (Hunt et al. §2.4, and the seed's notes): each uses only the
 * public API, so it runs against `dsys coord` and Apache ZooKeeper alike.
 *
 * - `Lock`: herd-free. Each contender creates an ephemeral-sequential node and watches only the node
 *   just before its own; a release (or a holder's crash: its ephemeral node goes with its session)
 *   wakes exactly one waiter. The loop re-reads the children after every wake, because the
 *   predecessor may have gone without the lock passing (it crashed while waiting itself).
 * - `LeaderElection`: the same shape; the lowest node leads.
 * - `DoubleBarrier`: enter blocks until `size` participants are in, leave until all are out.
 * - `ReadyConfig`: the seed's "ready znode" pattern: the writer deletes `ready`, rewrites the
 *   configuration nodes, recreates `ready`; a reader that saw `ready` (with a watch) and then reads
 *   the nodes is told by the watch, before it can see any half-written state, that a rewrite began.
 */
import type { Stat } from '../types.js';
import { CreateMode, Err } from '../types.js';

export interface RecipeEvent {
  readonly type: number;
  readonly path: string;
}

/** The client surface the recipes need (`ZkClient` implements it). */
export interface RecipeClient {
  create(path: string, data?: Uint8Array | string, mode?: number): Promise<string>;
  delete(path: string, version?: number): Promise<void>;
  exists(path: string, watch?: (event: RecipeEvent) => void): Promise<Stat | null>;
  getData(path: string, watch?: (event: RecipeEvent) => void): Promise<{ data: Uint8Array; stat: Stat }>;
  setData(path: string, data: Uint8Array | string, version?: number): Promise<Stat>;
  getChildren(path: string, watch?: (event: RecipeEvent) => void): Promise<{ children: string[] }>;
  /** Settles when the session expires: a recipe waiting for a watch then fails instead of waiting forever. */
  readonly expired?: Promise<void>;
}

/** `promise`, or a SessionExpired failure if the client's session expires first. */
function unlessExpired<T>(client: RecipeClient, promise: Promise<T>): Promise<T> {
  if (client.expired === undefined) return promise;
  const expired = client.expired.then((): never => {
    throw Object.assign(new Error('session expired while waiting for a watch'), { err: Err.SESSION_EXPIRED });
  });
  return Promise.race([promise, expired]);
}

function errOf(error: unknown): number | null {
  if (
    typeof error === 'object' &&
    error !== null &&
    'err' in error &&
    typeof (error as { err: unknown }).err === 'number'
  ) {
    return (error as { err: number }).err;
  }
  return null;
}

/** Creates `path` and its parents as persistent nodes, ignoring the ones that exist. */
export async function ensurePath(client: RecipeClient, path: string): Promise<void> {
  let prefix = '';
  for (const segment of path.split('/').filter(Boolean)) {
    prefix += `/${segment}`;
    try {
      await client.create(prefix);
    } catch (error) {
      if (errOf(error) !== Err.NODE_EXISTS) throw error;
    }
  }
}

function sequenceOf(name: string): number {
  return Number(name.slice(-10));
}

function sortedBySequence(children: readonly string[], prefix: string): string[] {
  return children.filter((name) => name.startsWith(prefix)).sort((a, b) => sequenceOf(a) - sequenceOf(b));
}

/** Waits until `path` is gone; resolves at once if it already is. */
function untilDeleted(client: RecipeClient, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    client
      .exists(path, () => resolve())
      .then((stat) => {
        if (stat === null) resolve();
      }, reject);
  });
}

export class Lock {
  private node: string | null = null;
  /** Watches this contender set (one per predecessor it waited for). */
  watchesSet = 0;
  /** Notifications this contender received (a herd would show many per release). */
  wakeups = 0;

  constructor(
    private readonly client: RecipeClient,
    private readonly dir: string,
  ) {}

  get path(): string | null {
    return this.node;
  }

  async acquire(): Promise<void> {
    await ensurePath(this.client, this.dir);
    this.node = await this.client.create(`${this.dir}/lock-`, '', CreateMode.EPHEMERAL_SEQUENTIAL);
    const mine = this.node.slice(this.dir.length + 1);
    for (;;) {
      const { children } = await this.client.getChildren(this.dir);
      const queue = sortedBySequence(children, 'lock-');
      const index = queue.indexOf(mine);
      if (index < 0) throw new Error(`lock node ${this.node} vanished (session expired?)`);
      if (index === 0) return;
      const predecessor = `${this.dir}/${queue[index - 1]!}`;
      this.watchesSet++;
      await unlessExpired(
        this.client,
        new Promise<void>((resolve, reject) => {
          this.client
            .exists(predecessor, () => {
              this.wakeups++;
              resolve();
            })
            .then((stat) => {
              if (stat === null) resolve();
            }, reject);
        }),
      );
    }
  }

  async release(): Promise<void> {
    const node = this.node;
    if (node === null) return;
    this.node = null;
    await this.client.delete(node);
  }
}

export class LeaderElection {
  private node: string | null = null;
  leading = false;

  constructor(
    private readonly client: RecipeClient,
    private readonly dir: string,
    private readonly id: string,
  ) {}

  /** Joins the election and resolves once this candidate leads. */
  async lead(): Promise<void> {
    await ensurePath(this.client, this.dir);
    this.node = await this.client.create(`${this.dir}/candidate-`, this.id, CreateMode.EPHEMERAL_SEQUENTIAL);
    const mine = this.node.slice(this.dir.length + 1);
    for (;;) {
      const queue = sortedBySequence((await this.client.getChildren(this.dir)).children, 'candidate-');
      const index = queue.indexOf(mine);
      if (index < 0) throw new Error(`candidate ${this.node} vanished (session expired?)`);
      if (index === 0) {
        this.leading = true;
        return;
      }
      await untilDeleted(this.client, `${this.dir}/${queue[index - 1]!}`);
    }
  }

  /** The id of the current leader (the lowest candidate), or null. */
  async leader(): Promise<string | null> {
    const queue = sortedBySequence((await this.client.getChildren(this.dir)).children, 'candidate-');
    if (queue.length === 0) return null;
    try {
      const { data } = await this.client.getData(`${this.dir}/${queue[0]!}`);
      return new TextDecoder().decode(data);
    } catch {
      return null;
    }
  }

  async resign(): Promise<void> {
    const node = this.node;
    this.node = null;
    this.leading = false;
    if (node !== null) await this.client.delete(node);
  }
}

export class DoubleBarrier {
  private node: string | null = null;

  constructor(
    private readonly client: RecipeClient,
    private readonly dir: string,
    private readonly name: string,
    private readonly size: number,
  ) {}

  /** Enters, and resolves once `size` participants have entered. */
  async enter(): Promise<void> {
    await ensurePath(this.client, this.dir);
    const ready = `${this.dir}/ready`;
    const readySeen = new Promise<void>((resolve, reject) => {
      this.client
        .exists(ready, () => resolve())
        .then((stat) => {
          if (stat !== null) resolve();
        }, reject);
    });
    this.node = await this.client.create(`${this.dir}/${this.name}`, '', CreateMode.EPHEMERAL);
    const { children } = await this.client.getChildren(this.dir);
    if (children.filter((child) => child !== 'ready').length >= this.size) {
      try {
        await this.client.create(ready);
      } catch (error) {
        if (errOf(error) !== Err.NODE_EXISTS) throw error;
      }
    }
    await unlessExpired(this.client, readySeen);
  }

  /** Leaves, and resolves once every participant has left. */
  async leave(): Promise<void> {
    if (this.node !== null) await this.client.delete(this.node);
    this.node = null;
    for (;;) {
      const gone = new Promise<void>((resolve) => {
        void this.client
          .getChildren(this.dir, () => resolve())
          .then(({ children }) => {
            if (children.filter((child) => child !== 'ready').length === 0) resolve();
          });
      });
      const { children } = await this.client.getChildren(this.dir);
      if (children.filter((child) => child !== 'ready').length === 0) return;
      await unlessExpired(this.client, gone);
    }
  }
}

export class ReadyConfig {
  constructor(
    private readonly client: RecipeClient,
    private readonly dir: string,
  ) {}

  /** The writer: delete `ready`, rewrite every entry, recreate `ready`. */
  async publish(entries: Readonly<Record<string, string>>): Promise<void> {
    await ensurePath(this.client, this.dir);
    try {
      await this.client.delete(`${this.dir}/ready`);
    } catch (error) {
      if (errOf(error) !== Err.NO_NODE) throw error;
    }
    for (const [name, value] of Object.entries(entries)) {
      try {
        await this.client.setData(`${this.dir}/${name}`, value);
      } catch (error) {
        if (errOf(error) !== Err.NO_NODE) throw error;
        await this.client.create(`${this.dir}/${name}`, value);
      }
    }
    await this.client.create(`${this.dir}/ready`);
  }

  /**
   * The reader: returns the entries if `ready` exists, with a watch on `ready`, and `changed`, which
   * resolves when a rewrite begins (the watch fires before the reader can see any of its writes).
   * Returns null when no complete configuration is published (the caller waits on `changed`).
   */
  async read(names: readonly string[]): Promise<{ entries: Record<string, string> | null; changed: Promise<void> }> {
    let fire!: () => void;
    const changed = new Promise<void>((resolve) => {
      fire = resolve;
    });
    const ready = await this.client.exists(`${this.dir}/ready`, () => fire());
    if (ready === null) return { entries: null, changed: unlessExpired(this.client, changed) };
    const entries: Record<string, string> = {};
    const decoder = new TextDecoder();
    for (const name of names) entries[name] = decoder.decode((await this.client.getData(`${this.dir}/${name}`)).data);
    return { entries, changed: unlessExpired(this.client, changed) };
  }
}
