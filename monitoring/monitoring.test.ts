// The dashboard and the alerts only query metrics the programs export: every name they use
// is registered by the agent's or the scheduler's metrics module. (The e2e lab also scrapes
// the running programs and checks the same names on the wire.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { AgentMetrics } from '../agent/metrics.js';
import { SchedulerMetrics } from '../scheduler/metrics.js';
import { dashboardQueries, metricNames, ruleQueries } from './promql.js';

const read = (file: string) => readFileSync(fileURLToPath(new URL(file, import.meta.url)), 'utf8');

async function exported(): Promise<Set<string>> {
  const metrics = [
    ...(await new AgentMetrics().registry.getMetricsAsJSON()),
    ...(await new SchedulerMetrics().registry.getMetricsAsJSON()),
  ];
  return new Set(metrics.map((m) => m.name));
}

test('metricNames finds metric names, not functions, labels or strings', () => {
  assert.equal(
    metricNames(
      'histogram_quantile(0.99, sum by (le) (rate(ipcontroller_scheduler_failover_duration_seconds_bucket{pool="ipcontroller_x"}[5m]))) / ipcontroller_agent_fenced',
    ),
    ['ipcontroller_agent_fenced', 'ipcontroller_scheduler_failover_duration_seconds'],
  );
});

test('every dashboard panel has queries, and they read only exported metrics', async () => {
  const names = await exported();
  const panels = dashboardQueries(JSON.parse(read('dashboard.json')));
  assert.ok(panels.length >= 10);
  for (const panel of panels) {
    assert.ok(panel.exprs.length > 0, `${panel.title} has no query`);
    for (const name of panel.exprs.flatMap(metricNames))
      assert.ok(names.has(name), `${panel.title} reads ${name}, which no program exports`);
  }
});

test('every alert reads only exported metrics, and the required alerts exist', async () => {
  const names = await exported();
  const rules = ruleQueries(parse(read('alerts.yaml')));
  for (const rule of rules) {
    for (const name of rule.exprs.flatMap(metricNames)) assert.ok(names.has(name), `${rule.title} reads ${name}, which no program exports`);
  }
  const alerts = rules.map((r) => r.title);
  for (const wanted of [
    'IpcontrollerPoolNearlyExhausted',
    'IpcontrollerClaimsPendingTooLong',
    'IpcontrollerNodeFailingProbes',
    'IpcontrollerNoSchedulerLeader',
    'IpcontrollerAgentFenced',
    'IpcontrollerFrequentFailovers',
  ]) {
    assert.ok(alerts.includes(wanted), `missing alert ${wanted}`);
  }
});

test.run();
