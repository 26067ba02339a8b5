/** Where TrustPolicy and ClusterTrustPolicy live in the Kubernetes API, and how a request to it carries a signal. */
import { Observable, type ConfigurationOptions } from '@kubernetes/client-node';

import { GROUP } from '../policy/crds.js';
import type { PolicyKind } from '../policy/model.js';

export const POLICY_GROUP = GROUP;
/** The API version trustgate reads and writes (the CRDs' storage version). */
export const POLICY_VERSION = 'v1alpha1';

export const PLURALS: Record<PolicyKind, string> = {
  TrustPolicy: 'trustpolicies',
  ClusterTrustPolicy: 'clustertrustpolicies',
};

/** The collection path of one kind, as `Watch` wants it. */
export function policyPath(kind: PolicyKind): string {
  return `/apis/${POLICY_GROUP}/${POLICY_VERSION}/${PLURALS[kind]}`;
}

/**
 * Per-request options for a generated client call: the request is aborted with `signal`,
 * and `contentType`, when given, replaces the client's default (which for PATCH is JSON Patch).
 */
export function requestOptions(signal: AbortSignal, contentType?: string): ConfigurationOptions {
  return {
    middleware: [
      {
        pre: (ctx) => {
          if (contentType) ctx.setHeaderParam('Content-Type', contentType);
          ctx.setSignal(signal);
          return new Observable(Promise.resolve(ctx));
        },
        post: (res) => new Observable(Promise.resolve(res)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}
