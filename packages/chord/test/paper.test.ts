/**
 * The evaluation's experiments at small scale, so that CI notices if they stop showing what the README
 * claims: path length near ½ log2 N, keys per node narrowing with virtual nodes, no failed lookups
 * after stabilization, lookups under churn succeeding; and the SVG writer producing a chart.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { churn, failures, loadBalance, pathLength } from '../src/experiment/paper.js';
import { lineChart } from '../src/experiment/svg.js';

describe('paper experiments (small)', () => {
  it('path length (nodes traversed, finger-table routing as in the paper) is about ½ log2 N', () => {
    const rows = pathLength({ kMin: 3, kMax: 8, lookups: () => 2_000, seed: 5 });
    for (const row of rows) {
      assert.equal(row.fingers.correct, 1);
      assert.equal(row.successors.correct, 1);
      const f = row.fingers;
      assert.ok(Math.abs(f.mean / row.halfLog2N - 1) < 0.1, `N=${row.n}: mean ${f.mean}`);
      assert.ok(f.p1 <= f.mean && f.mean <= f.p99);
      // The successor list only adds candidates closer to the key: never longer paths.
      assert.ok(row.successors.mean < f.mean, `N=${row.n}: ${row.successors.mean} vs ${f.mean}`);
    }
  });

  it('virtual nodes narrow the spread of keys per node', () => {
    const rows = loadBalance({ nodes: 200, keys: 20_000, vnodes: [1, 10] });
    assert.equal(rows[0]!.mean, 100);
    assert.ok(rows[1]!.p99 - rows[1]!.p1 < rows[0]!.p99 - rows[0]!.p1);
  });

  it('no failed lookups after stabilization, even with half the nodes failed', () => {
    const rows = failures({ n: 128, fractions: [0.5], lookups: 300, seed: 3 });
    assert.equal(rows[0]!.after.failedFraction, 0);
    assert.ok(rows[0]!.stabilizeMs > 0);
  });

  it('lookups keep succeeding during churn', () => {
    const rows = churn({ n: 100, rates: [0.2], durationMs: 30_000, lookupsPerSecond: 10, seed: 2 });
    assert.ok(rows[0]!.joins > 0 && rows[0]!.fails > 0);
    assert.ok(rows[0]!.stats.failedFraction <= 0.02, `failed ${rows[0]!.stats.failedFraction}`);
  });

  it('draws a chart with axes, series and error bars', () => {
    const svg = lineChart({
      title: 'T',
      xLabel: 'x',
      yLabel: 'y',
      series: [
        {
          name: 's',
          color: '#000',
          points: [
            { x: 1, y: 2, low: 1, high: 3 },
            { x: 2, y: 3 },
          ],
        },
      ],
    });
    assert.match(svg, /^<svg /);
    assert.match(svg, /<polyline /);
    assert.equal((svg.match(/<circle /g) ?? []).length, 2);
    assert.ok(svg.trimEnd().endsWith('</svg>'));
  });
});
