// Go-style durations for flags ("200ms", "2s", "1m30s"), so flags read like the original's.
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds for a duration such as "1.5s" or "1m30s"; null when the text is not one. */
export function parseDuration(text: string): number | null {
  const value = text.trim();
  if (value === '0') return 0;
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  let total = 0;
  let consumed = 0;
  while (consumed < value.length) {
    part.lastIndex = consumed;
    const match = part.exec(value);
    if (!match) return null;
    total += Number(match[1]) * (UNIT_MS[match[2] as string] as number);
    consumed = part.lastIndex;
  }
  return consumed > 0 ? total : null;
}

/** Like parseDuration, but throws a message naming the flag. */
export function durationFlag(flag: string, text: string): number {
  const ms = parseDuration(text);
  if (ms === null) throw new Error(`--${flag}: ${JSON.stringify(text)} is not a duration (examples: 200ms, 2s, 1m)`);
  return ms;
}
