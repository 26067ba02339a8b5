/**
 * The audit of what is running: the images of running Pods judged against today's policies
 * and trust data, as admission would judge them now, plus what will stop being trusted
 * within the forecast window. Each distinct image is verified once per namespace; what the
 * cache cannot answer goes to the trust server at a bounded rate, one at a time, so an
 * audit of a large cluster never competes with admissions for the trust server.
 */
import { imagesOf, WorkloadError, type ImageUse } from '../images/workloads.js';
import { describeFailure, policyLabel } from '../admission/report.js';
import { describeExpiry } from '../verify/expiry.js';
import type { ImageVerdict, ImageVerifier, PolicyRef } from '../verify/types.js';

export interface AuditVerifier extends ImageVerifier {
  /** When the trust data that accepts this image expires (from warm data), if known. */
  expiresAt?(image: string, namespace: string | undefined): { at: Date; role: string; policy: PolicyRef } | undefined;
}

export interface AuditOptions {
  verifier: AuditVerifier;
  clock?: () => Date;
  /** Trust data expiring within this many milliseconds is a finding (warn). */
  expiryWarningMs: number;
  /** Verifications that miss the cache, per second (default 2). */
  fetchesPerSecond?: number;
  /** Per image (default 30 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Waits `ms`; replaced in tests to count the pacing without waiting. */
  sleep?: (ms: number) => Promise<void>;
}

export interface AuditPod {
  metadata?: { name?: string; namespace?: string; uid?: string };
  spec?: unknown;
  status?: { phase?: string };
}

export type FindingResult = 'fail' | 'warn';

export interface AuditFinding {
  namespace: string;
  pod: string;
  uid?: string;
  /** Containers (and image volumes) that run the image. */
  uses: string[];
  image: string;
  /** fail: admission would deny it now; warn: a non-enforcing policy fails it, or its trust data expires within the window. */
  result: FindingResult;
  /** Machine-readable: the failure's code (unsigned, expired, unreachable...), or 'expiring'. */
  code: string;
  /** Kind/namespace/name of the policy concerned, when there is one. */
  policy?: string;
  message: string;
}

export interface AuditReport {
  startedAt: string;
  pods: number;
  images: number;
  /** Pods with no finding, per namespace. */
  passed: Record<string, number>;
  findings: AuditFinding[];
}

const POD = { group: '', kind: 'Pod' };

export async function auditPods(pods: AuditPod[], opts: AuditOptions): Promise<AuditReport> {
  const clock = opts.clock ?? (() => new Date());
  const started = clock();
  const pace = pacer(opts.fetchesPerSecond ?? 2, opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms))));
  const verdicts = new Map<string, Promise<ImageJudgement>>();
  const judge = (image: string, namespace: string) => {
    const key = `${namespace}\n${image}`;
    let j = verdicts.get(key);
    if (!j) {
      j = judgeImage(image, namespace, opts, clock, pace);
      verdicts.set(key, j);
    }
    return j;
  };
  const findings: AuditFinding[] = [];
  const passed: Record<string, number> = {};
  let checked = 0;
  for (const pod of pods) {
    if (opts.signal?.aborted) break;
    const namespace = pod.metadata?.namespace ?? '';
    const name = pod.metadata?.name ?? '';
    const base = { namespace, pod: name, ...(pod.metadata?.uid ? { uid: pod.metadata.uid } : {}) };
    let uses: ImageUse[];
    try {
      uses = imagesOf(POD, pod);
    } catch (e) {
      if (!(e instanceof WorkloadError)) throw e;
      findings.push({ ...base, uses: [], image: '', result: 'fail', code: 'unreadable', message: `trustgate cannot read the images of this Pod: ${e.message}` });
      continue;
    }
    checked++;
    const before = findings.length;
    for (const image of [...new Set(uses.map((u) => u.image))]) {
      // Sequential on purpose: one verification at a time is the audit's whole share of the trust server.
      const j = await judge(image, namespace);
      const names = uses.filter((u) => u.image === image).map((u) => `${u.kind} ${u.name}`);
      for (const f of j.findings) findings.push({ ...base, uses: names, image, ...f });
    }
    if (findings.length === before) passed[namespace] = (passed[namespace] ?? 0) + 1;
  }
  return { startedAt: started.toISOString(), pods: checked, images: verdicts.size, passed, findings };
}

interface ImageJudgement {
  findings: Array<Pick<AuditFinding, 'result' | 'code' | 'message'> & { policy?: string }>;
}

async function judgeImage(image: string, namespace: string, opts: AuditOptions, clock: () => Date, pace: () => Promise<void>): Promise<ImageJudgement> {
  const ns = namespace === '' ? undefined : namespace;
  let verdict: ImageVerdict | undefined;
  try {
    verdict = opts.verifier.verifyCached?.(image, ns);
  } catch {
    // verifyImage gives the full account.
  }
  if (!verdict) {
    await pace();
    try {
      verdict = await opts.verifier.verifyImage(image, ns, AbortSignal.timeout(opts.timeoutMs ?? 30_000));
    } catch (e) {
      return { findings: [{ result: 'fail', code: 'error', message: `verification failed: ${(e as Error).message}` }] };
    }
  }
  const out: ImageJudgement['findings'] = [];
  for (const f of verdict.failures) {
    out.push({ result: f.mode === 'enforce' ? 'fail' : 'warn', code: f.code, ...(f.policy.name !== '(none)' ? { policy: policyLabel(f.policy) } : {}), message: describeFailure(f) });
  }
  if (!verdict.allowed && !out.some((f) => f.result === 'fail')) out.push({ result: 'fail', code: 'denied', message: 'the verifier does not allow this image' });
  if (verdict.allowed && !out.some((f) => f.result === 'fail')) {
    const exp = opts.verifier.expiresAt?.(image, ns);
    const now = clock();
    if (exp && exp.at.getTime() - now.getTime() <= opts.expiryWarningMs) {
      out.push({
        result: 'warn',
        code: 'expiring',
        policy: policyLabel(exp.policy),
        message: `${describeExpiry({ role: exp.role, expires: exp.at }, now)} (at ${exp.at.toISOString()}); after that this image is denied under ${policyLabel(exp.policy)} unless it is re-signed`,
      });
    }
  }
  return { findings: out };
}

/** At most `perSecond` calls pass per second: each caller waits its turn. */
function pacer(perSecond: number, sleep: (ms: number) => Promise<void>): () => Promise<void> {
  const gap = 1000 / perSecond;
  let first = true;
  return async () => {
    if (first) {
      first = false;
      return;
    }
    await sleep(gap);
  };
}
