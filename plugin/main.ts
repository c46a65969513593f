// kubectl ipcontroller: reads the cluster with the user's kubeconfig and prints status, why or
// history. Everything it needs to decide is in plugin/{model,explain,history}.ts (pure); this
// file reads, prints and exits with kubectl's codes (0 ok, 1 error, 2 usage).
import { KubeConfig } from '@kubernetes/client-node';
import { parseCommand, serviceKey, USAGE, type Command } from './args.js';
import { explainService } from './explain.js';
import { historyOf } from './history.js';
import { statusModel } from './model.js';
import { renderData, renderHistory, renderStatus, renderWhy, styleFor, type Style } from './render.js';
import { readServiceEvents, readSnapshot } from './snapshot.js';

export interface PluginIo {
  stdout: { write(text: string): unknown; isTTY?: boolean };
  stderr: { write(text: string): unknown };
  env: NodeJS.ProcessEnv;
  /** Stops -w (Ctrl-C). */
  signal?: AbortSignal;
}

function kubeConfigFor(cmd: Exclude<Command, { kind: 'help' }>): KubeConfig {
  const kc = new KubeConfig();
  // As kubectl: --kubeconfig, else KUBECONFIG (a path list), else ~/.kube/config.
  if (cmd.kubeconfig) kc.loadFromFile(cmd.kubeconfig);
  else kc.loadFromDefault();
  if (cmd.context) kc.setCurrentContext(cmd.context);
  return kc;
}

function contextNamespace(kc: KubeConfig): string | undefined {
  return kc.getContextObject(kc.getCurrentContext())?.namespace;
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });

async function status(cmd: Extract<Command, { kind: 'status' }>, kc: KubeConfig, io: PluginIo, style: Style): Promise<number> {
  const lease = { namespaces: cmd.leaseNamespaces, name: cmd.leaseName };
  const render = async (): Promise<{ text: string; key: string }> => {
    const model = statusModel(await readSnapshot(kc, lease));
    const text = cmd.output === 'text' ? renderStatus(model, style) : renderData(model, cmd.output);
    // Compare without the read time and ages, so -w prints only when something changed.
    const key = JSON.stringify({
      ...model,
      readAt: '',
      leader: model.leader?.holder ?? null,
      nodes: model.nodes.map((n) => ({ ...n, heartbeatAgeMs: 0 })),
    });
    return { text, key };
  };
  if (!cmd.watch) {
    io.stdout.write((await render()).text);
    return 0;
  }
  let last = '';
  const clear = cmd.output === 'text' && io.stdout.isTTY === true;
  while (!io.signal?.aborted) {
    try {
      const { text, key } = await render();
      if (key !== last) {
        last = key;
        io.stdout.write(clear ? `\x1b[H\x1b[2J${text}` : cmd.output === 'json' ? text : `${text}${cmd.output === 'yaml' ? '---\n' : '\n'}`);
      }
    } catch (err) {
      io.stderr.write(`error: ${String(err)}\n`);
    }
    await sleep(cmd.intervalMs, io.signal);
  }
  return 0;
}

type ServiceCommand = Extract<Command, { kind: 'why' | 'history' }>;

/** What a command about one Service works with. */
interface ServiceRun {
  kc: KubeConfig;
  /** "namespace/name" */
  key: string;
  io: PluginIo;
  style: Style;
}

const leaseOf = (cmd: ServiceCommand) => ({ namespaces: cmd.leaseNamespaces, name: cmd.leaseName });

async function why(cmd: ServiceCommand, run: ServiceRun): Promise<number> {
  const { kc, key, io, style } = run;
  const explanation = explainService(await readSnapshot(kc, leaseOf(cmd)), key, {
    lbClass: cmd.lbClass,
    strategy: cmd.strategy,
    mask: { ipv4: 32, ipv6: 128 },
  });
  if (!explanation.found) {
    io.stderr.write(
      `Error from server (NotFound): services "${key.split('/')[1] ?? key}" not found in namespace "${key.split('/')[0] ?? ''}"\n`,
    );
    return 1;
  }
  io.stdout.write(cmd.output === 'text' ? renderWhy(explanation, style) : renderData(explanation, cmd.output));
  return 0;
}

async function history(cmd: ServiceCommand, run: ServiceRun): Promise<number> {
  const { kc, key, io, style } = run;
  const [namespace = 'default', name = ''] = key.split('/');
  const [snap, events] = await Promise.all([readSnapshot(kc, leaseOf(cmd)), readServiceEvents(kc, namespace, name)]);
  if (!snap.services.some((s) => s.key === key) && events.length === 0) {
    io.stderr.write(
      `Error from server (NotFound): services "${name}" not found in namespace "${namespace}", and no Events about it are left\n`,
    );
    return 1;
  }
  const timeline = historyOf(key, snap.claims, events);
  io.stdout.write(cmd.output === 'text' ? renderHistory(timeline, style, snap.readAt) : renderData(timeline, cmd.output));
  return 0;
}

export async function main(argv: string[], io: PluginIo): Promise<number> {
  const parsed = parseCommand(argv);
  if (!parsed.ok) {
    io.stderr.write(`error: ${parsed.error}\n\n${USAGE}`);
    return 2;
  }
  const cmd = parsed.command;
  if (cmd.kind === 'help') {
    io.stdout.write(USAGE);
    return 0;
  }
  const style = styleFor(io.stdout.isTTY === true, io.env);
  try {
    const kc = kubeConfigFor(cmd);
    if (cmd.kind === 'status') return await status(cmd, kc, io, style);
    const key = serviceKey(cmd.service, cmd.namespace, contextNamespace(kc));
    return cmd.kind === 'why' ? await why(cmd, { kc, key, io, style }) : await history(cmd, { kc, key, io, style });
  } catch (err) {
    io.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
