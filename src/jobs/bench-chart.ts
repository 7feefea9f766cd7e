/**
 * The benchmark chart: throughput (requests/s, linear) and latency (p50 and p99, log scale) per
 * run, as a self-contained SVG the bench writes next to docs/benchmarks.md. No dependencies:
 * rectangles and text.
 */

/** One bar group of the chart. */
export interface ChartRow {
  readonly label: string;
  /** Who ran it: colours the bars. */
  readonly system: 'sentinel' | 'seed' | 'noop';
  readonly throughput: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

const COLORS = {
  sentinel: { main: '#2563eb', light: '#93c5fd' },
  seed: { main: '#dc2626', light: '#fca5a5' },
  noop: { main: '#4b5563', light: '#d1d5db' },
} as const;

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n >= 10 ? n.toFixed(1) : n.toFixed(2));

export function renderChart(title: string, subtitle: string, rows: readonly ChartRow[]): string {
  const rowH = 34;
  const top = 78;
  const labelW = 250;
  const panelW = 300;
  const gap = 70;
  const width = labelW + panelW * 2 + gap + 40;
  const height = top + rows.length * rowH + 56;
  const x1 = labelW;
  const x2 = labelW + panelW + gap;
  const maxRps = Math.max(1, ...rows.map((r) => r.throughput));
  const minMs = 0.1;
  const maxMs = Math.max(10, ...rows.map((r) => r.p99Ms));
  const decades = Math.ceil(Math.log10(maxMs / minMs));
  const logX = (ms: number) => x2 + (Math.log10(Math.max(ms, minMs) / minMs) / decades) * panelW;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="16" y="24" font-size="16" font-weight="600">${escape(title)}</text>`,
    `<text x="16" y="43" fill="#4b5563">${escape(subtitle)}</text>`,
    `<text x="${x1}" y="${top - 12}" font-weight="600">Throughput (requests/s)</text>`,
    `<text x="${x2}" y="${top - 12}" font-weight="600">Latency p50 / p99 (ms, log scale)</text>`,
  ];
  // Grid: throughput quarters, latency decades.
  for (let q = 0; q <= 4; q++) {
    const x = x1 + (q / 4) * panelW;
    out.push(`<line x1="${x}" y1="${top - 4}" x2="${x}" y2="${top + rows.length * rowH}" stroke="#e5e7eb"/>`);
    out.push(`<text x="${x}" y="${top + rows.length * rowH + 16}" text-anchor="middle" fill="#6b7280">${fmt((maxRps * q) / 4)}</text>`);
  }
  for (let d = 0; d <= decades; d++) {
    const ms = minMs * 10 ** d;
    const x = logX(ms);
    out.push(`<line x1="${x}" y1="${top - 4}" x2="${x}" y2="${top + rows.length * rowH}" stroke="#e5e7eb"/>`);
    out.push(
      `<text x="${x}" y="${top + rows.length * rowH + 16}" text-anchor="middle" fill="#6b7280">${ms >= 1 ? ms : ms.toFixed(1)}</text>`,
    );
  }
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const c = COLORS[r.system];
    out.push(`<text x="${labelW - 10}" y="${y + 20}" text-anchor="end">${escape(r.label)}</text>`);
    const w = (r.throughput / maxRps) * panelW;
    out.push(`<rect x="${x1}" y="${y + 6}" width="${Math.max(1, w).toFixed(1)}" height="20" fill="${c.main}" rx="2"/>`);
    out.push(`<text x="${x1 + Math.max(1, w) + 4}" y="${y + 20}" fill="#111827">${fmt(r.throughput)}</text>`);
    const p50 = logX(r.p50Ms) - x2;
    const p99 = logX(r.p99Ms) - x2;
    out.push(`<rect x="${x2}" y="${y + 6}" width="${Math.max(1, p99).toFixed(1)}" height="20" fill="${c.light}" rx="2"/>`);
    out.push(`<rect x="${x2}" y="${y + 11}" width="${Math.max(1, p50).toFixed(1)}" height="10" fill="${c.main}" rx="2"/>`);
    out.push(`<text x="${x2 + Math.max(1, p99) + 4}" y="${y + 20}" fill="#111827">${fmt(r.p50Ms)} / ${fmt(r.p99Ms)}</text>`);
  });
  const legendY = height - 14;
  let lx = 16;
  for (const [system, name] of [
    ['sentinel', 'Sentinel (actors + group commit)'],
    ['seed', 'seed design (lock + optimistic write + sync Kafka)'],
    ['noop', 'no-op Koa route (HTTP ceiling)'],
  ] as const) {
    out.push(`<rect x="${lx}" y="${legendY - 10}" width="12" height="12" fill="${COLORS[system].main}"/>`);
    out.push(`<text x="${lx + 16}" y="${legendY}" fill="#374151">${name}</text>`);
    lx += 16 + name.length * 6.4 + 24;
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
