// SVG charts for docs/benchmarks.md, drawn by hand (no charting library): horizontal bars,
// grouped by row, on a linear scale from zero or on a log scale around a reference (1× for a ratio).
// scripts/bench.mjs calls the chart of each section with the same rows it writes into its table.
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { SYNC_BENCH, timeRatio } from "./bench-sync.mjs";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));
/** `n` with `digits` decimals. */
export const fmt = (n, digits = 1) => n.toFixed(digits);

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif"';
const escape = (text) => String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

/**
 * Horizontal grouped bars.
 * - `groups`: `[{ label, bars: [{ series, value, text?, color? }] }]`, one row of bars per series
 *   present (`color` overrides the series' colour, e.g. grey for an anchor's bars).
 * - `series`: `[{ name, color }]`, in legend order.
 * - `scale`: `"linear"` (bars from 0), `"ratio"` (log scale, bars from 1×, symmetric) or `"log"`
 *   (log scale from the power of ten below the smallest value).
 * - `note`: a line under the title saying how to read it.
 */
export function barChart({ title, note = "", groups, series, scale = "linear", unit = "" }) {
  const width = 960;
  const labelWidth = 400;
  const valueWidth = 80;
  const plot = width - labelWidth - valueWidth - 20;
  const bar = 14;
  const gap = 10;
  const top = 64 + (series.length > 1 ? 20 : 0);
  const values = groups.flatMap((g) => g.bars.map((b) => b.value)).filter((v) => Number.isFinite(v) && v > 0);
  const rowsOf = (g) => Math.max(1, g.bars.length);
  const height = top + groups.reduce((h, g) => h + rowsOf(g) * bar + gap, 0) + 30;
  let x;
  let origin;
  let ticks;
  if (scale === "ratio") {
    // ticks at powers of 2, or of 10 when the bars span more than 2⁷ either way
    const span = Math.max(2, ...values.map((v) => Math.max(v, 1 / v)));
    const base = span > 2 ** 7 ? 10 : 2;
    const half = Math.ceil(Math.log(span) / Math.log(base));
    x = (v) => labelWidth + plot / 2 + (Math.log(Math.max(v, 1e-9)) / Math.log(base) / half) * (plot / 2);
    origin = x(1);
    ticks = [];
    for (let p = -half; p <= half; p += Math.max(1, Math.ceil(half / 3))) ticks.push(base ** p);
  } else if (scale === "log") {
    const low = 10 ** Math.floor(Math.log10(Math.min(...values)) - 1e-9);
    const high = 10 ** Math.ceil(Math.log10(Math.max(...values)));
    const decades = Math.max(1, Math.log10(high / low));
    x = (v) => labelWidth + (Math.log10(Math.max(v, low) / low) / decades) * plot;
    origin = x(low);
    ticks = Array.from({ length: decades + 1 }, (_, i) => low * 10 ** i);
  } else {
    const max = Math.max(...values, 1e-9);
    // a round step (1, 2 or 5 × 10ⁿ) that gives at most five intervals
    const power = 10 ** Math.floor(Math.log10(max / 5));
    const step = [1, 2, 5, 10].map((m) => m * power).find((st) => max / st <= 5);
    const top = Math.ceil(max / step) * step;
    x = (v) => labelWidth + (Math.max(0, v) / top) * plot;
    origin = x(0);
    ticks = Array.from({ length: Math.round(top / step) + 1 }, (_, i) => i * step);
  }
  const tickText = (t) => (scale === "ratio" ? `${t >= 1 ? +t.toFixed(0) : +t.toPrecision(1)}×` : `${+t.toPrecision(3)}${unit}`);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="12" y="24" font-size="16" font-weight="600">${escape(title)}</text>`,
    `<text x="12" y="44" fill="#555">${escape(note)}</text>`,
  ];
  if (series.length > 1) {
    let lx = labelWidth;
    for (const s of series) {
      out.push(`<rect x="${lx}" y="${top - 26}" width="12" height="12" fill="${s.color}"/>`);
      out.push(`<text x="${lx + 16}" y="${top - 16}">${escape(s.name)}</text>`);
      lx += 24 + s.name.length * 7;
    }
  }
  const bottom = height - 24;
  for (const t of ticks) {
    const tx = x(t).toFixed(1);
    out.push(`<line x1="${tx}" y1="${top - 4}" x2="${tx}" y2="${bottom}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${tx}" y="${bottom + 14}" text-anchor="middle" fill="#555">${escape(tickText(t))}</text>`);
  }
  let y = top;
  for (const group of groups) {
    const rows = rowsOf(group);
    out.push(`<text x="${labelWidth - 8}" y="${(y + (rows * bar) / 2 + 4).toFixed(1)}" text-anchor="end">${escape(group.label)}</text>`);
    for (const b of group.bars) {
      const color = b.color ?? series.find((s) => s.name === b.series)?.color ?? "#888";
      const end = x(b.value);
      const [from, to] = [Math.min(origin, end), Math.max(origin, end)];
      out.push(`<rect x="${from.toFixed(1)}" y="${y + 1}" width="${Math.max(1, to - from).toFixed(1)}" height="${bar - 2}" fill="${color}"><title>${escape(`${b.series}: ${b.text ?? b.value}`)}</title></rect>`);
      out.push(`<text x="${width - valueWidth}" y="${y + bar - 3}" fill="#333">${escape(b.text ?? `${+b.value.toPrecision(3)}${unit}`)}</text>`);
      y += bar;
    }
    y += gap;
  }
  out.push(`<line x1="${origin.toFixed(1)}" y1="${top - 4}" x2="${origin.toFixed(1)}" y2="${bottom}" stroke="#333"/>`);
  out.push("</svg>");
  return out.join("\n") + "\n";
}

/** Colours: Chrysalis in one hue, the anchors in greys and a second hue. */
export const COLORS = { ours: "#2563eb", oursAlt: "#93c5fd", anchor: "#6b7280", anchorLight: "#d1d5db", anchorAlt: "#f59e0b" };

/** Writes docs/charts/`name` (served to the demo at /charts/). */
function writeChart(name, svg) {
  const dir = join(ROOT, "docs/charts");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, name), svg);
  console.log(`wrote docs/charts/${name}`);
}

/** Every case of the primitives table as its ratio, faster to the right. */
export function primitivesChart(results) {
  const short = (text, length) => (text.length > length ? `${text.slice(0, length - 1)}…` : text);
  const faster = "Chrysalis faster";
  const slower = "anchor faster";
  writeChart(
    "primitives.svg",
    barChart({
      title: "Chrysalis against each anchor, per case (operations per second)",
      note: "Chrysalis ÷ anchor, log scale: right of 1× Chrysalis is faster. Headless Chromium, same page.",
      scale: "ratio",
      series: [
        { name: faster, color: COLORS.ours },
        { name: slower, color: COLORS.anchorAlt },
      ],
      groups: results.rows.map((r) => ({
        label: `${short(`${r.case}, ${r.input}`, 38)} · ${short(r.anchor, 18)}`,
        bars: [{ series: r.ratio >= 1 ? faster : slower, value: r.ratio, text: `${fmt(r.ratio, 2)}×` }],
      })),
    }),
  );
}

/** Replication time and bytes against Yjs, per case. */
export function replicationChart(sync) {
  const row = (library, label) => sync.find((r) => r.library === library && r.label === label);
  writeChart(
    "replication.svg",
    barChart({
      title: `Replication against Yjs + y-websocket (${SYNC_BENCH.PAGES} pages, ${SYNC_BENCH.EDITS.toLocaleString("en-US")} edits)`,
      note: "Chrysalis ÷ Yjs, log scale: left of 1× Chrysalis converges sooner or sends fewer bytes.",
      scale: "ratio",
      series: [
        { name: "time", color: COLORS.ours },
        { name: "bytes", color: COLORS.oursAlt },
      ],
      groups: SYNC_BENCH.CASES.filter(({ label }) => row("chrysalis", label) && row("yjs", label)).map(({ label }) => {
        const [ours, theirs] = [row("chrysalis", label), row("yjs", label)];
        const { ratio } = timeRatio(ours, theirs);
        return {
          label,
          bars: [
            { series: "time", value: ratio, text: `${fmt(ratio, 2)}×` },
            { series: "bytes", value: ours.bytes / theirs.bytes, text: `${fmt(ours.bytes / theirs.bytes, 2)}×` },
          ],
        };
      }),
    }),
  );
}

/** Short-sentence latency and the batch of 100, per engine. */
export function embeddingCharts(embedding) {
  writeChart(
    "embedding.svg",
    barChart({
      title: "Embedding one short sentence (all-MiniLM-L6-v2), per engine",
      note: `Milliseconds, shorter is faster; Chrysalis in blue, the anchors in grey; headless Chromium, ${embedding.cores} cores.`,
      unit: " ms",
      series: [
        { name: "p50", color: COLORS.ours },
        { name: "p99", color: COLORS.oursAlt },
      ],
      groups: embedding.rows.map((r) => ({
        label: r.engine,
        bars: [
          { series: "p50", value: r.p50, text: `${fmt(r.p50)} ms`, color: r.ours ? COLORS.ours : COLORS.anchor },
          { series: "p99", value: r.p99, text: `${fmt(r.p99)} ms`, color: r.ours ? COLORS.oursAlt : COLORS.anchorLight },
        ],
      })),
    }),
  );
  writeChart(
    "embedding-batch.svg",
    barChart({
      title: "Embedding a batch of 100 sentences, per engine",
      note: "Milliseconds for the whole batch, shorter is faster.",
      unit: " ms",
      series: [
        { name: "Chrysalis", color: COLORS.ours },
        { name: "anchor", color: COLORS.anchor },
      ],
      groups: embedding.rows.map((r) => ({
        label: r.engine,
        bars: [{ series: r.ours ? "Chrysalis" : "anchor", value: r.batchMs, text: `${fmt(r.batchMs, 0)} ms` }],
      })),
    }),
  );
}

/** kNN query time per engine at each index size. */
export function knnChart(knn) {
  const sizes = [...new Set(knn.rows.map((r) => r.count))].sort((a, b) => a - b);
  const palette = [COLORS.oursAlt, COLORS.ours, COLORS.anchorAlt];
  const name = (count) => `${count.toLocaleString("en-US")} vectors`;
  writeChart(
    "knn.svg",
    barChart({
      title: "k-nearest-neighbour query (k = 10, 384-d) against index size",
      note: "Query p50 in milliseconds, log scale, shorter is faster.",
      scale: "log",
      unit: " ms",
      series: sizes.map((count, i) => ({ name: name(count), color: palette[i % palette.length] })),
      groups: [...new Set(knn.rows.map((r) => r.engine))].map((engine) => ({
        label: engine,
        bars: knn.rows
          .filter((r) => r.engine === engine)
          .sort((a, b) => a.count - b.count)
          .map((r) => ({ series: name(r.count), value: r.p50, text: `${fmt(r.p50, 2)} ms` })),
      })),
    }),
  );
}
