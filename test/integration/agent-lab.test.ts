// The network lab the agent, e2e and benchmark tests build on: what it creates is really there,
// isolated, and gone by name afterwards, processes included. Needs root.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab, neighbour, run } from '../lab/index.js';

const namespaces = async (): Promise<string[]> =>
  (await run('ip', ['netns', 'list'])).stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);

test('namespaces on one bridge with chosen MACs, addresses and per-namespace sysctls; all deleted by name', async () => {
  const lab = Lab.create();
  let proc;
  try {
    const a = await lab.addNamespace('a', { 'net.ipv4.conf.all.arp_ignore': 1 });
    const b = await lab.addNamespace('b');
    const pa = await lab.attach(a, { mac: '02:00:5e:30:00:01', addresses: ['198.51.100.1/24', '2001:db8:c::1/64'] });
    await lab.attach(b, { ifname: 'uplink0', mac: '02:00:5e:30:00:02', addresses: ['198.51.100.2/24'] });
    assert.is(pa.mac, '02:00:5e:30:00:01');
    assert.ok((await namespaces()).includes(`${lab.prefix}-sw`));
    const ping = await lab.exec(b, ['ping', '-c', '1', '-W', '2', '198.51.100.1']);
    assert.is(ping.code, 0, ping.stderr);
    assert.is((await neighbour(lab, b, '198.51.100.1'))?.mac, '02:00:5e:30:00:01');
    assert.is((await lab.exec(a, ['sysctl', '-n', 'net.ipv4.conf.all.arp_ignore'])).stdout.trim(), '1');
    assert.is((await lab.exec(b, ['sysctl', '-n', 'net.ipv4.conf.all.arp_ignore'])).stdout.trim(), '0', 'set in a only');
    await lab.setLink(a, 'eth0', 'down');
    assert.not.equal((await lab.exec(b, ['ping', '-c', '1', '-W', '1', '198.51.100.1'])).code, 0);
    await lab.setLink(a, 'eth0', 'up');
    proc = lab.spawn(a, ['sleep', '300'], { label: 'sleeper' });
    assert.ok(proc.child.pid);
  } finally {
    await lab.destroy();
  }
  const left = (await namespaces()).filter((n) => n.startsWith(`${lab.prefix}-`));
  assert.equal(left, []);
  assert.is.not(proc?.child.exitCode === null && proc.child.signalCode === null, true, 'spawned process stopped');
});

test('prefixes are validated so names stay short and deletable', () => {
  assert.throws(() => Lab.create({ prefix: 'Bad-Prefix' }), /prefix/);
  assert.throws(() => Lab.create({ prefix: 'waytoolongprefix1' }), /prefix/);
});

test.run();
