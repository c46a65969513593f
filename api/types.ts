// TypeScript shapes of the three ipcontroller.ext/v1 custom resources. The CRD manifests
// in examples/crds.yaml are the schema the apiserver enforces; these types mirror them.
import type { V1ObjectMeta } from '@kubernetes/client-node';
import type { ExclusionReason } from './reasons.js';

export const GROUP = 'ipcontroller.ext';
export const VERSION = 'v1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export const PLURAL = {
  IpClaim: 'ipclaims',
  IpNode: 'ipnodes',
  IpClaimPool: 'ipclaimpools',
} as const;

export type Kind = keyof typeof PLURAL;

/** A standard Kubernetes condition (metav1.Condition). */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export type ClaimPhase = 'Pending' | 'Assigned' | 'Failed';

export interface IpClaimSpec {
  /** The address with its prefix length, e.g. 192.0.2.10/32 or 2001:db8::10/128. */
  cidr: string;
  /** The node that should hold the address; empty while no node is assigned. */
  nodeName?: string;
  /** Interface to put the address on, overriding the agent's --iface. */
  link?: string;
  /** Services using this address, as "namespace/name", sorted. */
  services?: string[];
  /** The IpClaimPool the address was allocated from; absent for spec.externalIPs. */
  pool?: string;
}

/** The last move of a claim between nodes, as `kubectl ipcontroller history` shows it. */
export interface ClaimMove {
  from: string;
  to: string;
  /** Why the old node was left: a MoveReason (api/reasons.ts); read back from the API, so any text. */
  reason: string;
  /** When the scheduler found the old node failed (RFC 3339, scheduler's clock). */
  detectedAt: string;
  /** When the scheduler wrote spec.nodeName = to (scheduler's clock). */
  claimedAt: string;
  /** When the agent on `to` had the address up and announced (agent's clock). */
  upAt?: string;
}

export interface IpClaimStatus {
  phase?: ClaimPhase;
  /** The node whose agent confirmed the address is up on its interface. */
  node?: string;
  conditions?: Condition[];
  /** When phase or node last changed. */
  lastTransitionTime?: string;
  /** spec.services as text ("ns/a, ns/b") for `kubectl get ipclaims`. */
  serviceList?: string;
  /** The last completed move, written by the agent that took the address over. */
  lastMove?: ClaimMove;
}

/**
 * Annotation the scheduler sets on a claim in the same write that moves it (so a move stays one
 * write): the ClaimMove without upAt, as JSON. The agent on the new node copies it into
 * status.lastMove with upAt once the address is up.
 */
export const MOVE_ANNOTATION = 'ipcontroller.ext/move';

export interface IpClaim {
  apiVersion: typeof API_VERSION;
  kind: 'IpClaim';
  metadata: V1ObjectMeta;
  spec: IpClaimSpec;
  status?: IpClaimStatus;
}

export interface IpNodeSpec {
  /** Address the scheduler probes, usually the node's InternalIP. */
  probeAddress: string;
  /** Port of the agent's /healthz endpoint. */
  probePort: number;
  /** Interface the agent puts addresses on by default. */
  iface?: string;
}

export interface IpNodeStatus {
  /** Last heartbeat written by the agent (RFC 3339 with microseconds). */
  renewTime?: string;
  /** Addresses the agent currently holds, as CIDRs. */
  addresses?: string[];
  /** Number of claims whose address the agent holds (for `kubectl get ipnodes`). */
  claimsHeld?: number;
  /** How the leading scheduler's probes see this node, written by the scheduler on change and every few minutes. */
  probe?: ProbeReport;
  /** MAC addresses of the agent's interfaces ("aa:bb:cc:dd:ee:ff"): an ARP / NA answer from one of these is ours, not a conflict. */
  macs?: string[];
  /** Ready, Draining, Fenced, StrictARPMissing. */
  conditions?: Condition[];
}

/** The leading scheduler's probe view of one node (IpNode status.probe). */
export interface ProbeReport {
  /** Scheduler replica that wrote it. */
  by: string;
  /** When it was written (RFC 3339). */
  observedAt: string;
  /** Round trip of the last successful probe, in milliseconds. */
  rttMs?: number;
  consecutiveFailures: number;
  /** Failures in a row that fail the node (--probe-failures). */
  failureThreshold: number;
  /** Heartbeat age that fails the node (--monitor), in milliseconds. */
  monitorMs: number;
  draining: boolean;
  /** When the probe that reached the threshold ended (RFC 3339). */
  failedAt?: string;
  lastError?: string;
}

export interface IpNode {
  apiVersion: typeof API_VERSION;
  kind: 'IpNode';
  metadata: V1ObjectMeta;
  spec: IpNodeSpec;
  status?: IpNodeStatus;
}

/** An inclusive [first, last] address range inside the pool's cidr. */
export type IpRange = [string, string];

export interface IpClaimPoolSpec {
  cidr: string;
  ranges?: IpRange[];
}

export interface IpClaimPoolStatus {
  /** Allocated address -> IpClaim name. */
  allocations?: Record<string, string>;
  used?: number;
  /** Free addresses, capped at Number.MAX_SAFE_INTEGER for very large IPv6 pools. */
  free?: number;
  conditions?: Condition[];
  /** Addresses of the pool never allocated, and why (node addresses, conflicts seen on the wire). */
  excluded?: ExcludedAddress[];
  /** excluded.length, for the kubectl get column. */
  excludedCount?: number;
}

/** An address a pool does not hand out (issue 12). */
export interface ExcludedAddress {
  address: string;
  reason: ExclusionReason;
  message: string;
  /** RFC 3339: when a conflict was seen; it is retried after the scheduler's --conflict-retry. */
  seenAt?: string;
}

export interface IpClaimPool {
  apiVersion: typeof API_VERSION;
  kind: 'IpClaimPool';
  metadata: V1ObjectMeta;
  spec: IpClaimPoolSpec;
  status?: IpClaimPoolStatus;
}

export type IpResource = IpClaim | IpNode | IpClaimPool;

// Condition types live in conditions.ts; re-exported here for the files that read them beside the
// resource types (agent/gate.ts, scheduler/health.ts, scheduler/reconciler.test.ts).
export { NodeCondition, SERVICE_CONDITION } from './conditions.js';

/** Label every agent node carries, as in the original project. */
export const AGENT_NODE_LABEL = 'ipcontroller';
/** Nodes with this label never announce load-balancer addresses. */
export const EXCLUDE_LB_LABEL = 'node.kubernetes.io/exclude-from-external-load-balancers';
