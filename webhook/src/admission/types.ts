// Shapes admission.k8s.io/v1 puts on the wire, and the small interfaces admission needs from
// its host (logging, metrics) so it does not depend on the server.
import type { FailureCause } from '../verify/failure.js';

export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

export interface GroupVersionResource {
  group: string;
  version: string;
  resource: string;
}

export type Operation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';

/** The fields of an AdmissionRequest that trustgate reads; the rest passes through unread. */
export interface AdmissionRequest {
  uid: string;
  kind: GroupVersionKind;
  resource: GroupVersionResource;
  subResource?: string;
  name: string;
  /** Empty for cluster-scoped objects. */
  namespace: string;
  operation: Operation;
  userInfo?: { username?: string };
  object: unknown;
  oldObject: unknown;
  dryRun: boolean;
}

export interface AdmissionStatus {
  code: number;
  reason?: string;
  message: string;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: AdmissionStatus;
  patchType?: 'JSONPatch';
  /** base64 of a JSON Patch (RFC 6902) array. */
  patch?: string;
  warnings?: string[];
  auditAnnotations?: Record<string, string>;
}

export interface AdmissionReviewResponse {
  apiVersion: 'admission.k8s.io/v1';
  kind: 'AdmissionReview';
  response: AdmissionResponse;
}

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

/** 'unverified': allowed, with at least one image admitted without verification (--exempt, --allow-unmatched). */
export type AdmissionResult = 'allowed' | 'denied' | 'invalid' | 'unverified';
/** What decided: see decisionMode in report.ts; 'none' when no policy judged the request's images. */
export type DecisionMode = 'enforce' | 'warn' | 'audit' | 'none';
export type WebhookName = 'mutate' | 'validate' | 'policy';

export interface AdmissionMetrics {
  admission(labels: { operation: string; result: AdmissionResult; mode: DecisionMode; webhook: WebhookName }, seconds: number): void;
  /** How long admission waited for one image's verdict. */
  imageVerificationSeconds(seconds: number): void;
  /** One policy's verdict on one image of an admission: policy as Kind/namespace/name. */
  policyResult?(policy: string, mode: string, result: string): void;
  /** A denied admission, by the cause of what denied it (the first image's first enforcing failure). */
  denial?(webhook: WebhookName, cause: FailureCause): void;
}

/** Seconds since `t0`, a performance.now() reading: what the metrics take. */
export function secondsSince(t0: number): number {
  return (performance.now() - t0) / 1000;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
export const noMetrics: AdmissionMetrics = { admission() {}, imageVerificationSeconds() {} };
