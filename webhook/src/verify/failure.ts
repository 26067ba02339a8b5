/**
 * Why an image was not verified, as one typed pair: the cause (which layer failed) and the
 * code (what exactly). Codes repeat across causes on purpose: a fetch that returned too many
 * bytes ('too-large', transport) and metadata over its declared length ('too-large', trust
 * data) keep the code strings people and tests know, and are told apart by the cause.
 */
import type { TufErrorCode } from '../tuf/index.js';
import type { FetchErrorKind } from '../notary/source.js';
import type { WorkerLoadError } from './load-workers.js';

export type FailureCause = 'trust-data' | 'transport' | 'policy' | 'reference' | 'internal';

// Records, not arrays, so the compiler checks each list against its source union: a code
// added to TufErrorCode or FetchErrorKind and not listed here is a compile error.
const TRUST_DATA: Record<TufErrorCode, true> = {
  malformed: true,
  'too-large': true,
  'hash-mismatch': true,
  signature: true,
  'bad-key': true,
  expired: true,
  rollback: true,
  'untrusted-root': true,
  delegation: true,
  'not-found': true,
};
const TRANSPORT: Record<FetchErrorKind, true> = { 'not-found': true, 'too-large': true, timeout: true, unreachable: true, tls: true, auth: true, http: true };
/** Trust data that is valid but does not vouch for the image under the policy, or no usable policy. */
const POLICY = { 'no-policy': true, 'invalid-policy': true, unsigned: true, 'digest-mismatch': true, 'registry-alias': true } as const;
const REFERENCE = { 'invalid-reference': true } as const;
/** Our own limits: the verification deadline, a worker out of memory or time, an unexpected error. */
const INTERNAL: Record<WorkerLoadError['code'], true> = { 'too-large': true, timeout: true, error: true };

interface CodesByCause {
  'trust-data': TufErrorCode;
  transport: FetchErrorKind;
  policy: keyof typeof POLICY;
  reference: keyof typeof REFERENCE;
  internal: WorkerLoadError['code'];
}

export type FailureCode = CodesByCause[FailureCause];

/** A cause with a code it can have: `{ cause: 'transport', code: 'signature' }` does not compile. */
export type Failure = { [C in FailureCause]: { cause: C; code: CodesByCause[C] } }[FailureCause];

/** Every code each cause can carry, for tests and documentation. */
export const FAILURE_CODES: { readonly [C in FailureCause]: readonly CodesByCause[C][] } = {
  'trust-data': Object.keys(TRUST_DATA) as TufErrorCode[],
  transport: Object.keys(TRANSPORT) as FetchErrorKind[],
  policy: Object.keys(POLICY) as (keyof typeof POLICY)[],
  reference: Object.keys(REFERENCE) as (keyof typeof REFERENCE)[],
  internal: Object.keys(INTERNAL) as WorkerLoadError['code'][],
};

/** The one place a failure's cause is attached to its code. */
export function failure<C extends FailureCause>(cause: C, code: CodesByCause[C]): Failure {
  return { cause, code } as Failure;
}

/** The causes a code can have (most codes have one; 'too-large', 'not-found', 'timeout' several). */
export function causesOf(code: FailureCode): FailureCause[] {
  return (Object.keys(FAILURE_CODES) as FailureCause[]).filter((c) => (FAILURE_CODES[c] as readonly string[]).includes(code));
}

/**
 * The `kind` label of trustgate_trust_server_errors_total for a failed trust-data load, or
 * undefined when the server is not to blame (its data was refused: that is trust data, and
 * rollbacks have their own counter). Transport failures keep their fetch kind; a worker
 * that could not verify the server's data is 'worker-memory' / 'worker-timeout' / 'worker-error'.
 */
export function trustServerErrorKind(f: Failure): string | undefined {
  if (f.cause === 'transport') return f.code;
  if (f.cause === 'internal') return f.code === 'too-large' ? 'worker-memory' : `worker-${f.code}`;
  return undefined;
}
