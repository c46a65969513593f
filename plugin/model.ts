// `kubectl ipcontroller status` as data: every address, agent node and pool, and the leader.
// Pure: built from a Snapshot with the scheduler's own decisions (health.ts for node verdicts,
// allocator.ts for pools), so what it says is what the scheduler would decide on the same objects.
import { moveDurations, type MoveDurations } from '../api/moves.js';
import type { ClaimMove, IpClaim, IpNode } from '../api/types.js';
import { NodeCondition } from '../api/conditions.js';
import { DEFAULTS } from '../scheduler/config.js';
import { poolSetOf } from '../scheduler/desired.js';
import { nodeHealth, type HealthConfig, type NodeHealth } from '../scheduler/health.js';
import { probeStateOf } from '../scheduler/probereport.js';
import type { Snapshot } from './snapshot.js';

export interface AddressRow {
  address: string;
  claim: string;
  services: string[];
  pool?: string;
  /** spec.nodeName: where the scheduler put it. */
  node?: string;
  /** status.node: where an agent reported it up. */
  reportedNode?: string;
  phase: 'Pending' | 'Assigned' | 'Failed' | 'Unknown';
  /** Since when it is in this phase on this node (RFC 3339). */
  since?: string;
  /** Why it is not Assigned, when a condition says. */
  detail?: string;
  lastMove?: ClaimMove & { durations: MoveDurations };
}

export interface NodeRow {
  name: string;
  ready: 'True' | 'False' | 'Unknown';
  /** The scheduler's verdict (health.ts) on what the API shows. */
  candidate: boolean;
  reason?: string;
  message?: string;
  rttMs?: number;
  probeFailures?: number;
  claimsHeld?: number;
  claimsAssigned: number;
  fenced: boolean;
  draining: boolean;
  heartbeatAgeMs?: number;
}

export interface PoolRow {
  name: string;
  cidr: string;
  used?: number;
  free?: number;
  valid: boolean;
  reason?: string;
  /** Other pools sharing addresses with this one. */
  overlaps: string[];
}

export interface StatusModel {
  readAt: string;
  leader: { holder: string; renewedAgoMs?: number } | null;
  leaderProblem?: string;
  addresses: AddressRow[];
  nodes: NodeRow[];
  pools: PoolRow[];
}

const conditionOf = (ipNode: IpNode | undefined, type: string): 'True' | 'False' | 'Unknown' =>
  ipNode?.status?.conditions?.find((c) => c.type === type)?.status ?? 'Unknown';

/** The health thresholds the leader published with its probe view; the scheduler's defaults otherwise. */
export function healthConfigOf(ipNode: IpNode | undefined): HealthConfig {
  const p = ipNode?.status?.probe;
  return { monitorMs: p?.monitorMs ?? DEFAULTS.monitorMs, probeFailures: p?.failureThreshold ?? DEFAULTS.probeFailures };
}

/** The scheduler's verdict on every node (Nodes and IpNodes), from what the API shows at `now`. */
export function nodeVerdicts(snap: Pick<Snapshot, 'nodes' | 'ipNodes'>, now: number): Map<string, NodeHealth> {
  const names = [...new Set([...snap.nodes.map((n) => n.name), ...snap.ipNodes.map((n) => n.metadata.name ?? '')])].sort();
  const out = new Map<string, NodeHealth>();
  for (const name of names) {
    const node = snap.nodes.find((n) => n.name === name);
    const ipNode = snap.ipNodes.find((n) => n.metadata.name === name);
    const probe = ipNode?.status?.probe;
    out.set(
      name,
      nodeHealth(
        {
          name,
          ...(node ? { nodeLabels: node.labels } : {}),
          ...(ipNode ? { ipNode } : {}),
          ...(probe ? { probe: probeStateOf(probe) } : {}),
        },
        now,
        healthConfigOf(ipNode),
      ),
    );
  }
  return out;
}

/** Pools sharing at least one allocatable address, by pool name. */
export function poolOverlaps(snap: Pick<Snapshot, 'pools'>): Map<string, string[]> {
  const valid = poolSetOf(snap.pools).valid;
  const out = new Map<string, string[]>();
  for (const a of valid) {
    const others = valid.filter(
      (b) =>
        b.name !== a.name && b.family === a.family && a.intervals.some(([x1, y1]) => b.intervals.some(([x2, y2]) => x1 <= y2 && x2 <= y1)),
    );
    out.set(a.name, others.map((b) => b.name).sort());
  }
  return out;
}

function addressRows(snap: Snapshot): AddressRow[] {
  return snap.claims.map(addressRow).sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
}

function addressRow(c: IpClaim): AddressRow {
  const status = c.status;
  const phase = status?.phase ?? 'Unknown';
  const last = status?.lastMove;
  const since = addressSince(c);
  const notUp = phase === 'Assigned' ? undefined : whyNotUp(c);
  return {
    address: c.spec.cidr.split('/')[0] ?? c.spec.cidr,
    claim: c.metadata.name ?? '',
    services: c.spec.services ?? [],
    ...(c.spec.pool ? { pool: c.spec.pool } : {}),
    ...(c.spec.nodeName ? { node: c.spec.nodeName } : {}),
    ...(status?.node ? { reportedNode: status.node } : {}),
    phase,
    ...(since ? { since } : {}),
    ...(notUp ? { detail: notUp } : {}),
    ...(last ? { lastMove: { ...last, durations: moveDurations(last) } } : {}),
  };
}

/** Since when the address is where it is: its arrival on this node, else the claim's last change, else its creation. */
function addressSince(c: IpClaim): string | undefined {
  const status = c.status;
  const last = status?.lastMove;
  const upHere = last?.upAt && last.to === status?.node ? last.upAt : undefined;
  if (upHere) return upHere;
  if (status?.lastTransitionTime !== undefined) return status.lastTransitionTime;
  return c.metadata.creationTimestamp ? new Date(c.metadata.creationTimestamp).toISOString() : undefined;
}

function whyNotUp(c: IpClaim): string | undefined {
  const failing = c.status?.conditions?.find((x) => x.status === 'False')?.message;
  if (failing !== undefined) return failing;
  return c.spec.nodeName ? `waiting for the agent on ${c.spec.nodeName}` : undefined;
}

function nodeRows(snap: Snapshot, now: number): NodeRow[] {
  const rows: NodeRow[] = [];
  for (const [name, health] of nodeVerdicts(snap, now)) {
    const node = snap.nodes.find((n) => n.name === name);
    const ipNode = snap.ipNodes.find((n) => n.metadata.name === name);
    // Only nodes that are, or could be, agent nodes: a Node without the label and without an IpNode is not ours.
    if (!ipNode && !(node && 'ipcontroller' in node.labels)) continue;
    rows.push({
      name,
      ready: conditionOf(ipNode, NodeCondition.Ready),
      candidate: health.candidate,
      ...(health.candidate ? {} : { reason: health.reason, message: health.message }),
      ...probeFields(ipNode),
      claimsAssigned: snap.claims.filter((c) => c.spec.nodeName === name).length,
      fenced: conditionOf(ipNode, NodeCondition.Fenced) === 'True',
      draining: conditionOf(ipNode, NodeCondition.Draining) === 'True',
      ...heartbeatAge(ipNode, now),
    });
  }
  return rows;
}

/** The probe report and claim count of the IpNode's status, each field only when it is there. */
function probeFields(ipNode: IpNode | undefined): Pick<NodeRow, 'rttMs' | 'probeFailures' | 'claimsHeld'> {
  const probe = ipNode?.status?.probe;
  return {
    ...(probe?.rttMs !== undefined ? { rttMs: probe.rttMs } : {}),
    ...(probe ? { probeFailures: probe.consecutiveFailures } : {}),
    ...(ipNode?.status?.claimsHeld !== undefined ? { claimsHeld: ipNode.status.claimsHeld } : {}),
  };
}

function heartbeatAge(ipNode: IpNode | undefined, now: number): Pick<NodeRow, 'heartbeatAgeMs'> {
  const renew = ipNode?.status?.renewTime ? Date.parse(ipNode.status.renewTime) : NaN;
  return Number.isNaN(renew) ? {} : { heartbeatAgeMs: Math.max(0, now - renew) };
}

function poolRows(snap: Snapshot): PoolRow[] {
  const set = poolSetOf(snap.pools);
  const overlaps = poolOverlaps(snap);
  return snap.pools
    .map((entry): PoolRow => {
      const name = entry.ok ? (entry.pool.metadata.name ?? '') : entry.name;
      const status = entry.ok ? entry.pool.status : entry.status;
      const valid = set.valid.find((p) => p.name === name);
      const reason = set.invalid.get(name);
      return {
        name,
        cidr: valid?.cidr ?? (entry.ok ? entry.pool.spec.cidr : ''),
        ...(status?.used !== undefined ? { used: status.used } : {}),
        ...(status?.free !== undefined ? { free: status.free } : {}),
        valid: valid !== undefined,
        ...(reason ? { reason } : {}),
        overlaps: overlaps.get(name) ?? [],
      };
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export function statusModel(snap: Snapshot): StatusModel {
  const now = snap.readAt;
  const leader = snap.leader
    ? {
        holder: snap.leader.holder,
        ...(snap.leader.renewedAt !== undefined ? { renewedAgoMs: Math.max(0, now - snap.leader.renewedAt) } : {}),
      }
    : null;
  return {
    readAt: new Date(now).toISOString(),
    leader,
    ...(snap.leaderProblem ? { leaderProblem: snap.leaderProblem } : {}),
    addresses: addressRows(snap),
    nodes: nodeRows(snap, now),
    pools: poolRows(snap),
  };
}
