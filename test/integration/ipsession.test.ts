// The agent's long-lived `ip -batch` session (agent/ipsession.ts) against the real iproute2 and
// kernel, in a namespace of the test's own: listings and changes in order, each failed line
// reported at its index in its own request, and a new process after the old one died. Needs root.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab, run } from '../lab/index.js';
import { IpSession } from '../../agent/ipsession.js';
import { parseIpAddrJson, type HostLink } from '../../agent/addresses.js';

async function listed(session: IpSession): Promise<HostLink[]> {
  const reply = await session.run(['addr show'], 1);
  return parseIpAddrJson(JSON.parse(reply.json[0] ?? '[]') as unknown);
}

/** The IPv4 addresses on iface (the link-local IPv6 one the kernel adds is not this test's). */
const addressesOn = (links: HostLink[], iface: string): string[] =>
  links
    .find((l) => l.name === iface)
    ?.addresses.filter((a) => a.family === 'inet')
    .map((a) => a.ip) ?? [];

test('one ip process lists, adds and removes in order; a failed line is named in its own request; a dead process is replaced', async () => {
  const lab = Lab.create();
  const session = new IpSession({ ipArgs: ['-n', `${lab.prefix}-node`] });
  try {
    const node = await lab.addNamespace('node');
    await lab.attach(node, { mac: '02:00:5e:41:00:01', addresses: ['192.0.2.10/24'] });
    assert.equal(addressesOn(await listed(session), 'eth0'), ['192.0.2.10']);

    const added = await session.run([
      'addr replace 192.0.2.61/32 dev eth0',
      'addr del 192.0.2.99/32 dev eth0',
      'addr replace 192.0.2.62/32 dev eth0',
    ]);
    assert.equal([...added.errors.keys()], [1], 'the second line (nothing to delete) failed, the others ran');
    assert.equal(addressesOn(await listed(session), 'eth0').sort(), ['192.0.2.10', '192.0.2.61', '192.0.2.62']);
    const removed = await session.run(['addr del 192.0.2.61/32 dev eth0']);
    assert.equal(removed.errors.size, 0, 'line numbers go on from the requests before');
    assert.equal(addressesOn(await listed(session), 'eth0').sort(), ['192.0.2.10', '192.0.2.62']);

    // The process dies (as if killed). A request that meets the dying process fails (the agent's
    // next reconcile runs it again); the one after it starts another process and works.
    await run('pkill', ['-KILL', '-f', `ip -n ${node.name} -j -force -batch`]);
    const afterKill = await session
      .run(['addr replace 192.0.2.63/32 dev eth0'])
      .catch(() => session.run(['addr replace 192.0.2.63/32 dev eth0']));
    assert.equal(afterKill.errors.size, 0);
    assert.ok(addressesOn(await listed(session), 'eth0').includes('192.0.2.63'));
  } finally {
    session.close();
    await lab.destroy();
  }
});

test.run();
