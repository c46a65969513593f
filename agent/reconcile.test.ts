import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { API_VERSION, type IpClaim } from '../api/types.js';
import type { AddressOp, HostLink, WantedAddress } from './addresses.js';
import type { ClaimEntry } from './kube.js';
import { addressChanges, claimOutcomes, tallyOps, wantedClaims, type HeldAddress } from './reconcile.js';

const entry = (name: string, cidr: string, nodeName: string, status?: IpClaim['status']): ClaimEntry => ({
  ok: true,
  claim: { apiVersion: API_VERSION, kind: 'IpClaim', metadata: { name }, spec: { cidr, nodeName }, ...(status ? { status } : {}) },
});
const want = (claim: string, ip: string): WantedAddress => ({ claim, ip, prefixLength: 32, family: 'inet' });
const held = (claim: string, ip: string, iface = 'eth0'): HeldAddress => ({ ...want(claim, ip), iface });
const eth0: HostLink = {
  name: 'eth0',
  ifindex: 2,
  mac: '02:00:5e:00:53:01',
  up: true,
  noArp: false,
  addresses: [{ ip: '192.0.2.52', prefixLength: 32, family: 'inet', dadFailed: false, tentative: false }],
};

test('what the claims want of this node: its claims, the invalid ones, and those handed over but not confirmed', () => {
  const entries: ClaimEntry[] = [
    entry('c1', '192.0.2.50/32', 'node-a'),
    entry('c2', 'not-an-ip', 'node-a'),
    entry('c3', '192.0.2.53/32', 'node-b'),
    entry('c4', '192.0.2.54/32', 'node-b'),
    { ok: false, name: 'c5', nodeName: 'node-a', reason: 'spec.cidr missing' },
    { ok: false, name: 'c6', nodeName: 'node-b', reason: 'spec.cidr missing' },
  ];
  const w = wantedClaims(entries, { name: 'node-a', mask: undefined }, (name) => name === 'c3');
  assert.equal(
    w.wanted.map((x) => [x.claim, x.ip]),
    [
      ['c1', '192.0.2.50'],
      ['c3', '192.0.2.53'],
    ],
  );
  assert.equal(
    w.invalid.map((i) => [i.claim, i.reason]),
    [
      ['c2', 'InvalidAddress'],
      ['c5', 'InvalidClaim'],
    ],
  );
  assert.equal([...w.byName.keys()], ['c1', 'c2']);
  assert.equal([...w.lingering], ['c3']);
});

test('one batch: adds that worked, add errors by claim, removals counted', () => {
  const ops: AddressOp[] = [
    { op: 'remove', ip: '192.0.2.9', prefixLength: 32, family: 'inet', iface: 'eth0' },
    { op: 'add', ip: '192.0.2.50', prefixLength: 32, family: 'inet', iface: 'eth0', claim: 'c1' },
    { op: 'add', ip: '192.0.2.51', prefixLength: 32, family: 'inet', iface: 'eth0', claim: 'c2' },
    { op: 'remove', ip: '192.0.2.8', prefixLength: 32, family: 'inet', iface: 'eth0' },
  ];
  const tally = tallyOps(
    ops,
    new Map([
      [2, 'RTNETLINK answers: File exists'],
      [3, 'Cannot assign'],
    ]),
  );
  assert.equal([...tally.addedOk], ['c1']);
  assert.equal([...tally.addErrors], [['c2', 'RTNETLINK answers: File exists']]);
  assert.is(tally.removed, 1);
});

test('outcomes: up when added or already there, failed with the error otherwise; waiting, conflicting and lingering claims report nothing here', () => {
  const placement = new Map(
    ['c1:192.0.2.50', 'c2:192.0.2.51', 'c3:192.0.2.52', 'c4:192.0.2.53', 'c5:192.0.2.54', 'c6:192.0.2.55', 'c7:192.0.2.56'].map((s) => {
      const [claim = '', ip = ''] = s.split(':');
      return [claim, { iface: 'eth0', want: want(claim, ip) }] as const;
    }),
  );
  const { held: h, outcomes } = claimOutcomes({
    plan: { placement, failed: [{ claim: 'c9', reason: 'InterfaceNotFound', message: 'no nosuch0' }] },
    invalid: [{ claim: 'c8', reason: 'InvalidClaim', message: 'bad' }],
    links: [eth0],
    tally: { addedOk: new Set(['c1', 'c7']), addErrors: new Map([['c2', 'File exists']]), removed: 0 },
    waiting: new Set(['c5']),
    conflicts: new Map([['c6', 'claimed by 02:00:5e:00:53:99']]),
    lingering: new Set(['c7']),
  });
  assert.equal([...h.keys()], ['c1', 'c3', 'c7'], 'c3 was on the interface already; c7 is still held while it is handed over');
  assert.equal(Object.fromEntries(outcomes), {
    c9: { kind: 'failed', reason: 'InterfaceNotFound', message: 'no nosuch0' },
    c8: { kind: 'failed', reason: 'InvalidClaim', message: 'bad' },
    c1: { kind: 'up', ip: '192.0.2.50', iface: 'eth0' },
    c2: { kind: 'failed', reason: 'AddFailed', message: 'File exists' },
    c3: { kind: 'up', ip: '192.0.2.52', iface: 'eth0' },
    c4: { kind: 'failed', reason: 'AddFailed', message: '192.0.2.53 is not usable on eth0' },
  });
});

test('address changes: new and moved are fresh, an add of an unchanged one is a restore, and what went is withdrawn', () => {
  const before = new Map([
    ['c1', held('c1', '192.0.2.50')],
    ['c2', held('c2', '192.0.2.51')],
    ['c3', held('c3', '192.0.2.52')],
    ['c4', held('c4', '192.0.2.53')],
  ]);
  const after = new Map([
    ['c1', held('c1', '192.0.2.50')],
    ['c2', held('c2', '192.0.2.51', 'eth1')],
    ['c3', held('c3', '192.0.2.52')],
    ['c5', held('c5', '192.0.2.55')],
  ]);
  const { changed, withdrawn } = addressChanges(before, after, new Set(['c3', 'c5']));
  assert.equal(
    changed.map((c) => [c.address.claim, c.restored]),
    [
      ['c2', false],
      ['c3', true],
      ['c5', false],
    ],
  );
  assert.equal(withdrawn, ['192.0.2.51', '192.0.2.53']);
});

test.run();
