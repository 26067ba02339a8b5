// Turning per-image outcomes into what people read: the denial message (kubectl prints it
// after "denied the request:"), warnings (kubectl prints each as "Warning: ..."), and audit
// annotations (the API server stores them in the audit event under our webhook's name).
import type { ImageUse } from '../images/workloads.js';
import type { DecisionMode } from './types.js';
import type { ImageVerdict, Mode, PolicyFailure, PolicyRef } from '../verify/types.js';

export interface ImageOutcome {
  image: string;
  /** Every container and image volume that runs this image. */
  uses: ImageUse[];
  verdict?: ImageVerdict;
  /** Set when no verdict is usable: deadline, verifier error, malformed verdict. */
  problem?: string;
}

// No per-warning length cut: the API server applies its own (it shortens warnings only once
// their total passes 4 KiB). Counts are capped, with a line saying how many more there are.
const WARNINGS_MAX = 20;
const AUDIT_MAX = 50;
const DENY_LINES_MAX = 30;
/** A safety bound on one line against a reason that carries a whole server answer; cut at a word, the log keeps all. */
const LINE_MAX = 4000;

export function isDenied(o: ImageOutcome): boolean {
  if (o.problem !== undefined || o.verdict === undefined) return true;
  return !o.verdict.allowed || o.verdict.failures.some((f) => f.mode === 'enforce');
}

/** One line per image that may not run. */
export function denyLines(outcomes: ImageOutcome[]): string[] {
  const lines: string[] = [];
  const denied = outcomes.filter(isDenied);
  for (const o of denied.slice(0, DENY_LINES_MAX)) {
    let why: string;
    if (o.problem !== undefined) why = o.problem;
    else {
      const enforce = o.verdict!.failures.filter((f) => f.mode === 'enforce');
      why = enforce.length > 0 ? enforce.map(describeFailure).join('; ') : 'the verifier did not allow this image and gave no reason';
    }
    lines.push(clip(`${usedBy(o.uses)} image ${JSON.stringify(o.image)}: ${why}`));
  }
  if (denied.length > DENY_LINES_MAX) lines.push(`... and ${denied.length - DENY_LINES_MAX} more images`);
  return lines;
}

export function warnings(outcomes: ImageOutcome[]): string[] {
  const out: string[] = [];
  let total = 0;
  for (const o of outcomes) {
    for (const f of o.verdict?.failures ?? []) {
      if (f.mode !== 'warn') continue;
      total++;
      if (out.length < WARNINGS_MAX) out.push(clip(`trustgate: ${o.image}: ${f.reason}`));
    }
  }
  if (total > WARNINGS_MAX) out[WARNINGS_MAX - 1] = `trustgate: ${total - WARNINGS_MAX + 1} more image warnings not shown`;
  return out;
}

/**
 * Audit-mode failures as annotations. Keys carry no prefix: the API server prefixes them
 * with the webhook name and drops any key that would then contain a second '/'.
 */
export function auditAnnotations(outcomes: ImageOutcome[]): Record<string, string> {
  const out: Record<string, string> = {};
  let n = 0;
  for (const o of outcomes) {
    for (const f of o.verdict?.failures ?? []) {
      if (f.mode !== 'audit' || n >= AUDIT_MAX) continue;
      n++;
      out[`audit-${n}`] = clip(`${usedBy(o.uses)} image ${JSON.stringify(o.image)}: ${describeFailure(f)}`);
    }
  }
  return out;
}

const UNVERIFIED_WHY = {
  exempt: 'it matches an --exempt pattern',
  unmatched: 'no TrustPolicy or ClusterTrustPolicy matches it and --allow-unmatched is set',
} as const;

/** A warning for each image admitted without verification: nobody should mistake it for a verified one. */
export function unverifiedWarnings(outcomes: ImageOutcome[]): string[] {
  const out: string[] = [];
  const all = outcomes.filter((o) => o.verdict?.unverified !== undefined);
  for (const o of all.slice(0, WARNINGS_MAX)) out.push(clip(`trustgate: ${o.image} was not verified: ${UNVERIFIED_WHY[o.verdict!.unverified!]}`));
  if (all.length > WARNINGS_MAX) out.push(`trustgate: ${all.length - WARNINGS_MAX} more images were not verified`);
  return out;
}

/** The same as audit annotations (`unverified-1`, ...), so the audit log shows what ran unverified. */
export function unverifiedAnnotations(outcomes: ImageOutcome[]): Record<string, string> {
  const out: Record<string, string> = {};
  let n = 0;
  for (const o of outcomes) {
    const why = o.verdict?.unverified;
    if (why === undefined || n >= AUDIT_MAX) continue;
    n++;
    out[`unverified-${n}`] = clip(`${usedBy(o.uses)} image ${JSON.stringify(o.image)}: not verified: ${UNVERIFIED_WHY[why]}`);
  }
  return out;
}

const MODE_STRENGTH: Record<Mode, number> = { audit: 1, warn: 2, enforce: 3 };

/**
 * The mode that decided an admission. Denied: enforce. Allowed with failures of
 * non-enforcing policies: the strongest of those (warn over audit), so dashboards still see
 * what warn and audit policies caught. Otherwise the strongest mode among the policies that
 * verified the images ('enforce' when an enforcing policy verified them); 'none' when no
 * policy judged any image (exempt, unmatched, nothing to check).
 */
export function decisionMode(outcomes: ImageOutcome[]): DecisionMode {
  let failing: Mode | undefined;
  let passing: Mode | undefined;
  const stronger = (a: Mode | undefined, b: Mode) => (a === undefined || MODE_STRENGTH[b] > MODE_STRENGTH[a] ? b : a);
  for (const o of outcomes) {
    if (isDenied(o)) return 'enforce';
    for (const f of o.verdict?.failures ?? []) failing = stronger(failing, f.mode);
    for (const r of o.verdict?.policyResults ?? []) if (r.result === 'pass') passing = stronger(passing, r.mode);
  }
  return failing ?? passing ?? 'none';
}

/** A policy as a metric label and in logs: Kind/name or Kind/namespace/name. */
export function policyLabel(p: PolicyRef): string {
  return p.namespace ? `${p.kind}/${p.namespace}/${p.name}` : `${p.kind}/${p.name}`;
}

/** "TrustPolicy payments/strict, role targets/releases, server https://...: <reason>" */
export function describeFailure(f: PolicyFailure): string {
  const parts: string[] = [];
  // The engine names no real policy for failures that precede matching (no policy matched,
  // unparseable reference); "ClusterTrustPolicy (none)" would only confuse the reader.
  if (f.policy && f.policy.name !== NO_POLICY) parts.push(policyName(f.policy));
  if (f.role) parts.push(`role ${f.role}`);
  if (f.server) parts.push(`server ${f.server}`);
  return parts.length > 0 ? `${parts.join(', ')}: ${f.reason}` : f.reason;
}

const NO_POLICY = '(none)';

function policyName(p: PolicyRef | undefined): string {
  if (!p) return 'no policy';
  return p.namespace ? `${p.kind} ${p.namespace}/${p.name}` : `${p.kind} ${p.name}`;
}

function usedBy(uses: ImageUse[]): string {
  const names = uses.map((u) => `${u.kind} ${JSON.stringify(u.name)}`);
  return names.length <= 3 ? names.join(', ') : `${names.slice(0, 3).join(', ')} and ${names.length - 3} more`;
}

function clip(s: string, max = LINE_MAX): string {
  // Control characters would be mangled by the API server's warning sanitizer anyway.
  const clean = s.replace(/[\u0000-\u001f\u007f]+/g, ' ');
  if (clean.length <= max) return clean;
  const space = clean.lastIndexOf(' ', max - 4);
  return `${clean.slice(0, space > max / 2 ? space : max - 4)} ...`;
}
