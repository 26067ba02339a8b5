/**
 * Leader election on a coordination.k8s.io/v1 Lease, the way client-go's leaderelection
 * does it, so one replica runs the background audit:
 * - the holder renews spec.renewTime every `renewMs`; every write carries the
 *   resourceVersion it read, so two candidates racing for a free or expired Lease cannot
 *   both win: the API server answers the loser 409 Conflict;
 * - another holder's Lease counts as expired only when this process has seen it unchanged
 *   for leaseDurationSeconds on its own clock (clocks of two nodes are never compared);
 * - a holder that cannot renew within the lease duration stops acting as leader before
 *   anyone else may take over; on stop it gives the Lease up so a successor need not wait.
 */
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { silentLogger, type Logger } from '../admission/types.js';

export interface LeaderElectorOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name: string;
  /** This replica (the pod name). */
  identity: string;
  leaseDurationSeconds?: number;
  /** How often the holder renews and a candidate retries (default: a third of the duration). */
  retryMs?: number;
  /** Monotonic milliseconds, for judging when a Lease was last seen to change. */
  monotonic?: () => number;
  clock?: () => Date;
  log?: Logger;
}

type Attempt = 'leader' | 'follower';

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly durationS: number;
  private readonly retryMs: number;
  private readonly monotonic: () => number;
  private readonly clock: () => Date;
  private readonly log: Logger;
  /** The holder/renewTime last read, and when (monotonic) it was first seen like that. */
  private observed?: { record: string; at: number };
  /** When this replica last renewed successfully (monotonic). */
  private renewedAt?: number;
  private timer?: NodeJS.Timeout;
  private running = false;
  private readonly listeners = new Set<(leader: boolean) => void>();
  private leader = false;
  /** The round in flight, so stop() releases a Lease that round has just taken. */
  private round?: Promise<Attempt>;

  constructor(private readonly opts: LeaderElectorOptions) {
    this.api = opts.kubeConfig.makeApiClient(CoordinationV1Api);
    this.durationS = opts.leaseDurationSeconds ?? 15;
    this.retryMs = opts.retryMs ?? Math.max(1000, (this.durationS * 1000) / 3);
    this.monotonic = opts.monotonic ?? (() => performance.now());
    this.clock = opts.clock ?? (() => new Date());
    this.log = opts.log ?? silentLogger;
  }

  /**
   * True while this replica holds the Lease and renewed it within two thirds of the lease
   * duration (client-go's renew deadline): it stops acting before another replica may take over.
   */
  isLeader(): boolean {
    if (!this.leader || this.renewedAt === undefined) return false;
    return this.monotonic() - this.renewedAt < (this.durationS * 1000 * 2) / 3;
  }

  onChange(listener: (leader: boolean) => void): void {
    this.listeners.add(listener);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const loop = async () => {
      if (!this.running) return;
      await this.tryAcquireOrRenew();
      if (this.running) this.timer = setTimeout(() => void loop(), this.retryMs);
    };
    void loop();
  }

  /** Stops renewing and, if holding the Lease, gives it up (holder cleared, 1 s duration, as client-go releases). */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.round;
    if (!this.leader) return;
    try {
      const lease = await this.api.readNamespacedLease({ name: this.opts.name, namespace: this.opts.namespace });
      if (lease.spec?.holderIdentity === this.opts.identity) {
        await this.api.replaceNamespacedLease({
          name: this.opts.name,
          namespace: this.opts.namespace,
          body: { ...lease, spec: { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: new V1MicroTime(this.clock().getTime()) } },
        });
      }
    } catch (e) {
      this.log.warn('leader lease not released', { lease: this.where(), error: errorText(e) });
    }
    this.setLeader(false);
  }

  /** One round: create the Lease, renew it, or take it over once expired. Never throws. */
  tryAcquireOrRenew(): Promise<Attempt> {
    const round = this.oneRound();
    this.round = round;
    return round;
  }

  private async oneRound(): Promise<Attempt> {
    const result = await this.attempt().catch((e: unknown) => {
      // 409: another replica wrote first; anything else: try again next round.
      if (statusCode(e) !== 409) this.log.warn('leader election round failed', { lease: this.where(), code: statusCode(e), error: errorText(e) });
      return 'follower' as const;
    });
    if (result === 'leader') this.renewedAt = this.monotonic();
    this.setLeader(result === 'leader' || this.isLeader());
    return result;
  }

  private async attempt(): Promise<Attempt> {
    const { name, namespace, identity } = this.opts;
    const now = new V1MicroTime(this.clock().getTime());
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (e) {
      if (statusCode(e) !== 404) throw e;
      await this.api.createNamespacedLease({
        namespace,
        body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace }, spec: { holderIdentity: identity, leaseDurationSeconds: this.durationS, acquireTime: now, renewTime: now, leaseTransitions: 0 } },
      });
      this.log.info('leader lease acquired', { lease: this.where(), identity, created: true });
      return 'leader';
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const record = `${holder}|${timeText(spec.renewTime)}|${spec.leaseDurationSeconds ?? ''}`;
    if (this.observed?.record !== record) this.observed = { record, at: this.monotonic() };
    if (holder === identity) {
      await this.api.replaceNamespacedLease({ name, namespace, body: { ...lease, spec: { ...spec, renewTime: now, leaseDurationSeconds: this.durationS } } });
      return 'leader';
    }
    const heldFor = (spec.leaseDurationSeconds ?? this.durationS) * 1000;
    if (holder !== '' && this.monotonic() - this.observed.at < heldFor) return 'follower';
    // Free or expired: take it, with the resourceVersion read, so only one taker succeeds.
    await this.api.replaceNamespacedLease({
      name,
      namespace,
      body: {
        ...lease,
        spec: { ...spec, holderIdentity: identity, leaseDurationSeconds: this.durationS, acquireTime: now, renewTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 },
      },
    });
    this.log.info('leader lease acquired', { lease: this.where(), identity, previous: holder || undefined });
    return 'leader';
  }

  private setLeader(leader: boolean): void {
    if (leader === this.leader) return;
    this.leader = leader;
    if (!leader) this.log.info('leader lease lost or released', { lease: this.where(), identity: this.opts.identity });
    for (const l of this.listeners) l(leader);
  }

  private where(): string {
    return `${this.opts.namespace}/${this.opts.name}`;
  }
}

function timeText(t: unknown): string {
  if (t instanceof Date) return t.toISOString();
  return typeof t === 'string' ? t : '';
}

export function statusCode(err: unknown): number | undefined {
  const e = err as { statusCode?: unknown; code?: unknown } | null;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  if (typeof e?.code === 'number') return e.code;
  return undefined;
}

export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0] ?? err.name;
  return String(err);
}
