/**
 * A self-contained HTML page for a load-test result: its summary, a few facts, and line charts
 * drawn as inline SVG by the small generator below (no charting library, no script, nothing
 * fetched: the file opens anywhere, offline, and can be attached to a ticket). Pure: data in,
 * text out.
 *
 * Charts: x is seconds; every series is a list of y values (null: no value that second, the line
 * breaks). The y axis starts at 0 and ends at a "nice" round value above the largest point.
 */

export interface ChartSeries {
  readonly name: string;
  readonly values: readonly (number | null)[];
}

export interface Chart {
  readonly title: string;
  /** The y axis's unit, shown after the title (`ms`, `msgs/s`, `MiB`). */
  readonly unit: string;
  /** x of each point, in seconds. */
  readonly x: readonly number[];
  readonly series: readonly ChartSeries[];
  /** Vertical markers: an event at second `x` (a kill, the drop). */
  readonly markers?: readonly { readonly x: number; readonly label: string }[];
}

export interface ReportPage {
  readonly title: string;
  /** The run's one-line description (the command line). */
  readonly subtitle: string;
  /** Key facts as a two-column table. */
  readonly facts: readonly (readonly [string, string])[];
  readonly charts: readonly Chart[];
  /** The text summary the run printed. */
  readonly summary: string;
  readonly warnings: readonly string[];
}

const WIDTH = 880;
const HEIGHT = 260;
const PAD = { left: 64, right: 16, top: 12, bottom: 34 };
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
/** Points per series drawn at most; longer series are thinned evenly (the max of each bucket kept). */
const MAX_POINTS = 2000;

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The smallest of 1, 2, 2.5, 5 x 10^k at or above `v` (v > 0). */
export function niceCeil(v: number): number {
  if (!(v > 0) || !Number.isFinite(v)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v * (1 - 1e-12)) return m * p;
  return 10 * p;
}

function fmt(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e9) return `${+(v / 1e9).toFixed(2)}G`;
  if (a >= 1e6) return `${+(v / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toFixed(1)}k`;
  if (a >= 100) return String(Math.round(v));
  return String(+v.toPrecision(3));
}

/** Keeps at most MAX_POINTS points: each bucket of indices keeps its largest value. */
function thin(x: readonly number[], ys: readonly (number | null)[]): { x: number[]; y: (number | null)[] } {
  if (x.length <= MAX_POINTS) return { x: [...x], y: [...ys] };
  const step = x.length / MAX_POINTS;
  const ox: number[] = [];
  const oy: (number | null)[] = [];
  for (let b = 0; b < MAX_POINTS; b++) {
    const from = Math.floor(b * step);
    const to = Math.min(x.length, Math.floor((b + 1) * step));
    let best: number | null = null;
    for (let i = from; i < to; i++) {
      const v = ys[i] ?? null;
      if (v !== null && (best === null || v > best)) best = v;
    }
    ox.push(x[from]!);
    oy.push(best);
  }
  return { x: ox, y: oy };
}

/** One chart as an SVG element. */
export function renderChart(chart: Chart): string {
  const finite = (v: number | null | undefined): v is number => typeof v === "number" && Number.isFinite(v);
  const xs = chart.x.filter(finite);
  const x0 = xs.length === 0 ? 0 : Math.min(...xs);
  const x1 = xs.length === 0 ? 1 : Math.max(x0 + 1, Math.max(...xs));
  let yMax = 0;
  for (const s of chart.series) for (const v of s.values) if (finite(v) && v > yMax) yMax = v;
  yMax = niceCeil(yMax);
  const w = WIDTH - PAD.left - PAD.right;
  const h = HEIGHT - PAD.top - PAD.bottom;
  const sx = (v: number) => PAD.left + ((v - x0) / (x1 - x0)) * w;
  const sy = (v: number) => PAD.top + h - (Math.max(0, v) / yMax) * h;
  const parts: string[] = [];
  // Grid and y labels: five steps.
  for (let i = 0; i <= 5; i++) {
    const v = (yMax * i) / 5;
    const y = sy(v).toFixed(1);
    parts.push(`<line x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${y}" y2="${y}" class="grid"/>`);
    parts.push(`<text x="${PAD.left - 6}" y="${y}" class="yl">${fmt(v)}</text>`);
  }
  // x labels: about eight.
  const xStep = niceCeil((x1 - x0) / 8);
  for (let v = Math.ceil(x0 / xStep) * xStep; v <= x1; v += xStep) {
    parts.push(`<text x="${sx(v).toFixed(1)}" y="${HEIGHT - PAD.bottom + 16}" class="xl">${fmt(v)}</text>`);
  }
  parts.push(
    `<text x="${PAD.left + w / 2}" y="${HEIGHT - 4}" class="xl">seconds</text>`,
    `<rect x="${PAD.left}" y="${PAD.top}" width="${w}" height="${h}" class="frame"/>`,
  );
  for (const m of chart.markers ?? []) {
    if (!finite(m.x)) continue;
    const x = sx(m.x).toFixed(1);
    parts.push(
      `<line x1="${x}" x2="${x}" y1="${PAD.top}" y2="${PAD.top + h}" class="marker"/>`,
      `<text x="${(sx(m.x) + 3).toFixed(1)}" y="${PAD.top + 10}" class="ml">${escapeHtml(m.label)}</text>`,
    );
  }
  chart.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    const t = thin(chart.x, s.values);
    // Runs of consecutive points: a run of one is a dot, longer runs are one path segment each.
    const runs: string[][] = [];
    let run: string[] = [];
    for (let k = 0; k < t.x.length; k++) {
      const v = t.y[k];
      const xv = t.x[k];
      if (!finite(v) || !finite(xv)) {
        if (run.length > 0) runs.push(run);
        run = [];
        continue;
      }
      run.push(`${sx(xv).toFixed(1)},${sy(v).toFixed(1)}`);
    }
    if (run.length > 0) runs.push(run);
    const d = runs
      .filter((r) => r.length > 1)
      .map((r) => `M${r.join("L")}`)
      .join("");
    if (d !== "") {
      parts.push(`<path d="${d}" stroke="${color}" class="line"><title>${escapeHtml(s.name)}</title></path>`);
    }
    for (const r of runs) {
      if (r.length !== 1) continue;
      const [cx, cy] = r[0]!.split(",");
      parts.push(`<circle cx="${cx}" cy="${cy}" r="2.5" fill="${color}"/>`);
    }
  });
  const legend = chart.series
    .map(
      (s, i) =>
        `<span class="key"><span class="sw" style="background:${COLORS[i % COLORS.length]}"></span>${escapeHtml(s.name)}</span>`,
    )
    .join(" ");
  return (
    `<figure><figcaption>${escapeHtml(chart.title)}${chart.unit === "" ? "" : ` (${escapeHtml(chart.unit)})`}</figcaption>` +
    `<svg viewBox="0 0 ${WIDTH} ${HEIGHT}" width="100%" role="img" aria-label="${escapeHtml(chart.title)}">${parts.join("")}</svg>` +
    `<div class="legend">${legend}</div></figure>`
  );
}

const CSS = `
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:960px;color:#222;padding:0 12px}
h1{font-size:20px;margin:0 0 4px}code,pre{font:12px/1.4 ui-monospace,monospace}
.sub{color:#555;word-break:break-all;margin-bottom:16px}
table{border-collapse:collapse;margin:8px 0 16px}td{border-top:1px solid #ddd;padding:3px 12px 3px 0;vertical-align:top}
td:first-child{color:#555;white-space:nowrap}
figure{margin:18px 0}figcaption{font-weight:600;margin-bottom:4px}
svg .grid{stroke:#e5e5e5}svg .frame{fill:none;stroke:#999}
svg .yl{font-size:11px;text-anchor:end;dominant-baseline:middle;fill:#555}
svg .xl{font-size:11px;text-anchor:middle;fill:#555}
svg .line{fill:none;stroke-width:1.6}svg .marker{stroke:#000;stroke-dasharray:4 3}
svg .ml{font-size:11px;fill:#000}
.legend{font-size:12px;color:#333}.key{margin-right:14px;white-space:nowrap}
.sw{display:inline-block;width:14px;height:3px;vertical-align:middle;margin-right:5px}
.warn{background:#fff6e0;border-left:3px solid #e0a000;padding:6px 10px;margin:4px 0}
pre{background:#f6f6f6;padding:10px;overflow-x:auto}
`;

export function renderPage(page: ReportPage): string {
  const facts = page.facts
    .map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(v)}</td></tr>`)
    .join("");
  const warnings = page.warnings.map((w) => `<div class="warn">${escapeHtml(w)}</div>`).join("");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(page.title)}</title><style>${CSS}</style></head>
<body><h1>${escapeHtml(page.title)}</h1><div class="sub"><code>${escapeHtml(page.subtitle)}</code></div>
<table>${facts}</table>
${warnings}
${page.charts.map(renderChart).join("\n")}
<h2>Summary</h2><pre>${escapeHtml(page.summary)}</pre>
</body></html>
`;
}
