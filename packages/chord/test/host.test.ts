/**
 * The real node host in-process (no child processes): a node with a data directory keeps its items
 * across a clean stop, takes back its own `host:port` when restarted with port 0 (its identity: the
 * ring identifiers are hashes of it), and refuses to start on another node's data directory.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ChordStartError } from '../src/protocol.js';
import { startChordNode } from '../src/real/host.js';

const text = new TextEncoder();
const dirs: string[] = [];

async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'chord-host-'));
  dirs.push(dir);
  return dir;
}

describe('real node host with a data directory', () => {
  after(async () => {
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it('restarts on its directory with the same identity and its items', async () => {
    const dir = await dataDir();
    const first = await startChordNode({ host: '127.0.0.1', port: 0, join: [], dataDir: dir, tickMs: 10 });
    const put = await first.request({ type: 'put', key: 'k', value: text.encode('v') });
    assert.equal(put.type, 'put', JSON.stringify(put));
    const address = first.address;
    const id = first.inspect((state) => state.vnodes[0]!.self.id);
    await first.close();
    const again = await startChordNode({ host: '127.0.0.1', port: 0, join: [], dataDir: dir, tickMs: 10 });
    try {
      assert.equal(again.address, address, 'port 0 takes back the recorded endpoint');
      assert.equal(
        again.inspect((state) => state.vnodes[0]!.self.id),
        id,
      );
      assert.equal(again.recoveredItems, 1);
      const get = await again.request({ type: 'get', key: 'k' });
      assert.ok(get.type === 'get' && get.found && new TextDecoder().decode(get.value!) === 'v', JSON.stringify(get));
    } finally {
      await again.close();
    }
  });

  it("refuses another node's data directory, with a reason, and releases it", async () => {
    const dir = await dataDir();
    const first = await startChordNode({ host: '127.0.0.1', port: 0, join: [], dataDir: dir, tickMs: 10 });
    const port = Number(first.address.split(':')[1]);
    await first.close();
    const otherPort = port === 65535 ? port - 1 : port + 1;
    await assert.rejects(
      startChordNode({ host: '127.0.0.1', port: otherPort, join: [], dataDir: dir, tickMs: 10 }),
      (error: unknown) => error instanceof ChordStartError && error.code === 'IDENTITY_MISMATCH',
    );
    // The directory lock was released: the rightful node starts.
    const back = await startChordNode({ host: '127.0.0.1', port: 0, join: [], dataDir: dir, tickMs: 10 });
    await back.close();
  });
});
