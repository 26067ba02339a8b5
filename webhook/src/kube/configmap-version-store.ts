/**
 * High-water marks shared by all replicas in a cluster: one ConfigMap (key `marks.json`).
 * Marks move in memory at once; the ConfigMap is written only when a version moves, with
 * optimistic concurrency (a conflict re-reads, merges and retries), and re-read periodically
 * so every replica learns what the others have seen. Marks only ever go up, so merging in
 * any order is safe.
 */
import type { CoreV1Api, V1ConfigMap } from '@kubernetes/client-node';
import type { TrustedRepository } from '../tuf/index.js';
import { MemoryVersionStore } from '../verify/version-store.js';

const KEY = 'marks.json';

export interface ConfigMapStoreOptions {
  api: Pick<CoreV1Api, 'readNamespacedConfigMap' | 'replaceNamespacedConfigMap' | 'createNamespacedConfigMap'>;
  namespace: string;
  name: string;
  /** How often to pick up other replicas' marks. Default 30 s; 0 disables. */
  syncMs?: number;
  log?: (msg: string, fields: Record<string, unknown>) => void;
}

export class ConfigMapVersionStore extends MemoryVersionStore {
  private writing: Promise<void> | undefined;
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: ConfigMapStoreOptions) {
    super();
  }

  /** Load the marks before serving; then keep in sync. */
  async start(): Promise<void> {
    await this.pull();
    const every = this.opts.syncMs ?? 30_000;
    if (every > 0) {
      this.timer = setInterval(() => void this.pull().catch((e: unknown) => this.warn('reading high-water marks failed', e)), every);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Resolves once every mark recorded so far is in the ConfigMap (or the write failed and was logged). */
  async flushed(): Promise<void> {
    while (this.writing) await this.writing;
  }

  override record(repository: string, repo: TrustedRepository): void {
    super.record(repository, repo);
  }

  protected override changed(): void {
    this.dirty = true;
    this.writing ??= this.push().finally(() => {
      this.writing = undefined;
    });
  }

  private async pull(): Promise<V1ConfigMap | undefined> {
    let cm: V1ConfigMap;
    try {
      cm = await this.opts.api.readNamespacedConfigMap({ name: this.opts.name, namespace: this.opts.namespace });
    } catch (e) {
      if ((e as { code?: number }).code === 404) return undefined;
      throw e;
    }
    const text = cm.data?.[KEY];
    if (text) {
      try {
        this.merge(JSON.parse(text));
      } catch (e) {
        this.warn('high-water marks in the ConfigMap are not valid JSON; keeping the ones in memory', e);
      }
    }
    return cm;
  }

  private async push(): Promise<void> {
    for (let attempt = 0; this.dirty && attempt < 5; attempt++) {
      this.dirty = false;
      try {
        const current = await this.pull();
        const body: V1ConfigMap = {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: this.opts.name, namespace: this.opts.namespace, ...(current?.metadata?.resourceVersion ? { resourceVersion: current.metadata.resourceVersion } : {}) },
          data: { ...(current?.data ?? {}), [KEY]: JSON.stringify(this.snapshot()) },
        };
        if (current) await this.opts.api.replaceNamespacedConfigMap({ name: this.opts.name, namespace: this.opts.namespace, body });
        else await this.opts.api.createNamespacedConfigMap({ namespace: this.opts.namespace, body });
      } catch (e) {
        // 409: another replica wrote first; the next round merges its marks and retries.
        this.dirty = true;
        if ((e as { code?: number }).code !== 409) {
          this.warn('writing high-water marks failed; they stay in memory and are retried on the next change', e);
          return;
        }
      }
    }
  }

  private warn(msg: string, e: unknown): void {
    this.opts.log?.(msg, { error: e instanceof Error ? e.message : String(e), configMap: `${this.opts.namespace}/${this.opts.name}` });
  }
}
