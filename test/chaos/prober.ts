// Runs inside the client namespace (`ip netns exec <client> node --import tsx prober.ts ...`):
// every intervalMs, one ARP request or neighbour solicitation per address listed in the
// targets file (one address a line, re-read when it changes), out of iface through an
// AF_PACKET socket (koffi, as the agent's sender; the socket belongs to this namespace).
// Bounded by maxMs and by SIGTERM. Usage:
//   prober.ts <iface> <mac> <ip4> <ip6> <targets-file> <intervalMs> <maxMs>
import { readFileSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import { sockaddrLl } from '../../agent/packets.js';
import { probeFrame } from './probe-frames.js';

const [iface, mac, ip4, ip6, targetsFile, intervalText, maxText] = process.argv.slice(2);
if (!iface || !mac || !ip4 || !ip6 || !targetsFile || !intervalText || !maxText) {
  process.stderr.write('usage: prober.ts <iface> <mac> <ip4> <ip6> <targets-file> <intervalMs> <maxMs>\n');
  process.exit(2);
}
const { default: koffi } = await import('koffi');
const libc = koffi.load('libc.so.6');
const socket = libc.func('int socket(int, int, int)');
const sendto = libc.func('long sendto(int, const uint8_t *, unsigned long, int, const uint8_t *, uint32_t)');
const fd = socket(17, 3, 0) as number; // AF_PACKET, SOCK_RAW, protocol 0: send only
if (fd < 0) throw new Error(`socket(AF_PACKET) failed: errno ${koffi.errno()}`);
const ifindex = Number(readFileSync(`/sys/class/net/${iface}/ifindex`, 'utf8').trim());
const client = { mac, ip4, ip6 };
const little = endianness() === 'LE';

let targets: string[] = [];
let seenMtime = -1;
function reload(): void {
  try {
    const mtime = statSync(targetsFile as string).mtimeMs;
    if (mtime === seenMtime) return;
    seenMtime = mtime;
    targets = readFileSync(targetsFile as string, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
  } catch {
    targets = [];
  }
}

let sent = 0;
let errors = 0;
const deadline = Date.now() + Number(maxText);
let stopping = false;
process.on('SIGTERM', () => (stopping = true));
const timer = setInterval(() => {
  if (stopping || Date.now() > deadline) {
    clearInterval(timer);
    process.stdout.write(`sent ${sent} errors ${errors}\n`);
    process.exit(0);
  }
  reload();
  for (const target of targets) {
    try {
      const frame = probeFrame(client, target);
      const addr = sockaddrLl(ifindex, frame.ethertype, frame.destination, little);
      const n = Number(sendto(fd, frame.bytes, frame.bytes.length, 0, addr, addr.length));
      if (n === frame.bytes.length) sent++;
      else errors++;
    } catch {
      errors++;
    }
  }
}, Number(intervalText));
process.stdout.write('ready\n');
