// The plugin's command line, parsed once into a typed, frozen command. kubectl passes every
// argument after `kubectl ipcontroller` through unchanged (including --kubeconfig and
// --context), and KUBECONFIG in the environment.
import { parseArgs } from 'node:util';
import { DEFAULTS } from '../scheduler/config.js';
import type { Strategy } from '../scheduler/placement.js';
import { parseDuration } from '../lib/duration.js';
import type { Output } from './render.js';

export const USAGE = `kubectl ipcontroller: where every external IP is, why a Service has none, and how fast it moved.

Usage:
  kubectl ipcontroller status [-o json|yaml] [-w [--interval 2s]]
  kubectl ipcontroller why SERVICE [-n NAMESPACE] [-o json|yaml]
  kubectl ipcontroller history SERVICE [-n NAMESPACE] [-o json|yaml]

Commands:
  status    every address (Services, node, phase, since when, last move), every agent node
            (Ready, the scheduler's verdict, probe round trip, claims), every pool, the leader
  why       the scheduler's decision about one Service, in words: the address and its pool,
            which nodes may hold it and why the others may not, or why it is pending
  history   allocations, assignments and moves of the Service's addresses, with durations

Flags:
  -n, --namespace NAME     namespace of SERVICE (default: the context's, else "default");
                           SERVICE may also be given as NAMESPACE/NAME
  -o, --output FORMAT      text (default), json or yaml
  -w, --watch              status: print again whenever it changes (Ctrl-C stops)
      --interval DURATION  -w: how often to read the cluster (default 2s)
      --kubeconfig PATH    kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)
      --context NAME       kubeconfig context
      --lease-namespace NS, --lease-name NAME
                           the scheduler's leader Lease (default ipcontroller-scheduler in
                           ipcontroller-system, as the manifests run it, else kube-system)
      --lb-class CLASS     the scheduler's --lb-class (default ${DEFAULTS.lbClass})
      --nodefilter NAME    the scheduler's --nodefilter: fair or first-alive (default ${DEFAULTS.nodeFilter})
  -h, --help               this text
`;

/** Where the shipped manifests (examples/, the chart's default namespace) keep the Lease, then the binary's default. */
export const LEASE_NAMESPACES = ['ipcontroller-system', DEFAULTS.leaseNamespace];

export interface Common {
  output: Output;
  kubeconfig?: string;
  context?: string;
  namespace?: string;
  /** Tried in order until one holds the Lease. */
  leaseNamespaces: string[];
  leaseName: string;
  lbClass: string;
  strategy: Strategy;
}

export type Command =
  | { kind: 'help' }
  | ({ kind: 'status'; watch: boolean; intervalMs: number } & Common)
  | ({ kind: 'why' | 'history'; service: string } & Common);

export type ParsedCommand = { ok: true; command: Readonly<Command> } | { ok: false; error: string };

type Values = ReturnType<typeof parse>['values'];

export function parseCommand(argv: string[]): ParsedCommand {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
  const { values: v, positionals } = parsed;
  if (v.help || positionals.length === 0 || positionals[0] === 'help') return { ok: true, command: { kind: 'help' } };
  const common = commonOptions(v);
  if ('error' in common) return { ok: false, error: common.error };
  const [verb, ...rest] = positionals;
  if (verb === 'status') return statusCommand(rest, v, common);
  if (verb === 'why' || verb === 'history') return serviceCommand(verb, rest, v, common);
  return { ok: false, error: `unknown command ${JSON.stringify(verb)}` };
}

/** The options every command shares, or what is wrong with them. */
function commonOptions(v: Values): Common | { error: string } {
  const output = v.output ?? 'text';
  if (output !== 'text' && output !== 'json' && output !== 'yaml')
    return { error: `--output must be text, json or yaml, not ${JSON.stringify(output)}` };
  const strategy = v.nodefilter ?? DEFAULTS.nodeFilter;
  if (strategy !== 'fair' && strategy !== 'first-alive') return { error: `--nodefilter must be fair or first-alive` };
  return {
    output,
    leaseNamespaces: v['lease-namespace'] ? [v['lease-namespace']] : LEASE_NAMESPACES,
    leaseName: v['lease-name'] ?? DEFAULTS.leaseName,
    lbClass: v['lb-class'] ?? DEFAULTS.lbClass,
    strategy,
    ...(v.kubeconfig ? { kubeconfig: v.kubeconfig } : {}),
    ...(v.context ? { context: v.context } : {}),
    ...(v.namespace ? { namespace: v.namespace } : {}),
  };
}

function statusCommand(rest: string[], v: Values, common: Common): ParsedCommand {
  if (rest.length) return { ok: false, error: `status takes no arguments (got ${rest.join(' ')})` };
  let intervalMs = 2000;
  if (v.interval !== undefined) {
    const d = parseDuration(v.interval);
    if (d === null || d < 100) return { ok: false, error: `--interval must be a duration of at least 100ms, such as 2s` };
    intervalMs = d;
  }
  return { ok: true, command: Object.freeze({ kind: 'status', watch: v.watch ?? false, intervalMs, ...common }) };
}

function serviceCommand(verb: 'why' | 'history', rest: string[], v: Values, common: Common): ParsedCommand {
  if (rest.length !== 1 || !rest[0]) return { ok: false, error: `${verb} takes one SERVICE (NAME or NAMESPACE/NAME)` };
  if (v.watch) return { ok: false, error: `-w works with status only` };
  return { ok: true, command: Object.freeze({ kind: verb, service: rest[0], ...common }) };
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      output: { type: 'string', short: 'o' },
      namespace: { type: 'string', short: 'n' },
      watch: { type: 'boolean', short: 'w' },
      interval: { type: 'string' },
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
      'lease-namespace': { type: 'string' },
      'lease-name': { type: 'string' },
      'lb-class': { type: 'string' },
      nodefilter: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

/** "namespace/name" of a SERVICE argument: NAMESPACE/NAME as given, else in -n, else the context's namespace. */
export function serviceKey(service: string, namespace: string | undefined, contextNamespace: string | undefined): string {
  if (service.includes('/')) return service;
  return `${namespace ?? contextNamespace ?? 'default'}/${service}`;
}
