// The picture of the Grafana dashboard in the README (deploy/grafana/moshwall-dashboard.svg), drawn from
// real data: in the e2e lab, `moshwall daemon` with metrics on and the shim installed, a real Prometheus scraping it every
// second, and for ~2.5 minutes real mosh-servers started over ssh through the shim (alice and bob, up
// to eight live, the oldest ended now and then, then one by one in the last quarter) and two programs
// that are not mosh-server holding a port each (refused). Then every query of
// deploy/grafana/moshwall-dashboard.json runs against that Prometheus (query_range over the run,
// $__rate_interval = 15s, $instance = .+) and each panel is drawn where its gridPos puts it: stat
// panels as their last value, time series as lines, the table as rows. No Grafana is needed (none is
// packaged for Debian); the layout, titles and queries are the dashboard's own.
// Run as root: `node --import tsx scripts/dashboard-picture.ts [--seconds N]` after `npm run build`.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { endStarted, installShim, startDaemon } from '../test/e2e/_daemon.ts';
import { waitUntil } from '../test/e2e/_poll.ts';
import { createLab, type Lab } from '../test/e2e/lab.ts';

const HOG = fileURLToPath(new URL('../test/e2e/fixtures/http-hog.mjs', import.meta.url));
const DASHBOARD = fileURLToPath(new URL('../deploy/grafana/moshwall-dashboard.json', import.meta.url));
const OUT = fileURLToPath(new URL('../deploy/grafana/moshwall-dashboard.svg', import.meta.url));
const METRICS_PORT = 9654;
const PROMETHEUS_PORT = 19090;
const CONFIG = `backend = "ufw"\nport_range = "60000:61000"\nmetrics_listen = "127.0.0.1:${METRICS_PORT}"\n`;
const RATE_INTERVAL = '15s';
const STEP_S = 2;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Panel {
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets: Array<{ expr: string; legendFormat?: string }>;
  fieldConfig?: { defaults?: { unit?: string } };
}

/** One series of a query_range answer: its labels and [unix seconds, value] points. */
interface Series {
  metric: Record<string, string>;
  values: Array<[number, string]>;
}

/** GET on the lab's Prometheus (from inside the server host), the parsed JSON body. */
async function prometheus(lab: Lab, path: string): Promise<{ status: string; data?: { result?: Series[] } }> {
  const answer = await lab.runServer(
    [process.execPath, HOG, 'get', '127.0.0.1', String(PROMETHEUS_PORT), path],
    {
      timeoutMs: 15_000,
    },
  );
  const body = (JSON.parse(answer.stdout || '{}') as { body?: string }).body;
  // Not up yet (or not answering): the caller polls or reports.
  if (body === undefined) return { status: `no answer: ${answer.stdout.trim()}` };
  return JSON.parse(body);
}

/** The run: Prometheus, sessions coming and going, two refused holders. Returns [start, end] (s). */
async function workload(lab: Lab, seconds: number, started: number[]): Promise<[number, number]> {
  const dir = join(lab.dir, 'prometheus');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: moshwall\n    static_configs:\n      - targets: ['127.0.0.1:${METRICS_PORT}']\n        labels:\n          instance: lab-host\n`,
  );
  const server = await lab.startServer([
    'prometheus',
    `--config.file=${join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${PROMETHEUS_PORT}`,
    '--log.level=warn',
  ]);
  started.push(server.pid);
  await waitUntil(
    async () => (await prometheus(lab, '/api/v1/query?query=up')).status === 'success',
    30_000,
    500,
  );
  const begin = Date.now() / 1000;
  const live: number[] = [];
  let port = 60200;
  let refused = 0;
  for (let second = 0; second < seconds; second += 5) {
    // Sessions come (two of every three steps) and go (the oldest) for the first 3/4 of the run, then
    // only go, one per step.
    if (second < (seconds * 3) / 4 && second % 15 !== 10) {
      port += 1;
      const session = await lab.startMoshServer(second % 10 === 0 ? 'alice' : 'bob', { port });
      started.push(session.pid);
      live.push(session.pid);
    } else if (live.length > 0) {
      await lab.killServerProcess(live.shift() ?? -1);
    }
    if (live.length > 8) await lab.killServerProcess(live.shift() ?? -1);
    // Two programs that are not mosh-server take a port in the range, a third of the run apart: refused.
    if (refused < 2 && second >= ((refused + 1) * seconds) / 3) {
      refused += 1;
      const holder = await lab.startServer(
        [
          'python3',
          '-c',
          `import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(("0.0.0.0",${60990 + refused}))\ntime.sleep(600)`,
        ],
        { user: 'bob' },
      );
      started.push(holder.pid);
    }
    await sleep(5000);
  }
  return [begin, Date.now() / 1000];
}

/** A number as the dashboard shows it: a few significant digits, seconds as ms below 1. */
function shown(value: number, unit?: string): string {
  if (!Number.isFinite(value)) return '–';
  if (unit === 's') return value < 1 ? `${(value * 1000).toPrecision(3)} ms` : `${value.toPrecision(3)} s`;
  if (Number.isInteger(value)) return String(value);
  return value.toPrecision(3);
}

/** Text made safe inside SVG markup. */
const xmlText = (text: string) =>
  text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
const COLORS = ['#73bf69', '#f2cc0c', '#8ab8ff', '#ff780a', '#f2495c', '#5794f2', '#b877d9', '#fade2a'];

/** The legend of one series: the target's legendFormat filled in, or its labels. */
function legendOf(series: Series, target: { legendFormat?: string }, expr: string): string {
  if (target.legendFormat) {
    return target.legendFormat.replaceAll(
      /\{\{\s*(\w+)\s*\}\}/g,
      (_, name: string) => series.metric[name] ?? '',
    );
  }
  const labels = Object.entries(series.metric).map(([name, value]) => `${name}=${value}`);
  if (labels.length > 0) return labels.join(', ');
  const quantile = /histogram_quantile\(([\d.]+)/.exec(expr)?.[1];
  return quantile === undefined ? expr.slice(0, 40) : `p${Number(quantile) * 100}`;
}

/** One panel as SVG, in its box. */
function panelSvg(
  panel: Panel,
  answers: Array<{ target: { expr: string; legendFormat?: string }; series: Series[] }>,
  box: { x: number; y: number; w: number; h: number },
  range: [number, number],
): string {
  const parts = [
    `<rect x="${box.x}" y="${box.y}" width="${box.w}" height="${box.h}" rx="3" fill="#181b1f" stroke="#2c3235"/>`,
    `<text x="${box.x + 10}" y="${box.y + 20}" fill="#ccccdc" font-size="13" font-weight="500">${xmlText(panel.title)}</text>`,
  ];
  const unit = panel.fieldConfig?.defaults?.unit;
  if (panel.type === 'stat') {
    const last = answers
      .flatMap((answer) => answer.series)
      .map((series) => Number(series.values.at(-1)?.[1] ?? Number.NaN))
      .reduce((sum, value) => (Number.isNaN(value) ? sum : sum + value), 0);
    parts.push(
      `<text x="${box.x + box.w / 2}" y="${box.y + box.h / 2 + 22}" fill="#73bf69" font-size="40" font-weight="600" text-anchor="middle">${xmlText(shown(last, unit))}</text>`,
    );
  } else if (panel.type === 'table') {
    const rows = answers.flatMap((answer) => answer.series.map((series) => series.metric));
    const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))].filter(
      (name) => name !== '__name__',
    );
    const width = (box.w - 20) / Math.max(1, columns.length);
    columns.forEach((name, index) => {
      parts.push(
        `<text x="${box.x + 10 + index * width}" y="${box.y + 46}" fill="#8e8e8e" font-size="12">${xmlText(name)}</text>`,
      );
      rows.forEach((row, rowIndex) => {
        parts.push(
          `<text x="${box.x + 10 + index * width}" y="${box.y + 68 + rowIndex * 20}" fill="#ccccdc" font-size="12">${xmlText(row[name] ?? '')}</text>`,
        );
      });
    });
  } else {
    const plot = { x: box.x + 56, y: box.y + 32, w: box.w - 70, h: box.h - 92 };
    const lines = answers.flatMap((answer) =>
      answer.series.map((series) => ({
        legend: legendOf(series, answer.target, answer.target.expr),
        points: series.values
          .map(([at, value]) => [at, Number(value)] as const)
          .filter(([, value]) => Number.isFinite(value)),
      })),
    );
    const values = lines.flatMap((line) => line.points.map(([, value]) => value));
    const highest = Math.max(0, ...values);
    // Counts get whole ticks (an even top, so its half is whole too); anything else 10 % headroom.
    const counts = values.every((value) => Number.isInteger(value));
    const top = highest <= 0 ? 1 : counts ? 2 * Math.ceil((highest + 1) / 2) : highest * 1.1;
    const xOf = (at: number) => plot.x + ((at - range[0]) / (range[1] - range[0])) * plot.w;
    const yOf = (value: number) => plot.y + plot.h - (value / top) * plot.h;
    for (const share of [0, 0.5, 1]) {
      const y = plot.y + plot.h - share * plot.h;
      parts.push(`<line x1="${plot.x}" y1="${y}" x2="${plot.x + plot.w}" y2="${y}" stroke="#2c3235"/>`);
      parts.push(
        `<text x="${plot.x - 6}" y="${y + 4}" fill="#8e8e8e" font-size="10" text-anchor="end">${xmlText(shown(top * share, unit))}</text>`,
      );
    }
    for (const share of [0, 0.5, 1]) {
      const at = range[0] + share * (range[1] - range[0]);
      const label = new Date(at * 1000).toISOString().slice(11, 19);
      parts.push(
        `<text x="${xOf(at)}" y="${plot.y + plot.h + 14}" fill="#8e8e8e" font-size="10" text-anchor="middle">${label}</text>`,
      );
    }
    lines.forEach((line, index) => {
      const color = COLORS[index % COLORS.length] ?? '#73bf69';
      if (line.points.length > 0) {
        const path = line.points
          .map(([at, value]) => `${xOf(at).toFixed(1)},${yOf(value).toFixed(1)}`)
          .join(' ');
        parts.push(`<polyline points="${path}" fill="none" stroke="${color}" stroke-width="1.5"/>`);
      }
      const legendX = box.x + 10 + (index % 3) * ((box.w - 20) / 3);
      const legendY = box.y + box.h - 20 + Math.floor(index / 3) * 13;
      parts.push(`<rect x="${legendX}" y="${legendY - 8}" width="10" height="3" fill="${color}"/>`);
      parts.push(
        `<text x="${legendX + 14}" y="${legendY - 4}" fill="#ccccdc" font-size="10">${xmlText(line.legend.slice(0, 38))}</text>`,
      );
    });
    if (lines.length === 0) {
      parts.push(
        `<text x="${box.x + box.w / 2}" y="${box.y + box.h / 2}" fill="#8e8e8e" font-size="12" text-anchor="middle">No data</text>`,
      );
    }
  }
  return parts.join('\n');
}

async function main(): Promise<void> {
  const secondsAt = process.argv.indexOf('--seconds');
  const seconds = secondsAt > 0 ? Number(process.argv[secondsAt + 1]) : 150;
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { title: string; panels: Panel[] };
  const lab = await createLab();
  const started: number[] = [];
  let daemon: Awaited<ReturnType<typeof startDaemon>> | undefined;
  try {
    await installShim(lab);
    daemon = await startDaemon(lab, CONFIG, { verbose: false });
    const range = await workload(lab, seconds, started);
    await sleep(3000);
    const unit = 30;
    const column = 50;
    const width = 24 * column + 20;
    const height =
      Math.max(...dashboard.panels.map((panel) => panel.gridPos.y + panel.gridPos.h)) * unit + 60;
    const svg = [
      `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="Inter, Helvetica, Arial, sans-serif">`,
      `<rect width="${width}" height="${height}" fill="#111217"/>`,
      `<text x="12" y="28" fill="#ccccdc" font-size="17" font-weight="600">${xmlText(dashboard.title)} — lab run, ${new Date(range[0] * 1000).toISOString().slice(0, 16)}Z, ${Math.round(range[1] - range[0])} s</text>`,
    ];
    for (const panel of dashboard.panels) {
      const answers = [];
      for (const target of panel.targets) {
        const expr = target.expr.replaceAll('$instance', '.+').replaceAll('$__rate_interval', RATE_INTERVAL);
        const query =
          panel.type === 'table'
            ? `/api/v1/query?query=${encodeURIComponent(expr)}`
            : `/api/v1/query_range?query=${encodeURIComponent(expr)}&start=${range[0]}&end=${range[1]}&step=${STEP_S}`;
        const body = await prometheus(lab, query);
        if (body.status !== 'success') throw new Error(`${panel.title}: ${expr}: ${JSON.stringify(body)}`);
        const result = (body.data?.result ?? []) as Array<Series & { value?: [number, string] }>;
        answers.push({
          target,
          series: result.map((series) => ({
            metric: series.metric,
            values: series.values ?? (series.value ? [series.value] : []),
          })),
        });
      }
      const box = {
        x: 10 + panel.gridPos.x * column,
        y: 44 + panel.gridPos.y * unit,
        w: panel.gridPos.w * column - 8,
        h: panel.gridPos.h * unit - 8,
      };
      svg.push(panelSvg(panel, answers, box, range));
    }
    svg.push('</svg>');
    writeFileSync(OUT, `${svg.join('\n')}\n`);
    process.stdout.write(
      `wrote ${OUT} (${dashboard.panels.length} panels, ${Math.round(range[1] - range[0])} s of data)\n`,
    );
  } finally {
    await endStarted(lab, started, daemon);
    await lab.destroy();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `dashboard-picture failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});
