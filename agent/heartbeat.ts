// The agent's IpNode: registered at start (spec: where the scheduler probes it), then its status
// written every --hb (renewTime, held addresses, conditions, MACs). A successful write is the
// agent's "API server contact" for the fencing rule; the first write that works after failures
// is reported (the watch may have hung through the outage, status writes failed meanwhile).
import { API_VERSION, type Condition, type IpNode, type IpNodeSpec } from '../api/types.js';
import { isNotFound } from '../api/client.js';
import type { Clock } from '../lib/clock.js';
import { every } from '../lib/every.js';
import type { Logger } from '../lib/logger.js';
import { primaryAddress } from './addresses.js';
import type { AgentConfig } from './config.js';
import type { KubePort } from './kube.js';
import type { AgentMetrics } from './metrics.js';
import type { NetPort } from './net.js';

/** Registration retries start this far apart and double up to --hb. */
const REGISTER_BACKOFF_MS = 250;

export interface HeartbeatDeps {
  kube: KubePort;
  net: NetPort;
  clock: Clock;
  logger: Logger;
  metrics: AgentMetrics;
}

/** What one heartbeat writes besides renewTime, computed when it is sent. */
export interface NodeReport {
  conditions: Condition[];
  /** Held addresses as CIDRs. */
  addresses: string[];
  claimsHeld: number;
  macs: string[];
}

export interface HeartbeatHooks {
  /** The status to write, decided at `now` (the agent's gate gives the conditions). */
  report(now: number): NodeReport;
  /** The first write that worked after `failures` failed ones. */
  recovered(failures: number): void;
  /** The port the status server listens on (IpNode.spec.probePort). */
  probePort(): number;
}

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** The address the scheduler probes: --probe-address, else --iface's, else the Node's InternalIP, else the default route's. */
export async function probeAddress(
  config: Pick<AgentConfig, 'probeAddress' | 'iface' | 'nodeName'>,
  deps: Pick<HeartbeatDeps, 'net' | 'kube'>,
): Promise<string> {
  if (config.probeAddress) return config.probeAddress;
  const links = await deps.net.links();
  const fromIface = primaryAddress(links, config.iface);
  if (fromIface) return fromIface;
  const internal = await deps.kube.nodeInternalIp(config.nodeName);
  if (internal) return internal;
  const routes = await deps.net.defaultRoutes();
  const fromRoute = primaryAddress(links, routes.inet) ?? primaryAddress(links, routes.inet6);
  if (fromRoute) return fromRoute;
  throw new Error('no probe address: give --probe-address, or --iface with an address, or set the Node InternalIP');
}

export class Heartbeat {
  /** Registered (created or found); false again when a heartbeat finds the IpNode gone. */
  registered = false;
  /** Last successful write to the API server (ms since epoch). */
  lastApiContact: number;
  /** The conditions last written (their lastTransitionTime stays while unchanged). */
  conditions: Condition[] = [];
  private failing = 0;
  private readonly log: Logger;

  constructor(
    private readonly config: Pick<AgentConfig, 'probeAddress' | 'iface' | 'nodeName' | 'hbMs'>,
    private readonly deps: HeartbeatDeps,
    private readonly hooks: HeartbeatHooks,
  ) {
    this.log = deps.logger;
    this.lastApiContact = deps.clock.now();
  }

  /** Creates the IpNode, or brings its spec up to date, and takes over the conditions it has. */
  async register(): Promise<void> {
    const { kube } = this.deps;
    const name = this.config.nodeName;
    const spec: IpNodeSpec = { probeAddress: await probeAddress(this.config, this.deps), probePort: this.hooks.probePort() };
    if (this.config.iface) spec.iface = this.config.iface;
    const existing = await kube.getIpNode(name);
    if (!existing) {
      const node: IpNode = { apiVersion: API_VERSION, kind: 'IpNode', metadata: { name }, spec };
      await kube.createIpNode(node);
      this.log.info({ spec }, 'IpNode created');
    } else if (JSON.stringify(existing.spec) !== JSON.stringify(spec)) {
      await kube.patchIpNodeSpec(name, spec);
      this.log.info({ spec }, 'IpNode spec updated');
    }
    this.conditions = existing?.status?.conditions ?? [];
    this.registered = true;
  }

  /** Writes the IpNode status once; false when the write failed (counted and logged). */
  async beat(): Promise<boolean> {
    const now = this.deps.clock.now();
    const report = this.hooks.report(now);
    try {
      await this.deps.kube.patchIpNodeStatus(this.config.nodeName, {
        renewTime: new Date(now).toISOString(),
        addresses: report.addresses,
        claimsHeld: report.claimsHeld,
        conditions: report.conditions,
        ...(report.macs.length ? { macs: report.macs } : {}),
      });
    } catch (err) {
      this.failed(err);
      return false;
    }
    this.conditions = report.conditions;
    this.lastApiContact = this.deps.clock.now();
    if (this.failing) {
      const failures = this.failing;
      this.failing = 0;
      this.hooks.recovered(failures);
    }
    return true;
  }

  private failed(err: unknown): void {
    this.deps.metrics.heartbeatFailed();
    this.failing += 1;
    if (this.failing === 1 || this.failing % 10 === 0) this.log.warn({ err: errText(err), failures: this.failing }, 'heartbeat failed');
    if (isNotFound(err)) this.registered = false;
  }

  /** Registers (retrying with backoff) and then beats every --hb until the signal aborts. */
  run(signal: AbortSignal): Promise<void> {
    let backoff = REGISTER_BACKOFF_MS;
    let period = this.config.hbMs;
    return every(
      this.deps.clock,
      () => period,
      signal,
      async () => {
        try {
          if (!this.registered) {
            await this.register();
            this.lastApiContact = this.deps.clock.now();
          }
          await this.beat();
          backoff = REGISTER_BACKOFF_MS;
          period = this.config.hbMs;
        } catch (err) {
          if (signal.aborted) return;
          this.deps.metrics.heartbeatFailed();
          this.log.warn({ err: errText(err), backoffMs: backoff }, 'could not register IpNode; retrying');
          period = backoff;
          backoff = Math.min(backoff * 2, this.config.hbMs);
        }
      },
    );
  }
}
