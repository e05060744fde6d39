import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { createDaemonMetrics } from '../../../src/daemon/metrics.ts';

const DASHBOARD = 'deploy/grafana/moshwall-dashboard.json';

/** Every PromQL expression of the dashboard's panels. */
function dashboardExprs(): string[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    panels: Array<{ targets: Array<{ expr: string }> }>;
  };
  return dashboard.panels.flatMap((panel) => panel.targets.map((target) => target.expr));
}

it('the Grafana dashboard queries only metrics the daemon exports (names, _bucket/_count of histograms)', () => {
  const metrics = createDaemonMetrics({
    version: 't',
    backend: () => 'ufw',
    now: () => 0,
    watchedHolders: () => 0,
  });
  const text = metrics.render();
  const families = new Map<string, string>();
  for (const match of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) families.set(match[1] ?? '', match[2] ?? '');
  const exprs = dashboardExprs();
  assert.ok(exprs.length >= 10);
  const used = new Set(exprs.flatMap((expr) => [...expr.matchAll(/\bmoshwall_[a-z_]+/g)].map((m) => m[0])));
  for (const name of used) {
    const base = name.replace(/_(bucket|count|sum)$/, '');
    const type = families.get(name) ?? families.get(base);
    assert.ok(type, `${name} is not a metric of the daemon`);
    if (name !== base && families.get(name) === undefined) assert.equal(type, 'histogram', name);
  }
});
