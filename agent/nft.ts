// Runs one nft script as one transaction (`nft -f -`) in the agent's network namespace; the
// dead-man switch (deadman.ts) and the kernel yield (kernelyield.ts) make their tables with it.
import { spawn } from 'node:child_process';

export function nftScript(script: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('nft', ['-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => resolve({ code: 127, stderr: String(err) }));
    child.on('close', (code) => resolve({ code: code ?? 1, stderr }));
    child.stdin.end(script);
  });
}
