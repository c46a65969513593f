// Entry point of `ipcontroller scheduler`: parse flags once, build the logger, metrics and the
// Kube port (from --kubeconfig or the usual places), start the scheduler, stop it on
// SIGTERM/SIGINT (a leader hands its Lease over first).
import { collectDefaultMetrics } from 'prom-client';
import { systemClock } from '../lib/clock.js';
import { loadKubeConfig } from '../lib/kubeconfig.js';
import { createLogger } from '../lib/logger.js';
import { parseSchedulerArgs, SCHEDULER_USAGE } from './config.js';
import { kubePort } from './kubeport.js';
import { SchedulerMetrics } from './metrics.js';
import { startScheduler } from './scheduler.js';

export { SCHEDULER_USAGE };

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseSchedulerArgs(argv);
  } catch (err) {
    process.stderr.write(`scheduler: ${err instanceof Error ? err.message : String(err)}\n\n${SCHEDULER_USAGE}`);
    return 2;
  }
  if (parsed.help) {
    process.stdout.write(SCHEDULER_USAGE);
    return 0;
  }
  const config = parsed.config;
  const logger = createLogger('scheduler', config.logLevel);
  const metrics = new SchedulerMetrics();
  collectDefaultMetrics({ register: metrics.registry, prefix: 'ipcontroller_scheduler_' });
  let handle;
  try {
    const kube = kubePort(loadKubeConfig(config.kubeconfig), {
      clock: systemClock,
      log: logger.child({ identity: config.identity, part: 'watch' }),
    });
    handle = await startScheduler(config, { logger, metrics, kube, clock: systemClock });
  } catch (err) {
    logger.fatal({ err: String(err) }, 'scheduler could not start');
    return 1;
  }
  await new Promise<void>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => resolve());
  });
  logger.info('stopping');
  await handle.stop();
  return 0;
}
