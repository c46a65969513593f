# ipcontroller: run `make help` for the targets.
SHELL := /bin/bash
NODE_TSX := node --import tsx
TESTLINK ?=
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: help get-deps control-plane image build lint format unit integration e2e test bench bench-failover bench-plot chaos soak soak-test demo demo-process dashboard clean

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# get-deps reports on stderr, so `make bench` keeps stdout for its JSON.
get-deps: ## install Debian packages (as root), npm packages, build the control plane, node binaries, containerd, helm and the images
	@bash test/install-deps.sh >&2
	@$(MAKE) --no-print-directory -s node_modules/.package-lock.json >&2
	@bash test/controlplane/build.sh >/dev/null
	@bash test/controlplane/build.sh nodes >/dev/null
	@bash test/controlplane/build-containerd.sh >/dev/null
	@bash test/controlplane/build-helm.sh >/dev/null
	@bash test/image/build.sh >/dev/null

image: ## build the container images with buildah (root; no registry needed): prints name=OCI archive
	@bash test/image/build.sh

# npm ci only when the lockfile changed since the last install (npm writes this file).
node_modules/.package-lock.json: package-lock.json
	@npm ci --no-audit --no-fund >&2

control-plane: ## build (or find in the cache) kube-apiserver, etcd and kubectl for tests
	bash test/controlplane/build.sh

build: ## compile TypeScript to dist/ and bundle dist/cli.js (what the image runs; see Dockerfile)
	npm run --silent build

lint: node_modules/.package-lock.json ## type-check (strict, tests included), then eslint (eslint.config.js) and the prettier check
	npx tsc -p tsconfig.json --noEmit
	npx eslint --max-warnings 0 .
	npx prettier --check --log-level warn '**/*.ts'

format: node_modules/.package-lock.json ## rewrite every .ts file in the house format (prettier, .prettierrc.json)
	npx prettier --write --log-level warn '**/*.ts'

unit: node_modules/.package-lock.json ## pure-logic tests, no I/O
	$(NODE_TSX) test/run.ts unit

integration: get-deps ## tests against a real kube-apiserver + etcd (the agent's need root for network namespaces)
	$(NODE_TSX) test/run.ts integration

e2e: get-deps ## the process lab and the real-node lab (kubelets, containerd, kube-proxy; root); TESTLINK=<name> names the client link
	TESTLINK=$(TESTLINK) $(NODE_TSX) test/run.ts e2e

test: get-deps ## make lint, then unit + integration + e2e (root: network namespaces), ending with "N passed, N failed"
	@$(MAKE) --no-print-directory lint
	$(NODE_TSX) test/run.ts unit integration e2e

bench: get-deps ## every benchmark (root for the lab ones), JSON on stdout
	@$(NODE_TSX) test/bench/run.ts

bench-failover: get-deps ## failover benchmark in the lab (root), JSON on stdout; BENCH_SCHEDULER_ARGS, BENCH_AGENT_ARGS, BENCH_CPU_LOAD
	@$(NODE_TSX) test/bench/run.ts failover

bench-plot: get-deps ## one hard failover drawn as the client saw it -> docs/failover.svg (root); BENCH_SCHEDULER_ARGS / BENCH_AGENT_ARGS as bench-failover
	@$(NODE_TSX) test/bench/run.ts plot

chaos: get-deps ## fault matrix in the lab (root), JSON on stdout; CHAOS_COUNT (2), CHAOS_FAULTS=a,b, CHAOS_BURST, CHAOS_SEED
	@$(NODE_TSX) test/chaos/matrix.ts

soak: get-deps ## churn + a random fault every 20-40 s with the invariant checker (root), JSON on stdout; SOAK_MINUTES (30)
	@$(NODE_TSX) test/chaos/soak-main.ts

soak-test: get-deps ## the 3-minute soak alone, as make test runs it (root); SOAK_MINUTES, CHAOS_SEED
	$(NODE_TSX) test/uvu-child.ts test/e2e/soak.test.ts

demo: get-deps ## real-node lab (kubelets, containerd, kube-proxy), the README install, a failover; Ctrl-C tears it down
	$(NODE_TSX) test/demo-real.ts

demo-process: get-deps ## the faster process lab: control plane + two-node lab + scheduler + agents as processes
	$(NODE_TSX) test/demo.ts

clean: ## remove build output (the control-plane cache in ~/.cache/ipcontroller stays)
	rm -rf dist .run

dashboard: ## print the Grafana dashboard's panels and the alert rules as text, with the metrics they read
	$(NODE_TSX) monitoring/summary.ts
