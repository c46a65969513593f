// TypeScript shapes of the three ipcontroller.ext/v1 custom resources. The CRD manifests
// in examples/crds.yaml are the schema the apiserver enforces; these types mirror them.
import type { V1ObjectMeta } from '@kubernetes/client-node';

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

export interface IpClaimStatus {
  phase?: ClaimPhase;
  /** The node whose agent confirmed the address is up on its interface. */
  node?: string;
  conditions?: Condition[];
  lastTransitionTime?: string;
}

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
  /** MAC addresses of the agent's interfaces ("aa:bb:cc:dd:ee:ff"): an ARP / NA answer from one of these is ours, not a conflict. */
  macs?: string[];
  /** Ready, Draining, Fenced, StrictARPMissing. */
  conditions?: Condition[];
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
  /** NodeAddress, NodeSubnet or AddressConflict. */
  reason: string;
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

/** Condition types used on IpNode. */
export const NodeCondition = {
  Ready: 'Ready',
  Draining: 'Draining',
  Fenced: 'Fenced',
  StrictARPMissing: 'StrictARPMissing',
} as const;

/** Label every agent node carries, as in the original project. */
export const AGENT_NODE_LABEL = 'ipcontroller';
/** Nodes with this label never announce load-balancer addresses. */
export const EXCLUDE_LB_LABEL = 'node.kubernetes.io/exclude-from-external-load-balancers';
