/**
 * Line charts as SVG text, written by hand (no plotting dependency): axes with ticks and labels, one
 * polyline per series, markers, and optional error bars (here the 1st and 99th percentiles). Output
 * is deterministic (fixed number formatting) so regenerated figures diff cleanly.
 */

export interface Point {
  readonly x: number;
  readonly y: number;
  /** Error bar ends (e.g. 1st and 99th percentile). */
  readonly low?: number;
  readonly high?: number;
}

export interface Series {
  readonly name: string;
  readonly points: readonly Point[];
  readonly color: string;
  /** Dashed line, no markers (a reference curve such as ½ log2 N). */
  readonly dashed?: boolean;
}

export interface ChartOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  /** Logarithmic x axis (base 2): ticks at powers of two. */
  readonly xLog2?: boolean;
  readonly yMin?: number;
  readonly yMax?: number;
  readonly xTicks?: readonly number[];
  readonly width?: number;
  readonly height?: number;
}

const MARGIN = { left: 64, right: 20, top: 40, bottom: 52 };

function fmt(value: number): string {
  return (Math.round(value * 100) / 100).toString();
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** "Nice" tick values covering [min, max]. */
export function niceTicks(min: number, max: number, count = 6): number[] {
  if (max <= min) return [min];
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((candidate) => candidate >= raw) ?? raw;
  const ticks: number[] = [];
  for (let value = Math.ceil(min / step) * step; value <= max + step * 1e-9; value += step) {
    ticks.push(Math.round(value / step) * step);
  }
  return ticks;
}

export function lineChart(options: ChartOptions): string {
  const width = options.width ?? 640;
  const height = options.height ?? 400;
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const xs = options.series.flatMap((series) => series.points.map((point) => point.x));
  const ys = options.series.flatMap((series) => series.points.flatMap((p) => [p.y, p.low ?? p.y, p.high ?? p.y]));
  const tx = (x: number) => (options.xLog2 ? Math.log2(x) : x);
  const xMin = Math.min(...xs.map(tx));
  const xMax = Math.max(...xs.map(tx));
  const yMin = options.yMin ?? Math.min(0, ...ys);
  const yMax = options.yMax ?? Math.max(...ys) * 1.08;
  const px = (x: number) => MARGIN.left + ((tx(x) - xMin) / (xMax - xMin || 1)) * plotW;
  const py = (y: number) => MARGIN.top + plotH - ((y - yMin) / (yMax - yMin || 1)) * plotH;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(options.title)}</text>`,
  );
  // Axes, grid and ticks.
  const xTicks = options.xTicks ?? (options.xLog2 ? [...new Set(xs)] : niceTicks(xMin, xMax));
  for (const tick of xTicks) {
    const x = fmt(px(tick));
    out.push(`<line x1="${x}" y1="${MARGIN.top}" x2="${x}" y2="${MARGIN.top + plotH}" stroke="#eee"/>`);
    const label = options.xLog2 ? `2^${fmt(Math.log2(tick))}` : fmt(tick);
    out.push(`<text x="${x}" y="${MARGIN.top + plotH + 18}" text-anchor="middle">${label}</text>`);
  }
  for (const tick of niceTicks(yMin, yMax)) {
    const y = fmt(py(tick));
    out.push(`<line x1="${MARGIN.left}" y1="${y}" x2="${MARGIN.left + plotW}" y2="${y}" stroke="#eee"/>`);
    out.push(`<text x="${MARGIN.left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${fmt(tick)}</text>`);
  }
  out.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`,
    `<text x="${MARGIN.left + plotW / 2}" y="${height - 12}" text-anchor="middle">${escapeXml(options.xLabel)}</text>`,
    `<text x="16" y="${MARGIN.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 16 ${MARGIN.top + plotH / 2})">${escapeXml(options.yLabel)}</text>`,
  );
  options.series.forEach((series, index) => {
    out.push(...drawSeries(series, px, py), ...legend(series, index));
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

function drawSeries(series: Series, px: (x: number) => number, py: (y: number) => number): string[] {
  const out: string[] = [];
  const path = series.points.map((point) => `${fmt(px(point.x))},${fmt(py(point.y))}`).join(' ');
  const dash = series.dashed ? ' stroke-dasharray="6 4"' : '';
  out.push(`<polyline points="${path}" fill="none" stroke="${series.color}" stroke-width="2"${dash}/>`);
  if (series.dashed) return out;
  for (const point of series.points) {
    const x = fmt(px(point.x));
    if (point.low !== undefined && point.high !== undefined) {
      const low = fmt(py(point.low));
      const high = fmt(py(point.high));
      out.push(
        `<line x1="${x}" y1="${low}" x2="${x}" y2="${high}" stroke="${series.color}"/>`,
        `<line x1="${fmt(px(point.x) - 4)}" y1="${low}" x2="${fmt(px(point.x) + 4)}" y2="${low}" stroke="${series.color}"/>`,
        `<line x1="${fmt(px(point.x) - 4)}" y1="${high}" x2="${fmt(px(point.x) + 4)}" y2="${high}" stroke="${series.color}"/>`,
      );
    }
    out.push(`<circle cx="${x}" cy="${fmt(py(point.y))}" r="3" fill="${series.color}"/>`);
  }
  return out;
}

function legend(series: Series, index: number): string[] {
  const x = MARGIN.left + 12;
  const y = MARGIN.top + 14 + index * 18;
  const dash = series.dashed ? ' stroke-dasharray="6 4"' : '';
  return [
    `<line x1="${x}" y1="${y}" x2="${x + 24}" y2="${y}" stroke="${series.color}" stroke-width="2"${dash}/>`,
    `<text x="${x + 30}" y="${y}" dominant-baseline="middle">${escapeXml(series.name)}</text>`,
  ];
}
