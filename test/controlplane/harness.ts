// Starts a real etcd and kube-apiserver on free loopback ports for tests and demos, the way
// envtest does: generated serving cert, a static admin token, RBAC on, CRDs installed.
// Both run in their own process group and are stopped by PID, also when the caller dies.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, openSync, readFileSync, rmSync, writeFileSync, existsSync, mkdtempSync } from 'node:fs';
import { request } from 'node:https';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { resolveAssets, type ControlPlaneAssets } from './assets.js';

const execFileAsync = promisify(execFile);
export const CRD_MANIFEST = fileURLToPath(new URL('../../examples/crds.yaml', import.meta.url));

/** A static token and the identity the apiserver gives it (tokens.csv line). */
export interface TokenUser {
  token: string;
  user: string;
  uid: string;
  groups: string[];
}

export interface ControlPlaneOptions {
  /** Folder for data, certs and logs; a fresh temporary one when absent. */
  dir?: string;
  /** More static tokens, e.g. standing for ServiceAccounts in RBAC tests. */
  extraTokens?: TokenUser[];
  /** Install examples/crds.yaml and wait until Established (default true). */
  installCrds?: boolean;
  /** More kube-apiserver flags, after the defaults (a repeated flag overrides), e.g. a larger
   *  --service-cluster-ip-range for benchmarks with thousands of Services. */
  extraApiserverArgs?: string[];
  /**
   * Keep the ServiceAccount admission plugin, as a real cluster has it (default false, as envtest:
   * with no kube-controller-manager no namespace gets its `default` ServiceAccount, and the plugin
   * refuses every Pod that names none). With it on, a Pod must name a ServiceAccount that exists
   * and gets the projected token volume a kubelet would mount; labs that bind tokens to Pods
   * (the agent's node-scoped identity) and labs with real kubelets turn it on.
   */
  serviceAccountAdmission?: boolean;
  /** --authorization-mode (default ['RBAC']); real kubelets need ['Node', 'RBAC']. */
  authorizationModes?: string[];
}

export interface KubectlResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface ControlPlane {
  dir: string;
  server: string;
  kubeconfigPath: string;
  assets: ControlPlaneAssets;
  kubeConfig(): KubeConfig;
  /** Writes a kubeconfig for one of the extra tokens and returns its path. */
  kubeconfigFor(token: TokenUser): string;
  kubectl(args: string[], input?: string): Promise<KubectlResult>;
  /** The private key the apiserver signs and checks ServiceAccount tokens with (PEM). */
  serviceAccountKeyPath: string;
  /** Stops kube-apiserver alone (etcd keeps running), as an outage of the API server. */
  stopApiserver(): Promise<void>;
  /** Starts it again on the same port, certificates and etcd, and waits until it is ready. */
  startApiserver(): Promise<void>;
  /** Stops etcd alone (kube-apiserver keeps running and answers errors), as an outage of the store. */
  stopEtcd(): Promise<void>;
  /** Starts etcd again on the same ports and data directory, and waits for /health. */
  startEtcd(): Promise<void>;
  /** Seconds from spawn to /readyz ok and CRDs established. */
  startSeconds: number;
  stop(): Promise<void>;
}

/** Where a control plane started in dir keeps its ServiceAccount signing key. */
export function serviceAccountKeyPath(dir: string): string {
  return join(dir, 'sa.key');
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Polls check() until it returns true or the deadline passes. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

function httpGetOk(url: string, headers: Record<string, string>, ca?: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = (u.protocol === 'https:' ? request : httpRequest)(u, { headers, ...(ca ? { ca } : {}), timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: ${res.statusCode} ${body}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: timeout`)));
    req.on('error', reject);
    req.end();
  });
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function killAllSync(): void {
  for (const child of live) {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A crashed test runner must not leave an apiserver behind holding ports and memory.
  process.on('exit', killAllSync);
}

function startProcess(binary: string, args: string[], logFile: string): ChildProcess {
  const log = openSync(logFile, 'a');
  const child = spawn(binary, args, { detached: true, stdio: ['ignore', log, log] });
  live.add(child);
  child.on('exit', () => live.delete(child));
  installExitHook();
  return child;
}

async function stopProcess(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || !child.pid) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

function kubeconfigYaml(server: string, ca: string, token: string, user: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: ipcontroller-test',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority: ${ca}`,
    'users:',
    `- name: ${user}`,
    '  user:',
    `    token: ${token}`,
    'contexts:',
    '- name: ipcontroller-test',
    '  context:',
    '    cluster: ipcontroller-test',
    `    user: ${user}`,
    'current-context: ipcontroller-test',
    '',
  ].join('\n');
}

/** Runs kubectl against a kubeconfig; a non-zero exit is a result, not an exception. */
export async function runKubectl(binary: string, kubeconfigPath: string, args: string[], input?: string): Promise<KubectlResult> {
  const run = execFileAsync(binary, [`--kubeconfig=${kubeconfigPath}`, ...args], { maxBuffer: 64 << 20 });
  if (input !== undefined) run.child.stdin?.end(input);
  try {
    const { stdout, stderr } = await run;
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number };
    return { stdout: e.stdout ?? '', stderr: e.stderr ?? '', code: typeof e.code === 'number' ? e.code : 1 };
  }
}

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const started = Date.now();
  const assets = resolveAssets();
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'ipc-cp-'));
  mkdirSync(join(dir, 'pki'), { recursive: true });
  const [etcdPort, peerPort, securePort] = [await freePort(), await freePort(), await freePort()];

  const etcdArgs = [
    '--name=ipc-test',
    `--data-dir=${join(dir, 'etcd')}`,
    `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
    `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
    `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-cluster=ipc-test=http://127.0.0.1:${peerPort}`,
    '--unsafe-no-fsync',
    '--log-level=warn',
  ];
  const processes: ChildProcess[] = [];
  const stop = async (): Promise<void> => {
    for (const child of processes.slice().reverse()) await stopProcess(child);
  };
  /** Starts etcd (again, on the same ports and data) first in the stop order's tail, and waits for /health. */
  const launchEtcd = async (): Promise<ChildProcess> => {
    const child = startProcess(assets.etcd, etcdArgs, join(dir, 'etcd.log'));
    processes.unshift(child);
    await waitFor(
      'etcd /health',
      async () => (await httpGetOk(`http://127.0.0.1:${etcdPort}/health`, {})).includes('"health":"true"'),
      30_000,
    );
    return child;
  };
  let etcd: ChildProcess | undefined;
  try {
    etcd = await launchEtcd();

    const adminToken = randomBytes(16).toString('hex');
    const tokens: TokenUser[] = [
      { token: adminToken, user: 'test-admin', uid: 'test-admin', groups: ['system:masters'] },
      ...(options.extraTokens ?? []),
    ];
    writeFileSync(join(dir, 'tokens.csv'), tokens.map((t) => `${t.token},${t.user},${t.uid},"${t.groups.join(',')}"`).join('\n') + '\n');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(serviceAccountKeyPath(dir), privateKey.export({ type: 'pkcs1', format: 'pem' }));

    const apiserverArgs = [
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${securePort}`,
      '--advertise-address=127.0.0.1',
      '--endpoint-reconciler-type=none',
      `--cert-dir=${join(dir, 'pki')}`,
      `--token-auth-file=${join(dir, 'tokens.csv')}`,
      `--authorization-mode=${(options.authorizationModes ?? ['RBAC']).join(',')}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${serviceAccountKeyPath(dir)}`,
      `--service-account-signing-key-file=${serviceAccountKeyPath(dir)}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      ...(options.serviceAccountAdmission ? [] : ['--disable-admission-plugins=ServiceAccount']),
      '--allow-privileged=true',
      ...(options.extraApiserverArgs ?? []),
    ];
    const server = `https://127.0.0.1:${securePort}`;
    const caPath = join(dir, 'pki', 'apiserver.crt');
    /** Starts kube-apiserver (again, on the same port, certs and etcd) and waits for /readyz. */
    const launchApiserver = async (): Promise<ChildProcess> => {
      const child = startProcess(assets.kubeApiserver, apiserverArgs, join(dir, 'kube-apiserver.log'));
      processes.push(child);
      await waitFor(
        'kube-apiserver /readyz',
        async () => {
          if (child.exitCode !== null) throw new Error(`kube-apiserver exited (${child.exitCode}); see ${join(dir, 'kube-apiserver.log')}`);
          if (!existsSync(caPath)) return false;
          return (await httpGetOk(`${server}/readyz`, { Authorization: `Bearer ${adminToken}` }, readFileSync(caPath))) === 'ok';
        },
        90_000,
        200,
      );
      return child;
    };
    let apiserver = await launchApiserver();
    const kubeconfigPath = join(dir, 'kubeconfig');
    writeFileSync(kubeconfigPath, kubeconfigYaml(server, caPath, adminToken, 'test-admin'));

    const kubectl = (args: string[], input?: string): Promise<KubectlResult> => runKubectl(assets.kubectl, kubeconfigPath, args, input);

    if (options.installCrds !== false) {
      const applied = await kubectl(['apply', '-f', CRD_MANIFEST]);
      if (applied.code !== 0) throw new Error(`installing CRDs failed: ${applied.stderr}`);
      const waited = await kubectl(['wait', '--for=condition=Established', '--timeout=60s', '-f', CRD_MANIFEST]);
      if (waited.code !== 0) throw new Error(`CRDs not established: ${waited.stderr}`);
      // Established is not yet servable: until the watch cache of a new resource has
      // initialised, lists answer 429 "storage is (re)initializing".
      await waitFor(
        'custom resources servable',
        async () => (await kubectl(['get', 'ipclaims,ipnodes,ipclaimpools'])).code === 0,
        30_000,
        100,
      );
    }

    return {
      dir,
      server,
      kubeconfigPath,
      assets,
      serviceAccountKeyPath: serviceAccountKeyPath(dir),
      startSeconds: (Date.now() - started) / 1000,
      kubeConfig() {
        const kc = new KubeConfig();
        kc.loadFromFile(kubeconfigPath);
        return kc;
      },
      kubeconfigFor(token: TokenUser) {
        const path = join(dir, `kubeconfig-${token.user.replace(/[^a-zA-Z0-9-]/g, '_')}`);
        writeFileSync(path, kubeconfigYaml(server, caPath, token.token, token.user));
        return path;
      },
      kubectl,
      async stopApiserver() {
        await stopProcess(apiserver);
        processes.splice(processes.indexOf(apiserver), 1);
      },
      async startApiserver() {
        if (apiserver.exitCode === null && apiserver.signalCode === null) return;
        apiserver = await launchApiserver();
      },
      async stopEtcd() {
        if (!etcd) return;
        await stopProcess(etcd);
        processes.splice(processes.indexOf(etcd), 1);
      },
      async startEtcd() {
        if (etcd && etcd.exitCode === null && etcd.signalCode === null) return;
        etcd = await launchEtcd();
      },
      async stop() {
        await stop();
        if (!options.dir) rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await stop();
    throw new Error(`control plane did not start (logs in ${dir})`, { cause: err });
  }
}
