/**
 * An SVG line chart of 99th percentile latency against load, one line per
 * relay, drawn as plain SVG text with no external tools.
 *
 * @module
 */

/** One line of the chart. */
export interface ChartSeries {
  label: string;
  /** Points as [participants, p99 in ms]. */
  points: [number, number][];
}

const WIDTH = 800;
const HEIGHT = 420;
const MARGIN = { left: 64, right: 260, top: 36, bottom: 52 };
const COLORS = [
  "#1f77b4",
  "#d62728",
  "#2ca02c",
  "#ff7f0e",
  "#9467bd",
  "#8c564b",
  "#e377c2",
];

/** Lowest and highest latency on the logarithmic y axis, in ms. */
const Y_MIN_MS = 0.1;
const Y_MAX_MS = 1_000;

function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;");
}

/** Returns a round axis maximum at or above `value`. */
function niceMax(value: number): number {
  const magnitude = 10 ** Math.floor(Math.log10(Math.max(1, value)));
  for (const step of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
    if (step * magnitude >= value) return step * magnitude;
  }
  return 10 * magnitude;
}

/**
 * Renders the chart. Latencies are clamped to the axis (0.1 ms to 1 s);
 * `limitMs` is drawn as a dashed line.
 */
export function renderLatencyChart(
  series: ChartSeries[],
  limitMs: number,
  title: string,
): string {
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const maxX = niceMax(
    Math.max(1, ...series.flatMap((s) => s.points.map(([x]) => x))),
  );
  const x = (value: number) => MARGIN.left + value / maxX * plotWidth;
  const y = (ms: number) => {
    const clamped = Math.min(Y_MAX_MS, Math.max(Y_MIN_MS, ms));
    const share = Math.log10(clamped / Y_MIN_MS) /
      Math.log10(Y_MAX_MS / Y_MIN_MS);
    return MARGIN.top + plotHeight * (1 - share);
  };

  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" ` +
      `viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${MARGIN.left}" y="20" font-size="14" font-weight="bold">${
      escapeXml(title)
    }</text>`,
  );

  for (const ms of [0.1, 1, 10, 100, 1000]) {
    const py = y(ms).toFixed(1);
    parts.push(
      `<line x1="${MARGIN.left}" x2="${
        MARGIN.left + plotWidth
      }" y1="${py}" y2="${py}" stroke="#ddd"/>`,
      `<text x="${MARGIN.left - 6}" y="${py}" text-anchor="end" ` +
        `dominant-baseline="middle">${ms >= 1 ? ms : ms.toFixed(1)}</text>`,
    );
  }
  for (let i = 0; i <= 5; i++) {
    const value = maxX / 5 * i;
    const px = x(value).toFixed(1);
    parts.push(
      `<line x1="${px}" x2="${px}" y1="${MARGIN.top}" y2="${
        MARGIN.top + plotHeight
      }" stroke="#eee"/>`,
      `<text x="${px}" y="${
        MARGIN.top + plotHeight + 16
      }" text-anchor="middle">${Math.round(value)}</text>`,
    );
  }
  parts.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotWidth}" ` +
      `height="${plotHeight}" fill="none" stroke="#888"/>`,
    `<text x="${MARGIN.left + plotWidth / 2}" y="${
      HEIGHT - 12
    }" text-anchor="middle">participants (3-person rooms, 50 packets/s each)</text>`,
    `<text transform="translate(16 ${
      MARGIN.top + plotHeight / 2
    }) rotate(-90)" text-anchor="middle">p99 added latency (ms, log scale)</text>`,
  );

  const limitY = y(limitMs).toFixed(1);
  parts.push(
    `<line x1="${MARGIN.left}" x2="${
      MARGIN.left + plotWidth
    }" y1="${limitY}" y2="${limitY}" stroke="#000" stroke-dasharray="6 4"/>`,
    `<text x="${MARGIN.left + plotWidth - 4}" y="${
      Number(limitY) - 4
    }" text-anchor="end">limit ${limitMs} ms</text>`,
  );

  series.forEach((line, index) => {
    const color = COLORS[index % COLORS.length]!;
    const points = line.points.map(([px, ms]) =>
      `${x(px).toFixed(1)},${y(ms).toFixed(1)}`
    );
    if (points.length > 1) {
      parts.push(
        `<polyline fill="none" stroke="${color}" stroke-width="2" points="${
          points.join(" ")
        }"/>`,
      );
    }
    for (const point of points) {
      const [px, py] = point.split(",");
      parts.push(`<circle cx="${px}" cy="${py}" r="3" fill="${color}"/>`);
    }
    const legendY = MARGIN.top + 10 + index * 20;
    const legendX = MARGIN.left + plotWidth + 16;
    parts.push(
      `<line x1="${legendX}" x2="${
        legendX + 20
      }" y1="${legendY}" y2="${legendY}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${legendX + 26}" y="${legendY}" dominant-baseline="middle">${
        escapeXml(line.label)
      }</text>`,
    );
  });

  parts.push("</svg>");
  return parts.join("\n") + "\n";
}
