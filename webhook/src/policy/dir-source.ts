/**
 * Policies from a directory (`trustgate serve --policy-dir DIR`): every *.yaml, *.yml and
 * *.json file in it (not in subdirectories; names starting with '.' are skipped, which also
 * skips the `..data` bookkeeping of a mounted ConfigMap). Each file is its own source in the
 * store, named by its path.
 *
 * Changes are picked up from fs.watch events (debounced, since editors and ConfigMap
 * updates produce bursts) and from a periodic rescan, because fs.watch misses events on
 * some filesystems and in some container runtimes. Every pass rescans the whole directory
 * and re-parses only files whose bytes changed, so a ConfigMap's atomic symlink swap or an
 * editor's write-and-rename are handled like any edit.
 *
 * Fail closed: an invalid policy in a file is held as invalid and denies what it would
 * cover (its images, or its whole scope when they cannot be read), instead of running on
 * a stale version the author has already changed, or leaving its images to a broader
 * policy. A file that is unreadable, too large or not YAML cannot say what it covers, so
 * it denies everything until fixed. Valid policies beside an invalid one keep applying
 * (they only add requirements). The problems are logged with every field path.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { isInvalidPolicy, policyId, readPolicyYaml, type InvalidPolicy, type TrustPolicy } from './model.js';
import type { PolicyStore } from './store.js';

/** Policy files are small; anything bigger is a mistake, not a policy. */
export const MAX_POLICY_FILE_BYTES = 1024 * 1024;

const POLICY_FILE = /\.(ya?ml|json)$/i;

export interface DirSourceOptions {
  /** Quiet time after the last fs event before rescanning. Default 200 ms. */
  debounceMs?: number;
  /** Full rescan interval, the fallback for missed events. Default 30 s; 0 disables. */
  rescanMs?: number;
}

export type DirSourceLog = (event: object) => void;

interface FileState {
  content: string;
  policies: Array<TrustPolicy | InvalidPolicy>;
}

export class PolicyDirSource {
  private readonly dir: string;
  private readonly files = new Map<string, FileState>();
  private watcher: FSWatcher | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private rescanTimer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private started = false;
  private readonly debounceMs: number;
  private readonly rescanMs: number;

  constructor(
    dir: string,
    private readonly store: PolicyStore,
    private readonly log: DirSourceLog = defaultLog,
    options: DirSourceOptions = {},
  ) {
    this.dir = resolve(dir);
    this.debounceMs = options.debounceMs ?? 200;
    this.rescanMs = options.rescanMs ?? 30_000;
  }

  /** Loads the directory once, marks the store ready, then follows changes. Rejects when the directory cannot be read. */
  async start(): Promise<void> {
    this.stopped = false;
    const s = await stat(this.dir).catch((e: NodeJS.ErrnoException) => {
      throw new Error(`policy directory ${this.dir}: ${e.code === 'ENOENT' ? 'does not exist' : e.message}`);
    });
    if (!s.isDirectory()) throw new Error(`policy directory ${this.dir} is not a directory`);
    await this.rescan();
    this.store.markReady();
    this.started = true;
    this.startWatching();
    if (this.rescanMs > 0) {
      this.rescanTimer = setInterval(() => void this.rescan(), this.rescanMs);
      this.rescanTimer.unref();
    }
  }

  stop(): void {
    this.stopped = true;
    this.started = false;
    this.watcher?.close();
    this.watcher = undefined;
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    if (this.rescanTimer) clearInterval(this.rescanTimer);
    this.debounceTimer = undefined;
    this.rescanTimer = undefined;
  }

  /** Rescans now; concurrent calls share one pass, and a call during a pass schedules one more. */
  rescan(): Promise<void> {
    if (this.scanning) {
      this.again = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      try {
        do {
          this.again = false;
          await this.scanOnce();
        } while (this.again && !this.stopped);
      } finally {
        this.scanning = undefined;
      }
    })();
    return this.scanning;
  }

  private startWatching(): void {
    if (this.stopped || this.watcher) return;
    try {
      this.watcher = watch(this.dir, { persistent: false }, () => this.schedule());
      this.watcher.on('error', (e) => {
        this.log({ level: 'warn', event: 'policy-dir-watch-error', dir: this.dir, error: e.message, fallback: 'periodic rescan' });
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch (e) {
      this.log({ level: 'warn', event: 'policy-dir-watch-error', dir: this.dir, error: (e as Error).message, fallback: 'periodic rescan' });
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      void this.rescan();
    }, this.debounceMs);
    this.debounceTimer.unref();
  }

  private async scanOnce(): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(this.dir)).filter((n) => !n.startsWith('.') && POLICY_FILE.test(n)).sort();
    } catch (e) {
      // The whole directory is gone or unreadable: fail closed for every file it held.
      this.log({ level: 'error', event: 'policy-dir-unreadable', dir: this.dir, error: (e as Error).message });
      names = [];
    }
    if (this.stopped) return;
    const present = new Set<string>();
    for (const name of names) {
      const file = join(this.dir, name);
      const loaded = await this.readPolicyFile(file);
      if (this.stopped) return;
      if (loaded === 'not-a-file') continue;
      present.add(file);
      this.apply(file, loaded);
    }
    for (const file of [...this.files.keys()]) {
      if (present.has(file)) continue;
      this.files.delete(file);
      this.store.replaceSource(file, []);
      this.log({ level: 'info', event: 'policy-file-removed', file });
    }
    // Re-started after an error (e.g. the directory was briefly replaced).
    if (!this.watcher && !this.stopped && this.started) this.startWatching();
  }

  private async readPolicyFile(file: string): Promise<{ content: string } | { error: string } | 'not-a-file'> {
    try {
      const s = await stat(file);
      if (!s.isFile()) return 'not-a-file';
      if (s.size > MAX_POLICY_FILE_BYTES) return { error: `larger than ${MAX_POLICY_FILE_BYTES} bytes (${s.size})` };
      const buf = await readFile(file);
      if (buf.length > MAX_POLICY_FILE_BYTES) return { error: `larger than ${MAX_POLICY_FILE_BYTES} bytes` };
      return { content: buf.toString('utf8') };
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      // Deleted between readdir and read: the next pass sees it gone.
      if (err.code === 'ENOENT') return 'not-a-file';
      return { error: err.message };
    }
  }

  private apply(file: string, loaded: { content: string } | { error: string }): void {
    const previous = this.files.get(file);
    if ('content' in loaded && previous && previous.content === loaded.content) return;
    let policies: Array<TrustPolicy | InvalidPolicy>;
    if ('error' in loaded) {
      policies = [{ kind: 'ClusterTrustPolicy', name: `(file ${file})`, source: file, problems: [{ path: '(file)', message: loaded.error }], mode: 'enforce' }];
      this.log({ level: 'error', event: 'policy-file-rejected', file, error: loaded.error, effect: 'every image is denied until the file is readable' });
    } else {
      policies = readPolicyYaml(loaded.content, file);
      const valid = policies.filter((p): p is TrustPolicy => !isInvalidPolicy(p));
      for (const p of policies.filter(isInvalidPolicy)) {
        const covers = p.images ?? (p.kind === 'TrustPolicy' && p.namespace ? `every image in namespace ${p.namespace}` : 'every image in every namespace');
        this.log({ level: 'error', event: 'policy-file-rejected', file, policy: policyId(p), problems: p.problems, effect: 'fails what it covers', covers, mode: p.mode });
      }
      // An empty file is valid YAML, but usually a half-written one or a mistake worth seeing.
      if (policies.length === 0) this.log({ level: 'warn', event: 'policy-file-empty', file, effect: 'no policies loaded from this file' });
      else if (valid.length > 0) this.log({ level: 'info', event: 'policy-file-loaded', file, policies: valid.map(policyId) });
      this.warnDuplicates(file, valid);
    }
    // Unreadable files get no content, so they are retried on every pass.
    this.files.set(file, { content: 'content' in loaded ? loaded.content : '\u0000unreadable', policies });
    this.store.replaceSource(file, policies);
  }

  private warnDuplicates(file: string, policies: TrustPolicy[]): void {
    for (const p of policies) {
      const id = policyId(p);
      for (const [other, state] of this.files) {
        if (other !== file && state.policies.some((q) => policyId(q) === id)) {
          this.log({ level: 'warn', event: 'policy-defined-twice', policy: id, files: [other, file], effect: 'both apply (AND)' });
        }
      }
    }
  }
}

function defaultLog(event: object): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), component: 'policy-dir', ...event })}\n`);
}
