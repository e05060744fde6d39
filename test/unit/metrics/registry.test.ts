import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import {
  createRegistry,
  escapeHelp,
  escapeLabelValue,
  formatValue,
  MAX_SERIES,
} from '../../../src/metrics/registry.ts';

/** promtool's verdict on an exposition text: its exit code and what it printed. */
function promtool(text: string): { code: number | null; output: string } {
  const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (result.error)
    throw new Error(`promtool must be installed (Debian's prometheus package): ${result.error}`);
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}

/** A registry with one of everything, label values that need escaping included. */
function sample(): string {
  const registry = createRegistry();
  const counter = registry.counter('demo_events_total', 'Events with a "quote", a \\ and\na newline.', [
    'reason',
  ]);
  counter.inc({ reason: 'a "quoted" \\ value\nnext line' });
  counter.inc({ reason: 'plain' }, 2);
  registry.gauge('demo_level', 'A level.', ['family']).set({ family: 'v4' }, 3);
  const histogram = registry.histogram('demo_duration_seconds', 'A duration.', [0.1, 1, 10], ['result']);
  histogram.observe({ result: 'ok' }, 0.05);
  histogram.observe({ result: 'ok' }, 5);
  histogram.observe({ result: 'ok' }, 50);
  registry.collectedGauge('demo_age_seconds', 'An age.', [], () => [[{}, 1.5]]);
  return registry.render();
}

describe('metrics registry', () => {
  it('writes text promtool accepts without a lint complaint', () => {
    const verdict = promtool(sample());
    assert.equal(verdict.code, 0, verdict.output);
    assert.equal(verdict.output.trim(), '');
  });

  it('promtool is a real check here: it rejects a broken text', () => {
    assert.notEqual(promtool('demo_level{family="v4} 3\n').code, 0);
  });

  it('writes HELP and TYPE, escapes, buckets cumulative with +Inf, _sum and _count', () => {
    const text = sample();
    assert.match(text, /^# HELP demo_events_total Events with a "quote", a \\\\ and\\na newline\.$/m);
    assert.match(text, /^# TYPE demo_events_total counter$/m);
    assert.match(text, /^demo_events_total\{reason="a \\"quoted\\" \\\\ value\\nnext line"\} 1$/m);
    assert.match(text, /^demo_events_total\{reason="plain"\} 2$/m);
    assert.match(text, /^demo_duration_seconds_bucket\{result="ok",le="0.1"\} 1$/m);
    assert.match(text, /^demo_duration_seconds_bucket\{result="ok",le="1"\} 1$/m);
    assert.match(text, /^demo_duration_seconds_bucket\{result="ok",le="10"\} 2$/m);
    assert.match(text, /^demo_duration_seconds_bucket\{result="ok",le="\+Inf"\} 3$/m);
    assert.match(text, /^demo_duration_seconds_sum\{result="ok"\} 55.05$/m);
    assert.match(text, /^demo_duration_seconds_count\{result="ok"\} 3$/m);
    assert.match(text, /^demo_age_seconds 1.5$/m);
    assert.ok(text.endsWith('\n') && !text.endsWith('\n\n'));
  });

  it('folds label sets past MAX_SERIES into one "other" series', () => {
    const registry = createRegistry();
    const counter = registry.counter('demo_total', 'Demo.', ['user']);
    for (let i = 0; i < MAX_SERIES + 50; i++) counter.inc({ user: `u${i}` });
    const lines = registry
      .render()
      .split('\n')
      .filter((line) => line.startsWith('demo_total{'));
    assert.equal(lines.length, MAX_SERIES + 1);
    assert.ok(lines.includes('demo_total{user="other"} 50'));
  });

  it('refuses bad names, a reserved le label, a falling counter and a duplicate metric', () => {
    const registry = createRegistry();
    assert.throws(() => registry.counter('9bad', 'x'));
    assert.throws(() => registry.gauge('ok_name', 'x', ['bad-label']));
    assert.throws(() => registry.histogram('h_seconds', 'x', [1], ['le']));
    assert.throws(() => registry.histogram('h2_seconds', 'x', []));
    const counter = registry.counter('c_total', 'x');
    assert.throws(() => counter.inc({}, -1));
    assert.throws(() => registry.counter('c_total', 'x'));
  });

  it('escapes and formats values as the format spells them', () => {
    assert.equal(escapeHelp('a\\b\nc"'), 'a\\\\b\\nc"');
    assert.equal(escapeLabelValue('a\\b\nc"'), 'a\\\\b\\nc\\"');
    assert.equal(formatValue(Number.POSITIVE_INFINITY), '+Inf');
    assert.equal(formatValue(Number.NEGATIVE_INFINITY), '-Inf');
    assert.equal(formatValue(Number.NaN), 'NaN');
    assert.equal(formatValue(0.25), '0.25');
  });
});
