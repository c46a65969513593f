// Entry point of `ipcontroller agent`. The agent itself is built in the agent issue; this
// parses and documents its flags.
import { parseArgs } from 'node:util';

export const AGENT_USAGE = `Usage: ipcontroller agent [flags]

Puts the IpClaims assigned to this node on its interface and announces them.

Flags:
  --iface NAME          interface to add addresses to (default: the one whose subnet holds the IP)
  --kubeconfig PATH     kubeconfig file (default: in-cluster, then $KUBECONFIG)
  --hostname NAME       this node's name (default: $NODE_NAME, then the host name)
  --mask BITS           prefix length for addresses without one (default 32 / 128)
  --hb DURATION         heartbeat interval (default 2s)
  --resync DURATION     full resync interval (default 20s)
  -h, --help            show this help
`;

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      help: { type: 'boolean', short: 'h' },
      iface: { type: 'string' },
      kubeconfig: { type: 'string' },
      hostname: { type: 'string' },
      mask: { type: 'string' },
      hb: { type: 'string' },
      resync: { type: 'string' },
    },
  });
  if (values.help) {
    process.stdout.write(AGENT_USAGE);
    return 0;
  }
  process.stderr.write('agent: not built yet\n');
  return 1;
}
