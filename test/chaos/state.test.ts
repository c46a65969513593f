import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { V1Service } from '@kubernetes/client-node';
import type { IpClaim, IpClaimPool } from '../../api/types.js';
import { Persistence } from './persistence.js';
import { addressChanges, asks, checkSnapshot, deletedLiveClaim, parseAddresses, type IngressMemory, type Snapshot } from './state.js';

function svc(name: string, spec: V1Service['spec'], ingress: string[] = [], annotations: Record<string, string> = {}): V1Service {
  return {
    metadata: { name, namespace: 'default', uid: `uid-${name}`, annotations },
    spec,
    status: { loadBalancer: { ingress: ingress.map((ip) => ({ ip })) } },
  };
}
function claim(cidr: string, services: string[], node: string, pool?: string): IpClaim {
  return {
    apiVersion: 'ipcontroller.ext/v1',
    kind: 'IpClaim',
    metadata: { name: cidr.replace(/[.:/]/g, '-'), resourceVersion: '7' },
    spec: { cidr, services, nodeName: node, ...(pool ? { pool } : {}) },
    status: { phase: 'Assigned', node },
  };
}
function pool(name: string, allocations: Record<string, string>): IpClaimPool {
  return {
    apiVersion: 'ipcontroller.ext/v1',
    kind: 'IpClaimPool',
    metadata: { name },
    spec: { cidr: '192.0.2.128/26' },
    status: { allocations, used: Object.keys(allocations).length },
  };
}

const healthy = (): Snapshot => ({
  services: [
    svc('lb', { type: 'LoadBalancer' }, ['192.0.2.130']),
    svc('dual', { type: 'LoadBalancer', ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv6', 'IPv4'] }, [
      '2001:db8:1::1',
      '192.0.2.131',
    ]),
    svc('ext', { type: 'ClusterIP', externalIPs: ['192.0.2.50'] }),
  ],
  claims: [
    claim('192.0.2.130/32', ['default/lb'], 'node-1', 'v4'),
    claim('192.0.2.131/32', ['default/dual'], 'node-2', 'v4'),
    claim('2001:db8:1::1/128', ['default/dual'], 'node-1', 'v6'),
    claim('192.0.2.50/32', ['default/ext'], 'node-2'),
  ],
  pools: [pool('v4', { '192.0.2.130': 'a', '192.0.2.131': 'b' }), pool('v6', { '2001:db8:1::1': 'c' })],
  nodeAddresses: {
    'node-1': [{ ip: '192.0.2.11' }, { ip: '192.0.2.130', metric: 4242 }, { ip: '2001:db8:1::1', metric: 4242 }],
    'node-2': [{ ip: '192.0.2.12' }, { ip: '192.0.2.131', metric: 4242 }, { ip: '192.0.2.50', metric: 4242 }],
  },
});

test('a converged lab has no discrepancy', () => {
  assert.equal(checkSnapshot(healthy()), []);
});

test('what a Service asks for: families by policy, requested addresses, other classes ignored', () => {
  assert.equal(asks(svc('a', { type: 'LoadBalancer', ipFamilies: ['IPv6'] })).required, ['ipv6']);
  assert.equal(asks(svc('b', { type: 'LoadBalancer', ipFamilyPolicy: 'PreferDualStack', ipFamilies: ['IPv4', 'IPv6'] })).allowed, [
    'ipv4',
    'ipv6',
  ]);
  assert.equal(asks(svc('c', { type: 'LoadBalancer', loadBalancerClass: 'other' }, [], {})).required, []);
  assert.equal(asks(svc('d', { type: 'ClusterIP' }, [], { 'external-ip': 'auto' })).required, ['ipv4']);
  assert.equal(asks(svc('e', { type: 'LoadBalancer' }, [], { 'ipcontroller.ext/loadBalancerIPs': '2001:db8::5' })).required, ['ipv6']);
});

test('a dual-stack Service missing one family, and ingress that disagrees with the claims', () => {
  const snap = healthy();
  snap.services[1] = svc('dual', { type: 'LoadBalancer', ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv6', 'IPv4'] }, [
    '2001:db8:1::1',
  ]);
  const found = checkSnapshot(snap).map((d) => `${d.invariant} ${d.subject}`);
  assert.equal(found, ['service-address default/dual ipv4', 'ingress-mismatch default/dual']);
});

test('an orphan claim, a double allocation, a pool count that is off, a leaked and a missing address', () => {
  const snap = healthy();
  snap.claims.push(claim('192.0.2.140/32', ['default/gone'], 'node-1', 'v4'));
  snap.services.push(svc('thief', { type: 'LoadBalancer' }, ['192.0.2.130']));
  snap.nodeAddresses['node-2']?.push({ ip: '192.0.2.130', metric: 4242 }, { ip: '192.0.2.99' });
  snap.nodeAddresses['node-1'] = (snap.nodeAddresses['node-1'] ?? []).filter((a) => a.ip !== '2001:db8:1::1');
  const found = checkSnapshot(snap)
    .map((d) => `${d.invariant} ${d.subject}`)
    .sort();
  assert.equal(found, [
    'address-not-up node-1 192.0.2.140',
    'address-not-up node-1 2001:db8:1::1',
    'double-allocation 192.0.2.130',
    'ingress-mismatch default/thief',
    'leaked-address node-2 192.0.2.130',
    'orphan-claim 192-0-2-140-32',
    'pool-count v4',
  ]);
});

test('a deleted claim whose Service still asks for the address is caught; one whose Service is gone is not', () => {
  const c = claim('192.0.2.130/32', ['default/lb'], 'node-1', 'v4');
  assert.match(deletedLiveClaim(c, [svc('lb', { type: 'LoadBalancer' }, ['192.0.2.130'])]) ?? '', /still asks for 192.0.2.130/);
  assert.is(deletedLiveClaim(c, [null]), null);
  assert.ok(deletedLiveClaim(c, [svc('lb', { type: 'LoadBalancer' }, [])]), 'the ingress may already be cleared by the same stale writer');
  assert.is(deletedLiveClaim(c, [svc('lb', { type: 'ClusterIP' }, [])]), null, 'a Service that stopped asking lets go');
  const ext = claim('192.0.2.50/32', ['default/ext'], 'node-2');
  assert.ok(deletedLiveClaim(ext, [svc('ext', { type: 'ClusterIP', externalIPs: ['192.0.2.50'] })]));
});

test('a live Service whose pool address is replaced by another is caught; a new Service or a deleted one is not', () => {
  const memory: IngressMemory = new Map();
  const lb = (ip: string[]) => svc('lb', { type: 'LoadBalancer' }, ip);
  assert.equal(addressChanges(memory, [lb([])]), []);
  assert.equal(addressChanges(memory, [lb(['192.0.2.130'])]), []);
  assert.equal(addressChanges(memory, [lb([])]), [], 'an empty ingress is left to the other checks');
  assert.equal(
    addressChanges(memory, [lb(['192.0.2.131'])]).map((d) => d.detail),
    ['default/lb (uid uid-lb) had 192.0.2.130 and now has 192.0.2.131'],
  );
  assert.equal(addressChanges(memory, []), []);
  assert.equal(memory.size, 0);
});

test('ip -j addr is read with the agent mark', () => {
  const json = JSON.stringify([
    {
      ifname: 'eth0',
      addr_info: [
        { family: 'inet', local: '192.0.2.11', prefixlen: 24 },
        { family: 'inet6', local: '2001:db8:0::100', prefixlen: 128, metric: 4242 },
      ],
    },
  ]);
  assert.equal(parseAddresses(json), [{ ip: '192.0.2.11' }, { ip: '2001:db8::100', metric: 4242 }]);
});

test('persistence: a discrepancy becomes a violation after the grace, counted from the end of the last fault', () => {
  const p = new Persistence(1000);
  const d = { invariant: 'service-address' as const, subject: 'default/x ipv4', detail: 'none' };
  assert.equal(p.observe(0, [d]), []);
  p.faultStarted();
  assert.equal(p.observe(5000, [d]), [], 'never during a fault');
  p.faultEnded(5000);
  assert.equal(p.observe(5500, [d]), []);
  assert.is(p.observe(6000, [d]).length, 1);
  assert.equal(p.observe(6500, []), []);
  assert.equal([p.violations[0]?.since, p.violations[0]?.until, p.violations[0]?.open], [0, 6000, false]);
  const double = { invariant: 'double-claim' as const, subject: '192.0.2.5', detail: 'two' };
  p.faultStarted();
  assert.is(p.observe(7000, [double]).length, 1, 'safety invariants count at once, even during a fault');
});

test.run();
