// Entry point of `ipcontroller scheduler`: parse flags once, build the logger and metrics, start
// the scheduler (which builds its Kube port from --kubeconfig or the usual places, its pool
// sized for --writes-in-flight), stop it on SIGTERM/SIGINT (a leader hands its Lease over first).
import { collectDefaultMetrics } from 'prom-client';
import { systemClock } from '../lib/clock.js';
import { createLogger } from '../lib/logger.js';
import { parseSchedulerArgs, SCHEDULER_USAGE } from './config.js';
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
    handle = await startScheduler(config, { logger, metrics, clock: systemClock });
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
