// What the scheduler reads from a Service, parsed once at the edge, and what the Service asks
// for (its intent): pure functions, no I/O.
import type { Condition } from '../api/types.js';
import { SERVICE_CONDITION } from '../api/conditions.js';
import { parseStrictIp, specialPurpose, type IpFamily, type StrictIp } from '../api/ip.js';
import type { AllocationProblem } from '../api/reasons.js';
import { asArray, asRecord, asString, asStrings, type JsonObject, type ParseResult } from '../lib/json.js';

export const ANNOTATION = {
  /** `external-ip: auto` asks for a pool address on any Service type, as in the original. */
  auto: 'external-ip',
  pool: 'ipcontroller.ext/pool',
  loadBalancerIPs: 'ipcontroller.ext/loadBalancerIPs',
  allowSharedIp: 'ipcontroller.ext/allow-shared-ip',
} as const;

export interface ServicePort {
  port: number;
  protocol: string;
}

export interface ServiceView {
  /** "namespace/name" */
  key: string;
  namespace: string;
  name: string;
  uid: string;
  resourceVersion: string;
  /** Milliseconds; orders Services so older ones win contested addresses. */
  created: number;
  type: string;
  loadBalancerClass?: string;
  externalIPs: string[];
  annotations: Record<string, string>;
  loadBalancerIP?: string;
  ipFamilies: string[];
  ipFamilyPolicy?: string;
  externalTrafficPolicyLocal: boolean;
  ports: ServicePort[];
  /** status.loadBalancer.ingress[].ip */
  ingress: string[];
  /** Our condition in status.conditions (SERVICE_CONDITION), when present. */
  addressCondition?: Condition;
}

function timeOf(v: unknown): number {
  if (v instanceof Date) return v.getTime();
  const t = typeof v === 'string' ? Date.parse(v) : NaN;
  return Number.isNaN(t) ? 0 : t;
}

/** Reads the fields the scheduler uses from a Service (raw watch JSON or a typed list item). */
export function parseService(raw: unknown): ServiceView | null {
  const o = asRecord(raw);
  const metadata = asRecord(o.metadata);
  const spec = asRecord(o.spec);
  const status = asRecord(o.status);
  const name = asString(metadata.name);
  const namespace = asString(metadata.namespace);
  if (!name || !namespace) return null;
  const view: ServiceView = {
    key: `${namespace}/${name}`,
    namespace,
    name,
    uid: asString(metadata.uid) ?? '',
    resourceVersion: asString(metadata.resourceVersion) ?? '',
    created: timeOf(metadata.creationTimestamp),
    type: asString(spec.type) ?? 'ClusterIP',
    externalIPs: asStrings(spec.externalIPs),
    annotations: stringValues(metadata.annotations),
    ipFamilies: asStrings(spec.ipFamilies),
    externalTrafficPolicyLocal: spec.externalTrafficPolicy === 'Local',
    ports: asArray(spec.ports).map(portOf),
    ingress: asArray(asRecord(status.loadBalancer).ingress)
      .map((i) => asString(asRecord(i).ip))
      .filter((ip): ip is string => ip !== undefined),
  };
  const lbClass = asString(spec.loadBalancerClass);
  if (lbClass) view.loadBalancerClass = lbClass;
  const ours = addressConditionOf(status);
  if (ours) view.addressCondition = ours;
  const lbIP = asString(spec.loadBalancerIP);
  if (lbIP) view.loadBalancerIP = lbIP;
  const policy = asString(spec.ipFamilyPolicy);
  if (policy) view.ipFamilyPolicy = policy;
  return view;
}

/** The string-valued entries of an object (annotations). */
function stringValues(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, value] of Object.entries(asRecord(v))) if (typeof value === 'string') out[k] = value;
  return out;
}

function portOf(p: unknown): ServicePort {
  const port = asRecord(p);
  return { port: typeof port.port === 'number' ? port.port : 0, protocol: asString(port.protocol) ?? 'TCP' };
}

/** Our condition (SERVICE_CONDITION) among the Service's status.conditions. */
function addressConditionOf(status: JsonObject): Condition | undefined {
  const ours = asArray(status.conditions)
    .map(asRecord)
    .find((c) => c.type === SERVICE_CONDITION);
  if (!ours) return undefined;
  return {
    type: SERVICE_CONDITION,
    status: ours.status === 'True' || ours.status === 'False' ? ours.status : 'Unknown',
    reason: asString(ours.reason) ?? '',
    message: asString(ours.message) ?? '',
    lastTransitionTime:
      ours.lastTransitionTime instanceof Date ? ours.lastTransitionTime.toISOString() : (asString(ours.lastTransitionTime) ?? ''),
  };
}

/** What one Service asks for from the pools. */
export interface LoadBalancerIntent {
  /** Wanted families, the primary first. */
  families: IpFamily[];
  /** Families that must be satisfied; the others are best effort (PreferDualStack). */
  required: IpFamily[];
  /** Specific addresses by family. */
  requested: Partial<Record<IpFamily, string>>;
  pool?: string;
  shareKey?: string;
}

export interface Problem {
  reason: AllocationProblem;
  message: string;
}

export interface ServiceIntent {
  /** Whether this scheduler handles the Service at all (class, type). */
  handled: boolean;
  externalIPs: string[];
  loadBalancer: LoadBalancerIntent | null;
  problems: Problem[];
}

const IGNORED: ServiceIntent = { handled: false, externalIPs: [], loadBalancer: null, problems: [] };

/** Whether the Service is ours: no loadBalancerClass, or ours. Every other class is ignored entirely. */
export function isOurs(svc: ServiceView, lbClass: string): boolean {
  return svc.loadBalancerClass === undefined || svc.loadBalancerClass === lbClass;
}

export function wantsLoadBalancer(svc: ServiceView): boolean {
  return svc.type === 'LoadBalancer' || svc.annotations[ANNOTATION.auto] === 'auto';
}

/** The Service's intent: its externalIPs (canonical) and what it wants from the pools. */
export function serviceIntent(svc: ServiceView, lbClass: string): ServiceIntent {
  if (!isOurs(svc, lbClass)) return IGNORED;
  const problems: Problem[] = [];
  const externalIPs: string[] = [];
  for (const ip of svc.externalIPs) {
    const parsed = userAddress(ip);
    if (parsed.ok) externalIPs.push(parsed.value.text);
    else problems.push({ reason: 'InvalidExternalIP', message: `spec.externalIPs holds ${JSON.stringify(ip)}, which ${parsed.reason}` });
  }
  let loadBalancer: LoadBalancerIntent | null = null;
  if (wantsLoadBalancer(svc)) {
    const lb = loadBalancerIntent(svc);
    if ('problem' in lb) problems.push(lb.problem);
    else loadBalancer = lb;
  }
  return { handled: true, externalIPs: [...new Set(externalIPs)], loadBalancer, problems };
}

function loadBalancerIntent(svc: ServiceView): LoadBalancerIntent | { problem: Problem } {
  const requested = requestedAddresses(svc);
  if ('problem' in requested) return requested;
  const primary: IpFamily = svc.ipFamilies[0] === 'IPv6' ? 'ipv6' : 'ipv4';
  const other: IpFamily = primary === 'ipv4' ? 'ipv6' : 'ipv4';
  const requestedFamilies = (['ipv4', 'ipv6'] as IpFamily[]).filter((f) => requested.byFamily[f] !== undefined);
  let families: IpFamily[];
  let required: IpFamily[];
  if (svc.ipFamilyPolicy === 'RequireDualStack') {
    families = [primary, other];
    required = [primary, other];
  } else if (svc.ipFamilyPolicy === 'PreferDualStack') {
    families = [primary, other];
    required = requestedFamilies.length ? requestedFamilies : [primary];
  } else {
    families = requestedFamilies.length ? requestedFamilies : [primary];
    required = families;
  }
  for (const f of requestedFamilies) {
    if (!families.includes(f)) {
      return {
        problem: {
          reason: 'InvalidRequest',
          message: `requested address ${requested.byFamily[f]} is ${f === 'ipv4' ? 'IPv4' : 'IPv6'}, which this single-stack Service does not use`,
        },
      };
    }
  }
  const intent: LoadBalancerIntent = { families, required, requested: requested.byFamily };
  const pool = svc.annotations[ANNOTATION.pool]?.trim();
  if (pool) intent.pool = pool;
  const shareKey = svc.annotations[ANNOTATION.allowSharedIp]?.trim();
  if (shareKey) intent.shareKey = shareKey;
  return intent;
}

function requestedAddresses(svc: ServiceView): { byFamily: Partial<Record<IpFamily, string>> } | { problem: Problem } {
  const annotation = svc.annotations[ANNOTATION.loadBalancerIPs];
  const source = annotation !== undefined ? `annotation ${ANNOTATION.loadBalancerIPs}` : 'spec.loadBalancerIP';
  const list =
    annotation !== undefined
      ? annotation
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : svc.loadBalancerIP
        ? [svc.loadBalancerIP.trim()]
        : [];
  const byFamily: Partial<Record<IpFamily, string>> = {};
  for (const text of list) {
    const parsed = userAddress(text);
    if (!parsed.ok) return { problem: { reason: 'InvalidRequest', message: `${source}: ${JSON.stringify(text)} ${parsed.reason}` } };
    const { family, text: canonical } = parsed.value;
    if (byFamily[family])
      return {
        problem: {
          reason: 'InvalidRequest',
          message: `${source} names two ${family === 'ipv4' ? 'IPv4' : 'IPv6'} addresses; give at most one per family`,
        },
      };
    byFamily[family] = canonical;
  }
  if (annotation !== undefined && list.length === 0) return { problem: { reason: 'InvalidRequest', message: `${source} is empty` } };
  return { byFamily };
}

/**
 * An address a user asked for, parsed as strictly as Kubernetes (api/ip.ts) and refused
 * when it is special-purpose (loopback, multicast, ...): no node may hold one for a Service.
 * The apiserver's own check of spec.externalIPs refuses only some of these (not multicast
 * outside 224.0.0.0/24, nor broadcast) and, until StrictIPCIDRValidation, allows leading 0s.
 */
export function userAddress(text: string): ParseResult<StrictIp> {
  const parsed = parseStrictIp(text);
  if (!parsed.ok) return parsed;
  const special = specialPurpose(parsed.value);
  if (special) return { ok: false, reason: `is a ${special.kind} address (${special.cidr}), which is never given to a Service` };
  return parsed;
}

/** Whether two port lists clash (same port and protocol), which forbids sharing an address. */
export function portsClash(a: ServicePort[], b: ServicePort[]): boolean {
  return a.some((p) => b.some((q) => p.port === q.port && p.protocol === q.protocol));
}
