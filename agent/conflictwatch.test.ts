import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import { ManualClock } from '../lib/manualclock.js';
import type { AddressOp, HostLink } from './addresses.js';
import { ConflictWatch } from './conflictwatch.js';
import type { KubePort } from './kube.js';

const link = (name: string, ifindex: number, mac: string | null): HostLink => ({
  name,
  ifindex,
  mac,
  up: true,
  noArp: false,
  addresses: [],
});

test('without a guard every add goes ahead, and our MACs are the interfaces with a real Ethernet address', () => {
  const watch = new ConflictWatch(
    undefined,
    { nodeName: 'node-a', resyncMs: 20_000 },
    {
      kube: {} as KubePort,
      clock: new ManualClock(),
      logger: pino({ level: 'silent' }),
    },
  );
  const ops: AddressOp[] = [{ op: 'add', ip: '192.0.2.50', prefixLength: 32, family: 'inet', iface: 'eth0', claim: 'c1' }];
  const links = [
    link('lo', 1, '00:00:00:00:00:00'),
    link('eth1', 3, '02:00:5e:00:53:02'),
    link('eth0', 2, '02:00:5e:00:53:01'),
    link('tun0', 4, null),
  ];
  const wanted = [{ claim: 'c1', ip: '192.0.2.50', prefixLength: 32, family: 'inet' as const }];
  assert.equal(watch.serving(wanted), wanted);
  const guarded = watch.holdAdds(ops, links, new Map());
  assert.equal(guarded, { ops, waiting: new Set(), conflicts: new Map() });
  assert.equal(watch.ownMacs, ['02:00:5e:00:53:01', '02:00:5e:00:53:02']);
  const conflicts = new Map<string, string>();
  watch.addWithdrawn(wanted, conflicts);
  assert.is(conflicts.size, 0);
});

test.run();
