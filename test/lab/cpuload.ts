// A CPU-bound load for benchmarks: `count` busy-loop processes (one per core to load every core,
// as `stress-ng --cpu N` does), each ending by itself after maxMs and stopped with the lab.
// The machine's own nice level: they compete with the programs under test as a tenant would.
import type { Lab, LabProcess } from './lab.js';

export interface CpuLoad {
  count: number;
  stop(): Promise<void>;
}

/** Starts the load; count 0 starts nothing. */
export function startCpuLoad(lab: Lab, count: number, maxMs: number): CpuLoad {
  const script = `const end = Date.now() + ${Math.max(0, Math.floor(maxMs))}; let x = 0; while (Date.now() < end) x++;`;
  const procs: LabProcess[] = [];
  for (let i = 0; i < count; i++) procs.push(lab.spawnRaw([process.execPath, '-e', script], { label: `cpuload-${i}` }));
  return {
    count,
    async stop() {
      await Promise.all(procs.map((p) => p.stop(1000)));
    },
  };
}
