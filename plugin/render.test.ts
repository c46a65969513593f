// What the plugin prints: tables as kubectl aligns them, colour only on a terminal, status rows
// with the last move and its duration, history merging Events with what the claim keeps, and the
// command line.
import { stripVTControlCharacters } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parse as parseYaml } from 'yaml';
import { MOVE_ANNOTATION } from '../api/types.js';
import { parseCommand, serviceKey } from './args.js';
import { historyOf } from './history.js';
import { poolOverlaps, statusModel } from './model.js';
import { age, COLOUR, PLAIN, renderData, renderHistory, renderStatus, styleFor, table } from './render.js';
import type { ServiceEvent } from './snapshot.js';

const ESC = '\u001b';
import { claim, ipNode, iso, NOW, snapshot, svc } from '../test/support/plugin-fixtures.js';

const moved = {
  from: 'node-a',
  to: 'node-b',
  reason: 'probe',
  detectedAt: iso(NOW - 120_000),
  claimedAt: iso(NOW - 119_950),
  upAt: iso(NOW - 119_600),
};

test('table pads to the widest cell, ignoring colour codes', () => {
  assert.is(
    stripVTControlCharacters(
      table(
        ['A', 'LONGER'],
        [
          ['xx', 'y'],
          [COLOUR.ok('z'), 'w'],
        ],
      ),
    ),
    'A    LONGER\nxx   y\nz    w',
  );
});

test('age reads like kubectl', () => {
  assert.equal([age(4_000), age(192_000), age(45 * 60_000), age(125 * 60_000), age(3 * 86_400_000)], ['4s', '3m12s', '45m', '2h5m', '3d']);
});

test('colour only on a terminal and without NO_COLOR', () => {
  assert.is(styleFor(true, {}), COLOUR);
  assert.is(styleFor(false, {}), PLAIN);
  assert.is(styleFor(true, { NO_COLOR: '1' }), PLAIN);
  assert.is(styleFor(true, { TERM: 'dumb' }), PLAIN);
});

test('status: every address with Services, node, phase, since and the last move with its duration; nodes with verdict, RTT and claims; pools with overlaps', () => {
  const overlapping = {
    ok: true as const,
    pool: {
      apiVersion: 'ipcontroller.ext/v1' as const,
      kind: 'IpClaimPool' as const,
      metadata: { name: 'p2' },
      spec: { cidr: '192.0.2.0/31' },
    },
  };
  const snap = snapshot({
    services: [svc('web'), svc('api')],
    ipNodes: [ipNode('node-a', { beatAgoMs: 30_000, held: 0 }), ipNode('node-b', { held: 1, probe: { rttMs: 0.42 } })],
    claims: [
      claim('192.0.2.1', ['ns/api', 'ns/web'], 'node-b', {
        status: { phase: 'Assigned', node: 'node-b', lastMove: moved, lastTransitionTime: iso(NOW - 7_200_000) },
      }),
    ],
    pools: [...snapshot().pools, overlapping],
  });
  const model = statusModel(snap);
  const text = renderStatus(model, PLAIN);
  assert.match(text, /Scheduler leader: sched-1 \(renewed 0s ago\)/);
  assert.match(text, /192\.0\.2\.1\s+ns\/api, ns\/web\s+p1\s+node-b\s+Assigned\s+1m59s\s+node-a -> node-b \(probe\) in 0\.400s, 1m59s ago/);
  assert.match(text, /node-a\s+True\s+no: heartbeat\s+-\s+0\/0\s+no\s+no\s+30s ago/);
  assert.match(text, /node-b\s+True\s+yes\s+0\.42ms\s+1\/1\s+no\s+no\s+0s ago/);
  assert.match(text, /p1\s+192\.0\.2\.0\/30\s+-\s+-\s+True\s+p2/);
  assert.not.ok(text.includes(`${ESC}[`), 'no colour when not on a terminal');
  assert.ok(renderStatus(model, COLOUR).includes(`${ESC}[32mAssigned${ESC}[0m`));
  assert.equal(poolOverlaps(snap).get('p2'), ['p1']);
  const json = JSON.parse(renderData(model, 'json')) as typeof model;
  assert.equal(json.addresses[0]?.lastMove?.durations, { toClaim: 0.05, toUp: 0.35, total: 0.4 });
  assert.equal(parseYaml(renderData(model, 'yaml')), json);
});

test('history: Events and what the claim keeps, oldest first; a move told by an Event is not repeated from status', () => {
  const c = claim('192.0.2.1', ['ns/web'], 'node-b', {
    status: {
      phase: 'Assigned',
      node: 'node-b',
      lastMove: moved,
      conditions: [{ type: 'Announced', status: 'True', reason: 'AddressUp', message: 'up', lastTransitionTime: iso(NOW - 3_000_000) }],
    },
  });
  const events: ServiceEvent[] = [
    {
      at: NOW - 119_500,
      firstAt: NOW - 119_500,
      count: 1,
      type: 'Normal',
      reason: 'IPMoved',
      message: '192.0.2.1 moved from node node-a to node-b: probe; took 0.400s (...)',
      source: 'ipcontroller-scheduler',
    },
    {
      at: NOW - 600_000,
      firstAt: NOW - 600_000,
      count: 1,
      type: 'Normal',
      reason: 'IPAssigned',
      message: '192.0.2.1 assigned to node node-a',
      source: 'ipcontroller-scheduler',
    },
  ];
  const h = historyOf('ns/web', [c], events);
  assert.equal(
    h.entries.map((e) => `${e.source} ${e.reason}`),
    ['claim ClaimCreated', 'event IPAssigned', 'claim AddressUp', 'event IPMoved'],
    'up on node-b when the move brought it there',
  );
  assert.is(h.eventsSince, iso(NOW - 600_000));
  const noEvents = historyOf('ns/web', [c], []);
  const move = noEvents.entries.find((e) => e.reason === 'IPMoved');
  assert.is(move?.source, 'claim', 'Events expired: the claim still tells the last move');
  assert.is(
    move?.message,
    '192.0.2.1 moved from node node-a to node-b: probe; took 0.400s (failure detected -> claim written 0.050s -> address up on node-b 0.350s)',
  );
  assert.match(
    renderHistory(noEvents, PLAIN, NOW),
    /No Events found\. Events are kept by the apiserver for --event-ttl \(1 hour by default\)/,
  );
});

test("history: a move the new node has not reported up yet comes from the scheduler's record", () => {
  const c = claim('192.0.2.1', ['ns/web'], 'node-b', {
    metadata: { annotations: { [MOVE_ANNOTATION]: JSON.stringify({ ...moved, upAt: undefined }) } },
  });
  const entry = historyOf('ns/web', [c], []).entries.find((e) => e.reason === 'IPMoving');
  assert.match(entry?.message ?? '', /not reported up on node-b yet$/);
});

test('command line: verbs, -o, -n, -w, and clear errors', () => {
  const s = parseCommand(['status', '-o', 'json', '-w', '--interval', '500ms', '--kubeconfig', '/k']);
  assert.ok(
    s.ok &&
      s.command.kind === 'status' &&
      s.command.watch &&
      s.command.intervalMs === 500 &&
      s.command.output === 'json' &&
      s.command.kubeconfig === '/k',
  );
  const w = parseCommand(['why', 'web', '-n', 'shop']);
  assert.ok(w.ok && w.command.kind === 'why' && w.command.service === 'web' && w.command.namespace === 'shop');
  assert.is(serviceKey('web', 'shop', 'ctx'), 'shop/web');
  assert.is(serviceKey('web', undefined, 'ctx'), 'ctx/web');
  assert.is(serviceKey('a/web', 'shop', undefined), 'a/web');
  assert.is(serviceKey('web', undefined, undefined), 'default/web');
  assert.equal(parseCommand(['status', '-o', 'wide']), { ok: false, error: '--output must be text, json or yaml, not "wide"' });
  assert.ok(!parseCommand(['why']).ok);
  assert.ok(!parseCommand(['history', 'web', '-w']).ok);
  assert.ok(!parseCommand(['frobnicate']).ok);
  assert.ok(!parseCommand(['status', '--bogus']).ok);
  const help = parseCommand([]);
  assert.ok(help.ok && help.command.kind === 'help');
});

test.run();
