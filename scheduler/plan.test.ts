// The write plan alone: what a reconcile stage writes and tells, from the desired state and
// the caches, with no apiserver and no clock but the number passed in.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MOVE_ANNOTATION, type IpClaim, type IpClaimPoolStatus } from '../api/types.js';
import type { DesiredClaim } from './desired.js';
import type { Decision } from './placement.js';
import { pendingStatus, planClaims, planClaimStatuses, planIngress, type ClaimPlanInput, type Write, sameList } from './plan.js';
import { planInvalidPools } from './poolplan.js';
import { parseService, type ServiceView } from './service.js';
import type { PoolEntry } from './kube.js';

const NOW = 1_000_000;

function want(n: number, services = ['ns/web']): DesiredClaim {
  return { name: `192-0-2-${n}-32`, cidr: `192.0.2.${n}/32`, address: `192.0.2.${n}`, family: 'ipv4', services, pool: 'p' };
}

function claim(n: number, extra: Partial<IpClaim['spec']> = {}, services = ['ns/web']): IpClaim {
  return {
    apiVersion: 'ipcontroller.ext/v1',
    kind: 'IpClaim',
    metadata: { name: `192-0-2-${n}-32`, uid: `u${n}`, resourceVersion: `${10 + n}` },
    spec: { cidr: `192.0.2.${n}/32`, services, pool: 'p', ...extra },
  };
}

function input(desired: DesiredClaim[], decisions: Array<[string, Decision]>, existing: IpClaim[] = []): ClaimPlanInput {
  return {
    desired: new Map(desired.map((c) => [c.name, c])),
    decisions: new Map(decisions),
    existing: new Map(existing.map((c) => [c.metadata.name ?? '', c])),
    cachedServices: new Set(['ns/web']),
    now: NOW,
    failedAt: new Map([['a', NOW - 300]]),
  };
}

const kinds = (writes: Array<Write | null>): string[] => writes.map((w) => w?.kind ?? 'none');

test('a new claim is one create, told as IPAssigned once it lands; a claim the apiserver refused is held back', () => {
  const steps = planClaims(input([want(1)], [['192-0-2-1-32', { kind: 'assign', node: 'b' }]]));
  assert.equal(kinds(steps.map((s) => s.write)), ['claim-create']);
  const w = steps[0]?.write;
  assert.equal(w?.kind === 'claim-create' ? w.claim.spec : null, { cidr: '192.0.2.1/32', services: ['ns/web'], nodeName: 'b', pool: 'p' });
  assert.ok(steps[0]?.notices.some((n) => n.kind === 'event' && n.reason === 'IPAssigned' && n.message === '192.0.2.1 assigned to node b'));
  const held = planClaims({ ...input([want(1)], [['192-0-2-1-32', { kind: 'assign', node: 'b' }]]), holdBack: new Set(['192-0-2-1-32']) });
  assert.equal(held, []);
});

test('a move is one replace carrying its record; the failover is told with its duration; an unchanged claim writes nothing', () => {
  const move: Decision = { kind: 'move', from: 'a', to: 'b', reason: 'probe' };
  const steps = planClaims(
    input(
      [want(1), want(2)],
      [
        ['192-0-2-1-32', move],
        ['192-0-2-2-32', { kind: 'keep', node: 'a' }],
      ],
      [claim(1, { nodeName: 'a' }), claim(2, { nodeName: 'a' })],
    ),
  );
  assert.equal(kinds(steps.map((s) => s.write)), ['claim-replace', 'none']);
  const w = steps[0]?.write;
  const replaced = w?.kind === 'claim-replace' ? w.claim : null;
  assert.is(replaced?.spec.nodeName, 'b');
  assert.is(replaced?.metadata.resourceVersion, '11', 'the precondition is the version decided on');
  assert.match(replaced?.metadata.annotations?.[MOVE_ANNOTATION] ?? '', /"from":"a","to":"b","reason":"probe"/);
  assert.ok(steps[0]?.notices.some((n) => n.kind === 'failover' && n.reason === 'probe' && n.seconds === 0.3));
  assert.equal(steps[1]?.notices, []);
});

test('a claim no Service wants is deleted with its own version; confirmed first when none of its Services is cached', () => {
  const steps = planClaims(input([], [], [claim(5, {}, ['ns/gone']), claim(6, {}, ['ns/web'])]));
  assert.equal(
    steps.map((s) =>
      s.write?.kind === 'claim-delete'
        ? [s.key, s.write.claim.metadata.uid, s.write.claim.metadata.resourceVersion, s.write.confirm]
        : null,
    ),
    [
      ['192-0-2-5-32', 'u5', '15', true],
      ['192-0-2-6-32', 'u6', '16', false],
    ],
  );
  assert.ok(steps[0]?.notices.some((n) => n.kind === 'released' && n.address === '192.0.2.5'));
});

test('claim status: why it cannot be placed, once; Scheduled again when it is placed; nothing for a claim whose write failed', () => {
  const pending: Decision = { kind: 'pending', reason: 'NoCandidateNode', message: 'no node can take it' };
  const fresh = claim(1);
  const status = pendingStatus(want(1), pending, fresh, NOW);
  assert.is(status?.phase, 'Pending');
  assert.equal(
    status?.conditions?.map((c) => [c.type, c.status, c.reason]),
    [['Scheduled', 'False', 'NoCandidateNode']],
  );
  const written = { ...fresh, status: status ?? {} };
  assert.is(pendingStatus(want(1), pending, written, NOW + 5), null, 'said already');
  const placed = pendingStatus(want(1), { kind: 'assign', node: 'a' }, { ...written, spec: { ...written.spec, nodeName: 'a' } }, NOW + 10);
  assert.equal(
    placed?.conditions?.map((c) => [c.status, c.message]),
    [['True', 'placed on a']],
  );
  assert.is(pendingStatus(want(1), { kind: 'keep', node: 'a' }, fresh, NOW), null, 'a placed claim has no status from the scheduler');
  const steps = planClaimStatuses(input([want(1)], [['192-0-2-1-32', pending]]), () => fresh, new Set(['192-0-2-1-32']));
  assert.equal(steps, []);
});

function svc(name: string, spec: Record<string, unknown> = {}, ingress: string[] = []): ServiceView {
  const v = parseService({
    metadata: { name, namespace: 'ns', uid: name, resourceVersion: '7' },
    spec: { type: 'LoadBalancer', ...spec },
    status: { loadBalancer: { ingress: ingress.map((ip) => ({ ip })) } },
  });
  if (!v) throw new Error('bad');
  return v;
}

test('ingress is written only once every claim of it exists, with ipMode VIP, and not when it already says so', () => {
  const services = new Map([
    ['ns/a', svc('a')],
    ['ns/b', svc('b')],
    ['ns/c', svc('c', {}, ['192.0.2.3'])],
  ]);
  const outcomes = new Map([
    ['ns/a', { ingress: ['192.0.2.1'], externalIPs: null }],
    ['ns/b', { ingress: ['192.0.2.2'], externalIPs: null }],
    ['ns/c', { ingress: ['192.0.2.3'], externalIPs: null }],
  ]);
  const steps = planIngress(outcomes, services, (name) => name !== '192-0-2-2-32');
  assert.equal(
    steps.map((s) => [s.key, s.write?.kind === 'service-ingress' ? s.write.ingress : null]),
    [['ns/a', [{ ip: '192.0.2.1', ipMode: 'VIP' }]]],
  );
});

test('an invalid pool: its status is written once; the status it leaves (cached after the write) asks for no second write', () => {
  const entry: PoolEntry = {
    ok: false,
    name: 'bad',
    reason: 'spec.cidr does not parse',
    metadata: { name: 'bad', resourceVersion: '3' },
    status: { allocations: { '192.0.2.9': 'x' } },
  };
  const kept = [{ ...want(4), pool: 'bad' }];
  const first = planInvalidPools(new Map([['bad', entry.reason]]), () => entry, kept, NOW);
  const w = first[0]?.write;
  assert.is(w?.kind, 'pool-status-raw');
  if (w?.kind !== 'pool-status-raw') return;
  assert.equal(w.patch.allocations, { '192.0.2.9': null, '192.0.2.4': '192-0-2-4-32' }, 'null removes what is no longer kept');
  const after: PoolEntry = { ...entry, status: w.status as IpClaimPoolStatus };
  assert.equal(after.ok ? null : after.status?.allocations, { '192.0.2.4': '192-0-2-4-32' });
  assert.equal(
    planInvalidPools(new Map([['bad', entry.reason]]), () => after, kept, NOW + 1),
    [],
  );
});

test('sameList: the same strings in the same order; a missing list is an empty one', () => {
  assert.ok(sameList(['192.0.2.1', '2001:db8::1'], ['192.0.2.1', '2001:db8::1']));
  assert.ok(sameList(undefined, []));
  assert.not.ok(sameList(['192.0.2.1', '2001:db8::1'], ['2001:db8::1', '192.0.2.1']));
  assert.not.ok(sameList(['192.0.2.1'], ['192.0.2.1', '192.0.2.2']));
  assert.not.ok(sameList(['192.0.2.1'], undefined));
});

test.run();
