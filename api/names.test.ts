import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { claimName, parseCidr, canonicalCidr } from './names.js';

test('IPv4 claim names follow the original project (dots and slash become dashes)', () => {
  assert.is(claimName('192.0.2.10/32'), '192-0-2-10-32');
  assert.is(claimName('198.51.100.7/24'), '198-51-100-7-24');
});

test('a bare IPv4 address is taken as a /32', () => {
  assert.is(claimName('203.0.113.5'), '203-0-113-5-32');
});

test('IPv6 claim names use the canonical compressed form', () => {
  assert.is(claimName('2001:db8::a/128'), '2001-db8--a-128');
  assert.is(claimName('2001:0DB8:0000:0000:0000:0000:0000:000A/128'), '2001-db8--a-128');
  assert.is(claimName('2001:db8::10'), '2001-db8--10-128');
});

test('IPv6 names are valid DNS-1123 subdomains even for a leading ::', () => {
  const dns1123 = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
  for (const cidr of ['::1/128', '2001:db8::/64', '2001:db8:0:1::ffff/128', 'fe80::1/64']) {
    const name = claimName(cidr);
    assert.ok(dns1123.test(name), `${cidr} -> ${name}`);
  }
  assert.is(claimName('::1/128'), '0--1-128');
});

test('distinct addresses get distinct names', () => {
  const names = new Set(['2001:db8::1/128', '2001:db8:0:0:1::/128', '2001:db8::1:0:0/128', '2001:db8::1/64'].map(claimName));
  assert.is(names.size, 4);
});

test('ambiguous forms Kubernetes refuses have no name: IPv4-mapped IPv6, leading 0s, zones', () => {
  for (const text of ['::ffff:192.0.2.1', '192.0.2.010/32', '2001:db8::5%eth0/128', '192.0.2.1/032']) {
    assert.is(parseCidr(text), null, text);
    assert.throws(() => claimName(text), /not an IP prefix/);
  }
});

test('garbage is refused with the input in the message', () => {
  assert.throws(() => claimName('not-an-ip'), /not an IP prefix: "not-an-ip"/);
  assert.throws(() => claimName('192.0.2.1/33'), /not an IP prefix/);
  assert.is(parseCidr('300.1.1.1/32'), null);
});

test('canonicalCidr normalises the address text', () => {
  const parsed = parseCidr('2001:DB8:0::5/128');
  assert.ok(parsed);
  assert.is(canonicalCidr(parsed), '2001:db8::5/128');
});

test.run();
