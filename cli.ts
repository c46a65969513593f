#!/usr/bin/env node
// ipcontroller: one binary, two programs. `ipcontroller agent` runs on every labelled node;
// `ipcontroller scheduler` runs as a two-replica Deployment. Each subcommand loads only its
// own modules, so the scheduler never loads the agent's FFI frame sender.
const USAGE = `Usage: ipcontroller <command> [flags]

Commands:
  agent       put claimed IPs on this node's interface and announce them (DaemonSet)
  scheduler   turn Services into IpClaims and place them on healthy agent nodes (Deployment)

Run "ipcontroller <command> --help" for the flags of a command.
`;

async function dispatch(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'agent':
      return (await import('./agent/main.js')).main(rest);
    case 'scheduler':
      return (await import('./scheduler/main.js')).main(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return 2;
  }
}

process.exitCode = await dispatch(process.argv.slice(2));
