// The pure steps of the agent's reconcile around the address plan (addresses.ts): what the
// claims want of this node, what the ops of one `ip -batch` did, which addresses are held
// afterwards, the outcome of every claim (up, or failed with its reason) that becomes its
// status, and which held addresses changed. agent.ts runs the ops and acts on these.
import type { ClaimFailureReason } from '../api/reasons.js';
import type { IpClaim } from '../api/types.js';
import { isUp, wantedAddress, type AddressOp, type HostLink, type Plan, type WantedAddress } from './addresses.js';
import type { ClaimEntry } from './kube.js';
import type { ClaimOutcome } from './status.js';

export interface HeldAddress extends WantedAddress {
  iface: string;
}

/** What the ops of one batch did, by claim. */
export interface OpTally {
  /** Claims whose add worked. */
  addedOk: Set<string>;
  /** Claim -> the error of its failed add. */
  addErrors: Map<string, string>;
  removed: number;
}

/** Reads `ip -batch`'s per-line errors (by op index) into what each claim's add did. */
export function tallyOps(ops: AddressOp[], errors: Map<number, string>): OpTally {
  const tally: OpTally = { addedOk: new Set(), addErrors: new Map(), removed: 0 };
  ops.forEach((op, i) => {
    const error = errors.get(i);
    if (error !== undefined) {
      if (op.op === 'add' && op.claim) tally.addErrors.set(op.claim, error);
    } else if (op.op === 'remove') tally.removed += 1;
    else if (op.claim) tally.addedOk.add(op.claim);
  });
  return tally;
}

export interface OutcomeInput {
  plan: Pick<Plan, 'failed' | 'placement'>;
  /** Claims that cannot be served as written (unparseable, bad cidr). */
  invalid: InvalidClaim[];
  /** The interfaces as listed before the ops. */
  links: HostLink[];
  tally: OpTally;
  /** Adds held back for a conflict probe (not up yet, not failed either). */
  waiting: Set<string>;
  /** Claims kept down for an address conflict (their outcome comes from the conflict report). */
  conflicts: Map<string, string>;
  /** Claims moved away during a drain, kept here until their new node confirms them: not ours to report. */
  lingering: Set<string>;
}

/**
 * What is up follows from the listing plus the ops that worked (ip -batch reports every failed
 * line), so no second listing is needed before announcing; the next resync checks anyway.
 */
export function claimOutcomes(input: OutcomeInput): { held: Map<string, HeldAddress>; outcomes: Map<string, ClaimOutcome> } {
  const { plan, tally } = input;
  const outcomes = new Map<string, ClaimOutcome>();
  for (const f of plan.failed) outcomes.set(f.claim, { kind: 'failed', reason: f.reason, message: f.message });
  for (const f of input.invalid) outcomes.set(f.claim, { kind: 'failed', reason: f.reason, message: f.message });
  const held = new Map<string, HeldAddress>();
  for (const [claim, { iface, want }] of plan.placement) {
    if (input.waiting.has(claim) || input.conflicts.has(claim)) continue;
    const error = tally.addErrors.get(claim);
    if (error === undefined && (tally.addedOk.has(claim) || isUp(input.links, iface, want.ip))) {
      held.set(claim, { ...want, iface });
      outcomes.set(claim, { kind: 'up', ip: want.ip, iface });
    } else {
      outcomes.set(claim, { kind: 'failed', reason: 'AddFailed', message: error ?? `${want.ip} is not usable on ${iface}` });
    }
  }
  for (const name of input.lingering) outcomes.delete(name);
  return { held, outcomes };
}

export interface InvalidClaim {
  claim: string;
  reason: ClaimFailureReason;
  message: string;
}

export interface WantedClaims {
  /** Addresses to hold: the claims assigned here, plus those handed over but not yet confirmed. */
  wanted: WantedAddress[];
  invalid: InvalidClaim[];
  /** The claims assigned to this node, by name. */
  byName: Map<string, IpClaim>;
  /** Claims moved away during a drain whose new node has not confirmed them yet (drain.ts handingOver). */
  lingering: Set<string>;
}

/** What the claims ask of this node; `handingOver` says which claims moved away are kept for now. */
export function wantedClaims(
  entries: ClaimEntry[],
  node: { name: string; mask: number | undefined },
  handingOver: (name: string, claim: IpClaim) => boolean,
): WantedClaims {
  const out: WantedClaims = { wanted: [], invalid: [], byName: new Map(), lingering: new Set() };
  for (const entry of entries) {
    if (!entry.ok) {
      if (entry.nodeName === node.name) out.invalid.push({ claim: entry.name, reason: 'InvalidClaim', message: entry.reason });
      continue;
    }
    const claim = entry.claim;
    const name = claim.metadata.name ?? '';
    const here = claim.spec.nodeName === node.name;
    if (!here && !handingOver(name, claim)) continue;
    if (here) out.byName.set(name, claim);
    else out.lingering.add(name);
    const w = wantedAddress(name, claim.spec.cidr, claim.spec.link, node.mask);
    if (w.ok) out.wanted.push(w.value);
    else if (here) out.invalid.push({ claim: name, reason: w.reason, message: w.message });
  }
  return out;
}

/** Held addresses that are new or moved (fresh) or were put back after someone removed them (restored), and the IPs let go. */
export function addressChanges(
  before: Map<string, HeldAddress>,
  after: Map<string, HeldAddress>,
  addedOk: Set<string>,
): { changed: { address: HeldAddress; restored: boolean }[]; withdrawn: string[] } {
  const same = (a: HeldAddress | undefined, b: HeldAddress): boolean => !!a && a.ip === b.ip && a.iface === b.iface;
  const changed: { address: HeldAddress; restored: boolean }[] = [];
  for (const [claim, h] of after) {
    const moved = !same(before.get(claim), h);
    if (moved || addedOk.has(claim)) changed.push({ address: h, restored: !moved });
  }
  const withdrawn = [...before].filter(([claim, prev]) => !same(after.get(claim), prev)).map(([, prev]) => prev.ip);
  return { changed, withdrawn };
}
