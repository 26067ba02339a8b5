/**
 * What the verification engine promises its callers (CLI, admission). A verdict is data,
 * never a process exit, so the webhook can cache, time out and compose it.
 */
import type { Mode, PolicyKind } from '../policy/model.js';
import type { FailureCause, FailureCode } from './failure.js';

export type { Mode };

export interface PolicyRef {
  kind: PolicyKind;
  name: string;
  namespace?: string;
}

/** Why one policy did not accept one image. */
export interface PolicyFailure {
  policy: PolicyRef;
  mode: Mode;
  /** Trust-data role the failure concerns ('timestamp', 'targets/releases', ...), if any. */
  role?: string;
  /** Trust server URL or metadata directory. */
  server?: string;
  /** Machine-readable, e.g. 'expired', 'signature', 'unsigned', 'digest-mismatch', 'unreachable', 'timeout', 'no-policy'. */
  code: FailureCode;
  /** Which layer failed: the same code (e.g. 'too-large') can come from a fetch and from verification. Set with `failure()` (verify/failure.ts), which pairs it with the code. */
  cause: FailureCause;
  /** One sentence a person can act on. */
  reason: string;
}

export interface ImageVerdict {
  /** The reference exactly as written in the object. */
  image: string;
  /** Fully normalized, e.g. docker.io/library/nginx:1.25 */
  reference: string;
  /** False only when an enforce-mode policy failed (or no policy matched and unmatched images are denied). */
  allowed: boolean;
  /** sha256:<hex> that the trust data signs for this image, when verification succeeded. */
  digest?: string;
  /** name:tag@sha256:... to run instead of `image`, when verification succeeded. */
  pinned?: string;
  /** Policies that accepted the image. */
  passed: PolicyRef[];
  /** Every failure, enforce/warn/audit alike; the caller turns them into denials, warnings, annotations. */
  failures: PolicyFailure[];
  /** Each policy that judged the image, with its mode: what per-policy metrics and logs report. */
  policyResults?: PolicyResult[];
  /** Set when the image is allowed without any verification, and why: an exemption, or no policy matched under --allow-unmatched. */
  unverified?: 'exempt' | 'unmatched';
}

export interface PolicyResult {
  policy: PolicyRef;
  mode: Mode;
  result: 'pass' | 'fail';
}

export interface ImageVerifier {
  /** Verifies one image as it would run in `namespace` (undefined: cluster-scoped view). Never throws: every error becomes a failure. */
  verifyImage(image: string, namespace: string | undefined, signal: AbortSignal): Promise<ImageVerdict>;
  /**
   * The same verdict without waiting, when it needs no I/O (warm trust data); undefined
   * otherwise. Lets a warm admission skip the timers and promises a wait needs.
   */
  verifyCached?(image: string, namespace: string | undefined): ImageVerdict | undefined;
}
