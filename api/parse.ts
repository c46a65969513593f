// Untrusted JSON from the apiserver becomes a typed resource here, once, at the edge.
// A value that does not fit is reported with the reason instead of being passed on.
import type { V1ObjectMeta } from '@kubernetes/client-node';
import {
  API_VERSION,
  type IpClaim,
  type IpClaimPool,
  type IpClaimPoolSpec,
  type IpClaimPoolStatus,
  type IpClaimSpec,
  type IpClaimStatus,
  type IpNode,
  type IpNodeSpec,
  type IpNodeStatus,
  type IpRange,
} from './types.js';
import { parseStrictCidr, parseStrictIp, strictCidrProblem } from './ip.js';
import { isRecord, isString, isStringArray, type JsonObject as Json, type ParseResult } from '../lib/json.js';

function fail<T>(reason: string): ParseResult<T> {
  return { ok: false, reason };
}

function envelope(obj: unknown, kind: string): ParseResult<{ metadata: V1ObjectMeta & { name: string }; spec: Json; status?: Json }> {
  if (!isRecord(obj)) return fail(`${kind}: not an object`);
  if (obj.kind !== undefined && obj.kind !== kind) return fail(`${kind}: kind is ${String(obj.kind)}`);
  if (!isRecord(obj.metadata) || !isString(obj.metadata.name)) return fail(`${kind}: metadata.name missing`);
  if (!isRecord(obj.spec)) return fail(`${kind} ${obj.metadata.name}: spec missing`);
  if (obj.status !== undefined && !isRecord(obj.status)) return fail(`${kind} ${obj.metadata.name}: status is not an object`);
  const status = obj.status as Json | undefined;
  return {
    ok: true,
    value: { metadata: { ...(obj.metadata as V1ObjectMeta), name: obj.metadata.name }, spec: obj.spec, ...(status ? { status } : {}) },
  };
}

export function parseIpClaim(obj: unknown): ParseResult<IpClaim> {
  const env = envelope(obj, 'IpClaim');
  if (!env.ok) return env;
  const { metadata, spec, status } = env.value;
  const where = `IpClaim ${metadata.name}`;
  if (!isString(spec.cidr)) return fail(`${where}: spec.cidr ${JSON.stringify(spec.cidr)} is not an IP prefix`);
  const cidrProblem = strictCidrProblem(spec.cidr);
  if (cidrProblem !== null) return fail(`${where}: spec.cidr ${JSON.stringify(spec.cidr)} ${cidrProblem}`);
  for (const key of ['nodeName', 'link', 'pool'] as const) {
    if (spec[key] !== undefined && !isString(spec[key])) return fail(`${where}: spec.${key} is not a string`);
  }
  if (spec.services !== undefined && !isStringArray(spec.services)) return fail(`${where}: spec.services is not a list of strings`);
  const claimSpec: IpClaimSpec = { cidr: spec.cidr };
  if (isString(spec.nodeName)) claimSpec.nodeName = spec.nodeName;
  if (isString(spec.link)) claimSpec.link = spec.link;
  if (isString(spec.pool)) claimSpec.pool = spec.pool;
  if (isStringArray(spec.services)) claimSpec.services = spec.services;
  // Status is written only by our own programs through the schema-checked status subresource.
  const value: IpClaim = { apiVersion: API_VERSION, kind: 'IpClaim', metadata, spec: claimSpec };
  if (status) value.status = status as IpClaimStatus;
  return { ok: true, value };
}

export function parseIpNode(obj: unknown): ParseResult<IpNode> {
  const env = envelope(obj, 'IpNode');
  if (!env.ok) return env;
  const { metadata, spec, status } = env.value;
  const where = `IpNode ${metadata.name}`;
  if (!isString(spec.probeAddress)) return fail(`${where}: spec.probeAddress ${JSON.stringify(spec.probeAddress)} is not an IP address`);
  const probe = parseStrictIp(spec.probeAddress);
  if (!probe.ok) return fail(`${where}: spec.probeAddress ${JSON.stringify(spec.probeAddress)} ${probe.reason}`);
  if (typeof spec.probePort !== 'number' || !Number.isInteger(spec.probePort) || spec.probePort < 1 || spec.probePort > 65535) {
    return fail(`${where}: spec.probePort ${JSON.stringify(spec.probePort)} is not a port`);
  }
  if (spec.iface !== undefined && !isString(spec.iface)) return fail(`${where}: spec.iface is not a string`);
  const nodeSpec: IpNodeSpec = { probeAddress: spec.probeAddress, probePort: spec.probePort };
  if (isString(spec.iface)) nodeSpec.iface = spec.iface;
  const value: IpNode = { apiVersion: API_VERSION, kind: 'IpNode', metadata, spec: nodeSpec };
  if (status) value.status = status as IpNodeStatus;
  return { ok: true, value };
}

export function parseIpClaimPool(obj: unknown): ParseResult<IpClaimPool> {
  const env = envelope(obj, 'IpClaimPool');
  if (!env.ok) return env;
  const { metadata, spec, status } = env.value;
  const where = `IpClaimPool ${metadata.name}`;
  if (!isString(spec.cidr)) return fail(`${where}: spec.cidr ${JSON.stringify(spec.cidr)} is not an IP prefix`);
  const cidr = parseStrictCidr(spec.cidr);
  if (!cidr.ok) return fail(`${where}: spec.cidr ${JSON.stringify(spec.cidr)} ${cidr.reason}`);
  const rangesProblem = spec.ranges === undefined ? null : checkRanges(spec.ranges);
  if (rangesProblem) return fail(`${where}: ${rangesProblem}`);
  const poolSpec: IpClaimPoolSpec = { cidr: spec.cidr };
  if (spec.ranges !== undefined) poolSpec.ranges = spec.ranges as IpRange[];
  const value: IpClaimPool = { apiVersion: API_VERSION, kind: 'IpClaimPool', metadata, spec: poolSpec };
  if (status) value.status = status as IpClaimPoolStatus;
  return { ok: true, value };
}

/** Why spec.ranges is not a list of [first, last] address pairs, or null when it is. */
function checkRanges(ranges: unknown): string | null {
  if (!Array.isArray(ranges)) return 'spec.ranges is not a list';
  for (const [i, range] of (ranges as unknown[]).entries()) {
    if (!isStringArray(range) || range.length !== 2) return `spec.ranges[${i}] is not a [first, last] pair`;
    const bad = range.map((end) => ({ end, ip: parseStrictIp(end) })).find((e) => !e.ip.ok);
    if (bad && !bad.ip.ok) return `spec.ranges[${i}] holds ${JSON.stringify(bad.end)}, which ${bad.ip.reason}`;
  }
  return null;
}
