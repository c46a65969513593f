import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import { API_VERSION, type IpClaim, type IpClaimStatus } from '../api/types.js';
import { ManualClock } from '../lib/manualclock.js';
import type { KubePort } from './kube.js';
import { AgentMetrics } from './metrics.js';
import { ClaimNotOnThisNode } from './refusals.js';
import type { ClaimOutcome } from './status.js';
import { ClaimStatusWriter } from './statuswriter.js';

function rig(): { writer: ClaimStatusWriter; writes: { name: string; status: IpClaimStatus }[]; refuse: Set<string>; clock: ManualClock } {
  const clock = new ManualClock();
  const writes: { name: string; status: IpClaimStatus }[] = [];
  const refuse = new Set<string>();
  const kube = {
    patchClaimStatus: async (name: string, status: IpClaimStatus) => {
      if (refuse.has(name)) throw new ClaimNotOnThisNode(name, 'node-b');
      writes.push({ name, status });
    },
  } as unknown as KubePort;
  const writer = new ClaimStatusWriter('node-a', { kube, clock, logger: pino({ level: 'silent' }), metrics: new AgentMetrics() });
  return { writer, writes, refuse, clock };
}

const claim = (name: string): IpClaim => ({
  apiVersion: API_VERSION,
  kind: 'IpClaim',
  metadata: { name },
  spec: { cidr: '192.0.2.50/32', nodeName: 'node-a' },
});
const up: ClaimOutcome = { kind: 'up', ip: '192.0.2.50', iface: 'eth0' };

test('an outcome is written once; the same one again only after 10 s without the watch catching up', async () => {
  const r = rig();
  const byName = new Map([['c1', claim('c1')]]);
  await r.writer.write(new Map([['c1', up]]), byName);
  assert.equal(
    r.writes.map((w) => [w.name, w.status.phase, w.status.node]),
    [['c1', 'Assigned', 'node-a']],
  );
  await r.writer.write(new Map([['c1', up]]), byName);
  assert.is(r.writes.length, 1, 'the watch has not caught up yet: not written again');
  await r.clock.advance(10_000);
  await r.writer.write(new Map([['c1', up]]), byName);
  assert.is(r.writes.length, 2);
});

test('a changed outcome is written at once; a claim the watch shows with that status is not written', async () => {
  const r = rig();
  const c1 = claim('c1');
  await r.writer.write(new Map([['c1', up]]), new Map([['c1', c1]]));
  await r.writer.write(new Map([['c1', { kind: 'failed', reason: 'AddFailed', message: 'File exists' }]]), new Map([['c1', c1]]));
  assert.equal(
    r.writes.map((w) => w.status.phase),
    ['Assigned', 'Failed'],
  );
  const shown = { ...c1, status: r.writes[0]?.status };
  await r.writer.write(new Map([['c1', up]]), new Map([['c1', shown]]));
  assert.is(r.writes.length, 2, 'the claim already says so');
});

test('a write refused because the claim moved away is not remembered as written', async () => {
  const r = rig();
  r.refuse.add('c1');
  await r.writer.write(new Map([['c1', up]]), new Map([['c1', claim('c1')]]));
  assert.is(r.writes.length, 0);
  r.refuse.clear();
  await r.writer.write(new Map([['c1', up]]), new Map([['c1', claim('c1')]]));
  assert.is(r.writes.length, 1);
});

test.run();
