// One real Kubernetes node inside a lab network namespace: its own containerd, kubelet and
// kube-proxy, as ../../../shared/REAL-NODES.md measured them on this kind of machine. What a
// node needs that a normal one does not, and why:
// - containerd and the kubelet share one mount namespace (the containers must see the kubelet's
//   secret and token mounts) made with `unshare --mount` inside the node's network namespace;
//   `ip netns exec` is not used because it remounts /sys and hides the cgroup mounts;
// - in that mount namespace /sys is the node's sysfs, /var/lib/kubelet and /var/log/containers
//   (paths the kubelet hard-codes) are the node's own folders, and the six kernel tunables the
//   kubelet wants are bind-mounted files, so with protectKernelDefaults it only reads them and
//   the host's values are never rewritten;
// - one containerd per node: hostNetwork pods run in containerd's network namespace, and a
//   kubelet removes sandboxes it does not know;
// - cgroup v1 needs failCgroupV1: false; where root lacks CAP_SYS_RESOURCE runc cannot set a
//   negative oom_score_adj, so containerd restricts it and the kubelet uses oomScoreAdj 0
//   (detected, see rootLacksSysResource()).
// Everything lives under <lab dir>/<short>; teardown kills what runs in the node's cgroups and
// its containerd shims by name, then removes the cgroups.
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../controlplane/harness.js';
import { run, type Lab, type LabProcess, type Netns } from './lab.js';

export interface RealNodeBinaries {
  kubelet: string;
  kubeProxy: string;
  /** Folder with containerd, containerd-shim-runc-v2 and ctr. */
  containerdDir: string;
  /** Folder holding the CNI plugins (Debian: /usr/lib/cni). */
  cniDir: string;
}

export interface RealNodeOptions {
  name: string;
  ns: Netns;
  ip4: string;
  /** The node's IPv6 address, for a dual-stack node. */
  ip6?: string;
  /** This node's pod range (host-local IPAM on the cni0 bridge). */
  podCidr: string;
  /** Its IPv6 pod range, for a dual-stack node. */
  podCidr6?: string;
  /** All nodes' pod ranges together (kube-proxy's clusterCIDR; "v4,v6" for dual stack). */
  clusterCidr: string;
  /** Kubeconfigs valid inside ns, for the kubelet (system:node:<name>) and kube-proxy. */
  kubeletKubeconfig: string;
  proxyKubeconfig: string;
  labels?: Record<string, string>;
  binaries: RealNodeBinaries;
  /** OCI archives imported into this node's containerd before the kubelet starts. */
  images: string[];
  sandboxImage: string;
  proxyMode?: 'iptables' | 'nftables';
}

export interface RealNode {
  name: string;
  ns: Netns;
  ip4: string;
  dir: string;
  containerd: LabProcess;
  kubelet: LabProcess;
  kubeProxy: LabProcess;
  /** ctr against this node's containerd (namespace k8s.io). */
  ctr(args: string[]): Promise<{ stdout: string; stderr: string; code: number }>;
  /** Container ids of a pod's container on this node, by pod namespace and container name. */
  containers(podNamespace: string, container: string): Promise<string[]>;
  /** PIDs of this node's containers (its cgroups) and containerd shims. */
  podPids(): number[];
  /** Seconds each start step took. */
  timings: Record<string, number>;
}

/** The kubelet's protectKernelDefaults values; the node sees these files instead of the host's. */
const KUBELET_SYSCTLS: Record<string, string> = {
  'vm/overcommit_memory': '1',
  'vm/panic_on_oom': '0',
  'kernel/panic': '10',
  'kernel/panic_on_oops': '1',
  'kernel/keys/root_maxkeys': '1000000',
  'kernel/keys/root_maxbytes': '25000000',
};

/** True when root cannot lower oom_score_adj (CAP_SYS_RESOURCE missing from the bounding set). */
export function rootLacksSysResource(): boolean {
  const status = readFileSync('/proc/self/status', 'utf8');
  const bnd = /CapBnd:\s*([0-9a-f]+)/.exec(status)?.[1];
  if (!bnd) return false;
  const CAP_SYS_RESOURCE = 24n;
  return ((BigInt(`0x${bnd}`) >> CAP_SYS_RESOURCE) & 1n) === 0n;
}

/** True when /sys/fs/cgroup is cgroup v1 (a tmpfs of hierarchies), not the unified v2 mount. */
export function cgroupV1(): boolean {
  return !existsSync('/sys/fs/cgroup/cgroup.controllers');
}

/** The cgroup v1 hierarchies (real folders, not the cpu -> cpu,cpuacct style links). */
function cgroupHierarchies(): string[] {
  if (!cgroupV1()) return ['/sys/fs/cgroup'];
  return readdirSync('/sys/fs/cgroup')
    .map((e) => join('/sys/fs/cgroup', e))
    .filter((p) => !lstatSync(p).isSymbolicLink() && lstatSync(p).isDirectory() && existsSync(join(p, 'cgroup.procs')));
}

const sleepSync = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** PIDs in a cgroup folder and every folder below it. */
function cgroupPids(dir: string): number[] {
  if (!existsSync(dir)) return [];
  const pids: number[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) pids.push(...cgroupPids(join(dir, entry.name)));
  }
  try {
    pids.push(...readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number));
  } catch {
    /* removed meanwhile */
  }
  return pids;
}

function removeCgroupTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) removeCgroupTree(join(dir, entry.name));
  }
  try {
    rmdirSync(dir);
  } catch {
    /* still busy: reported by the caller's check */
  }
}

/** Thaws every frozen cgroup below dir (v1 freezer.state, v2 cgroup.freeze). */
function thawTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) thawTree(join(dir, entry.name));
  }
  for (const [file, value] of [
    ['freezer.state', 'THAWED'],
    ['cgroup.freeze', '0'],
  ]) {
    try {
      if (existsSync(join(dir, file as string))) writeFileSync(join(dir, file as string), value as string);
    } catch {
      /* the root of a hierarchy has none, or it went away */
    }
  }
}

/** Processes whose command line names this containerd socket (its runc shims). */
function shimPids(socket: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (cmdline[0]?.endsWith('containerd-shim-runc-v2') && cmdline.includes(socket)) found.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return found;
}

/**
 * Kills everything left of a node once its daemons are stopped: the containers (every process
 * in the node's cgroups) and containerd's shims (found by the node's socket), then removes the
 * cgroups. Synchronous, so exit handlers can use it.
 */
export function cleanupNodeSync(cgroupName: string, socket: string): void {
  const dirs = cgroupHierarchies().map((h) => join(h, cgroupName));
  // A paused container (ctr tasks pause: the cgroup freezer) cannot die of SIGKILL until thawed.
  for (const dir of dirs) thawTree(dir);
  for (let attempt = 0; attempt < 50; attempt++) {
    const pids = [...new Set([...shimPids(socket), ...dirs.flatMap(cgroupPids)])];
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    sleepSync(100);
  }
  for (const dir of dirs) removeCgroupTree(dir);
}

function toml(value: string): string {
  return JSON.stringify(value);
}

function containerdConfig(dir: string, options: RealNodeOptions, restrictOom: boolean): string {
  // containerd 2.x, config version 3 (`containerd config default` lists every key).
  return `version = 3
root = ${toml(join(dir, 'containerd', 'root'))}
state = ${toml(join(dir, 'containerd', 'state'))}

[grpc]
  address = ${toml(join(dir, 'containerd.sock'))}

[ttrpc]
  address = ${toml(join(dir, 'containerd.sock.ttrpc'))}

[debug]
  address = ${toml(join(dir, 'containerd-debug.sock'))}

[plugins]
  [plugins.'io.containerd.internal.v1.opt']
    path = ${toml(join(dir, 'containerd', 'opt'))}
  # Its default socket /var/run/nri/nri.sock would be shared by every node of the lab.
  [plugins.'io.containerd.nri.v1.nri']
    disable = true
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = ${toml(options.sandboxImage)}
  [plugins.'io.containerd.cri.v1.runtime']
    restrict_oom_score_adj = ${restrictOom}
    netns_mounts_under_state_dir = true
    cdi_spec_dirs = []
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = ${toml(join(dir, 'runc'))}
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = [${toml(options.binaries.cniDir)}]
      conf_dir = ${toml(join(dir, 'cni'))}
`;
}

function cniConfig(dir: string, podCidr: string, podCidr6: string | undefined): string {
  return JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: 'lab',
      plugins: [
        {
          type: 'bridge',
          bridge: 'cni0',
          isGateway: true,
          hairpinMode: true,
          ipMasq: false,
          ipam: {
            type: 'host-local',
            dataDir: join(dir, 'cni-ipam'),
            ranges: [[{ subnet: podCidr }], ...(podCidr6 ? [[{ subnet: podCidr6 }]] : [])],
            routes: [{ dst: '0.0.0.0/0' }, ...(podCidr6 ? [{ dst: '::/0' }] : [])],
          },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  );
}

function kubeletConfig(dir: string, options: RealNodeOptions, cgroupRoot: string, lowerOom: boolean): string {
  const socket = `unix://${join(dir, 'containerd.sock')}`;
  return JSON.stringify(
    {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      // cgroup v1 is refused since 1.35 unless this says otherwise.
      ...(cgroupV1() ? { failCgroupV1: false } : {}),
      cgroupDriver: 'cgroupfs',
      cgroupRoot,
      containerRuntimeEndpoint: socket,
      imageServiceEndpoint: socket,
      staticPodPath: join(dir, 'manifests'),
      podLogsDir: join(dir, 'pod-logs'),
      address: options.ip4,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
      authorization: { mode: 'AlwaysAllow' },
      failSwapOn: false,
      // Read the (masked) kernel tunables, never write them.
      protectKernelDefaults: true,
      ...(lowerOom ? {} : { oomScoreAdj: 0 }),
      podCIDR: options.podCidr,
      clusterDomain: 'cluster.local',
      // The lab shares one disk with the host: no eviction of the lab's pods for its usage, and no
      // image garbage collection of the imported images (there is no registry to pull them again).
      evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      // Pods are reported Ready/NotReady quickly to the scenarios that wait on them.
      nodeStatusUpdateFrequency: '4s',
      syncFrequency: '10s',
    },
    null,
    2,
  );
}

function kubeProxyConfig(options: RealNodeOptions): string {
  return JSON.stringify(
    {
      apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
      kind: 'KubeProxyConfiguration',
      clientConnection: { kubeconfig: options.proxyKubeconfig },
      hostnameOverride: options.name,
      mode: options.proxyMode ?? 'iptables',
      clusterCIDR: options.clusterCidr,
      bindAddress: options.ip4,
      metricsBindAddress: '127.0.0.1:10249',
      healthzBindAddress: '127.0.0.1:10256',
      // 0: leave the host's global nf_conntrack_max alone.
      conntrack: { maxPerCore: 0, min: 0 },
    },
    null,
    2,
  );
}

/** The script containerd starts through: the node's mount namespace, then exec containerd. */
function wrapperScript(dir: string, containerd: string, config: string): string {
  const masks = Object.entries(KUBELET_SYSCTLS).map(([key, value]) => {
    const file = join(dir, 'sysctl', key.replace(/\//g, '.'));
    return `printf '%s\\n' ${value} > ${file}; mount --bind ${file} /proc/sys/${key}`;
  });
  return `#!/bin/bash
# Runs in a new mount namespace (unshare --mount --propagation slave) inside the node's network
# namespace: sysfs of this network namespace with the cgroup mounts kept, the kubelet's
# hard-coded folders made the node's own, and the kernel tunables it checks masked.
set -euo pipefail
hold=${dir}/cgroup-hold
mkdir -p "$hold" ${dir}/sysctl ${dir}/var-lib-kubelet ${dir}/var-log-containers
mount --rbind /sys/fs/cgroup "$hold"
mount -t sysfs sysfs /sys
mount --rbind "$hold" /sys/fs/cgroup
umount -l "$hold"
mount --bind ${dir}/var-lib-kubelet /var/lib/kubelet
mount --bind ${dir}/var-log-containers /var/log/containers
${masks.join('\n')}
exec ${containerd} --config ${config}
`;
}

function makeCgroups(name: string): void {
  for (const h of cgroupHierarchies()) {
    const dir = join(h, name);
    mkdirSync(dir, { recursive: true });
    // A new cpuset cgroup has no CPUs or memory nodes until given its parent's.
    for (const file of ['cpuset.cpus', 'cpuset.mems']) {
      if (existsSync(join(h, file))) writeFileSync(join(dir, file), readFileSync(join(h, file), 'utf8').trim() || '0');
    }
  }
}

/** Starts containerd, imports the images, then the kubelet and kube-proxy of one node. */
export async function startRealNode(lab: Lab, options: RealNodeOptions): Promise<RealNode> {
  const timings: Record<string, number> = {};
  let t = Date.now();
  const lap = (step: string): void => {
    timings[step] = (Date.now() - t) / 1000;
    t = Date.now();
  };
  const dir = join(lab.dir, options.ns.short);
  for (const sub of ['manifests', 'pod-logs', 'cni', 'cni-ipam', 'pki', 'kubelet', 'sysctl'])
    mkdirSync(join(dir, sub), { recursive: true });
  // Mount points for the node's own copies (what a kubelet would create on a real host).
  for (const path of ['/var/lib/kubelet', '/var/log/containers']) mkdirSync(path, { recursive: true });
  const socket = join(dir, 'containerd.sock');
  const cgroupName = `${lab.prefix}-${options.ns.short}`;
  const lowerOom = !rootLacksSysResource();

  const containerdBin = join(options.binaries.containerdDir, 'containerd');
  const ctrBin = join(options.binaries.containerdDir, 'ctr');
  writeFileSync(join(dir, 'containerd.toml'), containerdConfig(dir, options, !lowerOom));
  writeFileSync(join(dir, 'cni', '10-lab.conflist'), cniConfig(dir, options.podCidr, options.podCidr6));
  writeFileSync(join(dir, 'kubelet.json'), kubeletConfig(dir, options, `/${cgroupName}`, lowerOom));
  writeFileSync(join(dir, 'kube-proxy.json'), kubeProxyConfig(options));
  writeFileSync(join(dir, 'containerd.sh'), wrapperScript(dir, containerdBin, join(dir, 'containerd.toml')), { mode: 0o755 });
  makeCgroups(cgroupName);
  lab.onTeardown(() => cleanupNodeSync(cgroupName, socket));

  // The shim must come first in PATH: containerd starts the one it finds there.
  const env = { ...process.env, PATH: `${options.binaries.containerdDir}:${process.env.PATH ?? ''}` };
  const netns = `--net=/run/netns/${options.ns.name}`;
  const containerd = lab.spawnRaw(['nsenter', netns, 'unshare', '--mount', '--propagation', 'slave', join(dir, 'containerd.sh')], {
    env,
    label: `${options.ns.short}-containerd`,
  });
  const ctr = (args: string[]): ReturnType<typeof run> => run(ctrBin, ['--address', socket, '--namespace', 'k8s.io', ...args]);
  await waitFor(
    `containerd of ${options.name}`,
    async () => {
      if (containerd.child.exitCode !== null) throw new Error(`containerd exited; see ${containerd.logFile}`);
      return (await ctr(['version'])).code === 0;
    },
    30_000,
    100,
  );
  lap('containerd');

  for (const archive of options.images) {
    const imported = await ctr(['images', 'import', archive]);
    if (imported.code !== 0) throw new Error(`importing ${archive} into ${options.name}: ${imported.stderr}`);
  }
  lap('images');

  const labels = Object.entries(options.labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  const kubelet = lab.spawnRaw(
    [
      'nsenter',
      `--mount=/proc/${containerd.child.pid}/ns/mnt`,
      netns,
      options.binaries.kubelet,
      `--config=${join(dir, 'kubelet.json')}`,
      `--kubeconfig=${options.kubeletKubeconfig}`,
      `--root-dir=${join(dir, 'kubelet')}`,
      `--cert-dir=${join(dir, 'pki')}`,
      `--hostname-override=${options.name}`,
      `--node-ip=${[options.ip4, ...(options.ip6 ? [options.ip6] : [])].join(',')}`,
      ...(labels ? [`--node-labels=${labels}`] : []),
    ],
    { env, label: `${options.ns.short}-kubelet` },
  );
  const kubeProxy = lab.spawnRaw(['nsenter', netns, options.binaries.kubeProxy, `--config=${join(dir, 'kube-proxy.json')}`], {
    env,
    label: `${options.ns.short}-kube-proxy`,
  });
  lap('kubelet+kube-proxy spawned');

  return {
    name: options.name,
    ns: options.ns,
    ip4: options.ip4,
    dir,
    containerd,
    kubelet,
    kubeProxy,
    ctr,
    async containers(podNamespace, container) {
      const r = await ctr([
        'containers',
        'list',
        '--quiet',
        `labels."io.kubernetes.pod.namespace"==${podNamespace},labels."io.kubernetes.container.name"==${container}`,
      ]);
      return r.stdout
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean);
    },
    podPids: () => [
      ...new Set([
        ...shimPids(socket),
        ...cgroupHierarchies()
          .filter((h) => h.endsWith('/memory'))
          .flatMap((h) => cgroupPids(join(h, cgroupName))),
      ]),
    ],
    timings,
  };
}
