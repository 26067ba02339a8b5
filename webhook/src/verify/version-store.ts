/**
 * High-water marks: the highest version of each role ever trusted per repository, so a
 * server that replays older (still unexpired) metadata is refused, also after a restart.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { TrustedRepository, VersionFloor } from '../tuf/index.js';

export interface VersionStore {
  floor(repository: string): VersionFloor;
  /** Raise the marks to what `repo` holds; never lowers one. */
  record(repository: string, repo: TrustedRepository): void;
  /** Raise the marks of a repository to these versions (TUF 1.0: what SpecRepository.versionFloor holds). */
  recordVersions(repository: string, versions: ReadonlyMap<string, number>): void;
}

export function versionsOf(repo: TrustedRepository): Map<string, number> {
  const { root, timestamp, snapshot, targets, delegations } = repo.parts;
  const out = new Map<string, number>([
    ['root', root.meta.version],
    ['timestamp', timestamp.meta.version],
    ['snapshot', snapshot.meta.version],
    ['targets', targets.meta.version],
  ]);
  for (const [name, d] of delegations) out.set(name, d.meta.version);
  return out;
}

export class MemoryVersionStore implements VersionStore {
  protected readonly marks = new Map<string, Map<string, number>>();

  floor(repository: string): VersionFloor {
    return new Map(this.marks.get(repository) ?? []);
  }

  record(repository: string, repo: TrustedRepository): void {
    this.recordVersions(repository, versionsOf(repo));
  }

  recordVersions(repository: string, versions: ReadonlyMap<string, number>): void {
    if (this.raise(repository, versions)) this.changed();
  }

  /** Every mark, for persisting. */
  protected snapshot(): Record<string, Record<string, number>> {
    const data: Record<string, Record<string, number>> = {};
    for (const [repo, roles] of this.marks) data[repo] = Object.fromEntries(roles);
    return data;
  }

  /** Merge marks written elsewhere (another replica, an earlier run); only ever raises. */
  merge(data: unknown): boolean {
    let moved = false;
    if (data === null || typeof data !== 'object') return false;
    for (const [repo, roles] of Object.entries(data as Record<string, unknown>)) {
      if (roles === null || typeof roles !== 'object') continue;
      const valid = Object.entries(roles as Record<string, unknown>).filter(
        (e): e is [string, number] => typeof e[1] === 'number' && Number.isSafeInteger(e[1]) && e[1] > 0,
      );
      if (this.raise(repo, new Map(valid))) moved = true;
    }
    return moved;
  }

  protected raise(repository: string, versions: ReadonlyMap<string, number>): boolean {
    const marks = this.marks.get(repository) ?? new Map<string, number>();
    let moved = false;
    for (const [role, v] of versions) {
      if ((marks.get(role) ?? 0) < v) {
        marks.set(role, v);
        moved = true;
      }
    }
    this.marks.set(repository, marks);
    return moved;
  }

  protected changed(): void {}
}

/** Standalone mode: marks in a JSON file, written (atomically) only when a version moves. */
export class FileVersionStore extends MemoryVersionStore {
  constructor(private readonly path: string) {
    super();
    let text: string | undefined;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (text !== undefined) this.merge(JSON.parse(text));
  }

  protected override changed(): void {
    const data = this.snapshot();
    mkdirSync(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(data));
    renameSync(tmp, this.path);
  }
}
