// The invariant checker, written once for the chaos matrix, the soak and any scenario or
// benchmark that wants it (issue 9). It runs beside a two-node lab and reads:
// - the wire: tcpdump on the client's link (every ARP and NA, decoded into wire.ts's judge)
//   while prober.ts asks "who has" for every claimed address every ~100 ms, so a kernel that
//   still answers is seen even when no agent announces (invariant 1);
// - the API and each agent node's `ip -j addr` every sampleEveryMs (invariants 2, 3, 4,
//   judged in state.ts, with persistence.ts deciding when a discrepancy is a violation);
// - a watch on the IpClaims: a claim deleted while a Service still asks for its address is a
//   violation at once (a stale leader's write landing).
// Faults are announced with faultStarted()/faultEnded() so convergence is judged from the end
// of the last fault; a graceful handover announces its make-before-break window with
// allowOverlap(). Client downtime (invariant 5) is measured by the caller's request loop.
import { createWriteStream, writeFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Watch, type V1Service } from '@kubernetes/client-node';
import { parseIpClaim } from '../../api/parse.js';
import type { IpClaim } from '../../api/types.js';
import type { TwoNodeLab } from '../e2e/twonode.js';
import { startCapture, type Capture } from '../lab/index.js';
import type { LabProcess } from '../lab/lab.js';
import { Persistence, type StateViolation } from './persistence.js';
import {
  addressChanges,
  checkSnapshot,
  deletedLiveClaim,
  parseAddresses,
  type Discrepancy,
  type IngressMemory,
  type Snapshot,
} from './state.js';
import { WireJudge, type AllowedOverlap, type WireEpisode, type WireMove } from './wire.js';

const PROBER = fileURLToPath(new URL('./prober.ts', import.meta.url));
const WIRE_FILTER = 'arp or (icmp6 and ip6[40] == 136)';

export interface CheckerOptions {
  /** How long a discrepancy may last after the last fault ended (default 15 s). */
  graceMs?: number;
  probeIntervalMs?: number;
  sampleEveryMs?: number;
  /** Upper bound on the run; the prober and capture stop by themselves after it. */
  maxMs: number;
  /** Folder for the capture file and the prober's log. */
  outDir: string;
  /** Addresses to ask for besides the claimed ones. */
  extraTargets?: string[];
  log?: (message: string) => void;
}

export interface FaultWindow {
  kind: string;
  start: number;
  end?: number;
}

export interface LiveClaimDelete {
  t: number;
  claim: string;
  detail: string;
}

export interface CheckerReport {
  wire: {
    frames: number;
    moves: number;
    violations: (WireEpisode & { fault?: string | undefined })[];
    overlaps: { ip: string; start: number; lengthMs: number }[];
    pcap: string;
    dropped?: number;
  };
  state: {
    samples: number;
    sampleErrors: number;
    violations: (StateViolation & { fault?: string | undefined })[];
    pendingAtEnd: Discrepancy[];
  };
  liveClaimDeletes: (LiveClaimDelete & { fault?: string | undefined })[];
  leakedAtEnd: string[];
  faults: FaultWindow[];
}

export interface Checker {
  readonly judge: WireJudge;
  faultStarted(kind: string): FaultWindow;
  faultEnded(window: FaultWindow): void;
  /** Allows mac to overlap with a new owner from `from` to `to` (the returned window's `to` may be moved later). */
  allowOverlap(mac: string, from: number, to: number): AllowedOverlap;
  /** One snapshot now (also fed to the persistence tracker). */
  sample(): Promise<Discrepancy[]>;
  /** Waits until a snapshot shows no discrepancy, or timeoutMs; returns what is left. */
  settle(timeoutMs: number): Promise<Discrepancy[]>;
  /** Wire moves of ip between from and to. */
  movesOf(ip: string, from: number, to?: number): WireMove[];
  violationCount(): number;
  stop(): Promise<CheckerReport>;
}

export async function snapshotOf(lab: TwoNodeLab): Promise<Snapshot> {
  const [services, claims, pools] = await Promise.all([lab.core.listServiceForAllNamespaces(), lab.ip.claims.list(), lab.ip.pools.list()]);
  const nodeAddresses: Snapshot['nodeAddresses'] = {};
  for (const node of lab.nodes.filter((n) => n.labelled)) {
    const r = await lab.lab.exec(node.ns, ['ip', '-j', 'addr', 'show', 'dev', 'eth0']);
    if (r.code === 0) nodeAddresses[node.name] = parseAddresses(r.stdout);
  }
  return { services: services.items, claims: claims.items, pools: pools.items, nodeAddresses };
}

/** The fault a moment falls in (or the last one that ended within slackMs before it). */
export function faultAt(faults: FaultWindow[], t: number, slackMs = 30_000): string | undefined {
  const hit = [...faults].reverse().find((f) => t >= f.start && t <= (f.end ?? Infinity) + slackMs);
  return hit?.kind;
}

export async function startChecker(lab: TwoNodeLab, options: CheckerOptions): Promise<Checker> {
  const graceMs = options.graceMs ?? 15_000;
  const log = options.log ?? ((): void => undefined);
  const judge = new WireJudge();
  const persistence = new Persistence(graceMs);
  const faults: FaultWindow[] = [];
  const liveDeletes: LiveClaimDelete[] = [];
  const targetsFile = join(options.outDir, 'probe-targets');
  const pcapPath = join(options.outDir, 'client.pcap');
  writeFileSync(targetsFile, '');
  const pcap: WriteStream = createWriteStream(pcapPath);
  let stopped = false;
  let samples = 0;
  let sampleErrors = 0;
  let last: Snapshot | undefined;
  let targets = '';
  const ingressMemory: IngressMemory = new Map();

  const capture: Capture = await startCapture(lab.client.ns, lab.client.port.ifname, WIRE_FILTER, {
    keep: false,
    onFrame: (f) => judge.push(f),
    onChunk: (c) => pcap.write(c),
  });
  const prober: LabProcess = lab.lab.spawn(
    lab.client.ns,
    [
      process.execPath,
      '--import',
      'tsx',
      PROBER,
      lab.client.port.ifname,
      lab.client.port.mac,
      lab.client.ip4,
      lab.client.ip6,
      targetsFile,
      String(options.probeIntervalMs ?? 100),
      String(options.maxMs),
    ],
    { label: 'chaos-prober', logFile: join(options.outDir, 'prober.log') },
  );

  const updateTargets = (snap: Snapshot): void => {
    const ips = new Set([...(options.extraTargets ?? []), ...snap.claims.map((c) => c.spec.cidr.split('/')[0] ?? '')]);
    const text = [...ips].filter(Boolean).sort().join('\n') + '\n';
    if (text !== targets) {
      targets = text;
      writeFileSync(targetsFile, text);
    }
  };

  const sample = async (): Promise<Discrepancy[]> => {
    try {
      const snap = await snapshotOf(lab);
      last = snap;
      samples++;
      updateTargets(snap);
      const found = [...checkSnapshot(snap), ...addressChanges(ingressMemory, snap.services)];
      for (const v of persistence.observe(Date.now(), found)) log(`VIOLATION ${v.invariant}: ${v.detail}`);
      return found;
    } catch (err) {
      sampleErrors++;
      throw err;
    }
  };

  // The sampler: one snapshot at a time, every sampleEveryMs.
  const sampler = (async () => {
    while (!stopped) {
      const started = Date.now();
      await sample().catch(() => undefined);
      await new Promise((r) => setTimeout(r, Math.max(50, (options.sampleEveryMs ?? 1000) - (Date.now() - started))));
    }
  })();

  // The claim watch: every DELETED claim is checked against the Services it named.
  let watchAbort: AbortController | undefined;
  const onDeleted = async (raw: unknown): Promise<void> => {
    const parsed = parseIpClaim(raw);
    if (!parsed.ok) return;
    const claim: IpClaim = parsed.value;
    const t = Date.now();
    const services = await Promise.all(
      (claim.spec.services ?? []).map(async (key): Promise<V1Service | null> => {
        const [namespace = '', name = ''] = key.split('/');
        try {
          return await lab.core.readNamespacedService({ name, namespace });
        } catch {
          return null;
        }
      }),
    );
    const detail = deletedLiveClaim(claim, services);
    if (detail) {
      liveDeletes.push({ t, claim: claim.metadata.name ?? '', detail });
      log(`VIOLATION live-claim-deleted: ${detail}`);
    }
  };
  const watchLoop = async (): Promise<void> => {
    while (!stopped) {
      const ended = new Promise<void>((resolve) => {
        new Watch(lab.kc)
          .watch(
            '/apis/ipcontroller.ext/v1/ipclaims',
            { allowWatchBookmarks: false },
            (phase: string, obj: unknown) => {
              if (phase === 'DELETED') void onDeleted(obj);
            },
            () => resolve(),
          )
          .then((abort) => (watchAbort = abort))
          .catch(() => resolve());
      });
      await ended;
      if (!stopped) await new Promise((r) => setTimeout(r, 500));
    }
  };
  const watching = watchLoop();

  const report = (pendingAtEnd: Discrepancy[], leakedAtEnd: string[], dropped?: number): CheckerReport => ({
    wire: {
      frames: judge.frames,
      moves: judge.moves.filter((m) => m.from !== null).length,
      violations: judge.violations().map((e) => ({ ...e, fault: faultAt(faults, e.start) })),
      overlaps: judge.overlaps(),
      pcap: pcapPath,
      ...(dropped !== undefined ? { dropped } : {}),
    },
    state: {
      samples,
      sampleErrors,
      violations: persistence.violations.map((v) => ({ ...v, fault: faultAt(faults, v.since) })),
      pendingAtEnd,
    },
    liveClaimDeletes: liveDeletes.map((d) => ({ ...d, fault: faultAt(faults, d.t) })),
    leakedAtEnd,
    faults,
  });

  const checker: Checker = {
    judge,
    faultStarted(kind) {
      const w: FaultWindow = { kind, start: Date.now() };
      faults.push(w);
      persistence.faultStarted();
      return w;
    },
    faultEnded(w) {
      if (w.end !== undefined) return;
      w.end = Date.now();
      persistence.faultEnded(w.end);
    },
    allowOverlap(mac, from, to) {
      const w: AllowedOverlap = { mac, from, to };
      judge.allowOverlap(w);
      return w;
    },
    sample,
    async settle(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      let left: Discrepancy[] = [];
      while (Date.now() < deadline) {
        left = await sample().catch(() => [{ invariant: 'address-not-up' as const, subject: 'api', detail: 'API not readable' }]);
        if (left.length === 0) return [];
        await new Promise((r) => setTimeout(r, 500));
      }
      return left;
    },
    movesOf(ip, from, to = Infinity) {
      return judge.moves.filter((m) => m.ip === ip && m.from !== null && m.t >= from && m.t <= to);
    },
    violationCount() {
      return judge.violations().length + persistence.violations.length + liveDeletes.length;
    },
    async stop() {
      stopped = true;
      watchAbort?.abort();
      await sampler;
      const pendingAtEnd = last ? checkSnapshot(last) : [];
      const leakedAtEnd = pendingAtEnd.filter((d) => d.invariant === 'leaked-address').map((d) => d.subject);
      prober.signal('SIGTERM');
      await Promise.race([prober.exited, new Promise((r) => setTimeout(r, 3000))]);
      // Let the last answers reach the capture before it stops.
      await new Promise((r) => setTimeout(r, 300));
      await capture.stop();
      judge.finish();
      await new Promise<void>((resolve) => pcap.end(() => resolve()));
      await Promise.race([watching, new Promise((r) => setTimeout(r, 2000))]);
      return report(pendingAtEnd, leakedAtEnd, capture.dropped());
    },
  };
  return checker;
}
