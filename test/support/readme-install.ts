// The commands of README.md's "Install in a cluster", in its order, as a user types them (node
// names as the real-node lab has them): the real-node e2e runs them and checks the README says
// each one, and `make demo` shows them.
export const README_INSTALL: readonly string[][] = [
  ['apply', '-f', 'examples/crds.yaml'],
  ['apply', '-f', 'examples/auth.yaml'],
  ['apply', '-f', 'examples/agent-policy.yaml'],
  ['label', 'node', 'node-1', 'ipcontroller='],
  ['label', 'node', 'node-2', 'ipcontroller='],
  ['apply', '-f', 'examples/claims/'],
  ['apply', '-f', 'examples/ip-pool.yml'],
  ['apply', '-f', 'examples/nginx.yaml'],
];
