// Service churn for the soak: a create or a delete every interval, mixing LoadBalancer and
// externalIPs Services over IPv4, IPv6 and dual-stack, between a low and a high count.
import type { V1Service } from '@kubernetes/client-node';

export type ChurnShape = 'lb-v4' | 'lb-v6' | 'lb-dual' | 'ext-v4' | 'ext-v6';
export const SHAPES: ChurnShape[] = ['lb-v4', 'lb-v6', 'lb-dual', 'ext-v4', 'ext-v6'];
export const CHURN_LABEL = 'chaos.ipcontroller.ext/churn';

/** externalIPs for churn: 192.0.2.230-.250 and 2001:db8::2:0-ff, outside the pools. */
export function externalIp(shape: 'ext-v4' | 'ext-v6', n: number): string {
  return shape === 'ext-v4' ? `192.0.2.${230 + (n % 21)}` : `2001:db8::2:${(n % 256).toString(16)}`;
}

export function churnService(name: string, shape: ChurnShape, n: number): V1Service {
  const base: V1Service = {
    metadata: { name, namespace: 'default', labels: { [CHURN_LABEL]: shape } },
    spec: { ports: [{ port: 80, targetPort: 80 }] },
  };
  const spec = base.spec ?? {};
  if (shape === 'lb-v4') spec.type = 'LoadBalancer';
  if (shape === 'lb-v6') Object.assign(spec, { type: 'LoadBalancer', ipFamilies: ['IPv6'] });
  if (shape === 'lb-dual') Object.assign(spec, { type: 'LoadBalancer', ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'] });
  if (shape === 'ext-v4' || shape === 'ext-v6') spec.externalIPs = [externalIp(shape, n)];
  return base;
}

/** The next step: create while below low, delete while above high, otherwise either at random. */
export function nextStep(live: number, low: number, high: number, random: number): 'create' | 'delete' {
  if (live < low) return 'create';
  if (live >= high) return 'delete';
  return random < 0.5 ? 'create' : 'delete';
}
