/**
 * Runs every scenario file in test/scenarios (etcd interaction-test style): each command's transcript
 * must match the golden text. `UPDATE_GOLDEN=1 node --import tsx --test test/scenarios.test.ts`
 * rewrites the transcripts; review the diff like code.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runScenarioFile } from './support/scenario.js';

const directory = join(import.meta.dirname, 'scenarios');
const update = process.env.UPDATE_GOLDEN === '1';

for (const file of readdirSync(directory)
  .filter((name) => name.endsWith('.txt'))
  .sort()) {
  test(`scenario ${file}`, () => {
    const mismatches = runScenarioFile(join(directory, file), update);
    assert.deepEqual(mismatches, [], mismatches.join('\n\n'));
  });
}
