import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NodeFailure } from './health.js';
import { place, type ClaimToPlace, type Decision, type PlacementInput } from './placement.js';

function claims(n: number, extra: Partial<ClaimToPlace> = {}): ClaimToPlace[] {
  return Array.from({ length: n }, (_, i) => ({
    name: `c${String(i).padStart(3, '0')}`,
    address: `192.0.2.${i + 1}`,
    localServices: [],
    ...extra,
  }));
}

function input(over: Partial<PlacementInput>): PlacementInput {
  return { claims: [], candidates: [], failures: new Map(), endpointNodes: new Map(), strategy: 'fair', rebalance: false, ...over };
}

const nodeOf = (d: Decision | undefined): string | undefined => (d && 'node' in d ? d.node : d?.kind === 'move' ? d.to : undefined);

function counts(decisions: Map<string, Decision>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const d of decisions.values()) {
    const n = nodeOf(d);
    if (n) out[n] = (out[n] ?? 0) + 1;
  }
  return out;
}

function shuffle<T>(list: T[], seed: number): T[] {
  const out = [...list];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

test('fair: new claims spread evenly over candidates', () => {
  const d = place(input({ claims: claims(30), candidates: ['a', 'b', 'c'] }));
  assert.equal(counts(d), { a: 10, b: 10, c: 10 });
  for (const x of d.values()) assert.is(x.kind, 'assign');
});

test('fair: the result does not depend on the order of claims or nodes', () => {
  const base = place(input({ claims: claims(25), candidates: ['a', 'b', 'c', 'd'] }));
  for (const seed of [1, 2, 3, 4, 5]) {
    const again = place(input({ claims: shuffle(claims(25), seed), candidates: shuffle(['a', 'b', 'c', 'd'], seed + 7) }));
    assert.equal([...again.entries()].sort(), [...base.entries()].sort());
  }
});

test('fair: healthy assignments stay even when unbalanced (no churn), and new ones go to the emptiest', () => {
  const existing = claims(4, { current: 'a' });
  const fresh: ClaimToPlace[] = [{ name: 'z1', address: '198.51.100.1', localServices: [] }];
  const d = place(input({ claims: [...existing, ...fresh], candidates: ['a', 'b'] }));
  for (const c of existing) assert.equal(d.get(c.name), { kind: 'keep', node: 'a' });
  assert.equal(d.get('z1'), { kind: 'assign', node: 'b' });
});

test('--rebalance evens out healthy assignments', () => {
  const d = place(input({ claims: claims(4, { current: 'a' }), candidates: ['a', 'b'], rebalance: true }));
  assert.equal(counts(d), { a: 2, b: 2 });
  const moved = [...d.values()].filter((x) => x.kind === 'move');
  assert.is(moved.length, 2);
  for (const m of moved) if (m.kind === 'move') assert.is(m.reason, 'rebalance');
});

test('a failed node: its claims move, with the failure as the reason; others stay', () => {
  const onA = claims(3, { current: 'a' });
  const onB: ClaimToPlace[] = [{ name: 'x', address: '198.51.100.9', current: 'b', localServices: [] }];
  const failures = new Map<string, NodeFailure>([['a', 'probe']]);
  const d = place(input({ claims: [...onA, ...onB], candidates: ['b', 'c'], failures }));
  assert.equal(d.get('x'), { kind: 'keep', node: 'b' });
  for (const c of onA) {
    const x = d.get(c.name);
    assert.is(x?.kind, 'move');
    if (x?.kind === 'move') {
      assert.is(x.from, 'a');
      assert.is(x.reason, 'probe');
    }
  }
  assert.equal(counts(d), { b: 2, c: 2 });
});

test('a holding node (stale heartbeat, probes answered) keeps its claims and gets no new ones', () => {
  const onA = claims(3, { current: 'a' });
  const fresh: ClaimToPlace[] = [{ name: 'new', address: '198.51.100.10', localServices: [] }];
  const failures = new Map<string, NodeFailure>([['a', 'heartbeat']]);
  const d = place(input({ claims: [...onA, ...fresh], candidates: ['b'], failures, holding: ['a'] }));
  for (const c of onA) assert.equal(d.get(c.name), { kind: 'keep', node: 'a' });
  assert.equal(d.get('new'), { kind: 'assign', node: 'b' });
  // Without the hold (its probes fail too) they move.
  const moved = place(input({ claims: onA, candidates: ['b'], failures }));
  for (const c of onA) assert.is(moved.get(c.name)?.kind, 'move');
});

test('no candidate at all: pending, staying where it is', () => {
  const d = place(input({ claims: claims(1, { current: 'a' }), candidates: [], failures: new Map([['a', 'heartbeat']]) }));
  assert.equal(d.get('c000'), { kind: 'pending', reason: 'NoCandidateNode', message: 'no healthy agent node is available', node: 'a' });
  const fresh = place(input({ claims: claims(1), candidates: [] }));
  assert.is(fresh.get('c000')?.kind, 'pending');
});

test('first-alive: every claim on the first healthy node by name', () => {
  const d = place(input({ claims: claims(5), candidates: ['n3', 'n1', 'n2'], strategy: 'first-alive' }));
  assert.equal(counts(d), { n1: 5 });
  const after = place(
    input({
      claims: claims(5, { current: 'n1' }),
      candidates: ['n2', 'n3'],
      strategy: 'first-alive',
      failures: new Map([['n1', 'draining']]),
    }),
  );
  assert.equal(counts(after), { n2: 5 });
  // n1 back: no move without --rebalance; with it, all go back.
  const back = place(input({ claims: claims(5, { current: 'n2' }), candidates: ['n1', 'n2', 'n3'], strategy: 'first-alive' }));
  assert.equal(counts(back), { n2: 5 });
  const rebalanced = place(
    input({ claims: claims(5, { current: 'n2' }), candidates: ['n1', 'n2', 'n3'], strategy: 'first-alive', rebalance: true }),
  );
  assert.equal(counts(rebalanced), { n1: 5 });
});

test('ETP Local: only nodes with a serving endpoint; none -> stays with a reason', () => {
  const local: ClaimToPlace = { name: 'l', address: '192.0.2.1', localServices: ['ns/web'], current: 'a' };
  const endpoints = new Map([['ns/web', new Set(['c'])]]);
  const d = place(input({ claims: [local], candidates: ['a', 'b', 'c'], endpointNodes: endpoints }));
  assert.equal(d.get('l'), { kind: 'move', from: 'a', to: 'c', reason: 'no-endpoint' });
  const none = place(input({ claims: [local], candidates: ['a', 'b'], endpointNodes: new Map([['ns/web', new Set(['z'])]]) }));
  const x = none.get('l');
  assert.is(x?.kind, 'pending');
  if (x?.kind === 'pending') {
    assert.is(x.reason, 'NoServingEndpoint');
    assert.is(x.node, 'a');
    assert.match(x.message, /stays on a/);
  }
  // Endpoints on a non-candidate node do not count.
  const bad = place(
    input({
      claims: [{ ...local, current: undefined } as ClaimToPlace],
      candidates: ['a'],
      endpointNodes: new Map([['ns/web', new Set(['b'])]]),
    }),
  );
  assert.is(bad.get('l')?.kind, 'pending');
});

test('ETP Local balances among the endpoint nodes', () => {
  const cs = claims(6, { localServices: ['ns/web'] });
  const d = place(input({ claims: cs, candidates: ['a', 'b', 'c'], endpointNodes: new Map([['ns/web', new Set(['b', 'c'])]]) }));
  assert.equal(counts(d), { b: 3, c: 3 });
});

test.run();
