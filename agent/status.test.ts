import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setCondition } from '../api/conditions.js';
import { nextClaimStatus } from './status.js';
import { strictArpCheck } from './strictarp.js';

const T1 = '2026-01-01T00:00:00.000Z';
const T2 = '2026-01-01T00:00:05.000Z';

test('setCondition keeps lastTransitionTime while the status stays, moves it on a change', () => {
  const one = setCondition([], { type: 'Ready', status: 'True', reason: 'Serving', message: '' }, T1);
  const same = setCondition(one, { type: 'Ready', status: 'True', reason: 'Serving', message: 'x' }, T2);
  assert.is(same[0]?.lastTransitionTime, T1);
  assert.is(same[0]?.message, 'x');
  const flipped = setCondition(same, { type: 'Ready', status: 'False', reason: 'Fenced', message: '' }, T2);
  assert.is(flipped[0]?.lastTransitionTime, T2);
  assert.is(setCondition(one, { type: 'Fenced', status: 'False', reason: 'Connected', message: '' }, T2).length, 2);
});

test('a claim that is up gets Assigned with this node and an Announced condition, once', () => {
  const up = { kind: 'up' as const, ip: '192.0.2.5', iface: 'eth0' };
  const status = nextClaimStatus(up, { node: 'node-a', nowIso: T1 });
  assert.equal(status, {
    phase: 'Assigned',
    node: 'node-a',
    lastTransitionTime: T1,
    conditions: [
      {
        type: 'Announced',
        status: 'True',
        reason: 'AddressUp',
        message: '192.0.2.5 is up on eth0 of node node-a and announced',
        lastTransitionTime: T1,
      },
    ],
  });
  assert.is(nextClaimStatus(up, { node: 'node-a', nowIso: T2, current: status ?? undefined }), null, 'nothing to write the second time');
});

test('a claim moving here from another node is written again; a failure carries its reason', () => {
  const elsewhere = nextClaimStatus({ kind: 'up', ip: '192.0.2.5', iface: 'eth0' }, { node: 'node-b', nowIso: T1 }) ?? undefined;
  const here = nextClaimStatus({ kind: 'up', ip: '192.0.2.5', iface: 'eth0' }, { node: 'node-a', nowIso: T2, current: elsewhere });
  assert.is(here?.node, 'node-a');
  assert.is(here?.lastTransitionTime, T1, 'phase unchanged: Assigned since T1');
  const failed = nextClaimStatus(
    { kind: 'failed', reason: 'InterfaceNotFound', message: 'interface nosuch0 does not exist' },
    { node: 'node-a', nowIso: T2, current: here ?? undefined },
  );
  assert.is(failed?.phase, 'Failed');
  assert.is(failed?.conditions?.[0]?.reason, 'InterfaceNotFound');
  assert.match(failed?.conditions?.[0]?.message ?? '', /node node-a: interface nosuch0/);
});

test('with the claim: the Service list as text, and a move to this node reported once with upAt', () => {
  const up = { kind: 'up' as const, ip: '192.0.2.5', iface: 'eth0' };
  const move = { from: 'node-b', to: 'node-a', reason: 'probe', detectedAt: T1, claimedAt: T1 };
  const claim = {
    metadata: { annotations: { 'ipcontroller.ext/move': JSON.stringify(move) } },
    spec: { cidr: '192.0.2.5/32', services: ['ns/a', 'ns/b'] },
  };
  const status = nextClaimStatus(up, { node: 'node-a', nowIso: T2, claim });
  assert.is(status?.serviceList, 'ns/a, ns/b');
  assert.equal(status?.lastMove, { ...move, upAt: T2 });
  assert.is(
    nextClaimStatus(up, { node: 'node-a', nowIso: T2, current: status ?? undefined, claim: { ...claim, status: status ?? {} } }),
    null,
    'nothing new: no write',
  );
  const moreServices = nextClaimStatus(up, {
    node: 'node-a',
    nowIso: T2,
    current: status ?? undefined,
    claim: { ...claim, spec: { ...claim.spec, services: ['ns/a'] }, status: status ?? {} },
  });
  assert.is(moreServices?.serviceList, 'ns/a');
});

test('strict ARP: warn only when kube-ipvs0 holds a held address and arp_ignore/arp_announce are not strict', () => {
  const base = { held: ['192.0.2.5'], arpIgnore: 0, arpAnnounce: 0 };
  assert.is(strictArpCheck({ ...base, ipvsAddresses: null }).missing, false);
  assert.is(strictArpCheck({ ...base, ipvsAddresses: ['10.0.0.1'] }).missing, false);
  const warn = strictArpCheck({ ...base, ipvsAddresses: ['192.0.2.5', '10.0.0.1'] });
  assert.ok(warn.missing && warn.addresses.join() === '192.0.2.5' && /strictARP: true/.test(warn.message));
  assert.is(strictArpCheck({ ...base, ipvsAddresses: ['192.0.2.5'], arpIgnore: 1, arpAnnounce: 2 }).missing, false);
  assert.is(strictArpCheck({ ...base, ipvsAddresses: ['192.0.2.5'], arpIgnore: 1, arpAnnounce: 0 }).missing, true);
});

test.run();
