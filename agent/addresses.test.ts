import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  OWNER_METRIC,
  batchLines,
  chooseInterface,
  isOwned,
  parseBatchErrors,
  parseIpAddrJson,
  planReconcile,
  primaryAddress,
  wantedAddress,
  type HostAddress,
  type HostLink,
  type WantedAddress,
} from './addresses.js';

const addr = (ip: string, prefixLength: number, extra: Partial<HostAddress> = {}): HostAddress => ({
  ip,
  prefixLength,
  family: ip.includes(':') ? 'inet6' : 'inet',
  dadFailed: false,
  tentative: false,
  ...extra,
});
const link = (name: string, addresses: HostAddress[], ifindex = 2): HostLink => ({
  name,
  ifindex,
  mac: '02:00:5e:00:53:01',
  up: true,
  noArp: false,
  addresses,
});
const want = (claim: string, cidr: string, linkName?: string): WantedAddress => {
  const w = wantedAddress(claim, cidr, linkName);
  if (!w.ok) throw new Error(w.message);
  return w.value;
};
const ours = (ip: string, len: number): HostAddress => addr(ip, len, { metric: OWNER_METRIC });

const LINKS = [
  link('lo', [addr('127.0.0.1', 8)], 1),
  link('eth0', [addr('192.0.2.11', 24), addr('2001:db8:a::11', 64), addr('fe80::1', 64)], 2),
  link('eth1', [addr('198.51.100.11', 24)], 3),
];

test('ip -j addr output parses into links with their addresses, metric and DAD state', () => {
  const links = parseIpAddrJson([
    {
      ifindex: 2,
      ifname: 'eth0',
      flags: ['BROADCAST', 'UP'],
      link_type: 'ether',
      address: '02:00:5e:00:53:01',
      addr_info: [
        { family: 'inet', local: '192.0.2.5', prefixlen: 32, metric: 4242 },
        { family: 'inet6', local: '2001:db8::5', prefixlen: 128, dadfailed: true },
      ],
    },
    { ifindex: 1, ifname: 'lo', flags: ['LOOPBACK', 'UP'], link_type: 'loopback', address: '00:00:00:00:00:00', addr_info: [] },
    { garbage: true },
  ]);
  assert.is(links.length, 2);
  assert.equal(links[0], {
    name: 'eth0',
    ifindex: 2,
    mac: '02:00:5e:00:53:01',
    up: true,
    noArp: false,
    addresses: [
      { ip: '192.0.2.5', prefixLength: 32, family: 'inet', metric: 4242, dadFailed: false, tentative: false },
      { ip: '2001:db8::5', prefixLength: 128, family: 'inet6', dadFailed: true, tentative: false },
    ],
  });
  assert.is(links[1]?.mac, null, 'loopback has no Ethernet address');
  assert.equal(parseIpAddrJson('nope'), []);
});

test('ownership: only addresses carrying the agent metric are its own', () => {
  assert.ok(isOwned(ours('192.0.2.5', 32)));
  assert.not.ok(isOwned(addr('192.0.2.5', 32)));
  assert.not.ok(isOwned(addr('192.0.2.5', 32, { metric: 100 })));
  assert.equal(batchLines([{ op: 'add', ip: '192.0.2.5', prefixLength: 32, family: 'inet', iface: 'eth0' }]), [
    `addr replace 192.0.2.5/32 dev eth0 metric ${OWNER_METRIC}`,
  ]);
  assert.equal(batchLines([{ op: 'add', ip: '2001:db8::5', prefixLength: 128, family: 'inet6', iface: 'eth0' }]), [
    `addr replace 2001:db8::5/128 dev eth0 metric ${OWNER_METRIC} nodad`,
  ]);
  assert.equal(batchLines([{ op: 'remove', ip: '2001:db8::5', prefixLength: 128, family: 'inet6', iface: 'eth0' }]), [
    'addr del 2001:db8::5/128 dev eth0',
  ]);
});

test('interface choice: claim link, then --iface, then the subnet holding the IP, then the default route', () => {
  const ctx = { links: LINKS, defaultRoute: { inet: 'eth1' } };
  assert.equal(chooseInterface(want('a', '192.0.2.50/32', 'eth1'), { ...ctx, flagIface: 'eth0' }), {
    ok: true,
    iface: 'eth1',
    why: 'claim-link',
  });
  assert.equal(chooseInterface(want('a', '198.51.100.50/32'), { ...ctx, flagIface: 'eth0' }), { ok: true, iface: 'eth0', why: 'flag' });
  assert.equal(chooseInterface(want('a', '198.51.100.50/32'), ctx), { ok: true, iface: 'eth1', why: 'subnet' });
  assert.equal(chooseInterface(want('a', '192.0.2.50/32'), ctx), { ok: true, iface: 'eth0', why: 'subnet' });
  assert.equal(chooseInterface(want('a', '2001:db8:a::50/128'), ctx), { ok: true, iface: 'eth0', why: 'subnet' });
  assert.equal(chooseInterface(want('a', '203.0.113.50/32'), ctx), { ok: true, iface: 'eth1', why: 'default-route' });
});

test('interface choice: a missing interface or no candidate at all is a reason, not a crash', () => {
  const ctx = { links: LINKS, defaultRoute: {} };
  const missing = chooseInterface(want('a', '192.0.2.50/32', 'nosuch0'), ctx);
  assert.equal(missing.ok ? null : missing.reason, 'InterfaceNotFound');
  const flag = chooseInterface(want('a', '192.0.2.50/32'), { ...ctx, flagIface: 'eth9' });
  assert.ok(!flag.ok && /eth9 \(--iface\)/.test(flag.message));
  const none = chooseInterface(want('a', '2001:db8:ff::1/128'), ctx);
  assert.equal(none.ok ? null : none.reason, 'NoInterface');
});

test('the subnet match ignores our own addresses, host prefixes and link-local ones; longest prefix wins', () => {
  const links = [
    link('eth0', [ours('203.0.113.0', 24), addr('203.0.113.9', 32), addr('fe80::1', 64)]),
    link('eth1', [addr('203.0.113.1', 16)]),
    link('eth2', [addr('203.0.113.2', 26)]),
  ];
  assert.equal(chooseInterface(want('a', '203.0.113.50/32'), { links, defaultRoute: {} }), { ok: true, iface: 'eth2', why: 'subnet' });
  // wantedAddress refuses link-local claims before this; chooseInterface still never matches on a link-local subnet.
  assert.equal(chooseInterface({ claim: 'a', ip: 'fe80::99', prefixLength: 128, family: 'inet6' }, { links, defaultRoute: {} }).ok, false);
});

test('reconcile plan: add what is missing, remove only our own stale addresses, leave others alone', () => {
  const links = [link('eth0', [addr('192.0.2.11', 24), ours('192.0.2.50', 32), ours('192.0.2.51', 32), addr('192.0.2.77', 32)])];
  const plan = planReconcile([want('keep', '192.0.2.50/32'), want('new', '192.0.2.52/32'), want('hand', '192.0.2.77/32')], {
    links,
    flagIface: 'eth0',
    defaultRoute: {},
  });
  assert.equal(batchLines(plan.ops), ['addr del 192.0.2.51/32 dev eth0', `addr replace 192.0.2.52/32 dev eth0 metric ${OWNER_METRIC}`]);
  assert.equal([...plan.placement.keys()].sort(), ['hand', 'keep', 'new']);
  assert.equal(plan.failed, []);
});

test('reconcile plan: nothing wanted removes all our addresses on every interface, and nothing else', () => {
  const links = [
    link('eth0', [addr('192.0.2.11', 24), ours('192.0.2.50', 32)]),
    link('eth1', [ours('2001:db8::5', 128), addr('2001:db8::6', 128)], 3),
  ];
  const plan = planReconcile([], { links, defaultRoute: {} });
  assert.equal(batchLines(plan.ops), ['addr del 192.0.2.50/32 dev eth0', 'addr del 2001:db8::5/128 dev eth1']);
});

test('reconcile plan: an address moving to another interface is removed there first, then added', () => {
  const links = [link('eth0', [ours('192.0.2.50', 32)]), link('eth1', [], 3)];
  const plan = planReconcile([want('c', '192.0.2.50/32', 'eth1')], { links, defaultRoute: {} });
  assert.equal(batchLines(plan.ops), ['addr del 192.0.2.50/32 dev eth0', `addr replace 192.0.2.50/32 dev eth1 metric ${OWNER_METRIC}`]);
});

test('reconcile plan: our address stuck in DAD failure is removed and added back; a second claim for one IP fails', () => {
  const links = [
    link(
      'eth0',
      [ours('2001:db8::5', 128)].map((a) => ({ ...a, dadFailed: true })),
    ),
  ];
  const plan = planReconcile([want('a', '2001:db8::5/128'), want('b', '2001:db8::5/128')], { links, flagIface: 'eth0', defaultRoute: {} });
  assert.equal(batchLines(plan.ops), [
    'addr del 2001:db8::5/128 dev eth0',
    `addr replace 2001:db8::5/128 dev eth0 metric ${OWNER_METRIC} nodad`,
  ]);
  assert.is(plan.recovered.length, 1);
  assert.equal(
    plan.failed.map((f) => [f.claim, f.reason]),
    [['b', 'DuplicateClaim']],
  );
});

test('reconcile plan: a claim that cannot be placed fails and does not stop the others', () => {
  const plan = planReconcile([want('bad', '192.0.2.60/32', 'nosuch0'), want('good', '192.0.2.61/32')], { links: LINKS, defaultRoute: {} });
  assert.equal(
    plan.failed.map((f) => [f.claim, f.reason]),
    [['bad', 'InterfaceNotFound']],
  );
  assert.equal(batchLines(plan.ops), [`addr replace 192.0.2.61/32 dev eth0 metric ${OWNER_METRIC}`]);
});

test('wanted address: canonical IP text, prefix from the cidr, --mask for a bare IP, refusal of garbage', () => {
  assert.equal(wantedAddress('c', '2001:DB8:0::5/128', undefined), {
    ok: true,
    value: { claim: 'c', ip: '2001:db8::5', prefixLength: 128, family: 'inet6' },
  });
  const bare = wantedAddress('c', '192.0.2.5', 'eth1', 24);
  assert.equal(bare.ok && [bare.value.prefixLength, bare.value.link], [24, 'eth1']);
  const bad = wantedAddress('c', 'banana', undefined);
  assert.equal(bad.ok ? null : bad.reason, 'InvalidAddress');
  for (const special of ['127.0.0.5/32', '224.0.0.18/32', '169.254.1.1/32', 'ff02::1/128', 'fe80::5/128', '0.0.0.0/32']) {
    const r = wantedAddress('c', special, undefined);
    assert.not.ok(r.ok, special);
    if (!r.ok) assert.match(r.message, /address \(.*\), which no node puts on its interface/, special);
  }
  assert.not.ok(wantedAddress('c', '192.0.2.010/32', undefined).ok, 'leading 0s: not read as octal');
});

test('ip -batch errors are mapped to the lines that failed', () => {
  const stderr = 'Cannot find device "nosuch"\nCommand failed -:2\nError: ipv4: Address not found.\nCommand failed -:3\n';
  assert.equal(
    [...parseBatchErrors(stderr)],
    [
      [1, 'Cannot find device "nosuch"'],
      [2, 'Error: ipv4: Address not found.'],
    ],
  );
  assert.equal([...parseBatchErrors('')], []);
});

test('probe address: the first global address on the interface that we did not add, IPv4 first', () => {
  const links = [link('eth0', [ours('192.0.2.50', 32), addr('fe80::1', 64), addr('2001:db8::11', 64), addr('192.0.2.11', 24)])];
  assert.is(primaryAddress(links, 'eth0'), '192.0.2.11');
  assert.is(primaryAddress([link('eth0', [addr('2001:db8::11', 64)])], 'eth0'), '2001:db8::11');
  assert.is(primaryAddress(links, 'eth9'), undefined);
  assert.is(primaryAddress(links, undefined), undefined);
});

test.run();
