// The frame sender: one AF_PACKET socket for the life of the agent, opened through koffi
// (FFI to the C library's socket/sendto/close, no compile step and no helper process). The
// socket is opened with protocol 0, so it only sends and never queues received traffic.
// It belongs to the network namespace the process runs in, which is what the lab relies on.
import { endianness } from 'node:os';
import { sockaddrLl, type Frame } from './packets.js';

/** Port: sends one Ethernet frame out of an interface. */
export interface FrameSender {
  send(ifindex: number, frame: Frame): SendResult;
  close(): void;
}

export type SendResult = { ok: true } | { ok: false; errno: number; message: string };

const AF_PACKET = 17;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;

interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  /** sendto(2) of the whole buffer, no flags, to a sockaddr_ll. */
  sendto(fd: number, buf: Buffer, addr: Buffer): number;
  close(fd: number): number;
  errno(): number;
}

async function loadLibc(): Promise<Libc> {
  // Loaded lazily so importing the agent (and its unit tests) needs no native module.
  const { default: koffi } = await import('koffi');
  const lib = koffi.load('libc.so.6');
  const socket = lib.func('int socket(int, int, int)');
  const sendto = lib.func('long sendto(int, const uint8_t *, unsigned long, int, const uint8_t *, uint32_t)');
  const close = lib.func('int close(int)');
  return {
    socket: (d, t, p) => socket(d, t, p) as number,
    sendto: (fd, buf, addr) => Number(sendto(fd, buf, buf.length, 0, addr, addr.length)),
    close: (fd) => close(fd) as number,
    errno: () => koffi.errno(),
  };
}

const ERRNO_NAMES: Record<number, string> = { 1: 'EPERM', 6: 'ENXIO', 19: 'ENODEV', 22: 'EINVAL', 100: 'ENETDOWN', 105: 'ENOBUFS' };

export async function openPacketSender(): Promise<FrameSender> {
  const libc = await loadLibc();
  const fd = libc.socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const errno = libc.errno();
    throw new Error(`socket(AF_PACKET, SOCK_RAW) failed: errno ${errno} ${ERRNO_NAMES[errno] ?? ''} (the agent needs CAP_NET_RAW)`);
  }
  const littleEndian = endianness() === 'LE';
  let open = true;
  return {
    send(ifindex, frame) {
      if (!open) return { ok: false, errno: 9, message: 'sender closed' };
      const addr = sockaddrLl(ifindex, frame.ethertype, frame.destination, littleEndian);
      const sent = libc.sendto(fd, frame.bytes, addr);
      if (sent === frame.bytes.length) return { ok: true };
      const errno = libc.errno();
      return { ok: false, errno, message: `sendto on ifindex ${ifindex}: errno ${errno} ${ERRNO_NAMES[errno] ?? ''}`.trim() };
    },
    close() {
      if (open) libc.close(fd);
      open = false;
    },
  };
}
