import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseIpClaim, parseIpClaimPool, parseIpNode } from './parse.js';

const meta = (name: string) => ({ name, resourceVersion: '7' });

test('a well-formed IpClaim parses with all its fields', () => {
  const result = parseIpClaim({
    apiVersion: 'ipcontroller.ext/v1',
    kind: 'IpClaim',
    metadata: meta('192-0-2-10-32'),
    spec: { cidr: '192.0.2.10/32', nodeName: 'node-a', link: 'eth1', services: ['default/web'], pool: 'lab' },
    status: { phase: 'Assigned', node: 'node-a' },
  });
  assert.ok(result.ok);
  if (!result.ok) return;
  assert.is(result.value.spec.nodeName, 'node-a');
  assert.equal(result.value.spec.services, ['default/web']);
  assert.is(result.value.status?.phase, 'Assigned');
  assert.is(result.value.metadata.resourceVersion, '7');
});

test('an IpClaim without a cidr, or with a bare IP, is refused with a reason', () => {
  const missing = parseIpClaim({ metadata: meta('x'), spec: {} });
  assert.not.ok(missing.ok);
  if (!missing.ok) assert.match(missing.reason, /IpClaim x: spec.cidr undefined is not an IP prefix/);
  const bare = parseIpClaim({ metadata: meta('y'), spec: { cidr: '192.0.2.1' } });
  assert.not.ok(bare.ok);
});

test('an IpClaim with wrongly typed optional fields is refused', () => {
  const result = parseIpClaim({ metadata: meta('x'), spec: { cidr: '192.0.2.1/32', services: [1] } });
  assert.not.ok(result.ok);
  if (!result.ok) assert.match(result.reason, /services/);
});

test('objects of another kind or without metadata are refused', () => {
  assert.not.ok(parseIpClaim({ kind: 'IpNode', metadata: meta('x'), spec: { cidr: '192.0.2.1/32' } }).ok);
  assert.not.ok(parseIpClaim({ spec: { cidr: '192.0.2.1/32' } }).ok);
  assert.not.ok(parseIpClaim(null).ok);
  assert.not.ok(parseIpClaim('text').ok);
});

test('IpNode needs a probe address and a port in range', () => {
  const good = parseIpNode({ metadata: meta('node-a'), spec: { probeAddress: '192.0.2.2', probePort: 9102, iface: 'eth0' } });
  assert.ok(good.ok);
  if (good.ok) assert.is(good.value.spec.iface, 'eth0');
  const badPort = parseIpNode({ metadata: meta('node-a'), spec: { probeAddress: '192.0.2.2', probePort: 70000 } });
  assert.not.ok(badPort.ok);
  const badAddress = parseIpNode({ metadata: meta('node-a'), spec: { probeAddress: 'node-a', probePort: 1 } });
  assert.not.ok(badAddress.ok);
});

test('IpClaimPool parses IPv4 and IPv6 with ranges', () => {
  const v4 = parseIpClaimPool({ metadata: meta('lab'), spec: { cidr: '192.0.2.0/24', ranges: [['192.0.2.10', '192.0.2.20']] } });
  assert.ok(v4.ok);
  if (v4.ok) assert.equal(v4.value.spec.ranges, [['192.0.2.10', '192.0.2.20']]);
  const v6 = parseIpClaimPool({ metadata: meta('lab6'), spec: { cidr: '2001:db8:1::/64' } });
  assert.ok(v6.ok);
});

test('IpClaimPool with a non-prefix cidr or a malformed range is refused', () => {
  const cidr = parseIpClaimPool({ metadata: meta('bad'), spec: { cidr: 'banana' } });
  assert.not.ok(cidr.ok);
  if (!cidr.ok) assert.match(cidr.reason, /IpClaimPool bad: spec.cidr "banana" is not an IP prefix/);
  const short = parseIpClaimPool({ metadata: meta('bad'), spec: { cidr: '192.0.2.0/24', ranges: [['192.0.2.1']] } });
  assert.not.ok(short.ok);
  const junk = parseIpClaimPool({ metadata: meta('bad'), spec: { cidr: '192.0.2.0/24', ranges: [['192.0.2.1', 'x']] } });
  assert.not.ok(junk.ok);
  if (!junk.ok) assert.match(junk.reason, /holds "x", which is not an IP address/);
});

test('hand-written objects with addresses Kubernetes would read two ways are refused with the form to write', () => {
  const octal = parseIpClaimPool({ metadata: meta('p'), spec: { cidr: '192.0.2.0/24', ranges: [['192.0.2.010', '192.0.2.20']] } });
  assert.not.ok(octal.ok);
  if (!octal.ok) assert.match(octal.reason, /spec.ranges\[0\] holds "192.0.2.010", which must not have leading 0s .*write 192.0.2.10/);
  const zone = parseIpClaim({ metadata: meta('c'), spec: { cidr: '2001:db8::5%eth0/128' } });
  assert.not.ok(zone.ok);
  if (!zone.ok) assert.match(zone.reason, /spec.cidr "2001:db8::5%eth0\/128" must not have an IPv6 zone/);
  const integer = parseIpNode({ metadata: meta('n'), spec: { probeAddress: '3221226001', probePort: 1 } });
  assert.not.ok(integer.ok);
  if (!integer.ok) assert.match(integer.reason, /probeAddress "3221226001" is not an IP address: IPv4 is written as four decimal numbers/);
  const poolCidr = parseIpClaimPool({ metadata: meta('p'), spec: { cidr: '192.0.2/24' } });
  assert.not.ok(poolCidr.ok);
});

test.run();
