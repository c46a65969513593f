// Draws one hard failover as the client saw it, as an SVG (pure: a trace in, text out): time on
// the x-axis from 300 ms before the fault, one mark per 20 ms request at the time it was sent,
// in the row and colour of the node that answered, or red in the "failed" row; vertical lines
// for the fault, the scheduler's detection, the claim write, the address up on the new node
// and the first gratuitous ARP on the client's link; the client's downtime shaded.
import type { HardFailure } from './failover.js';

const WIDTH = 960;
const LEFT = 110;
const RIGHT = 30;
const ROW = 34;
const TOP = 70;
const NODE_COLOURS = ['#1f77b4', '#2ca02c', '#9467bd', '#8c564b'];
const FAILED = '#d62728';

/** The client's request timeout (test/e2e/request-loop.ts): a timed-out request was sent this long before it ended. */
const CLIENT_TIMEOUT_MS = 250;

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

interface Marker {
  label: string;
  at: number;
  colour: string;
}

function markersOf(f: HardFailure): Marker[] {
  const all: Array<[string, number | undefined, string]> = [
    ['fault', f.fault, '#000000'],
    ['detected', f.detected, '#ff7f0e'],
    ['claim written', f.claimed, '#e377c2'],
    ['address up', f.up, '#17becf'],
    ['first GARP', f.firstGarp, '#7f7f7f'],
  ];
  return all.flatMap(([label, at, colour]) => (at === undefined ? [] : [{ label, at, colour }]));
}

function ticks(from: number, to: number): number[] {
  const step = to - from > 1500 ? 200 : 100;
  const out: number[] = [];
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) out.push(t);
  return out;
}

export interface PlotInput {
  settings: string;
  failure: HardFailure;
}

/** The SVG text of one failover. */
export function failoverSvg({ settings, failure: f }: PlotInput): string {
  const from = -300;
  const to = Math.max(f.firstAfter - f.fault + 300, 800);
  const x = (ms: number): number => LEFT + ((ms - from) / (to - from)) * (WIDTH - LEFT - RIGHT);
  const nodes = [...new Set(f.results.filter((r) => r.ok).map((r) => r.body ?? '?'))].sort();
  const rows = [...nodes, 'failed'];
  const rowY = (name: string): number => TOP + rows.indexOf(name) * ROW;
  const colour = (name: string): string => (name === 'failed' ? FAILED : (NODE_COLOURS[nodes.indexOf(name)] ?? '#333333'));
  const bottom = TOP + rows.length * ROW;
  const height = bottom + 90;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`);
  out.push(
    `<text x="${LEFT}" y="22" font-size="15" font-weight="bold">Hard failover of ${esc(f.from)} (agent frozen, link cut): ${f.downtimeMs} ms without an answer</text>`,
  );
  out.push(`<text x="${LEFT}" y="40" fill="#555555">${esc(settings)}</text>`);
  // The client's downtime: last answer before the fault to first answer after it.
  out.push(
    `<rect x="${x(f.lastBefore - f.fault).toFixed(1)}" y="${TOP - 14}" width="${(x(f.firstAfter - f.fault) - x(f.lastBefore - f.fault)).toFixed(1)}" height="${bottom - TOP + 4}" fill="${FAILED}" fill-opacity="0.08"/>`,
  );
  for (const name of rows) {
    out.push(
      `<text x="${LEFT - 8}" y="${rowY(name) + 4}" text-anchor="end">${esc(name === 'failed' ? 'no answer' : `${name} answered`)}</text>`,
    );
    out.push(`<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${rowY(name)}" y2="${rowY(name)}" stroke="#eeeeee"/>`);
  }
  for (const r of f.results) {
    const at = r.t - f.fault - (r.error === 'timeout' ? CLIENT_TIMEOUT_MS : 0);
    if (at < from || at > to) continue;
    const name = r.ok ? (r.body ?? '?') : 'failed';
    out.push(
      `<rect x="${(x(at) - 2).toFixed(1)}" y="${rowY(name) - 8}" width="4" height="16" fill="${colour(name)}"><title>${at} ms: ${esc(r.ok ? `answered by ${name}` : (r.error ?? 'failed'))}</title></rect>`,
    );
  }
  markersOf(f).forEach((m, i) => {
    const at = m.at - f.fault;
    const mx = x(at).toFixed(1);
    out.push(
      `<line x1="${mx}" x2="${mx}" y1="${TOP - 20}" y2="${bottom + 10 + i * 14}" stroke="${m.colour}" stroke-width="1.5" stroke-dasharray="4 2"/>`,
    );
    out.push(`<text x="${mx}" y="${bottom + 20 + i * 14}" fill="${m.colour}" dx="3">${esc(m.label)} +${Math.round(at)} ms</text>`);
  });
  const axisY = bottom + 86;
  out.push(`<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${axisY - 12}" y2="${axisY - 12}" stroke="#999999"/>`);
  for (const t of ticks(from, to)) out.push(`<text x="${x(t).toFixed(1)}" y="${axisY}" text-anchor="middle" fill="#555555">${t}</text>`);
  out.push(
    `<text x="${WIDTH - RIGHT}" y="${axisY - 16}" text-anchor="end" fill="#555555">ms after the fault (each mark: one request, when it was sent; shaded: the client's downtime)</text>`,
  );
  out.push('</svg>');
  return out.join('\n') + '\n';
}
