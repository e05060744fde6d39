/**
 * A small Prometheus registry writing the text exposition format 0.0.4 (no runtime dependency): counters,
 * gauges and histograms with declared label names and a cap on series per metric, so a bug can never
 * grow a scrape without bound.
 */

export type Labels = Readonly<Record<string, string>>;

/** Most label sets one metric keeps; further sets are folded into the overflow series. */
export const MAX_SERIES = 64;

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

interface Series {
  labels: Labels;
  value: number;
  /** Histogram only: cumulative counts per bucket bound and the sum. */
  buckets?: number[];
  sum?: number;
}

interface Metric {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  labelNames: readonly string[];
  bounds?: readonly number[];
  series: Map<string, Series>;
  /** Gauges read at scrape time: the label sets and values as they are now. */
  collect?: () => Array<[Labels, number]>;
}

export interface Counter {
  inc(labels?: Labels, by?: number): void;
}
export interface Gauge {
  set(labels: Labels, value: number): void;
}
export interface Histogram {
  observe(labels: Labels, value: number): void;
}

export interface Registry {
  counter(name: string, help: string, labelNames?: readonly string[]): Counter;
  gauge(name: string, help: string, labelNames?: readonly string[]): Gauge;
  /** A gauge whose series `collect` returns at each scrape (replacing what it returned before). */
  collectedGauge(
    name: string,
    help: string,
    labelNames: readonly string[],
    collect: () => Array<[Labels, number]>,
  ): void;
  histogram(name: string, help: string, bounds: readonly number[], labelNames?: readonly string[]): Histogram;
  /** The whole registry in the text format, one trailing newline. */
  render(): string;
}

/** HELP text escaped as the format asks: backslash and newline. */
export function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** A label value escaped as the format asks: backslash, double quote and newline. */
export function escapeLabelValue(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** A sample value as the format writes it (+Inf, -Inf, NaN spelled out). */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}

/** `{a="x",b="y"}` in declared label order, or '' for no labels. */
function labelText(labels: Labels, names: readonly string[], extra?: [string, string]): string {
  const parts = names.map((name) => `${name}="${escapeLabelValue(labels[name] ?? '')}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

/** Throws when a metric or label name breaks the format's rules (a programming error). */
function checkNames(name: string, labelNames: readonly string[], reserved: readonly string[]): void {
  if (!NAME.test(name)) throw new Error(`bad metric name ${JSON.stringify(name)}`);
  for (const label of labelNames) {
    if (!LABEL.test(label) || label.startsWith('__') || reserved.includes(label))
      throw new Error(`bad label name ${JSON.stringify(label)} on ${name}`);
  }
}

/** A new, empty registry. */
export function createRegistry(): Registry {
  const metrics = new Map<string, Metric>();

  const add = (metric: Metric): Metric => {
    if (metrics.has(metric.name)) throw new Error(`metric ${metric.name} registered twice`);
    metrics.set(metric.name, metric);
    return metric;
  };

  /** The series for `labels` (made on first use); past MAX_SERIES, the one with every label "other". */
  const seriesOf = (metric: Metric, labels: Labels): Series => {
    const picked: Record<string, string> = {};
    for (const name of metric.labelNames) picked[name] = labels[name] ?? '';
    let key = JSON.stringify(metric.labelNames.map((name) => picked[name]));
    let series = metric.series.get(key);
    if (series) return series;
    if (metric.series.size >= MAX_SERIES) {
      for (const name of metric.labelNames) picked[name] = 'other';
      key = JSON.stringify(metric.labelNames.map((name) => picked[name]));
      series = metric.series.get(key);
      if (series) return series;
    }
    series = { labels: picked, value: 0 };
    if (metric.bounds) {
      series.buckets = metric.bounds.map(() => 0);
      series.sum = 0;
    }
    metric.series.set(key, series);
    return series;
  };

  return {
    counter(name, help, labelNames = []) {
      checkNames(name, labelNames, []);
      const metric = add({ name, help, type: 'counter', labelNames, series: new Map() });
      return {
        inc(labels = {}, by = 1) {
          if (!(by >= 0)) throw new Error(`counter ${name} cannot go down (by ${by})`);
          seriesOf(metric, labels).value += by;
        },
      };
    },
    gauge(name, help, labelNames = []) {
      checkNames(name, labelNames, []);
      const metric = add({ name, help, type: 'gauge', labelNames, series: new Map() });
      return {
        set(labels, value) {
          seriesOf(metric, labels).value = value;
        },
      };
    },
    collectedGauge(name, help, labelNames, collect) {
      checkNames(name, labelNames, []);
      add({ name, help, type: 'gauge', labelNames, series: new Map(), collect });
    },
    histogram(name, help, bounds, labelNames = []) {
      checkNames(name, labelNames, ['le']);
      const sorted = [...bounds].sort((a, b) => a - b);
      if (
        sorted.length === 0 ||
        sorted.some((bound, i) => !Number.isFinite(bound) || bound === sorted[i - 1])
      )
        throw new Error(`histogram ${name} needs distinct finite bucket bounds`);
      const metric = add({ name, help, type: 'histogram', labelNames, bounds: sorted, series: new Map() });
      return {
        observe(labels, value) {
          const series = seriesOf(metric, labels);
          series.value += 1;
          series.sum = (series.sum ?? 0) + value;
          sorted.forEach((bound, i) => {
            if (value <= bound && series.buckets) series.buckets[i] = (series.buckets[i] ?? 0) + 1;
          });
        },
      };
    },
    render() {
      const lines: string[] = [];
      for (const metric of metrics.values()) {
        if (metric.collect) {
          metric.series.clear();
          for (const [labels, value] of metric.collect()) seriesOf(metric, labels).value = value;
        }
        lines.push(
          `# HELP ${metric.name} ${escapeHelp(metric.help)}`,
          `# TYPE ${metric.name} ${metric.type}`,
        );
        for (const series of metric.series.values()) {
          const labels = labelText(series.labels, metric.labelNames);
          if (metric.bounds === undefined) {
            lines.push(`${metric.name}${labels} ${formatValue(series.value)}`);
            continue;
          }
          metric.bounds.forEach((bound, i) => {
            const le = labelText(series.labels, metric.labelNames, ['le', formatValue(bound)]);
            lines.push(`${metric.name}_bucket${le} ${series.buckets?.[i] ?? 0}`);
          });
          const inf = labelText(series.labels, metric.labelNames, ['le', '+Inf']);
          lines.push(`${metric.name}_bucket${inf} ${series.value}`);
          lines.push(`${metric.name}_sum${labels} ${formatValue(series.sum ?? 0)}`);
          lines.push(`${metric.name}_count${labels} ${series.value}`);
        }
      }
      return `${lines.join('\n')}\n`;
    },
  };
}
