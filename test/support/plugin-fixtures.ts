// Snapshots for the plugin's unit tests: Services, Nodes, IpNodes, claims and pools as the API
// would show them, built through the scheduler's own parsers.
import { API_VERSION, type IpClaim, type IpNode, type ProbeReport } from '../../api/types.js';
import { parseServiceEntry } from '../../scheduler/kube.js';
import type { ServiceView } from '../../scheduler/service.js';
import type { Snapshot } from '../../plugin/snapshot.js';

export const NOW = Date.parse('2026-01-01T12:00:00Z');
export const iso = (ms: number): string => new Date(ms).toISOString();

export function svc(
  name: string,
  spec: Record<string, unknown> = {},
  annotations: Record<string, string> = {},
  created = '2026-01-01T00:00:00Z',
): ServiceView {
  const parsed = parseServiceEntry({
    metadata: { name, namespace: 'ns', uid: name, resourceVersion: '1', creationTimestamp: created, annotations },
    spec: { type: 'LoadBalancer', ipFamilies: ['IPv4'], ports: [{ port: 80, protocol: 'TCP' }], ...spec },
  });
  if (!parsed) throw new Error('bad service');
  return parsed.value;
}

export function ipNode(
  name: string,
  opts: { beatAgoMs?: number; ready?: boolean; draining?: boolean; probe?: Partial<ProbeReport>; held?: number } = {},
): IpNode {
  const beat = iso(NOW - (opts.beatAgoMs ?? 500));
  const cond = (type: string, on: boolean) => ({
    type,
    status: on ? ('True' as const) : ('False' as const),
    reason: 'R',
    message: '',
    lastTransitionTime: beat,
  });
  return {
    apiVersion: API_VERSION,
    kind: 'IpNode',
    metadata: { name },
    spec: { probeAddress: '192.0.2.250', probePort: 9610 },
    status: {
      renewTime: beat,
      conditions: [cond('Ready', opts.ready ?? true), cond('Draining', opts.draining ?? false), cond('Fenced', false)],
      ...(opts.held !== undefined ? { claimsHeld: opts.held } : {}),
      ...(opts.probe
        ? {
            probe: {
              by: 'sched-1',
              observedAt: iso(NOW),
              consecutiveFailures: 0,
              failureThreshold: 3,
              monitorMs: 4000,
              draining: false,
              ...opts.probe,
            },
          }
        : {}),
    },
  };
}

export function claim(address: string, services: string[], node?: string, extra: Partial<IpClaim> = {}): IpClaim {
  return {
    apiVersion: API_VERSION,
    kind: 'IpClaim',
    metadata: { name: address.replace(/\./g, '-') + '-32', creationTimestamp: new Date(NOW - 3_600_000), ...extra.metadata },
    spec: { cidr: `${address}/32`, services, ...(node ? { nodeName: node } : {}), pool: 'p1', ...extra.spec },
    ...(extra.status ? { status: extra.status } : {}),
  };
}

export function snapshot(parts: Partial<Snapshot> = {}): Snapshot {
  return {
    readAt: NOW,
    services: [],
    nodes: [
      { name: 'node-a', labels: { ipcontroller: '' } },
      { name: 'node-b', labels: { ipcontroller: '' } },
    ],
    slices: [],
    ipNodes: [ipNode('node-a'), ipNode('node-b')],
    claims: [],
    pools: [{ ok: true, pool: { apiVersion: API_VERSION, kind: 'IpClaimPool', metadata: { name: 'p1' }, spec: { cidr: '192.0.2.0/30' } } }],
    leader: { holder: 'sched-1', renewedAt: NOW - 300 },
    ...parts,
  };
}
