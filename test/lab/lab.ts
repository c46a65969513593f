// Network-namespace lab: namespaces, a bridge in its own namespace, veth pairs with chosen
// MACs and addresses, per-namespace sysctls and processes spawned inside a namespace.
// Everything is named with a per-run prefix and deleted by name on destroy(), on process
// exit, and on SIGINT/SIGTERM. Only ever use documentation addresses (see ../../README.md).
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs a program, never throwing: the result says how it went. */
export async function run(file: string, args: string[], input?: string): Promise<ExecResult> {
  try {
    const p = execFileAsync(file, args, { maxBuffer: 64 << 20 });
    if (input !== undefined) p.child.stdin?.end(input);
    const { stdout, stderr } = await p;
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number | string };
    return { stdout: e.stdout ?? '', stderr: e.stderr ?? String(err), code: typeof e.code === 'number' ? e.code : 1 };
  }
}

/** Like run(), but throws with the command and its stderr when it fails. */
export async function must(file: string, args: string[], input?: string): Promise<string> {
  const r = await run(file, args, input);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

export interface Netns {
  /** Full namespace name, `<prefix>-<short>`. */
  name: string;
  short: string;
}

export interface Port {
  ns: Netns;
  /** Interface name inside ns (the node side of the veth). */
  ifname: string;
  /** Name of the veth end on the bridge, inside the bridge namespace. */
  bridgePort: string;
  mac: string;
  addresses: string[];
}

export interface AttachOptions {
  /** Interface name inside the namespace (default eth0). */
  ifname?: string;
  /** MAC for the interface (default: kernel-chosen). Use locally administered ones, e.g. 02:..:.. */
  mac?: string;
  /** CIDRs to put on the interface, e.g. 192.0.2.11/24, 2001:db8::11/64 (added with nodad). */
  addresses?: string[];
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** File for stdout and stderr (default: <dir>/<ns>-<label>.log). */
  logFile?: string;
  label?: string;
}

export interface LabProcess {
  child: ChildProcess;
  logFile: string;
  /** Resolves with the exit code (or signal name) when the process ends. */
  exited: Promise<number | string>;
  /** Sends a signal to the whole process group. */
  signal(sig: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after graceMs; resolves when it is gone. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<Lab>();
let hooksInstalled = false;
let signalHooksInstalled = false;

function installHooks(signals: boolean): void {
  if (!hooksInstalled) {
    hooksInstalled = true;
    process.on('exit', () => {
      for (const lab of live) lab.destroySync();
    });
  }
  if (!signals || signalHooksInstalled) return;
  signalHooksInstalled = true;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const lab of live) lab.destroySync();
      process.exit(130);
    });
  }
}

export class Lab {
  readonly namespaces: Netns[] = [];
  readonly processes = new Set<LabProcess>();
  private readonly teardowns: (() => void)[] = [];
  private bridgeNs: Netns | undefined;
  private portCount = 0;
  private destroyed = false;

  private constructor(
    /** Per-run prefix of every name, e.g. "ipc4f2a". */
    readonly prefix: string,
    /** Folder for logs, sockets and kubeconfigs of this run. */
    readonly dir: string,
    private readonly ownDir: boolean,
  ) {}

  /**
   * A new, empty lab. handleSignals (default true) deletes every live lab and exits 130 on
   * SIGINT/SIGTERM; pass false when the caller has its own handler that calls destroy().
   */
  static create(options: { prefix?: string; dir?: string; handleSignals?: boolean } = {}): Lab {
    const prefix = options.prefix ?? `ipc${process.pid.toString(36)}${Math.random().toString(36).slice(2, 4)}`;
    if (!/^[a-z0-9]{1,12}$/.test(prefix)) throw new Error(`lab prefix ${JSON.stringify(prefix)}: use 1-12 lowercase letters and digits`);
    const dir = options.dir ?? mkdtempSync(join(tmpdir(), `${prefix}-`));
    mkdirSync(dir, { recursive: true });
    const lab = new Lab(prefix, dir, options.dir === undefined);
    live.add(lab);
    installHooks(options.handleSignals ?? true);
    return lab;
  }

  /** Creates namespace <prefix>-<short> with loopback up, and sets the given sysctls in it. */
  async addNamespace(short: string, sysctls: Record<string, string | number> = {}): Promise<Netns> {
    const ns: Netns = { name: `${this.prefix}-${short}`, short };
    await must('ip', ['netns', 'add', ns.name]);
    this.namespaces.push(ns);
    await must('ip', ['-n', ns.name, 'link', 'set', 'lo', 'up']);
    await this.sysctl(ns, sysctls);
    return ns;
  }

  /** Sets sysctls inside ns only (`ip netns exec ns sysctl -w`). */
  async sysctl(ns: Netns, values: Record<string, string | number>): Promise<void> {
    for (const [key, value] of Object.entries(values)) await must('ip', ['netns', 'exec', ns.name, 'sysctl', '-qw', `${key}=${value}`]);
  }

  /** The L2 segment: namespace <prefix>-sw holding bridge br0 (created on first use). */
  async bridge(): Promise<Netns> {
    if (this.bridgeNs) return this.bridgeNs;
    const ns = await this.addNamespace('sw');
    await must('ip', ['-n', ns.name, 'link', 'add', 'br0', 'type', 'bridge']);
    // No STP delay, no multicast snooping: frames flow the moment a port is up.
    await must('ip', ['-n', ns.name, 'link', 'set', 'br0', 'type', 'bridge', 'forward_delay', '0', 'mcast_snooping', '0']);
    await must('ip', ['-n', ns.name, 'link', 'set', 'br0', 'up']);
    this.bridgeNs = ns;
    return ns;
  }

  /** A veth from ns onto the bridge: <ifname> inside ns, p<N> on the bridge, both up. */
  async attach(ns: Netns, options: AttachOptions = {}): Promise<Port> {
    const sw = await this.bridge();
    const ifname = options.ifname ?? 'eth0';
    if (ifname.length > 15) throw new Error(`interface name ${ifname} is longer than 15 characters`);
    const bridgePort = `p${++this.portCount}${ns.short}`.slice(0, 15);
    await must('ip', ['link', 'add', bridgePort, 'netns', sw.name, 'type', 'veth', 'peer', 'name', ifname, 'netns', ns.name]);
    if (options.mac) await must('ip', ['-n', ns.name, 'link', 'set', ifname, 'address', options.mac]);
    await must('ip', ['-n', sw.name, 'link', 'set', bridgePort, 'master', 'br0', 'up']);
    for (const cidr of options.addresses ?? []) {
      await must('ip', ['-n', ns.name, 'addr', 'add', cidr, 'dev', ifname, ...(cidr.includes(':') ? ['nodad'] : [])]);
    }
    await must('ip', ['-n', ns.name, 'link', 'set', ifname, 'up']);
    const mac = JSON.parse(await must('ip', ['-j', '-n', ns.name, 'link', 'show', ifname])) as { address: string }[];
    return { ns, ifname, bridgePort, mac: mac[0]?.address ?? '', addresses: options.addresses ?? [] };
  }

  /** Sets a link inside ns up or down (a cable pulled, as the e2e hard-failure scenario does). */
  async setLink(ns: Netns, ifname: string, state: 'up' | 'down'): Promise<void> {
    await must('ip', ['-n', ns.name, 'link', 'set', ifname, state]);
  }

  /** Runs a command inside ns and returns its result (never throws). */
  exec(ns: Netns, command: string[], input?: string): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', ns.name, ...command], input);
  }

  /** Starts a long-lived process inside ns, in its own process group, output to a log file. */
  spawn(ns: Netns, command: string[], options: SpawnOptions = {}): LabProcess {
    const label = options.label ?? (command[0] ?? 'proc').replace(/[^a-zA-Z0-9]/g, '_');
    return this.spawnRaw(['ip', 'netns', 'exec', ns.name, ...command], {
      ...options,
      logFile: options.logFile ?? join(this.dir, `${ns.short}-${label}.log`),
    });
  }

  /**
   * Starts a long-lived process as given (no `ip netns exec`), tracked and stopped like spawn():
   * for commands that enter namespaces themselves (nsenter), because `ip netns exec` remounts
   * /sys and so hides the cgroup mounts a kubelet needs.
   */
  spawnRaw(command: string[], options: SpawnOptions = {}): LabProcess {
    const label = options.label ?? (command[0] ?? 'proc').replace(/[^a-zA-Z0-9]/g, '_');
    const logFile = options.logFile ?? join(this.dir, `${label}.log`);
    const log = openSync(logFile, 'a');
    const [file, ...args] = command;
    if (!file) throw new Error('spawnRaw: empty command');
    const child = spawn(file, args, {
      detached: true,
      stdio: ['ignore', log, log],
      env: options.env ?? process.env,
    });
    const exited = new Promise<number | string>((resolve) => child.once('exit', (code, sig) => resolve(code ?? sig ?? 'unknown')));
    const proc: LabProcess = {
      child,
      logFile,
      exited,
      signal: (sig) => {
        try {
          if (child.pid && child.exitCode === null && child.signalCode === null) process.kill(-child.pid, sig);
        } catch {
          /* already gone */
        }
      },
      stop: async (graceMs = 5000) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        proc.signal('SIGTERM');
        const timer = setTimeout(() => proc.signal('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      },
    };
    this.processes.add(proc);
    void exited.then(() => this.processes.delete(proc));
    return proc;
  }

  /**
   * Registers a synchronous cleanup that runs once the lab's processes are stopped and before
   * its namespaces are deleted (on destroy(), on exit and on signals), for what a process leaves
   * behind outside its own group, e.g. containers, runtime shims and cgroups. Last in, first run.
   */
  onTeardown(cleanup: () => void): void {
    this.teardowns.push(cleanup);
  }

  private runTeardowns(): void {
    for (const cleanup of this.teardowns.splice(0).reverse()) {
      try {
        cleanup();
      } catch (err) {
        process.stderr.write(`lab ${this.prefix}: cleanup failed: ${String(err)}\n`);
      }
    }
  }

  /** Stops every process this lab started and deletes its namespaces, by name. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    await Promise.all([...this.processes].map((p) => p.stop(2000)));
    this.runTeardowns();
    for (const ns of [...this.namespaces].reverse()) await run('ip', ['netns', 'del', ns.name]);
    this.finish();
  }

  /** The same, synchronously, for exit and signal handlers. */
  destroySync(): void {
    if (this.destroyed) return;
    for (const p of this.processes) p.signal('SIGKILL');
    this.runTeardowns();
    for (const ns of [...this.namespaces].reverse()) {
      try {
        execFileSync('ip', ['netns', 'del', ns.name], { stdio: 'ignore' });
      } catch {
        /* already gone */
      }
    }
    this.finish();
  }

  private finish(): void {
    this.destroyed = true;
    this.namespaces.length = 0;
    live.delete(this);
    if (this.ownDir && !process.env.IPC_KEEP_LAB_DIR) rmSync(this.dir, { recursive: true, force: true });
  }
}
