// Checking an incoming AdmissionReview before anything reads it. A review whose uid we
// cannot read cannot be answered in protocol (the API server matches responses by uid), so
// that becomes an HTTP 400; anything else wrong is answered as a denial carrying the uid.
import { isObject } from '../common/is-object.js';
import type { AdmissionRequest, AdmissionResponse, AdmissionReviewResponse, GroupVersionKind, GroupVersionResource, Operation } from './types.js';

export const API_VERSION = 'admission.k8s.io/v1';
const OPERATIONS: ReadonlySet<string> = new Set(['CREATE', 'UPDATE', 'DELETE', 'CONNECT']);
const UID_MAX = 256;

export class ReviewError extends Error {
  constructor(
    message: string,
    /** Set when the review was readable enough to answer in protocol. */
    readonly uid?: string,
  ) {
    super(message);
    this.name = 'ReviewError';
  }
}

export function parseReview(review: unknown): AdmissionRequest {
  if (!isObject(review)) throw new ReviewError(`AdmissionReview must be a JSON object, got ${typeName(review)}`);
  if (review['apiVersion'] !== API_VERSION) {
    throw new ReviewError(`AdmissionReview apiVersion must be ${API_VERSION}, got ${show(review['apiVersion'])}`);
  }
  if (review['kind'] !== 'AdmissionReview') throw new ReviewError(`kind must be AdmissionReview, got ${show(review['kind'])}`);
  const r = review['request'];
  if (!isObject(r)) throw new ReviewError(`AdmissionReview.request must be an object, got ${typeName(r)}`);
  const uid = r['uid'];
  if (typeof uid !== 'string' || uid === '') throw new ReviewError(`request.uid must be a non-empty string, got ${show(uid)}`);
  if (uid.length > UID_MAX) throw new ReviewError(`request.uid is longer than ${UID_MAX} characters`);

  const fail = (msg: string): never => {
    throw new ReviewError(msg, uid);
  };
  const kind: GroupVersionKind = groupVersion(r['kind'], 'request.kind', 'kind', fail);
  const resource: GroupVersionResource = groupVersion(r['resource'], 'request.resource', 'resource', fail);
  const operation = r['operation'];
  if (typeof operation !== 'string' || !OPERATIONS.has(operation)) {
    fail(`request.operation must be one of CREATE, UPDATE, DELETE, CONNECT, got ${show(operation)}`);
  }
  const out: AdmissionRequest = {
    uid,
    kind,
    resource,
    name: optionalString(r['name'], 'request.name', fail) ?? '',
    namespace: optionalString(r['namespace'], 'request.namespace', fail) ?? '',
    operation: operation as Operation,
    object: r['object'] ?? null,
    oldObject: r['oldObject'] ?? null,
    dryRun: false,
  };
  const sub = optionalString(r['subResource'], 'request.subResource', fail);
  if (sub) out.subResource = sub;
  const dryRun = r['dryRun'];
  if (dryRun !== undefined && dryRun !== null && typeof dryRun !== 'boolean') fail(`request.dryRun must be a boolean, got ${show(dryRun)}`);
  out.dryRun = dryRun === true;
  const user = r['userInfo'];
  if (isObject(user) && typeof user['username'] === 'string') out.userInfo = { username: user['username'] };
  return out;
}

export function review(response: AdmissionResponse): AdmissionReviewResponse {
  return { apiVersion: API_VERSION, kind: 'AdmissionReview', response };
}

/** A group/version/kind or group/version/resource: `last` names the third field. */
function groupVersion<K extends 'kind' | 'resource'>(v: unknown, where: string, last: K, fail: (m: string) => never): { group: string; version: string } & Record<K, string> {
  if (!isObject(v)) return fail(`${where} must be an object with group, version and ${last}, got ${typeName(v)}`);
  const group = v['group'] ?? '';
  const version = v['version'];
  const name = v[last];
  if (typeof group !== 'string') return fail(`${where}.group must be a string, got ${show(group)}`);
  if (typeof version !== 'string' || version === '') return fail(`${where}.version must be a non-empty string, got ${show(version)}`);
  if (typeof name !== 'string' || name === '') return fail(`${where}.${last} must be a non-empty string, got ${show(name)}`);
  // Two literal shapes, not a computed key: a computed key makes a slow dictionary object on every review.
  return (last === 'kind' ? { group, version, kind: name } : { group, version, resource: name }) as unknown as { group: string; version: string } & Record<K, string>;
}

function optionalString(v: unknown, where: string, fail: (m: string) => never): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') return fail(`${where} must be a string, got ${show(v)}`);
  return v;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'an object' : typeof v;
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  // Only scalars are quoted: a hostile object may nest deep enough to overflow JSON.stringify.
  if (typeof v === 'object' && v !== null) return typeName(v);
  const s = typeof v === 'string' ? JSON.stringify(v) : String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
