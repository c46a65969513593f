# Multi-stage image for both programs: `ipcontroller agent` and `ipcontroller scheduler`.
# NODE_IMAGE: a Debian bookworm image with Node 20 or newer and a `node` user (uid 1000); the
# default is the official one. The test lab, which reaches no registry, passes its own
# (test/image/build.sh).
ARG NODE_IMAGE=node:22-bookworm-slim
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json cli.ts ./
COPY api api
COPY lib lib
COPY agent agent
COPY scheduler scheduler
# tsc checks the types; esbuild then bundles dist/cli.js (one file per program plus a shared chunk):
# the scheduler starts about 45 MiB smaller than when it loads @kubernetes/client-node's 1,000-odd
# modules one by one (test/bench/memory.ts). The bundle is whitespace-minified (names kept): V8 keeps a
# script's whole source in the heap, and client-node's comments hold a few non-Latin-1 characters that made
# the 6.7 MB shared chunk a two-byte string, 12.8 MiB of heap; minified it is 3.7 MB of ASCII (a heap snapshot
# of the scheduler at 5,000 claims, issue 14.3). node_modules stays for koffi, a native module.
RUN npm run build && npm prune --omit=dev

FROM ${NODE_IMAGE}
# iproute2: the agent changes addresses through one `ip -batch` per reconcile; nftables: its
# dead-man switch (a frozen or killed agent's kernel stops answering ARP / NS, agent/deadman.ts).
RUN apt-get update && apt-get install -y --no-install-recommends iproute2 nftables && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/dist dist
COPY package.json ./
# The scheduler runs as this user; the agent's DaemonSet runs as root with only NET_ADMIN and NET_RAW.
USER node
ENTRYPOINT ["node", "/app/dist/cli.js"]
