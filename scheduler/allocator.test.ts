import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { IpClaimPool, IpRange } from '../api/types.js';
import { capped, fromBigInt, nextFree, parsePool, poolContains, toBigInt, type Pool } from './allocator.js';
import ipaddr from 'ipaddr.js';

function resource(name: string, cidr: string, ranges?: IpRange[]): IpClaimPool {
  return { apiVersion: 'ipcontroller.ext/v1', kind: 'IpClaimPool', metadata: { name }, spec: { cidr, ...(ranges ? { ranges } : {}) } };
}

function pool(cidr: string, ranges?: IpRange[]): Pool {
  const r = parsePool(resource('p', cidr, ranges));
  if (!r.ok) throw new Error(r.reason);
  return r.pool;
}

function take(p: Pool, n: number, used = new Set<string>()): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const next = nextFree(p, used);
    if (!next) break;
    used.add(next.address);
    out.push(next.address);
  }
  return out;
}

test('bigint round trip for IPv4 and IPv6', () => {
  assert.is(fromBigInt(toBigInt(ipaddr.parse('192.0.2.255')), 'ipv4'), '192.0.2.255');
  assert.is(fromBigInt(toBigInt(ipaddr.parse('2001:db8::ffff:1')), 'ipv6'), '2001:db8::ffff:1');
});

test('an IPv4 /29 without ranges skips the network and broadcast addresses', () => {
  const p = pool('192.0.2.8/29');
  assert.is(p.size, 6n);
  assert.equal(take(p, 10), ['192.0.2.9', '192.0.2.10', '192.0.2.11', '192.0.2.12', '192.0.2.13', '192.0.2.14']);
});

test('/31 and /32 pools use every address', () => {
  assert.equal(take(pool('192.0.2.10/31'), 5), ['192.0.2.10', '192.0.2.11']);
  assert.equal(take(pool('192.0.2.7/32'), 5), ['192.0.2.7']);
});

test('a cidr with host bits set is taken as its network', () => {
  assert.is(pool('192.0.2.77/24').cidr, '192.0.2.0/24');
});

test('ranges define exactly what is allocatable, merged and sorted', () => {
  const p = pool('198.51.100.0/24', [
    ['198.51.100.20', '198.51.100.21'],
    ['198.51.100.10', '198.51.100.11'],
    ['198.51.100.11', '198.51.100.12'],
  ]);
  assert.is(p.size, 5n);
  assert.equal(take(p, 10), ['198.51.100.10', '198.51.100.11', '198.51.100.12', '198.51.100.20', '198.51.100.21']);
  assert.ok(poolContains(p, '198.51.100.21'));
  assert.not.ok(poolContains(p, '198.51.100.13'));
  assert.not.ok(poolContains(p, '2001:db8::1'));
});

test('bad ranges are refused with a reason', () => {
  const cases: Array<[IpRange[], RegExp]> = [
    [[['198.51.100.9', '198.51.100.1']], /ends before it starts/],
    [[['198.51.100.1', '203.0.113.5']], /not inside cidr 198.51.100.0\/24/],
    [[['2001:db8::1', '2001:db8::2']], /is not IPv4/],
    [[['nope', '198.51.100.2']], /range 0 \[nope, 198.51.100.2\]: "nope" is not an IP address/],
    [[['198.51.100.010', '198.51.100.20']], /"198.51.100.010" must not have leading 0s .*write 198.51.100.10/],
  ];
  for (const [ranges, reason] of cases) {
    const r = parsePool(resource('bad', '198.51.100.0/24', ranges));
    assert.not.ok(r.ok);
    if (!r.ok) assert.match(r.reason, reason);
  }
  const notCidr = parsePool(resource('bad', '198.51.100.0'));
  assert.not.ok(notCidr.ok);
  for (const [cidr, reason] of [
    ['192.0.2/24', /four decimal numbers/],
    ['192.0.2.010/29', /leading 0s/],
    ['2001:db8:1::%eth0/64', /zone/],
    ['::ffff:192.0.2.0/120', /IPv4-mapped/],
  ] as Array<[string, RegExp]>) {
    const r = parsePool(resource('bad', cidr));
    assert.not.ok(r.ok, cidr);
    if (!r.ok) assert.match(r.reason, reason, cidr);
  }
});

test('special-purpose addresses are never handed out, and the pool says which it withholds', () => {
  const all = pool('0.0.0.0/0');
  assert.equal(take(all, 2), ['1.0.0.0', '1.0.0.1'], 'not 0.0.0.1: 0.0.0.0/8 is "this network"');
  for (const special of ['0.0.0.1', '127.0.0.1', '169.254.0.5', '224.0.0.1', '239.1.1.1', '255.255.255.255']) {
    assert.not.ok(poolContains(all, special), special);
  }
  assert.ok(poolContains(all, '126.255.255.255'));
  assert.ok(poolContains(all, '128.0.0.0'));
  assert.is(all.size, (1n << 32n) - (1n << 24n) * 2n - (1n << 16n) - (1n << 28n) - 1n);
  assert.match(all.withheld.join(', '), /loopback 127.0.0.0\/8.*link-local 169.254.0.0\/16.*multicast 224.0.0.0\/4/);
  const v6 = pool('::/0');
  assert.equal(take(v6, 1), ['::2'], 'not :: (unspecified) nor ::1 (loopback)');
  assert.not.ok(poolContains(v6, 'fe80::1'));
  assert.not.ok(poolContains(v6, 'ff02::1'));
  assert.not.ok(poolContains(v6, '::ffff:c000:201'));
  assert.equal(pool('192.0.2.0/24').withheld, ['network address 192.0.2.0', 'broadcast address 192.0.2.255']);
});

test('a pool made only of special-purpose addresses is invalid, with the reason', () => {
  for (const [cidr, ranges, reason] of [
    ['127.0.0.0/8', undefined, /holds only addresses that are never handed out .*loopback 127.0.0.0\/8/],
    ['224.0.0.0/24', undefined, /multicast 224.0.0.0\/4/],
    ['169.254.0.0/16', undefined, /link-local/],
    ['::1/128', undefined, /loopback ::1\/128/],
    ['fe80::/64', undefined, /link-local fe80::\/10/],
    ['255.255.255.255/32', undefined, /broadcast 255.255.255.255\/32/],
    ['0.0.0.0/32', undefined, /unspecified/],
    ['10.0.0.0/8', [['10.0.0.0', '10.0.0.0']], /with its ranges holds only .*network address 10.0.0.0/],
  ] as Array<[string, IpRange[] | undefined, RegExp]>) {
    const r = parsePool(resource('special', cidr, ranges));
    assert.not.ok(r.ok, cidr);
    if (!r.ok) assert.match(r.reason, reason, cidr);
  }
});

test("ranges never hand out the network or broadcast address of the pool's own cidr", () => {
  const p = pool('192.0.2.0/24', [
    ['192.0.2.0', '192.0.2.2'],
    ['192.0.2.254', '192.0.2.255'],
  ]);
  assert.equal(take(p, 10), ['192.0.2.1', '192.0.2.2', '192.0.2.254']);
  // A wider cidr makes 192.0.2.255 an ordinary address.
  assert.equal(take(pool('192.0.2.0/23', [['192.0.2.255', '192.0.3.0']]), 5), ['192.0.2.255', '192.0.3.0']);
});

test('used addresses are skipped; exhaustion returns null', () => {
  const p = pool('203.0.113.0/30');
  const used = new Set(['203.0.113.1']);
  assert.equal(nextFree(p, used)?.address, '203.0.113.2');
  used.add('203.0.113.2');
  assert.is(nextFree(p, used), null);
});

test('IPv6: a /64 is never enumerated and its size is exact', () => {
  const p = pool('2001:db8:1::/64');
  assert.is(p.family, 'ipv6');
  assert.is(p.size, (1n << 64n) - 1n);
  assert.is(capped(p.size), Number.MAX_SAFE_INTEGER);
  assert.equal(take(p, 3), ['2001:db8:1::1', '2001:db8:1::2', '2001:db8:1::3']);
  const huge = pool('2001:db8::/32');
  const used = new Set<string>();
  // Walking the /32 would never end; the 500 lowest addresses come back, in order.
  const got = take(huge, 500, used);
  assert.is(got.length, 500);
  assert.is(got[0], '2001:db8::1');
  assert.is(got[499], '2001:db8::1f4');
  assert.ok(poolContains(huge, '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff'));
});

test('IPv6 ranges work like IPv4 ranges', () => {
  const p = pool('2001:db8:2::/120', [['2001:db8:2::10', '2001:db8:2::11']]);
  assert.equal(take(p, 5), ['2001:db8:2::10', '2001:db8:2::11']);
});

test('nextFree continues from a cursor', () => {
  const p = pool('192.0.2.0/24');
  const first = nextFree(p, new Set());
  assert.is(first?.address, '192.0.2.1');
  assert.is(nextFree(p, new Set(), (first?.value ?? 0n) + 5n)?.address, '192.0.2.6');
});

test.run();
