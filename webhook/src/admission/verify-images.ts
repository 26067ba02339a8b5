// The verification step of an admission: each distinct image's verdict, first from warm
// trust data without waiting (no promise, no timer), the rest all at once under the deadline.
import { raceAbort } from '../common/abort.js';
import { isObject } from '../common/is-object.js';
import type { ImageVerdict, ImageVerifier } from '../verify/types.js';
import { secondsSince, type AdmissionMetrics } from './types.js';

/** What is known of one image: a usable verdict, or the problem that stands in its place. */
export type Settled = { verdict: ImageVerdict; problem?: undefined } | { problem: string; verdict?: undefined };

export interface VerifyStep {
  verifier: ImageVerifier;
  metrics: AdmissionMetrics;
}

/**
 * Settles every image the verifier can answer from warm trust data, synchronously, into
 * `settled`; returns the images that need I/O.
 */
export function verifyCached(step: VerifyStep, images: string[], namespace: string | undefined, settled: Map<string, Settled>): string[] {
  const waiting: string[] = [];
  for (const image of images) {
    const t0 = performance.now();
    let verdict: ImageVerdict | undefined;
    try {
      verdict = step.verifier.verifyCached?.(image, namespace);
    } catch {
      // verifyImage gives the same error with its full account.
    }
    if (verdict === undefined) {
      waiting.push(image);
      continue;
    }
    step.metrics.imageVerificationSeconds(secondsSince(t0));
    settled.set(image, settle(verdict, image));
  }
  return waiting;
}

/**
 * Verifies images that need I/O, all at once, and stops waiting at the deadline even if
 * the verifier ignores the abort signal. Fills `settled` with what was known in time and
 * returns the problem to report for images without a verdict.
 */
export async function verifyUnderDeadline(
  step: VerifyStep,
  images: string[],
  namespace: string | undefined,
  settled: Map<string, Settled>,
  outer: AbortSignal | undefined,
  budget: number,
): Promise<string> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error('deadline')), budget);
  const onOuter = () => controller.abort(new Error('cancelled'));
  if (outer?.aborted) onOuter();
  else outer?.addEventListener('abort', onOuter, { once: true });

  const found = new Map<string, Settled>();
  // Each image's wait is observed once: when its verdict arrives, or when we stop waiting.
  const timed = new Set<string>();
  const t0 = performance.now();
  const observe = (image: string) => {
    if (timed.has(image)) return;
    timed.add(image);
    step.metrics.imageVerificationSeconds(secondsSince(t0));
  };
  const one = async (image: string) => {
    try {
      const verdict = await step.verifier.verifyImage(image, namespace, controller.signal);
      const s = settle(verdict, image);
      // An allow that comes back after the deadline was not known in time; a denial is kept,
      // since the verifier's own account of the timeout names the policy and the server.
      if (controller.signal.aborted && (s.problem !== undefined || verdict.allowed !== false)) return;
      found.set(image, s);
    } catch (e) {
      if (controller.signal.aborted) return;
      found.set(image, { problem: `verification failed: ${(e as Error)?.message ?? String(e)}` });
    } finally {
      observe(image);
    }
  };
  try {
    // `one` never rejects: the only rejection is the deadline or the caller stopping us.
    await raceAbort(Promise.all(images.map(one)), controller.signal, () => new Error('stopped waiting'));
  } catch {
    // What was found by then is frozen below.
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener('abort', onOuter);
    images.forEach(observe);
  }
  // A verifier that honours the signal settles within a turn of the event loop after it.
  if (controller.signal.aborted && found.size < images.length) await new Promise((r) => setImmediate(r));
  // Freeze what was known when we stopped waiting; late verdicts must not change the answer.
  for (const [image, s] of found) settled.set(image, s);
  return outer?.aborted === true ? 'the request was cancelled before verification finished' : `verification did not finish within ${formatSeconds(budget)}`;
}

/** A verdict as it may be used, or the problem with it: the verifier is checked, not trusted. */
function settle(verdict: ImageVerdict, image: string): Settled {
  const bad = verdictProblem(verdict, image);
  return bad ? { problem: bad } : { verdict };
}

function verdictProblem(v: unknown, image: string): string | undefined {
  if (!isObject(v) || typeof v['allowed'] !== 'boolean' || !Array.isArray(v['failures'])) return 'the verifier returned a malformed verdict';
  if (v['image'] !== image) return `the verifier answered for ${JSON.stringify(v['image'])} instead`;
  return undefined;
}

function formatSeconds(msValue: number): string {
  return `${Number((msValue / 1000).toFixed(3))}s`;
}
