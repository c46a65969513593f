import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseStrictCidr, parseStrictIp, specialPurpose } from './ip.js';

// What Kubernetes' strict rule (netip.ParseAddr, no zone, no IPv4-mapped) accepts, and the
// canonical text each becomes.
const ACCEPTED: Array<[string, string]> = [
  ['192.0.2.10', '192.0.2.10'],
  ['0.0.0.0', '0.0.0.0'],
  ['255.255.255.255', '255.255.255.255'],
  ['2001:db8::10', '2001:db8::10'],
  ['2001:DB8::A', '2001:db8::a'],
  ['2001:0db8:0000:0000:0000:0000:0000:000a', '2001:db8::a'],
  ['2001:db8:0:0:1::1', '2001:db8::1:0:0:1'],
  ['::', '::'],
  ['::1', '::1'],
  ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
  ['64:ff9b::192.0.2.1', '64:ff9b::c000:201'],
];

// What ipaddr.js (or libc) accepts but Kubernetes does not, with the reason a user reads.
const REFUSED: Array<[string, RegExp]> = [
  ['192.0.2.010', /must not have leading 0s .*write 192\.0\.2\.10/],
  ['010.0.0.1', /leading 0s/],
  ['3221226001', /four decimal numbers/],
  ['192.0.2', /four decimal numbers/],
  ['192.0.2.1.5', /four decimal numbers/],
  ['0xc0.0.2.1', /four decimal numbers/],
  ['192.0.2.256', /0-255/],
  [' 192.0.2.1', /four decimal numbers/],
  ['2001:db8:1::5%eth0', /must not have an IPv6 zone \("%eth0"\)/],
  ['fe80::1%1', /zone/],
  ['::ffff:192.0.2.1', /IPv4-mapped IPv6 address: write 192\.0\.2\.1/],
  ['::ffff:c000:201', /IPv4-mapped/],
  ['2001:db8::1::2', /only one "::"/],
  ['2001:db8:1:2:3:4:5:6:7', /eight groups/],
  ['1:2:3:4:5:6:7:8::', /eight groups/],
  ['2001:db8:1', /eight groups/],
  ['2001:db8::12345', /hex digits/],
  ['2001:db8::g', /hex digits/],
  [':1::2', /hex digits/],
  ['1.2.3.4::', /hex digits/],
  ['::1.2.3.04', /IPv4 tail .*leading 0s/],
  ['', /is empty/],
  ['two hundred', /not an IP address/],
];

test('addresses Kubernetes accepts parse, in canonical form', () => {
  for (const [input, canonical] of ACCEPTED) {
    const r = parseStrictIp(input);
    assert.ok(r.ok, `${input}: ${r.ok ? '' : r.reason}`);
    if (r.ok) assert.is(r.value.text, canonical, input);
  }
});

test('ambiguous or lenient forms are refused with what to write instead', () => {
  for (const [input, reason] of REFUSED) {
    const r = parseStrictIp(input);
    assert.not.ok(r.ok, `${input} must be refused`);
    if (!r.ok) assert.match(r.reason, reason, input);
  }
});

test('prefixes: strict address, decimal length without leading 0s, within the family', () => {
  const ok = parseStrictCidr('192.0.2.10/24');
  assert.ok(ok.ok);
  if (ok.ok) assert.equal([ok.value.text, ok.value.prefixLength], ['192.0.2.10', 24]);
  const v6 = parseStrictCidr('2001:DB8::/64');
  assert.ok(v6.ok && v6.value.text === '2001:db8::');
  for (const [input, reason] of [
    ['192.0.2.0', /needs a prefix length/],
    ['192.0.2.0/024', /without leading 0s/],
    ['192.0.2.0/33', /0-32/],
    ['2001:db8::/129', /0-128/],
    ['192.0.2.0/', /decimal/],
    ['192.0.2.0/24/1', /decimal/],
    ['192.0.2.010/32', /leading 0s/],
    ['2001:db8::%eth0/64', /zone/],
    ['192.0.2/24', /four decimal numbers/],
  ] as Array<[string, RegExp]>) {
    const r = parseStrictCidr(input);
    assert.not.ok(r.ok, input);
    if (!r.ok) assert.match(r.reason, reason, input);
  }
});

test('special-purpose addresses are named; ordinary ones are not', () => {
  const kind = (text: string): string | null => {
    const r = parseStrictIp(text);
    if (!r.ok) throw new Error(r.reason);
    return specialPurpose(r.value)?.kind ?? null;
  };
  assert.is(kind('0.0.0.0'), 'unspecified');
  assert.is(kind('0.0.0.1'), 'unspecified');
  assert.is(kind('127.0.0.1'), 'loopback');
  assert.is(kind('169.254.1.1'), 'link-local');
  assert.is(kind('224.0.0.1'), 'multicast');
  assert.is(kind('239.255.255.255'), 'multicast');
  assert.is(kind('255.255.255.255'), 'broadcast');
  assert.is(kind('::'), 'unspecified');
  assert.is(kind('::1'), 'loopback');
  assert.is(kind('fe80::1'), 'link-local');
  assert.is(kind('ff02::1'), 'multicast');
  for (const ordinary of [
    '192.0.2.1',
    '1.0.0.0',
    '126.255.255.255',
    '128.0.0.0',
    '223.255.255.255',
    '240.0.0.1',
    '255.255.255.254',
    '::2',
    '2001:db8::1',
    'fec0::1',
  ]) {
    assert.is(kind(ordinary), null, ordinary);
  }
});

test.run();
