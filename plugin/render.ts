// How `kubectl ipcontroller` prints: text tables as kubectl does (colour only on a terminal),
// or the same data as JSON / YAML for scripts. Pure: a model in, a string out.
import { stripVTControlCharacters } from 'node:util';
import { stringify } from 'yaml';
import { SERVICE_CONDITION } from '../api/conditions.js';
import { seconds } from '../api/moves.js';
import type { AddressExplanation, Explanation } from './explain.js';
import type { History } from './history.js';
import type { StatusModel } from './model.js';

export type Output = 'text' | 'json' | 'yaml';

export interface Style {
  ok(text: string): string;
  bad(text: string): string;
  warn(text: string): string;
  bold(text: string): string;
  dim(text: string): string;
}

const ansi =
  (code: number) =>
  (text: string): string =>
    `\x1b[${code}m${text}\x1b[0m`;
export const COLOUR: Style = { ok: ansi(32), bad: ansi(31), warn: ansi(33), bold: ansi(1), dim: ansi(2) };
const same = (text: string): string => text;
export const PLAIN: Style = { ok: same, bad: same, warn: same, bold: same, dim: same };

/** Colour only on a terminal, and never when NO_COLOR is set (no-color.org). */
export function styleFor(isTTY: boolean, env: NodeJS.ProcessEnv): Style {
  return isTTY && !env.NO_COLOR && env.TERM !== 'dumb' ? COLOUR : PLAIN;
}

/** kubectl's short ages: 45s, 3m12s, 2h5m, 4d. */
export function age(ms: number): string {
  const s = Math.floor(Math.max(0, ms) / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return `${m}m${s % 60 ? `${s % 60}s` : ''}`;
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${m % 60 ? `${m % 60}m` : ''}`;
  return `${Math.floor(h / 24)}d`;
}

/** Width on screen: the text without its colour escapes. */
const visible = (text: string): number => stripVTControlCharacters(text).length;

/** Columns padded to the widest cell, three spaces apart, as kubectl prints. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => visible(r[i] ?? ''))));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat((widths[i] ?? 0) - visible(c) + 3)))
      .join('')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function phaseStyled(phase: string, st: Style): string {
  return phase === 'Assigned' ? st.ok(phase) : phase === 'Failed' ? st.bad(phase) : st.warn(phase);
}

export function renderStatus(m: StatusModel, st: Style): string {
  const now = Date.parse(m.readAt);
  const ago = (iso?: string): string => (iso ? age(now - Date.parse(iso)) : '-');
  const out: string[] = [];
  const leader = m.leader
    ? `${m.leader.holder}${m.leader.renewedAgoMs !== undefined ? ` (renewed ${age(m.leader.renewedAgoMs)} ago)` : ''}`
    : st.warn(`unknown: ${m.leaderProblem ?? 'no Lease'}`);
  out.push(`${st.bold('Scheduler leader:')} ${leader}`, '');
  out.push(st.bold('ADDRESSES'));
  if (m.addresses.length === 0) out.push('  (no IpClaims)');
  else {
    out.push(
      table(
        ['IP', 'SERVICE(S)', 'POOL', 'NODE', 'PHASE', 'SINCE', 'LAST MOVE'],
        m.addresses.map((a) => {
          const node = a.node ?? st.warn('<none>');
          const where = a.reportedNode && a.node && a.reportedNode !== a.node ? `${node} (up on ${a.reportedNode})` : node;
          const move = a.lastMove
            ? `${a.lastMove.from} -> ${a.lastMove.to} (${a.lastMove.reason}) ${a.lastMove.durations.total !== null ? `in ${seconds(a.lastMove.durations.total)}` : 'not up yet'}, ${ago(a.lastMove.upAt ?? a.lastMove.claimedAt)} ago`
            : '-';
          return [a.address, a.services.join(', ') || '-', a.pool ?? '-', where, phaseStyled(a.phase, st), ago(a.since), move];
        }),
      ),
    );
    for (const a of m.addresses) if (a.detail) out.push(`  ${a.address}: ${st.warn(a.detail)}`);
  }
  out.push('', st.bold('NODES'));
  if (m.nodes.length === 0) out.push('  (no agent nodes)');
  else {
    out.push(
      table(
        ['NAME', 'READY', 'CANDIDATE', 'RTT', 'CLAIMS', 'FENCED', 'DRAINING', 'HEARTBEAT'],
        m.nodes.map((n) => [
          n.name,
          n.ready === 'True' ? st.ok('True') : st.bad(n.ready),
          n.candidate ? st.ok('yes') : st.bad(`no: ${n.reason ?? ''}`),
          n.rttMs !== undefined ? `${Number(n.rttMs.toFixed(2))}ms` : '-',
          `${n.claimsHeld ?? '-'}/${n.claimsAssigned}`,
          n.fenced ? st.bad('yes') : 'no',
          n.draining ? st.warn('yes') : 'no',
          n.heartbeatAgeMs !== undefined ? `${age(n.heartbeatAgeMs)} ago` : '-',
        ]),
      ),
    );
    for (const n of m.nodes) if (!n.candidate && n.message) out.push(`  ${n.name}: ${st.bad(n.message)}`);
    out.push(st.dim('  CLAIMS: held by the agent / assigned by the scheduler'));
  }
  out.push('', st.bold('POOLS'));
  if (m.pools.length === 0) out.push('  (no IpClaimPools)');
  else {
    out.push(
      table(
        ['NAME', 'CIDR', 'USED', 'FREE', 'VALID', 'OVERLAPS'],
        m.pools.map((p) => [
          p.name,
          p.cidr,
          String(p.used ?? '-'),
          String(p.free ?? '-'),
          p.valid ? st.ok('True') : st.bad('False'),
          p.overlaps.length ? st.warn(p.overlaps.join(', ')) : '-',
        ]),
      ),
    );
    for (const p of m.pools) if (p.reason) out.push(`  ${p.name}: ${st.bad(p.reason)}`);
  }
  return `${out.join('\n')}\n`;
}

export function renderWhy(e: Explanation, st: Style): string {
  const headline = e.pending.length ? st.bad(e.summary) : e.condition?.status === 'True' ? st.ok(e.summary) : st.warn(e.summary);
  const out: string[] = [`${st.bold(`Service ${e.service}`)}: ${headline}`];
  if (e.asks.length) out.push('', st.bold('Asks for'), ...e.asks.map((a) => `  ${a}`));
  for (const a of e.addresses) out.push(...whyAddress(a, st));
  if (e.pending.length) out.push('', st.bold('Pending'), ...e.pending.map((p) => `  ${st.bad(p.reason)}: ${p.message}`));
  out.push(...whyCondition(e, st));
  return `${out.join('\n')}\n`;
}

function whyAddress(a: AddressExplanation, st: Style): string[] {
  const out = ['', st.bold(a.address), `  ${a.origin}`, `  ${a.decision.kind === 'pending' ? st.bad(a.placement) : a.placement}`];
  if (a.node || a.phase) {
    const reported = a.phase ? `${a.phase}${a.reportedNode ? ` on ${a.reportedNode}` : ''}` : 'no agent has reported it yet';
    out.push(`  now: spec.nodeName ${a.node ?? '<none>'}, ${reported}`);
  }
  if (a.nodes.length) {
    out.push('  nodes:');
    out.push(
      table(
        ['    NODE', 'MAY HOLD IT', 'WHY'],
        a.nodes.map((n) => [`    ${n.node}`, n.chosen ? st.ok('yes, chosen') : n.reason ? st.bad(`no: ${n.reason}`) : 'yes', n.message]),
      ),
    );
  }
  return out;
}

function whyCondition(e: Explanation, st: Style): string[] {
  const c = e.condition;
  if (!c) return [];
  const out = [
    '',
    `${st.bold(`Condition ${SERVICE_CONDITION}`)}: ${c.status === 'True' ? st.ok(c.status) : st.bad(c.status)} (${c.reason}) ${c.message}`,
  ];
  if (e.recorded && (e.recorded.status !== c.status || e.recorded.reason !== c.reason))
    out.push(`  on the Service now: ${e.recorded.status} (${e.recorded.reason}); the scheduler updates it on its next pass`);
  return out;
}

export function renderHistory(h: History, st: Style, now: number): string {
  const out: string[] = [st.bold(`History of Service ${h.service}`)];
  if (h.entries.length === 0) out.push('  (nothing recorded)');
  else {
    out.push(
      table(
        ['AGE', 'SOURCE', 'REASON', 'MESSAGE'],
        h.entries.map((e) => [
          age(now - Date.parse(e.at)),
          e.source,
          e.type === 'Warning' ? st.warn(e.reason) : e.reason,
          `${e.message}${e.count ? ` (x${e.count})` : ''}`,
        ]),
      ),
    );
  }
  out.push('', st.dim(`${h.eventsSince ? `Events found since ${h.eventsSince}. ` : 'No Events found. '}${h.note}`));
  return `${out.join('\n')}\n`;
}

/** JSON or YAML of any model, as `kubectl get -o json|yaml` prints objects. */
export function renderData(value: unknown, output: 'json' | 'yaml'): string {
  return output === 'json' ? `${JSON.stringify(value, null, 2)}\n` : stringify(value);
}
