// Entry point of `ipcontroller agent`: parses the flags once, builds the logger, metrics,
// Kubernetes client, iproute2 port and frame sender, starts the agent and drains it on
// SIGTERM / SIGINT.
import { systemClock } from '../lib/clock.js';
import { loadKubeConfig } from '../lib/kubeconfig.js';
import { createLogger } from '../lib/logger.js';
import { startAgent } from './agent.js';
import { AGENT_USAGE, parseAgentArgs } from './config.js';
import { openPacketSender } from './frames.js';
import { nftDeadman } from './deadman.js';
import { nftKernelYield } from './kernelyield.js';
import { kubePort } from './kube.js';
import { AgentMetrics } from './metrics.js';
import { iproute2 } from './net.js';
import { packetSightingSource } from './receiver.js';

export { AGENT_USAGE };

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseAgentArgs(argv);
  } catch (err) {
    process.stderr.write(`agent: ${err instanceof Error ? err.message : String(err)}\n\n${AGENT_USAGE}`);
    return 2;
  }
  if (parsed.help) {
    process.stdout.write(AGENT_USAGE);
    return 0;
  }
  const config = parsed.config;
  const logger = createLogger('agent', config.logLevel);
  try {
    const kc = loadKubeConfig(config.kubeconfig);
    const clock = systemClock;
    const deadman =
      config.deadmanMs > 0
        ? await nftDeadman(logger).catch((err: unknown) => {
            // Without it the agent still works as before; the log says what is missing.
            logger.error(
              { err: String(err) },
              "deadman: nftables not usable; a frozen or killed agent's kernel keeps answering for its addresses",
            );
            return undefined;
          })
        : undefined;
    const kernelYield = await nftKernelYield(logger).catch((err: unknown) => {
      // The agent still yields on its own (yielding.ts), a few ms later than the kernel would.
      logger.warn(
        { err: String(err) },
        'kernel yield: nftables not usable; another agent taking an address over may see this node answer for a few ms',
      );
      return undefined;
    });
    const agent = await startAgent(config, {
      kube: kubePort(kc, { clock, logger, relistMs: config.resyncMs, nodeName: config.nodeName }),
      net: iproute2({ logger, clock }),
      sender: await openPacketSender(),
      sightings: await packetSightingSource(),
      ...(deadman ? { deadman } : {}),
      ...(kernelYield ? { kernelYield } : {}),
      clock,
      logger,
      metrics: new AgentMetrics({ defaultMetrics: true }),
    });
    return await new Promise<number>((resolve) => {
      let signals = 0;
      const onSignal = (signal: NodeJS.Signals): void => {
        signals += 1;
        if (signals > 1) {
          logger.warn({ signal }, 'second signal: stopping now, addresses stay');
          void agent.stop().then(() => resolve(1));
          return;
        }
        logger.info({ signal }, 'draining');
        agent.drain().then(
          () => resolve(0),
          (err: unknown) => {
            logger.error({ err: String(err) }, 'drain failed');
            resolve(1);
          },
        );
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });
  } catch (err) {
    logger.fatal({ err: err instanceof Error ? err.message : String(err) }, 'agent failed to start');
    return 1;
  }
}
