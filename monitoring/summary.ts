// `make dashboard`: the dashboard's panels and the alert rules as text, with the metrics each
// reads, for a look without Grafana.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { dashboardQueries, metricNames, ruleQueries, type PanelQueries } from './promql.js';

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const section = (heading: string, items: PanelQueries[]): string =>
  [
    heading,
    ...items.flatMap((item) => [
      '',
      `  ${item.title}`,
      ...item.exprs.map((expr) => `    ${expr.replace(/\s+/g, ' ').trim()}`),
      `    reads: ${[...new Set(item.exprs.flatMap(metricNames))].join(', ')}`,
    ]),
    '',
  ].join('\n');
process.stdout.write(
  section('Dashboard monitoring/dashboard.json', dashboardQueries(JSON.parse(readFileSync(here('dashboard.json'), 'utf8')))) +
    '\n' +
    section('Alerts monitoring/alerts.yaml', ruleQueries(parse(readFileSync(here('alerts.yaml'), 'utf8')))) +
    '\n',
);
