// Goal: the durable log gives back exactly what was made durable, across reopen, torn tails,
// corruption, compaction crashes and a second opener. Method: real files in a temp dir; crashes are
// simulated by cutting or flipping file bytes, or by stopping a compaction at a hook as a crash would.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { RECORD_HEADER_BYTES } from '@dsys/kit';
import {
  type CompactionStep,
  DurableLog,
  type DurableLogOptions,
  LOCK_FILE,
  MetricsRegistry,
  memoryLogger,
  StorageError,
  segmentName,
  snapshotName,
} from '../src/index.js';
import { tempDir } from './helpers/util.js';

const text = (value: string) => new TextEncoder().encode(value);
const texts = (records: readonly Uint8Array[]) => records.map((record) => new TextDecoder().decode(record));

async function withDir(name: string, body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await tempDir(name);
  try {
    await body(dir.path);
  } finally {
    await dir.remove();
  }
}

async function reopen(dir: string, options: Partial<DurableLogOptions> = {}) {
  const { log, durable } = await DurableLog.open({ dir, ...options });
  await log.close();
  return durable;
}

async function writeRecords(dir: string, values: readonly string[], options: Partial<DurableLogOptions> = {}) {
  const { log } = await DurableLog.open({ dir, ...options });
  await log.appendAndWait(values.map(text));
  await log.close();
}

/** Bytes the framed records take in the segment (where preallocated zeros begin). */
const framedBytes = (values: readonly string[]) =>
  values.reduce((sum, value) => sum + RECORD_HEADER_BYTES + text(value).length, 0);

const tornWarning = 'truncating torn tail of log segment';

test('append, sync, reopen: records come back in order; unsynced ones are flushed by close', async () => {
  await withDir('log-basic', async (dir) => {
    const { log, durable } = await DurableLog.open({ dir });
    assert.deepEqual(durable, { snapshot: null, records: [] });
    await log.appendAndWait([text('a'), text('b')]);
    log.append([text('c')], false);
    const ticket = log.append([new Uint8Array(0), text('d')], false);
    await log.waitSynced(ticket);
    log.append([text('e')], false);
    await log.close();
    const recovered = await reopen(dir);
    assert.deepEqual(texts(recovered.records), ['a', 'b', 'c', '', 'd', 'e']);
    assert.equal(recovered.snapshot, null);
  });
});

test('small batches (written on the event loop) and large ones (thread pool, in pieces) interleave in order', async () => {
  await withDir('log-sizes', async (dir) => {
    // writeBytesMax 100 KiB: the 300 KiB batch goes out in several writes, the 70 KiB one in one
    // pool write, the small ones inline; what comes back is every record, in append order.
    const { log } = await DurableLog.open({ dir, writeBytesMax: 100 * 1024 });
    const sizes = [10, 300 * 1024, 1, 70 * 1024, 64 * 1024 - RECORD_HEADER_BYTES, 5, 40 * 1024, 40 * 1024];
    const records = sizes.map((size, index) => new Uint8Array(size).fill(index + 1));
    for (const [index, record] of records.entries()) {
      if (index % 3 === 2) await log.appendAndWait([record]);
      else log.append([record], false);
    }
    await log.close();
    const recovered = await reopen(dir);
    assert.deepEqual(
      recovered.records.map((record) => [record.length, record[0] ?? 0]),
      sizes.map((size, index) => [size, size === 0 ? 0 : index + 1]),
    );
  });
});

test('group commit: 64 concurrent appenders share a handful of fsyncs', async () => {
  await withDir('log-group', async (dir) => {
    const registry = new MetricsRegistry();
    let syncs = 0;
    const { log } = await DurableLog.open({ dir, metrics: registry, hooks: { afterSync: () => void syncs++ } });
    const appenders = Array.from({ length: 64 }, async (_, appender) => {
      for (let i = 0; i < 5; i++) await log.appendAndWait([text(`${appender}:${i}`)]);
    });
    await Promise.all(appenders);
    await log.close();
    // Each round's fsync covers every appender waiting; 5 rounds of 64 need far fewer than 320.
    assert.ok(syncs <= 20, `${syncs} fsyncs for 320 appends`);
    assert.match(registry.render(), new RegExp(`dsys_storage_fsyncs_total ${syncs}\\n`));
    const recovered = await reopen(dir);
    assert.equal(recovered.records.length, 320);
    for (let appender = 0; appender < 64; appender++) {
      const own = texts(recovered.records).filter((record) => record.startsWith(`${appender}:`));
      assert.deepEqual(
        own,
        [0, 1, 2, 3, 4].map((i) => `${appender}:${i}`),
        'each appender sees its order kept',
      );
    }
  });
});

test('torn tail: cut anywhere inside the last record, recovery truncates it and logs where', async () => {
  await withDir('log-torn', async (dir) => {
    const values = ['first', 'second', 'third', 'the last record'];
    // Without preallocation the file ends at the last record, so a torn write is a short file.
    await writeRecords(dir, values, { preallocateBytes: 0 });
    const file = join(dir, segmentName(1));
    const full = await readFile(file);
    const lastStart = full.length - (RECORD_HEADER_BYTES + values[3]!.length);
    for (let cut = lastStart; cut < full.length; cut++) {
      await writeFile(file, full.subarray(0, cut));
      const { logger, lines } = memoryLogger('info');
      const { log, durable } = await DurableLog.open({ dir, logger, preallocateBytes: 0 });
      assert.deepEqual(texts(durable.records), values.slice(0, 3), `cut at ${cut}`);
      assert.equal((await stat(file)).size, lastStart, `file truncated to the last whole record (cut ${cut})`);
      const warning = lines.find((line) => line.msg === tornWarning);
      if (cut === lastStart) assert.equal(warning, undefined);
      else assert.deepEqual([warning?.file, warning?.offset, warning?.bytes], [file, lastStart, cut - lastStart]);
      // The log keeps working after the truncation.
      await log.appendAndWait([text('after')]);
      await log.close();
      assert.deepEqual(texts((await reopen(dir)).records), [...values.slice(0, 3), 'after']);
    }
  });
});

test('preallocation: zeros ahead of the records, kept on reopen without a warning, topped up as records fill them', async () => {
  await withDir('log-prealloc', async (dir) => {
    const chunk = 4096;
    const file = join(dir, segmentName(1));
    const first = ['alpha', 'beta', 'gamma'];
    await writeRecords(dir, first, { preallocateBytes: chunk });
    const end = framedBytes(first);
    assert.equal((await stat(file)).size, end + chunk, 'one chunk of zeros after the records');
    assert.ok((await readFile(file)).subarray(end).every((byte) => byte === 0));

    const { logger, lines } = memoryLogger('info');
    const { log, durable } = await DurableLog.open({ dir, logger, preallocateBytes: chunk });
    assert.deepEqual(texts(durable.records), first);
    assert.equal(
      lines.find((line) => line.msg === tornWarning),
      undefined,
      'preallocated zeros are not a torn tail',
    );
    assert.equal((await stat(file)).size, end + chunk, 'recovery keeps the zeros');
    // 300 records of 100 bytes: many times the chunk, one group commit each.
    const more = Array.from({ length: 300 }, (_, i) => `${String(i).padStart(3, '0')}${'x'.repeat(97)}`);
    for (const value of more) await log.appendAndWait([text(value)]);
    await log.close();
    const total = framedBytes([...first, ...more]);
    const size = (await stat(file)).size;
    assert.ok(size >= total + chunk / 2 && size <= total + chunk, `zeros topped up (${size} bytes for ${total})`);
    assert.deepEqual(texts((await reopen(dir, { preallocateBytes: chunk })).records), [...first, ...more]);
    // A log opened without preallocation reads the same file and writes after the last record.
    const { log: plain } = await DurableLog.open({ dir, preallocateBytes: 0 });
    await plain.appendAndWait([text('plain')]);
    await plain.close();
    assert.deepEqual(texts((await reopen(dir)).records), [...first, ...more, 'plain']);
  });
});

test('a torn write into preallocated zeros (part of a record, then zeros) is truncated with the zeros', async () => {
  await withDir('log-prealloc-torn', async (dir) => {
    const values = ['one', 'two', 'three'];
    await writeRecords(dir, values);
    const file = join(dir, segmentName(1));
    const end = framedBytes(values);
    const full = await readFile(file);
    assert.ok(full.length > end, 'zeros are preallocated by default');
    // The first half of a record that a crash interrupted before its fsync.
    const lost = 'a record that never became durable, with a long payload';
    const scratch = await tempDir('log-prealloc-torn-frame');
    let frame: Buffer;
    try {
      await writeRecords(scratch.path, [lost], { preallocateBytes: 0 });
      frame = await readFile(join(scratch.path, segmentName(1)));
    } finally {
      await scratch.remove();
    }
    for (const cut of [1, RECORD_HEADER_BYTES, Math.floor(frame.length / 2), frame.length - 1]) {
      const torn = Buffer.from(full);
      frame.copy(torn, end, 0, cut);
      await writeFile(file, torn);
      const { logger, lines } = memoryLogger('info');
      const { log, durable } = await DurableLog.open({ dir, logger });
      assert.deepEqual(texts(durable.records), values, `cut ${cut}`);
      const warning = lines.find((line) => line.msg === tornWarning);
      assert.deepEqual([warning?.file, warning?.offset], [file, end], `cut ${cut}`);
      // Truncated at the last whole record: no stale byte of the torn record stays behind what is
      // written next.
      assert.equal((await stat(file)).size, end, `cut ${cut}`);
      await log.appendAndWait([text('after')]);
      await log.close();
      assert.deepEqual(texts((await reopen(dir)).records), [...values, 'after'], `cut ${cut}`);
    }
  });
});

test('zeros over a record in the middle (a lost write) are corruption, not the end of the log', async () => {
  await withDir('log-prealloc-hole', async (dir) => {
    const values = ['one', 'two', 'three', 'four'];
    await writeRecords(dir, values);
    const file = join(dir, segmentName(1));
    const damaged = Buffer.from(await readFile(file));
    const secondStart = framedBytes(values.slice(0, 1));
    damaged.fill(0, secondStart, framedBytes(values.slice(0, 2)));
    await writeFile(file, damaged);
    await assert.rejects(DurableLog.open({ dir }), (error: unknown) => {
      assert.ok(error instanceof StorageError && error.detail.code === 'LOG_CORRUPT');
      assert.equal(error.detail.offset, secondStart);
      return true;
    });
  });
});

test('a flipped byte in the middle stops recovery with the file and offset', async () => {
  await withDir('log-flip', async (dir) => {
    const values = ['one', 'two', 'three', 'four', 'five'];
    await writeRecords(dir, values);
    const file = join(dir, segmentName(1));
    const full = await readFile(file);
    const secondStart = RECORD_HEADER_BYTES + 3;
    const secondEnd = secondStart + RECORD_HEADER_BYTES + 3;
    for (let position = secondStart; position < secondEnd; position++) {
      const damaged = Buffer.from(full);
      damaged[position]! ^= 0x40;
      await writeFile(file, damaged);
      await assert.rejects(DurableLog.open({ dir }), (error: unknown) => {
        assert.ok(error instanceof StorageError);
        assert.equal(error.detail.code, 'LOG_CORRUPT');
        assert.deepEqual([error.detail.file, error.detail.offset], [file, secondStart]);
        assert.match(error.message, new RegExp(`${file}.*byte offset ${secondStart}`));
        return true;
      });
      // Nothing was truncated or deleted: the evidence stays for the operator.
      assert.deepEqual(await readFile(file), damaged);
    }
    // The lock was released by the failed open.
    await writeFile(file, full);
    assert.equal((await reopen(dir)).records.length, 5);
  });
});

test('documented limit: damage to the very last record is indistinguishable from a torn write', async () => {
  await withDir('log-flip-last', async (dir) => {
    await writeRecords(dir, ['one', 'two']);
    const file = join(dir, segmentName(1));
    const damaged = Buffer.from(await readFile(file));
    damaged[framedBytes(['one', 'two']) - 1]! ^= 1;
    await writeFile(file, damaged);
    assert.deepEqual(texts((await reopen(dir)).records), ['one']);
  });
});

test('compaction replaces everything with snapshot + records, and later appends follow', async () => {
  await withDir('log-compact', async (dir) => {
    const { log } = await DurableLog.open({ dir });
    await log.appendAndWait([text('old-1'), text('old-2')]);
    const ticket = log.compact(text('SNAP'), [text('kept')]);
    log.append([text('new')], false);
    await log.waitSynced(ticket);
    assert.equal(log.generation, 2);
    await log.close();
    const recovered = await reopen(dir);
    assert.deepEqual(new TextDecoder().decode(recovered.snapshot!), 'SNAP');
    assert.deepEqual(texts(recovered.records), ['kept', 'new']);
    assert.deepEqual((await readdir(dir)).sort(), [segmentName(2), snapshotName(2)].sort());
    // A second compaction, with an empty snapshot and no records.
    const second = await DurableLog.open({ dir });
    await second.log.waitSynced(second.log.compact(new Uint8Array(0), []));
    await second.log.close();
    const again = await reopen(dir);
    assert.deepEqual([again.snapshot?.length, again.records.length], [0, 0]);
    assert.deepEqual((await readdir(dir)).sort(), [segmentName(3), snapshotName(3)].sort());
  });
});

const CRASH_POINTS: readonly [CompactionStep, 'old' | 'new'][] = [
  ['segment-written', 'old'],
  ['snapshot-temp-written', 'old'],
  ['snapshot-renamed', 'new'],
  ['old-deleted', 'new'],
];

for (const [step, expected] of CRASH_POINTS) {
  test(`compaction crash after "${step}": recovery yields the ${expected} state and removes leftovers`, async () => {
    await withDir('log-crash', async (dir) => {
      // Start from generation 2 so that the old state has a snapshot of its own.
      const first = await DurableLog.open({ dir });
      await first.log.waitSynced(first.log.compact(text('S1'), [text('r1')]));
      await first.log.appendAndWait([text('r2')]);
      await first.log.close();
      const crash = new Error(`simulated crash after ${step}`);
      const { log } = await DurableLog.open({
        dir,
        logger: memoryLogger().logger,
        hooks: {
          compactionStep: (at) => {
            if (at === step) throw crash;
          },
        },
      });
      await assert.rejects(log.waitSynced(log.compact(text('S2'), [text('n1')])), /simulated crash/);
      assert.equal(log.failed?.detail.code, 'STORAGE_FAILED');
      await log.close();
      const recovered = await reopen(dir);
      if (expected === 'old') {
        assert.equal(new TextDecoder().decode(recovered.snapshot!), 'S1');
        assert.deepEqual(texts(recovered.records), ['r1', 'r2']);
        assert.deepEqual((await readdir(dir)).sort(), [segmentName(2), snapshotName(2)].sort());
      } else {
        assert.equal(new TextDecoder().decode(recovered.snapshot!), 'S2');
        assert.deepEqual(texts(recovered.records), ['n1']);
        assert.deepEqual((await readdir(dir)).sort(), [segmentName(3), snapshotName(3)].sort());
      }
    });
  });
}

test('a torn temp snapshot and a half-written new segment from a crash are ignored and removed', async () => {
  await withDir('log-crash-torn', async (dir) => {
    await writeRecords(dir, ['a', 'b']);
    // As a crash in the middle of steps 1 and 2 would leave them: not committed.
    await writeFile(join(dir, segmentName(2)), Buffer.from([1, 2, 3]));
    await writeFile(join(dir, `${snapshotName(2)}.tmp`), Buffer.from('DSYSSNP1 torn'));
    const { logger, lines } = memoryLogger('info');
    const recovered = await reopen(dir, { logger });
    assert.deepEqual(texts(recovered.records), ['a', 'b']);
    assert.equal(recovered.snapshot, null);
    assert.deepEqual(await readdir(dir), [segmentName(1)]);
    assert.equal(lines.filter((line) => line.msg === 'removing leftover file of an interrupted compaction').length, 2);
  });
});

test('a damaged snapshot is reported with its file and offset; a missing segment too', async () => {
  await withDir('log-snap-corrupt', async (dir) => {
    const { log } = await DurableLog.open({ dir });
    await log.waitSynced(log.compact(text('snapshot bytes'), [text('x')]));
    await log.close();
    const file = join(dir, snapshotName(2));
    const good = await readFile(file);
    const damaged = Buffer.from(good);
    damaged[damaged.length - 3]! ^= 0xff;
    await writeFile(file, damaged);
    await assert.rejects(DurableLog.open({ dir }), (error: unknown) => {
      assert.ok(error instanceof StorageError && error.detail.code === 'SNAPSHOT_CORRUPT');
      assert.equal(error.detail.file, file);
      assert.ok(error.detail.offset > 0);
      return true;
    });
    await writeFile(file, good.subarray(0, good.length - 1));
    await assert.rejects(DurableLog.open({ dir }), { name: 'StorageError', message: /snapshot .* is corrupt/ });
    await writeFile(file, good);
    await unlink(join(dir, segmentName(2)));
    await assert.rejects(DurableLog.open({ dir }), (error: unknown) => {
      assert.ok(error instanceof StorageError && error.detail.code === 'MISSING_SEGMENT');
      assert.equal(error.detail.file, join(dir, segmentName(2)));
      return true;
    });
  });
});

test("lock: a second opener fails until the first closes; a dead owner's lock is taken over", async () => {
  await withDir('log-lock', async (dir) => {
    const { log } = await DurableLog.open({ dir });
    await assert.rejects(DurableLog.open({ dir }), (error: unknown) => {
      assert.ok(error instanceof StorageError && error.detail.code === 'LOCKED');
      assert.equal(error.detail.pid, process.pid);
      assert.equal(error.detail.file, join(dir, LOCK_FILE));
      return true;
    });
    await log.close();
    await reopen(dir);
    // A process that exited (kill -9) leaves its lock behind: stale, taken over with a warning.
    const dead = spawn(process.execPath, ['-e', '0']);
    await new Promise((resolve) => dead.on('exit', resolve));
    await writeFile(join(dir, LOCK_FILE), `${dead.pid}\n`);
    const { logger, lines } = memoryLogger('warn');
    await reopen(dir, { logger });
    assert.deepEqual(
      lines.map((line) => [line.msg, line.pid]),
      [['taking over a stale lock', dead.pid]],
    );
    // A live process's lock is respected.
    const alive = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    try {
      await writeFile(join(dir, LOCK_FILE), `${alive.pid}\n`);
      await assert.rejects(DurableLog.open({ dir }), { message: new RegExp(`locked by process ${alive.pid}`) });
    } finally {
      alive.kill('SIGKILL');
    }
  });
});

test('a failed fsync fails every waiter and the log: nothing is reported durable', async () => {
  await withDir('log-fail', async (dir) => {
    const failures: string[] = [];
    const { log } = await DurableLog.open({
      dir,
      logger: memoryLogger().logger,
      hooks: {
        beforeSync: () => {
          throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
        },
      },
    });
    log.onFailure((error) => failures.push(error.detail.code));
    const waits = [log.appendAndWait([text('a')]), log.appendAndWait([text('b')])];
    for (const wait of waits) await assert.rejects(wait, { name: 'StorageError', message: /EIO/ });
    assert.deepEqual(failures, ['STORAGE_FAILED']);
    await assert.rejects(log.appendAndWait([text('c')]), /EIO/);
    await log.close();
  });
});
