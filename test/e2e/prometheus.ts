// A real Prometheus server (Debian's prometheus package) in its own lab namespace on the L2
// segment, scraping the agents and scheduler replicas every second, with the project's alert
// rules loaded. Queried through its HTTP API from inside that namespace.
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { waitFor } from '../controlplane/harness.js';
import type { Lab, LabProcess, Netns } from '../lab/index.js';

const ALERTS = fileURLToPath(new URL('../../monitoring/alerts.yaml', import.meta.url));
const PORT = 9090;

export interface PromSample {
  metric: Record<string, string>;
  value: number;
}

export interface LabPrometheus {
  ns: Netns;
  proc: LabProcess;
  /** Instant query; the samples it returns. */
  query(expr: string): Promise<PromSample[]>;
  /** Waits until every target is up. */
  targetsUp(timeoutMs?: number): Promise<void>;
}

interface QueryResponse {
  status: string;
  error?: string;
  data?: { result?: { metric: Record<string, string>; value: [number, string] }[] };
}

export async function startPrometheus(lab: Lab, address: string, jobs: Record<string, string[]>): Promise<LabPrometheus> {
  const ns = await lab.addNamespace('prom');
  await lab.attach(ns, { ifname: 'eth0', addresses: [address] });
  const dir = join(lab.dir, 'prometheus');
  mkdirSync(dir, { recursive: true });
  const config = {
    global: { scrape_interval: '1s', evaluation_interval: '1s' },
    rule_files: [ALERTS],
    scrape_configs: Object.entries(jobs).map(([job, targets]) => ({ job_name: job, static_configs: [{ targets }] })),
  };
  writeFileSync(join(dir, 'prometheus.yml'), YAML.stringify(config));
  const proc = lab.spawn(
    ns,
    [
      'prometheus',
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${PORT}`,
      '--log.level=warn',
    ],
    { label: 'prometheus' },
  );
  const query = async (expr: string): Promise<PromSample[]> => {
    const r = await lab.exec(ns, ['curl', '-s', '-m', '3', '--data-urlencode', `query=${expr}`, `http://127.0.0.1:${PORT}/api/v1/query`]);
    const body = JSON.parse(r.stdout || '{}') as QueryResponse;
    if (body.status !== 'success') throw new Error(`query ${expr}: ${body.error ?? r.stderr}`);
    return (body.data?.result ?? []).map((s) => ({ metric: s.metric, value: Number(s.value[1]) }));
  };
  const expected = Object.values(jobs).flat().length;
  return {
    ns,
    proc,
    query,
    async targetsUp(timeoutMs = 30_000) {
      await waitFor(
        `${expected} Prometheus targets up`,
        async () => {
          if (proc.child.exitCode !== null) throw new Error(`prometheus exited; log ${proc.logFile}`);
          const up = await query('sum(up)');
          return up[0]?.value === expected;
        },
        timeoutMs,
        250,
      );
    },
  };
}
