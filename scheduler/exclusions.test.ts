import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { IpClaim, IpClaimPool, IpRange } from '../api/types.js';
import { parsePool, type Pool } from './allocator.js';
import { computeDesired } from './desired.js';
import { activeConflicts, exclusionsIn, mergeExclusions, nodeExclusions } from './exclusions.js';
import { parseNodeEntry } from './kube.js';
import { parseService, type ServiceView } from './service.js';

const cfg = { lbClass: 'ipcontroller.ext/l2', mask: { ipv4: 32, ipv6: 128 } };
let seq = 0;
const T0 = Date.UTC(2026, 10, 30, 10, 0, 0);
const MIN = 60_000;

function poolOf(name: string, cidr: string, ranges?: IpRange[]): Pool {
  const r = parsePool({
    apiVersion: 'ipcontroller.ext/v1',
    kind: 'IpClaimPool',
    metadata: { name },
    spec: { cidr, ...(ranges ? { ranges } : {}) },
  });
  if (!r.ok) throw new Error(r.reason);
  return r.pool;
}

function svc(
  name: string,
  spec: Record<string, unknown> = {},
  annotations: Record<string, string> = {},
  ingress: string[] = [],
): ServiceView {
  const view = parseService({
    metadata: {
      name,
      namespace: 'ns',
      uid: `uid-${name}`,
      resourceVersion: '1',
      annotations,
      creationTimestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, seq++)).toISOString(),
    },
    spec: { type: 'LoadBalancer', ipFamilies: ['IPv4'], ports: [{ port: 80, protocol: 'TCP' }], ...spec },
    status: { loadBalancer: { ingress: ingress.map((ip) => ({ ip })) } },
  });
  if (!view) throw new Error('bad service');
  return view;
}

function conflictClaim(address: string, service: string, seenAt: number, mac = '02:00:5e:00:53:99'): IpClaim {
  return {
    apiVersion: 'ipcontroller.ext/v1',
    kind: 'IpClaim',
    metadata: { name: address.replace(/[.:]/g, '-') + '-32' },
    spec: { cidr: `${address}/32`, services: [service], pool: 'a', nodeName: 'n1' },
    status: {
      phase: 'Failed',
      conditions: [
        {
          type: 'Announced',
          status: 'False',
          reason: 'AddressConflict',
          message: `${address} is answered by ${mac}, a host that is not ours`,
          lastTransitionTime: new Date(seenAt).toISOString(),
        },
      ],
    },
  };
}

const node = (name: string, ...addresses: string[]) => ({ name, addresses: addresses.map((address) => ({ address, type: 'InternalIP' })) });

test('parseNodeEntry keeps the IP entries of status.addresses, canonical, and skips host names', () => {
  const entry = parseNodeEntry({
    metadata: { name: 'n1', resourceVersion: '5' },
    status: {
      addresses: [
        { type: 'InternalIP', address: '192.0.2.7' },
        { type: 'Hostname', address: 'n1' },
        { type: 'InternalIP', address: '2001:DB8::0:7' },
      ],
    },
  });
  assert.equal(entry?.value.addresses, [
    { address: '192.0.2.7', type: 'InternalIP' },
    { address: '2001:db8::7', type: 'InternalIP' },
  ]);
});

test('a pool overlapping a node InternalIP never hands it out; the rest of the pool works', () => {
  const pool = poolOf('a', '192.0.2.0/29');
  const excluded = nodeExclusions([node('n1', '192.0.2.1'), node('n2', '192.0.2.3')], [pool]);
  const services = ['s1', 's2', 's3', 's4'].map((n) => svc(n));
  const d = computeDesired(services, { valid: [pool], invalid: new Map(), excluded }, [], cfg);
  assert.equal(
    services.map((s) => d.services.get(s.key)?.ingress),
    [['192.0.2.2'], ['192.0.2.4'], ['192.0.2.5'], ['192.0.2.6']],
  );
  assert.equal(
    exclusionsIn(pool, excluded).map((e) => `${e.address} ${e.reason} ${e.message}`),
    ['192.0.2.1 NodeAddress InternalIP of Node n1', '192.0.2.3 NodeAddress InternalIP of Node n2'],
  );
});

test('the network and broadcast address of a pool cidr holding a node address are never handed out, even when ranges reach them', () => {
  const pool = poolOf('a', '192.0.2.0/29', [['192.0.2.0', '192.0.2.7']]);
  const excluded = nodeExclusions([node('n1', '192.0.2.5')], [pool]);
  // The pool itself withholds its cidr's network and broadcast addresses (allocator.ts), so
  // only the node's own address is listed as excluded for this pool.
  assert.equal(
    exclusionsIn(pool, excluded).map((e) => `${e.address} ${e.reason}`),
    ['192.0.2.5 NodeAddress'],
  );
  const services = ['s1', 's2', 's3', 's4', 's5', 's6'].map((n) => svc(n));
  const d = computeDesired(services, { valid: [pool], invalid: new Map(), excluded }, [], cfg);
  const given = services.flatMap((s) => d.services.get(s.key)?.ingress ?? []);
  assert.equal(given, ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4', '192.0.2.6']);
  const other = poolOf('b', '198.51.100.0/29', [['198.51.100.0', '198.51.100.7']]);
  assert.equal(
    exclusionsIn(other, nodeExclusions([node('n1', '192.0.2.5')], [other])),
    [],
    'a pool holding no node address keeps its ranges',
  );
});

test('a requested node address stays pending with the reason; a Service holding one gets another address', () => {
  const pool = poolOf('a', '192.0.2.0/29');
  const excluded = nodeExclusions([node('n1', '192.0.2.2')], [pool]);
  const requested = svc('req', {}, { 'ipcontroller.ext/loadBalancerIPs': '192.0.2.2' });
  const holder = svc('old', {}, {}, ['192.0.2.2']);
  const d = computeDesired([requested, holder], { valid: [pool], invalid: new Map(), excluded }, [], cfg);
  assert.equal(d.services.get('ns/req')?.ingress, []);
  assert.equal(d.services.get('ns/req')?.problems, [
    { reason: 'NodeAddress', message: 'requested address 192.0.2.2 cannot be used: InternalIP of Node n1' },
  ]);
  assert.equal(d.services.get('ns/old')?.ingress, ['192.0.2.1']);
  assert.equal(d.services.get('ns/old')?.dropped, [{ reason: 'NodeAddress', message: '192.0.2.2 is given up: InternalIP of Node n1' }]);
});

test('spec.externalIPs naming a node address gets no claim and a problem', () => {
  const excluded = nodeExclusions([node('n1', '192.0.2.9')], []);
  const d = computeDesired(
    [svc('e', { type: 'ClusterIP', externalIPs: ['192.0.2.9', '192.0.2.10'] })],
    { valid: [], invalid: new Map(), excluded },
    [],
    cfg,
  );
  assert.equal([...d.claims.keys()], ['192-0-2-10-32']);
  assert.equal(
    d.services.get('ns/e')?.problems.map((p) => p.reason),
    ['NodeAddress'],
  );
});

test('a conflict reported on a claim excludes the address until --conflict-retry has passed since it was seen', () => {
  const claims = [conflictClaim('192.0.2.1', 'ns/s1', T0)];
  const at = (now: number) => [...activeConflicts(claims, [], { now, retryMs: 10 * MIN }).keys()];
  assert.equal(at(T0 + MIN), ['192.0.2.1']);
  assert.equal(at(T0 + 10 * MIN), [], 'retried after 10 minutes');
});

test("a conflict naming one of our agents' MACs (IpNode.status.macs) is not a conflict", () => {
  const claims = [conflictClaim('192.0.2.1', 'ns/s1', T0, '02:00:5e:00:53:01')];
  assert.equal([...activeConflicts(claims, [], { now: T0 + 1000, retryMs: 10 * MIN, ourMacs: new Set(['02:00:5e:00:53:01']) }).keys()], []);
  assert.equal(
    [...activeConflicts(claims, [], { now: T0 + 1000, retryMs: 10 * MIN, ourMacs: new Set(['02:00:5e:00:53:02']) }).keys()],
    ['192.0.2.1'],
  );
});

test('conflicts recorded in pool status are kept until they expire, the newest sighting wins', () => {
  const stored: IpClaimPool = {
    apiVersion: 'ipcontroller.ext/v1',
    kind: 'IpClaimPool',
    metadata: { name: 'a' },
    spec: { cidr: '192.0.2.0/29' },
    status: {
      excluded: [
        { address: '192.0.2.1', reason: 'AddressConflict', message: 'old', seenAt: new Date(T0).toISOString() },
        { address: '192.0.2.2', reason: 'AddressConflict', message: 'expired', seenAt: new Date(T0 - 20 * MIN).toISOString() },
        { address: '192.0.2.3', reason: 'NodeAddress', message: 'recomputed from Nodes, not read back' },
      ],
    },
  };
  const found = activeConflicts([conflictClaim('192.0.2.1', 'ns/s1', T0 + MIN, 'aa:bb:cc:dd:ee:ff')], [stored], {
    now: T0 + 2 * MIN,
    retryMs: 10 * MIN,
  });
  assert.equal([...found.keys()], ['192.0.2.1']);
  assert.match(found.get('192.0.2.1')?.message ?? '', 'aa:bb:cc:dd:ee:ff');
});

test('an auto-allocated Service whose address conflicts gets the next free one and says why; a requested one stays pending', () => {
  const pool = poolOf('a', '192.0.2.0/29');
  const auto = svc('auto', {}, {}, ['192.0.2.1']);
  const requested = svc('req', {}, { 'ipcontroller.ext/loadBalancerIPs': '192.0.2.1' });
  const claims = [conflictClaim('192.0.2.1', 'ns/auto', T0)];
  const excluded = mergeExclusions(nodeExclusions([], [pool]), activeConflicts(claims, [], { now: T0 + 1000, retryMs: 10 * MIN }));
  const d = computeDesired([auto, requested], { valid: [pool], invalid: new Map(), excluded }, claims, cfg);
  assert.equal(d.services.get('ns/auto')?.ingress, ['192.0.2.2']);
  assert.is(d.services.get('ns/auto')?.dropped?.[0]?.reason, 'AddressConflict');
  assert.match(d.services.get('ns/auto')?.dropped?.[0]?.message ?? '', '02:00:5e:00:53:99');
  assert.equal(d.services.get('ns/req')?.ingress, []);
  assert.is(d.services.get('ns/req')?.problems[0]?.reason, 'AddressConflict');
  assert.not.ok(d.claims.has('192-0-2-1-32'), 'the conflicting claim is given up, so the agent takes the address down');
});

test.run();
