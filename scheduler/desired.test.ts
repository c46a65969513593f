import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { IpClaim, IpClaimPool, IpRange } from '../api/types.js';
import { parsePool, type Pool } from './allocator.js';
import { computeDesired, type PoolSet } from './desired.js';
import { ANNOTATION, parseService, serviceIntent, type ServiceView } from './service.js';

const cfg = { lbClass: 'ipcontroller.ext/l2', mask: { ipv4: 32, ipv6: 128 } };
let seq = 0;

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

function pools(...defs: Array<[string, string, IpRange[]?]>): PoolSet {
  const valid: Pool[] = [];
  const invalid = new Map<string, string>();
  for (const [name, cidr, ranges] of defs) {
    const r: IpClaimPool = {
      apiVersion: 'ipcontroller.ext/v1',
      kind: 'IpClaimPool',
      metadata: { name },
      spec: { cidr, ...(ranges ? { ranges } : {}) },
    };
    const p = parsePool(r);
    if (p.ok) valid.push(p.pool);
    else invalid.set(name, p.reason);
  }
  return { valid, invalid };
}

function claim(cidr: string, services: string[], pool?: string, nodeName?: string): IpClaim {
  return {
    apiVersion: 'ipcontroller.ext/v1',
    kind: 'IpClaim',
    metadata: { name: cidr.replace(/[.:/]/g, '-') },
    spec: { cidr, services, ...(pool ? { pool } : {}), ...(nodeName ? { nodeName } : {}) },
  };
}

test('externalIPs: one claim per address; two Services listing it share the claim', () => {
  const a = svc('a', { type: 'ClusterIP', externalIPs: ['192.0.2.10', '2001:db8::0:a'] });
  const b = svc('b', { type: 'ClusterIP', externalIPs: ['192.0.2.10'] });
  const d = computeDesired([b, a], pools(), [], cfg);
  assert.equal([...d.claims.keys()].sort(), ['192-0-2-10-32', '2001-db8--a-128']);
  assert.equal(d.claims.get('192-0-2-10-32')?.services, ['ns/a', 'ns/b']);
  assert.is(d.claims.get('192-0-2-10-32')?.pool, undefined);
  assert.is(d.services.get('ns/a')?.ingress, null, 'a ClusterIP service status is left alone');
});

test('--mask sets the prefix of externalIPs claims', () => {
  const d = computeDesired([svc('a', { type: 'ClusterIP', externalIPs: ['192.0.2.10'] })], pools(), [], {
    ...cfg,
    mask: { ipv4: 24, ipv6: 64 },
  });
  assert.equal(
    [...d.claims.values()].map((c) => c.cidr),
    ['192.0.2.10/24'],
  );
});

test('LoadBalancer Services get the first free pool address, older Services first', () => {
  const p = pools(['b-pool', '198.51.100.0/30'], ['a-pool', '192.0.2.0/30']);
  const d = computeDesired([svc('second'), svc('first')].reverse(), p, [], cfg);
  assert.equal(d.services.get('ns/second')?.ingress, ['192.0.2.1']);
  assert.equal(d.services.get('ns/first')?.ingress, ['192.0.2.2']);
  assert.equal(
    d.poolAllocations.get('a-pool'),
    new Map([
      ['192.0.2.1', '192-0-2-1-32'],
      ['192.0.2.2', '192-0-2-2-32'],
    ]),
  );
});

test('pools are tried in name order and the next pool is used when one is full', () => {
  const p = pools(['b', '198.51.100.0/30'], ['a', '192.0.2.0/31']);
  const services = [svc('s1'), svc('s2'), svc('s3')];
  const d = computeDesired(services, p, [], cfg);
  assert.equal(
    services.map((s) => d.services.get(s.key)?.held[0]?.pool),
    ['a', 'a', 'b'],
  );
});

test('existing holdings are kept across a recomputation (restart does not re-allocate)', () => {
  const p = pools(['a', '192.0.2.0/24']);
  const first = svc('first');
  const d1 = computeDesired([first], p, [claim('192.0.2.77/32', ['ns/first'], 'a')], cfg);
  assert.equal(d1.services.get('ns/first')?.ingress, ['192.0.2.77']);
  // Status alone (claim lost) also keeps the address.
  const d2 = computeDesired([svc('again', {}, {}, ['192.0.2.99'])], p, [], cfg);
  assert.equal(d2.services.get('ns/again')?.ingress, ['192.0.2.99']);
});

test('a released address is freed: deleted Service, type change, lost annotation', () => {
  const p = pools(['a', '192.0.2.0/24']);
  const existing = [claim('192.0.2.1/32', ['ns/gone'], 'a')];
  const d = computeDesired([], p, existing, cfg);
  assert.is(d.claims.size, 0);
  assert.is(d.poolAllocations.get('a')?.size, 0);
  const changed = svc('gone', { type: 'ClusterIP' }, {}, ['192.0.2.1']);
  const d2 = computeDesired([changed], p, existing, cfg);
  assert.is(d2.claims.size, 0);
  assert.equal(d2.services.get('ns/gone')?.ingress, [], 'ingress is cleared');
});

test('external-ip: auto on a ClusterIP Service: the address goes into spec.externalIPs (the apiserver allows ingress only on LoadBalancers), and out again', () => {
  const p = pools(['a', '192.0.2.0/24']);
  const auto = svc('auto', { type: 'ClusterIP', externalIPs: ['203.0.113.7'] }, { [ANNOTATION.auto]: 'auto' });
  const d1 = computeDesired([auto], p, [], cfg);
  assert.is(d1.services.get('ns/auto')?.ingress, null);
  assert.equal(d1.services.get('ns/auto')?.externalIPs, ['203.0.113.7', '192.0.2.1'], "the user's own address stays first");
  const claims = [claim('192.0.2.1/32', ['ns/auto'], 'a'), claim('203.0.113.7/32', ['ns/auto'])];
  // Next pass, with the address written into the spec: nothing more to write, one pool claim, no duplicate.
  const written = svc('auto', { type: 'ClusterIP', externalIPs: ['203.0.113.7', '192.0.2.1'] }, { [ANNOTATION.auto]: 'auto' });
  const d2 = computeDesired([written], p, claims, cfg);
  assert.is(d2.services.get('ns/auto')?.externalIPs, null);
  assert.equal(d2.claims.get('192-0-2-1-32')?.pool, 'a');
  assert.is(d2.claims.size, 2);
  // The annotation goes: the pool address leaves the spec and the pool; the user's address stays.
  const plain = svc('auto', { type: 'ClusterIP', externalIPs: ['203.0.113.7', '192.0.2.1'] });
  const d3 = computeDesired([plain], p, claims, cfg);
  assert.equal(d3.services.get('ns/auto')?.externalIPs, ['203.0.113.7']);
  assert.equal([...d3.claims.keys()], ['203-0-113-7-32']);
  assert.is(d3.poolAllocations.get('a')?.size, 0);
});

test('requested address: annotation or spec.loadBalancerIP, must be in a pool and free', () => {
  const p = pools(['a', '192.0.2.0/24']);
  const ok = svc('ok', {}, { [ANNOTATION.loadBalancerIPs]: '192.0.2.50' });
  const legacy = svc('legacy', { loadBalancerIP: '192.0.2.51' });
  const outside = svc('outside', {}, { [ANNOTATION.loadBalancerIPs]: '203.0.113.5' });
  const taken = svc('taken', {}, { [ANNOTATION.loadBalancerIPs]: '192.0.2.50' });
  const d = computeDesired([ok, legacy, outside, taken], p, [], cfg);
  assert.equal(d.services.get('ns/ok')?.ingress, ['192.0.2.50']);
  assert.equal(d.services.get('ns/legacy')?.ingress, ['192.0.2.51']);
  assert.equal(d.services.get('ns/outside')?.ingress, []);
  assert.equal(
    d.services.get('ns/outside')?.problems.map((x) => x.reason),
    ['AddressOutsidePool'],
  );
  assert.equal(
    d.services.get('ns/taken')?.problems.map((x) => x.reason),
    ['AddressInUse'],
  );
  assert.match(d.services.get('ns/taken')?.problems[0]?.message ?? '', /in use by ns\/ok/);
});

test('garbage and missing pools give problems, not crashes', () => {
  const p = pools(['a', '192.0.2.0/24'], ['broken', '198.51.100.0/24', [['198.51.100.9', '198.51.100.1']]]);
  const cases: Array<[ServiceView, string]> = [
    [svc('garbage', {}, { [ANNOTATION.loadBalancerIPs]: 'not-an-ip' }), 'InvalidRequest'],
    [svc('two', {}, { [ANNOTATION.loadBalancerIPs]: '192.0.2.1,192.0.2.2' }), 'InvalidRequest'],
    [svc('missing', {}, { [ANNOTATION.pool]: 'nope' }), 'PoolNotFound'],
    [svc('badpool', {}, { [ANNOTATION.pool]: 'broken' }), 'PoolInvalid'],
    [svc('v6', { ipFamilies: ['IPv6'] }), 'NoPoolForFamily'],
  ];
  const d = computeDesired(
    cases.map(([s]) => s),
    p,
    [],
    cfg,
  );
  for (const [s, reason] of cases)
    assert.equal(
      d.services.get(s.key)?.problems.map((x) => x.reason),
      [reason],
      s.name,
    );
  assert.is(d.claims.size, 0);
  const bad = computeDesired([svc('x', { type: 'ClusterIP', externalIPs: ['300.1.1.1', '192.0.2.9'] })], p, [], cfg);
  assert.equal(
    bad.services.get('ns/x')?.problems.map((x) => x.reason),
    ['InvalidExternalIP'],
  );
  assert.equal([...bad.claims.keys()], ['192-0-2-9-32']);
});

test('pool annotation picks the pool', () => {
  const p = pools(['a', '192.0.2.0/24'], ['b', '198.51.100.0/24']);
  const d = computeDesired([svc('s', {}, { [ANNOTATION.pool]: 'b' })], p, [], cfg);
  assert.equal(d.services.get('ns/s')?.ingress, ['198.51.100.1']);
});

test('exhaustion is reported as PoolExhausted', () => {
  const p = pools(['tiny', '192.0.2.4/32']);
  const d = computeDesired([svc('one'), svc('two')], p, [], cfg);
  assert.equal(
    d.services.get('ns/two')?.problems.map((x) => x.reason),
    ['PoolExhausted'],
  );
});

test('dual-stack: one address per family, primary first; PreferDualStack tolerates a missing family', () => {
  const p = pools(['v4', '192.0.2.0/24'], ['v6', '2001:db8:1::/64']);
  const req = svc('req', { ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv6', 'IPv4'] });
  const d = computeDesired([req], p, [], cfg);
  assert.equal(d.services.get('ns/req')?.ingress, ['2001:db8:1::1', '192.0.2.1']);
  const only4 = pools(['v4', '192.0.2.0/24']);
  const pref = computeDesired([svc('pref', { ipFamilyPolicy: 'PreferDualStack' })], only4, [], cfg);
  assert.equal(pref.services.get('ns/pref')?.ingress, ['192.0.2.1']);
  assert.equal(pref.services.get('ns/pref')?.problems, []);
  const reqOnly4 = computeDesired([svc('r', { ipFamilyPolicy: 'RequireDualStack' })], only4, [], cfg);
  assert.equal(
    reqOnly4.services.get('ns/r')?.problems.map((x) => x.reason),
    ['NoPoolForFamily'],
  );
});

test('sharing: same key and no port clash share; a clash or another key does not', () => {
  const p = pools(['a', '192.0.2.0/24']);
  const key = { [ANNOTATION.allowSharedIp]: 'k' };
  const web = svc('web', { ports: [{ port: 80, protocol: 'TCP' }] }, key);
  const dns = svc('dns', { ports: [{ port: 53, protocol: 'UDP' }] }, key);
  const clash = svc('clash', { ports: [{ port: 80, protocol: 'TCP' }] }, key);
  const d = computeDesired([web, dns, clash], p, [], cfg);
  assert.equal(d.services.get('ns/web')?.ingress, ['192.0.2.1']);
  assert.equal(d.services.get('ns/dns')?.ingress, ['192.0.2.1']);
  assert.equal(d.services.get('ns/clash')?.ingress, ['192.0.2.2']);
  assert.equal(d.claims.get('192-0-2-1-32')?.services, ['ns/dns', 'ns/web']);
  // Requesting a shared address explicitly with a clash is refused with a reason.
  const want = svc('want', { ports: [{ port: 80, protocol: 'TCP' }] }, { ...key, [ANNOTATION.loadBalancerIPs]: '192.0.2.1' });
  const d2 = computeDesired([web, want], p, [], cfg);
  assert.equal(
    d2.services.get('ns/want')?.problems.map((x) => x.reason),
    ['AddressInUse'],
  );
  assert.match(d2.services.get('ns/want')?.problems[0]?.message ?? '', /ports clash/);
  const other = svc('other', {}, { [ANNOTATION.allowSharedIp]: 'other', [ANNOTATION.loadBalancerIPs]: '192.0.2.1' });
  assert.equal(
    computeDesired([web, other], p, [], cfg)
      .services.get('ns/other')
      ?.problems.map((x) => x.reason),
    ['AddressInUse'],
  );
});

test('externalIPs are never handed out from a pool', () => {
  const p = pools(['a', '192.0.2.0/30']);
  const ext = svc('ext', { type: 'ClusterIP', externalIPs: ['192.0.2.1'] });
  const d = computeDesired([svc('lb'), ext], p, [], cfg);
  assert.equal(d.services.get('ns/lb')?.ingress, ['192.0.2.2']);
});

test('requested addresses Kubernetes would refuse or read two ways are InvalidRequest; nothing is allocated, no phantom pool entry', () => {
  const p = pools(['a', '192.0.2.0/24'], ['v6', '2001:db8:1::/64']);
  const cases: Array<[string, RegExp]> = [
    ['192.0.2.010', /"192.0.2.010" must not have leading 0s .*write 192.0.2.10/],
    ['3221226001', /"3221226001" is not an IP address/],
    ['192.0.2', /"192.0.2" is not an IP address/],
    ['2001:db8:1::5%eth0', /"2001:db8:1::5%eth0" must not have an IPv6 zone/],
    ['::ffff:192.0.2.9', /IPv4-mapped IPv6 address: write 192.0.2.9/],
    ['127.0.0.1', /is a loopback address \(127.0.0.0\/8\)/],
    ['224.0.0.5', /multicast/],
  ];
  for (const [text, reason] of cases) {
    const bad = svc(`bad-${text}`, { ipFamilyPolicy: 'PreferDualStack' }, { [ANNOTATION.loadBalancerIPs]: text });
    const d = computeDesired([bad], p, [], cfg);
    const problems = d.services.get(bad.key)?.problems ?? [];
    assert.is(problems[0]?.reason, 'InvalidRequest', text);
    assert.match(problems[0]?.message ?? '', reason, text);
    assert.is(d.claims.size, 0, `${text}: no claim`);
    assert.equal(
      [...d.poolAllocations.values()].map((m) => m.size),
      [0, 0],
      `${text}: no pool entry`,
    );
  }
  const lbIP = svc('legacy', { loadBalancerIP: '192.0.2.010' });
  assert.match(
    computeDesired([lbIP], p, [], cfg).services.get(lbIP.key)?.problems[0]?.message ?? '',
    /spec.loadBalancerIP: "192.0.2.010" must not have leading 0s/,
  );
});

test('spec.externalIPs with leading 0s, IPv4-mapped or special-purpose addresses: InvalidExternalIP, no claim; the good ones still claimed', () => {
  const s1 = svc('ext', {
    type: 'ClusterIP',
    externalIPs: ['192.0.2.010', '::ffff:192.0.2.7', '127.0.0.2', '239.1.1.1', '255.255.255.255', '192.0.2.11'],
  });
  const d = computeDesired([s1], pools(), [], cfg);
  assert.equal([...d.claims.keys()], ['192-0-2-11-32']);
  const problems = d.services.get(s1.key)?.problems ?? [];
  assert.equal(
    problems.map((x) => x.reason),
    Array(5).fill('InvalidExternalIP'),
  );
  assert.match(
    problems.map((x) => x.message).join('\n'),
    /"192.0.2.010", which must not have leading 0s[^\n]*\n.*"::ffff:192.0.2.7", which must not be an IPv4-mapped[^\n]*\n.*"127.0.0.2", which is a loopback address\n?/,
  );
});

test('overlapping pools: every claimed address counts once in each pool that contains it', () => {
  const p = pools(['a-wide', '192.0.2.0/24'], ['b-narrow', '192.0.2.0/25']);
  const services = Array.from({ length: 20 }, (_, i) => svc(`s${i}`));
  const ext = svc('ext', { type: 'ClusterIP', externalIPs: ['192.0.2.100'] });
  const d = computeDesired([...services, ext], p, [], cfg);
  // All 20 come from a-wide (name order) and lie in b-narrow too; the externalIP is taken in both.
  assert.is(d.poolAllocations.get('a-wide')?.size, 21);
  assert.is(d.poolAllocations.get('b-narrow')?.size, 21);
  const held = [...d.claims.values()].filter((c) => c.pool).map((c) => c.address);
  assert.is(new Set(held).size, 20, 'no address is handed out twice');
  assert.not.ok(held.includes('192.0.2.100'));
  // A Service asking for the narrow pool gets an address neither pool has given out.
  const narrow = svc('narrow', {}, { [ANNOTATION.pool]: 'b-narrow' });
  const d2 = computeDesired([...services, ext, narrow], p, [], cfg);
  assert.equal(d2.services.get(narrow.key)?.ingress, ['192.0.2.21']);
});

test('a kept address stays in the pool its claim records, not the first overlapping pool by name', () => {
  const p = pools(['a-wide', '192.0.2.0/24'], ['b-narrow', '192.0.2.0/25']);
  const s1 = svc('s1');
  const d = computeDesired([s1], p, [claim('192.0.2.5/32', [s1.key], 'b-narrow')], cfg);
  assert.is(d.claims.get('192-0-2-5-32')?.pool, 'b-narrow');
  assert.equal(d.services.get(s1.key)?.held, [{ address: '192.0.2.5', pool: 'b-narrow' }]);
});

test('a terminating pool keeps what it gave out and gives out nothing new', () => {
  const p = pools(['a', '192.0.2.0/29'], ['b', '198.51.100.0/29']);
  for (const pool of p.valid) if (pool.name === 'a') pool.terminating = true;
  const old = svc('old');
  const fresh = svc('fresh');
  const named = svc('named', {}, { [ANNOTATION.pool]: 'a' });
  const d = computeDesired([old, fresh, named], p, [claim('192.0.2.1/32', [old.key], 'a')], cfg);
  assert.equal(d.services.get(old.key)?.ingress, ['192.0.2.1']);
  assert.equal(d.services.get(fresh.key)?.ingress, ['198.51.100.1']);
  assert.is(d.services.get(named.key)?.problems[0]?.reason, 'PoolTerminating');
  assert.equal(d.poolAllocations.get('a'), new Map([['192.0.2.1', '192-0-2-1-32']]));
});

test('a pool edited into an invalid spec keeps what it gave out and gives out nothing new', () => {
  const p = pools(['a', '192.0.2.0/29', [['192.0.2.6', '192.0.2.1']]]);
  assert.ok(p.invalid.has('a'));
  const old = svc('old', {}, { [ANNOTATION.pool]: 'a' });
  const fresh = svc('fresh', {}, { [ANNOTATION.pool]: 'a' });
  const d = computeDesired([old, fresh], p, [claim('192.0.2.1/32', [old.key], 'a')], cfg);
  assert.equal(d.services.get(old.key)?.ingress, ['192.0.2.1']);
  assert.is(d.claims.get('192-0-2-1-32')?.pool, 'a');
  assert.is(d.services.get(fresh.key)?.problems[0]?.reason, 'PoolInvalid');
  // An address seen only in status (no claim recording the pool) is not kept by an invalid pool.
  const orphan = svc('orphan', {}, {}, ['192.0.2.2']);
  assert.equal(computeDesired([orphan], p, [], cfg).services.get(orphan.key)?.ingress, []);
});

test('other loadBalancerClass: ignored entirely', () => {
  const s = svc('x', { loadBalancerClass: 'other.example/lb', externalIPs: ['192.0.2.1'] });
  assert.is(serviceIntent(s, cfg.lbClass).handled, false);
  const d = computeDesired([s], pools(['a', '192.0.2.0/24']), [], cfg);
  assert.is(d.claims.size, 0);
  assert.is(d.services.has('ns/x'), false);
  const ours = svc('y', { loadBalancerClass: cfg.lbClass });
  assert.equal(computeDesired([ours], pools(['a', '192.0.2.0/24']), [], cfg).services.get('ns/y')?.ingress, ['192.0.2.1']);
});

test('the result does not depend on the order Services are listed in', () => {
  const p = pools(['a', '192.0.2.0/24']);
  const list = Array.from({ length: 20 }, (_, i) => svc(`s${i}`));
  const d1 = computeDesired(list, p, [], cfg);
  const d2 = computeDesired([...list].reverse(), p, [], cfg);
  assert.equal([...d1.claims.entries()].sort(), [...d2.claims.entries()].sort());
});

// How fast is `make bench` (scheduler cold start); here only that 5,000 all get one address each.
test('5,000 Services each get one address', () => {
  const p = pools(['a', '198.51.100.0/24'], ['b', '2001:db8:5::/64']);
  const list = Array.from({ length: 5000 }, (_, i) => svc(`m${i}`, i < 250 ? {} : { ipFamilies: ['IPv6'] }));
  const d = computeDesired(list, p, [], cfg);
  assert.is(d.claims.size, 5000);
  assert.is(new Set([...d.claims.values()].map((c) => c.address)).size, 5000);
});

test.run();
