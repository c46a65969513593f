// Entry point of `ipcontroller scheduler`. The scheduler itself is built in the scheduler
// issue; this parses and documents its flags.
import { parseArgs } from 'node:util';

export const SCHEDULER_USAGE = `Usage: ipcontroller scheduler [flags]

Turns Services into IpClaims, allocates pool addresses and places claims on healthy agents.

Flags:
  --kubeconfig PATH     kubeconfig file (default: in-cluster, then $KUBECONFIG)
  --mask BITS           prefix length for spec.externalIPs claims (default 32 / 128)
  --nodefilter NAME     fair | first-alive (default fair)
  --monitor DURATION    heartbeat age after which a node is failed (default 4s)
  --leader-elect BOOL   elect a leader through a Lease (default true)
  --resync DURATION     full resync interval (default 20s)
  -h, --help            show this help
`;

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      help: { type: 'boolean', short: 'h' },
      kubeconfig: { type: 'string' },
      mask: { type: 'string' },
      nodefilter: { type: 'string' },
      monitor: { type: 'string' },
      'leader-elect': { type: 'string' },
      resync: { type: 'string' },
    },
  });
  if (values.help) {
    process.stdout.write(SCHEDULER_USAGE);
    return 0;
  }
  process.stderr.write('scheduler: not built yet\n');
  return 1;
}
