// The kernel's silences on the wire. The yield (agent/kernelyield.ts): a node holding an
// address stops answering ARP / NS for it the moment another agent of ours announces it, and
// answers again once those announcements stop; a host that is not one of our agents changes
// nothing. The hold (agent/deadman.ts deadmanHold): an address about to go up is not answered
// until the dead-man switch marks it live. Answers are asked for with arping / ndisc6 from
// another namespace. Needs root.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../controlplane/harness.js';
import { Lab, type Netns } from '../lab/index.js';
import { peerList, yieldPeers, yieldTables } from '../../agent/kernelyield.js';
import { deadmanHold, deadmanRefresh, deadmanTables } from '../../agent/deadman.js';

const V4 = '192.0.2.60';
const V6 = '2001:db8:40::60';
// Long enough that the checks right after an announcement fall inside it on a busy machine.
const HOLD_MS = 5000;

async function answers(lab: Lab, from: Netns): Promise<{ v4: boolean; v6: boolean }> {
  const [v4, v6] = await Promise.all([
    lab.exec(from, ['arping', '-c', '1', '-w', '1', '-I', 'eth0', V4]),
    lab.exec(from, ['ndisc6', '-1', '-r', '1', '-w', '1000', V6, 'eth0']),
  ]);
  return { v4: v4.code === 0, v6: v6.code === 0 };
}

async function announce(lab: Lab, from: Netns): Promise<void> {
  const sent = await lab.exec(from, [process.execPath, '--import', 'tsx', 'test/support/announce.ts', 'eth0', V4, V6]);
  assert.is(sent.code, 0, sent.stderr);
}

test('a peer agent announcing an address silences this kernel for it until its announcements stop; another host does not', async () => {
  const lab = Lab.create();
  try {
    const holder = await lab.addNamespace('holder');
    const peer = await lab.addNamespace('peer');
    const stranger = await lab.addNamespace('stranger');
    await lab.attach(holder, { mac: '02:00:5e:40:00:0a', addresses: ['192.0.2.10/24', '2001:db8:40::a/64', `${V4}/32`, `${V6}/128`] });
    const p = await lab.attach(peer, { mac: '02:00:5e:40:00:0b', addresses: ['192.0.2.11/24', '2001:db8:40::b/64'] });
    await lab.attach(stranger, { mac: '02:00:5e:40:00:0c', addresses: ['192.0.2.12/24', '2001:db8:40::c/64'] });
    const made = await lab.exec(holder, ['nft', '-f', '-'], yieldTables(undefined, HOLD_MS) + yieldPeers(peerList([p.mac])));
    assert.is(made.code, 0, made.stderr);

    // The peer's own requests (its MAC, its own address as sender) silence nothing.
    await waitFor('holder answers for both addresses', async () => Object.values(await answers(lab, peer)).every(Boolean), 15_000, 200);

    await announce(lab, stranger);
    assert.equal(await answers(lab, peer), { v4: true, v6: true }, 'a host that is not one of our agents silences nothing');

    await announce(lab, peer);
    assert.equal(await answers(lab, peer), { v4: false, v6: false }, 'silent right after the peer announced');
    const yielded = await lab.exec(holder, ['nft', 'list', 'set', 'arp', 'ipcontroller_yield', 'yielded']);
    assert.match(yielded.stdout, V4);

    await waitFor(
      'holder answers again once the peer stopped announcing',
      async () => Object.values(await answers(lab, peer)).every(Boolean),
      HOLD_MS + 15_000,
      200,
    );
  } finally {
    await lab.destroy();
  }
});

test('an address held by the dead-man switch is not answered until a refresh marks it live', async () => {
  const lab = Lab.create();
  try {
    const holder = await lab.addNamespace('holder');
    const asker = await lab.addNamespace('asker');
    await lab.attach(holder, { mac: '02:00:5e:41:00:0a', addresses: ['192.0.2.10/24', '2001:db8:40::a/64'] });
    await lab.attach(asker, { mac: '02:00:5e:41:00:0b', addresses: ['192.0.2.11/24', '2001:db8:40::b/64'] });
    const made = await lab.exec(holder, ['nft', '-f', '-'], deadmanTables() + deadmanHold([V4, V6]));
    assert.is(made.code, 0, made.stderr);
    for (const cidr of [`${V4}/32`, `${V6}/128`]) {
      const added = await lab.exec(holder, ['ip', 'addr', 'add', cidr, 'dev', 'eth0', ...(cidr.includes(':') ? ['nodad'] : [])]);
      assert.is(added.code, 0, added.stderr);
    }
    assert.equal(await answers(lab, asker), { v4: false, v6: false }, 'held: up on the interface, not answered');
    const live = await lab.exec(holder, ['nft', '-f', '-'], deadmanRefresh([V4, V6], 60_000));
    assert.is(live.code, 0, live.stderr);
    await waitFor('answered once live', async () => Object.values(await answers(lab, asker)).every(Boolean), 15_000, 200);
  } finally {
    await lab.destroy();
  }
});

test.run();
