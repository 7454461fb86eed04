/**
 * How long a coord server pauses for a snapshot: encoding the whole tree (`DataTree.snapshot`, on the
 * server's only thread, at every compaction) and restoring it (`DataTree.restore`: at restart and when
 * a lagging follower installs the leader's snapshot). A tree of N znodes under one parent, 10-byte
 * values, paths like the coord bench's creates. No peer: ZooKeeper takes its snapshots in a background
 * thread, so there is no pause to compare with.
 *
 *   npm run bench:snapshot -w @dsys/coord -- [--znodes 100000] [--rounds 5]
 */
import { DataTree } from '../src/data-tree.js';

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isSafeInteger(value) || value < 1) {
    process.stderr.write(`--${name} must be a positive integer\n`);
    process.exit(2);
  }
  return value;
}

const znodes = flag('znodes', 100_000);
const rounds = flag('rounds', 5);
const tree = new DataTree();
const data = new Uint8Array(10);
let zxid = 1;
const create = (path: string) =>
  tree.apply(
    {
      type: 'write',
      sessionId: 0,
      attach: 0,
      writeSeq: 0,
      time: 1,
      multi: false,
      ops: [{ type: 'create', path, data, kind: 'persistent', ttlMs: 0, parentCversion: zxid, withStat: false }],
    },
    zxid++,
    zxid,
  );
create('/bench');
for (let i = 0; i < znodes; i++) create(`/bench/c-run0-64-${i}`);
process.stdout.write(`tree of ${znodes} znodes built; ${rounds} rounds\n`);

const encodeMs: number[] = [];
const restoreMs: number[] = [];
let bytes = 0;
for (let round = 0; round < rounds; round++) {
  let started = performance.now();
  const snapshot = tree.snapshot();
  encodeMs.push(performance.now() - started);
  bytes = snapshot.length;
  started = performance.now();
  const restored = DataTree.restore(snapshot);
  restoreMs.push(performance.now() - started);
  if (restored === null) throw new Error('the snapshot did not restore');
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const line = (what: string, values: number[]) =>
  `${what}: median ${median(values).toFixed(1)} ms (${Math.min(...values).toFixed(1)}-${Math.max(...values).toFixed(1)}), ` +
  `${((median(values) * 1000) / znodes).toFixed(2)} us per znode\n`;
process.stdout.write(`snapshot ${(bytes / 1e6).toFixed(1)} MB\n`);
process.stdout.write(line('encode ', encodeMs));
process.stdout.write(line('restore', restoreMs));
