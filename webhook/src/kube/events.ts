/**
 * Kubernetes Events (events.k8s.io/v1) without a flood. The same occurrence (object, type,
 * reason, action, note) within the series window becomes one Event whose series.count and
 * series.lastObservedTime are patched, at most once per `seriesPatchMs`, as the events
 * library of client-go does; new Events are created through a token bucket, and what the
 * bucket refuses is counted and dropped rather than queued without bound. Recording never
 * throws and never waits on the API server.
 */
import { randomBytes } from 'node:crypto';
import { EventsV1Api, V1MicroTime, type KubeConfig } from '@kubernetes/client-node';
import { silentLogger, type Logger } from '../admission/types.js';
import { errorText, statusCode } from './lease.js';

export interface EventTarget {
  apiVersion: string;
  kind: string;
  name: string;
  /** Empty for cluster-scoped objects: their Events go to the `default` namespace, as client-go puts them. */
  namespace?: string;
  uid?: string;
}

export interface EventRecord {
  regarding: EventTarget;
  type: 'Normal' | 'Warning';
  /** UpperCamelCase, machine-readable. */
  reason: string;
  /** What trustgate did or would do: Verify, Load, Audit. */
  action: string;
  note: string;
}

export interface EventRecorderOptions {
  kubeConfig: KubeConfig;
  /** reportingInstance: this replica (pod name). */
  instance: string;
  log?: Logger;
  clock?: () => Date;
  /** Occurrences within this window join a series (default 30 min). */
  seriesWindowMs?: number;
  /** Least time between two patches of one series (default 60 s). */
  seriesPatchMs?: number;
  /** New Events per second, and the burst allowed (default 1/s, burst 20). */
  createPerSecond?: number;
  burst?: number;
  /** Series remembered (default 1000); the oldest is forgotten first. */
  maxSeries?: number;
}

export const REPORTING_CONTROLLER = 'trustgate.dev/trustgate';
const NOTE_MAX = 1024;

interface Series {
  namespace: string;
  name?: string;
  count: number;
  firstAt: number;
  lastAt: number;
  patchedAt: number;
  patchedCount: number;
  /** A create or patch is in flight. */
  busy: boolean;
}

export class EventRecorder {
  private readonly api: EventsV1Api;
  private readonly log: Logger;
  private readonly clock: () => Date;
  private readonly windowMs: number;
  private readonly patchMs: number;
  private readonly rate: number;
  private readonly burst: number;
  private readonly maxSeries: number;
  private readonly series = new Map<string, Series>();
  private tokens: number;
  private tokensAt: number;
  private readonly pending = new Set<Promise<void>>();
  /** Events the rate limit dropped. */
  dropped = 0;

  constructor(private readonly opts: EventRecorderOptions) {
    this.api = opts.kubeConfig.makeApiClient(EventsV1Api);
    this.log = opts.log ?? silentLogger;
    this.clock = opts.clock ?? (() => new Date());
    this.windowMs = opts.seriesWindowMs ?? 30 * 60_000;
    this.patchMs = opts.seriesPatchMs ?? 60_000;
    this.rate = opts.createPerSecond ?? 1;
    this.burst = opts.burst ?? 20;
    this.maxSeries = opts.maxSeries ?? 1000;
    this.tokens = this.burst;
    this.tokensAt = this.clock().getTime();
  }

  record(e: EventRecord): void {
    const now = this.clock().getTime();
    const key = JSON.stringify([e.regarding.apiVersion, e.regarding.kind, e.regarding.namespace ?? '', e.regarding.name, e.type, e.reason, e.action, e.note]);
    const known = this.series.get(key);
    if (known && now - known.lastAt < this.windowMs) {
      known.count++;
      known.lastAt = now;
      this.series.delete(key);
      this.series.set(key, known);
      if (!known.busy && known.name && now - known.patchedAt >= this.patchMs) this.track(this.patch(known));
      return;
    }
    if (!this.take(now)) {
      this.dropped++;
      return;
    }
    const s: Series = { namespace: e.regarding.namespace || 'default', count: 1, firstAt: now, lastAt: now, patchedAt: now, patchedCount: 1, busy: true };
    this.series.set(key, s);
    while (this.series.size > this.maxSeries) this.series.delete(this.series.keys().next().value as string);
    this.track(this.create(s, e));
  }

  /** Patches every series with occurrences not yet written (call on a timer and before exit). */
  async flush(): Promise<void> {
    for (const s of this.series.values()) if (!s.busy && s.name && s.count > s.patchedCount) this.track(this.patch(s));
    await this.settled();
  }

  /** Resolves when no write is in flight. */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  private track(p: Promise<void>): void {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  private take(now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.tokensAt) / 1000) * this.rate);
    this.tokensAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private async create(s: Series, e: EventRecord): Promise<void> {
    // The name client-go gives: the object's name and a unique suffix.
    const name = `${e.regarding.name.slice(0, 200)}.${randomBytes(8).toString('hex')}`;
    try {
      await this.api.createNamespacedEvent({
        namespace: s.namespace,
        body: {
          apiVersion: 'events.k8s.io/v1',
          kind: 'Event',
          metadata: { name, namespace: s.namespace },
          eventTime: new V1MicroTime(s.firstAt),
          reportingController: REPORTING_CONTROLLER,
          reportingInstance: this.opts.instance,
          action: e.action,
          reason: e.reason,
          type: e.type,
          note: e.note.length <= NOTE_MAX ? e.note : `${e.note.slice(0, NOTE_MAX - 4)} ...`,
          regarding: {
            apiVersion: e.regarding.apiVersion,
            kind: e.regarding.kind,
            name: e.regarding.name,
            ...(e.regarding.namespace ? { namespace: e.regarding.namespace } : {}),
            ...(e.regarding.uid ? { uid: e.regarding.uid } : {}),
          },
        },
      });
      s.name = name;
    } catch (err) {
      this.log.warn('event not recorded', { reason: e.reason, regarding: `${e.regarding.kind} ${e.regarding.namespace ? `${e.regarding.namespace}/` : ''}${e.regarding.name}`, code: statusCode(err), error: errorText(err) });
    } finally {
      s.busy = false;
    }
  }

  private async patch(s: Series): Promise<void> {
    s.busy = true;
    const count = s.count;
    try {
      await this.api.patchNamespacedEvent({
        name: s.name!,
        namespace: s.namespace,
        body: [{ op: 'add', path: '/series', value: { count, lastObservedTime: new V1MicroTime(s.lastAt) } }],
      });
      s.patchedAt = this.clock().getTime();
      s.patchedCount = count;
    } catch (err) {
      // Gone (expired by the API server's TTL) or refused: the next occurrence starts a new Event.
      if (statusCode(err) === 404) s.lastAt = -Infinity;
      this.log.warn('event series not updated', { event: `${s.namespace}/${s.name}`, code: statusCode(err), error: errorText(err) });
    } finally {
      s.busy = false;
    }
  }
}
