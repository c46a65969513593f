// The receive path for conflict detection (issue 12): one AF_PACKET socket per interface,
// opened through koffi like the sender (frames.ts), non-blocking and drained from the event
// loop. A classic BPF filter in the kernel passes only ARP and ICMPv6 neighbour solicitations
// and advertisements, so a busy segment costs the agent nothing for the rest of its traffic.
// The socket receives the frames the host sends too; those carry one of our own MACs and are
// never conflicts.
import { endianness } from 'node:os';
import { sockaddrLl } from './packets.js';
import { parseSighting, type Sighting } from './probes.js';

/** Port: the sightings received on one interface since the last drain. */
export interface SightingReceiver {
  drain(): Sighting[];
  close(): void;
}

/** Opens receivers; null means no receive path (probing and defence are off). */
export interface SightingSource {
  open(ifindex: number): SightingReceiver;
}

const AF_PACKET = 17;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const ETH_P_ALL = 0x0003;
const SOL_SOCKET = 1;
const SO_ATTACH_FILTER = 26;
const MSG_DONTWAIT = 0x40;
const FRAME_BUFFER = 2048;
/** A drain reads at most this many frames, so a flood cannot hold the event loop. */
const MAX_FRAMES_PER_DRAIN = 512;

/** struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}: ARP, or IPv6 with ICMPv6 type 135 / 136 (no extension headers). */
export const NEIGHBOUR_FILTER: Array<[number, number, number, number]> = [
  [0x28, 0, 0, 12], // ldh [12]            EtherType
  [0x15, 6, 0, 0x0806], // jeq ARP        -> accept
  [0x15, 0, 6, 0x86dd], // jeq IPv6 ...   else drop
  [0x30, 0, 0, 20], // ldb [20]            next header
  [0x15, 0, 4, 58], // jeq ICMPv6 ...     else drop
  [0x30, 0, 0, 54], // ldb [54]            ICMPv6 type
  [0x15, 1, 0, 135], // jeq NS            -> accept
  [0x15, 0, 1, 136], // jeq NA ...        else drop
  [0x06, 0, 0, 0x40000], // ret accept
  [0x06, 0, 0, 0], // ret drop
];

interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Buffer, len: number): number;
  attachFilter(fd: number, program: Array<[number, number, number, number]>): number;
  recv(fd: number, buf: Buffer, len: number, flags: number): number;
  close(fd: number): number;
  errno(): number;
}

async function loadLibc(): Promise<Libc> {
  const { default: koffi } = await import('koffi');
  const lib = koffi.load('libc.so.6');
  const SockFilter = koffi.struct('ipc_sock_filter', { code: 'uint16_t', jt: 'uint8_t', jf: 'uint8_t', k: 'uint32_t' });
  const SockFprog = koffi.struct('ipc_sock_fprog', { len: 'uint16_t', filter: koffi.pointer(SockFilter) });
  const socket = lib.func('int socket(int, int, int)');
  const bind = lib.func('int bind(int, const uint8_t *, uint32_t)');
  const setsockopt = lib.func('int setsockopt(int, int, int, const ipc_sock_fprog *, uint32_t)');
  const recv = lib.func('long recv(int, _Out_ uint8_t *, unsigned long, int)');
  const close = lib.func('int close(int)');
  return {
    socket: (d, t, p) => socket(d, t, p) as number,
    bind: (fd, addr, len) => bind(fd, addr, len) as number,
    attachFilter: (fd, program) => {
      const mem = koffi.alloc(SockFilter, program.length);
      koffi.encode(
        mem,
        koffi.array(SockFilter, program.length),
        program.map(([code, jt, jf, k]) => ({ code, jt, jf, k })),
      );
      try {
        return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, { len: program.length, filter: mem }, koffi.sizeof(SockFprog)) as number;
      } finally {
        koffi.free(mem); // the kernel copied the program
      }
    },
    recv: (fd, buf, len, flags) => Number(recv(fd, buf, len, flags)),
    close: (fd) => close(fd) as number,
    errno: () => koffi.errno(),
  };
}

export async function packetSightingSource(): Promise<SightingSource> {
  const libc = await loadLibc();
  const littleEndian = endianness() === 'LE';
  return {
    open(ifindex) {
      // Protocol 0 first: nothing is queued before the filter is on and the socket is bound.
      const fd = libc.socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) throw new Error(`socket(AF_PACKET) for receiving failed: errno ${libc.errno()} (the agent needs CAP_NET_RAW)`);
      const fail = (what: string): never => {
        const errno = libc.errno();
        libc.close(fd);
        throw new Error(`${what} on ifindex ${ifindex} failed: errno ${errno}`);
      };
      if (libc.attachFilter(fd, NEIGHBOUR_FILTER) !== 0) fail('SO_ATTACH_FILTER');
      const addr = sockaddrLl(ifindex, 0, new Uint8Array(6), littleEndian);
      addr.writeUInt16BE(ETH_P_ALL, 2); // sll_protocol, network order
      if (libc.bind(fd, addr, addr.length) !== 0) fail('bind');
      const buf = Buffer.alloc(FRAME_BUFFER);
      let open = true;
      return {
        drain() {
          const out: Sighting[] = [];
          for (let i = 0; open && i < MAX_FRAMES_PER_DRAIN; i++) {
            const n = libc.recv(fd, buf, buf.length, MSG_DONTWAIT);
            if (n < 0) break; // EAGAIN: nothing more queued (any other error: try again next drain)
            const s = parseSighting(Buffer.from(buf.subarray(0, n)));
            if (s) out.push(s);
          }
          return out;
        },
        close() {
          if (open) libc.close(fd);
          open = false;
        },
      };
    },
  };
}
