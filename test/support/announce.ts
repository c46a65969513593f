// Sends the announcements an agent sends for an address (agent/packets.ts, through the agent's
// AF_PACKET sender), out of one interface of the namespace it runs in, as another agent of ours
// taking an address over would: `node --import tsx test/support/announce.ts <ifname> <address>...`.
// Run it inside a lab namespace (`lab.exec(ns, [...])`); exits 0 when every frame went out.
import { execFileSync } from 'node:child_process';
import { openPacketSender } from '../../agent/frames.js';
import { announcementFrames, parseMac } from '../../agent/packets.js';

const [ifname, ...addresses] = process.argv.slice(2);
if (!ifname || addresses.length === 0) throw new Error('usage: announce.ts <ifname> <address>...');
const [link] = JSON.parse(execFileSync('ip', ['-j', 'link', 'show', ifname], { encoding: 'utf8' })) as {
  ifindex: number;
  address: string;
}[];
if (!link) throw new Error(`no interface ${ifname}`);
const sender = await openPacketSender();
try {
  for (const address of addresses) {
    for (const frame of announcementFrames(parseMac(link.address), address)) {
      const sent = sender.send(link.ifindex, frame);
      if (!sent.ok) throw new Error(sent.message);
    }
  }
} finally {
  sender.close();
}
