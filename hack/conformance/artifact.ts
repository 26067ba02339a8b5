/**
 * Fetching a target file once its entry is trusted (TUF 1.0 §5.7): the URL under the target
 * base URL (hash-prefixed under consistent snapshots), a byte cap of the declared length,
 * then length and every hash checked before the file is stored under a stable name.
 */
import { readFile, stat } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { startDeadline } from '../../webhook/src/notary/deadline.js';
import { GetFailure, httpGet } from '../../webhook/src/notary/http-get.js';
import { TufError } from '../../webhook/src/tuf/errors.js';
import type { TargetFile } from '../../webhook/src/tuf/tuf1/metadata.js';
import { checkMetaFile } from '../../webhook/src/tuf/tuf1/trusted-set.js';
import { quoteRoleName } from '../../webhook/src/tufrepo/file-names.js';
import { writeAtomically } from './metadata-dir.js';

const TIMEOUT_MS = 30_000;

/** Characters that would end or change a URL path segment; everything else the URL parser escapes itself. */
function pathSegment(segment: string): string {
  if (segment === '.' || segment === '..') return segment.replace(/\./g, '%2E');
  return segment.replace(/[%?#\\]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

/**
 * §5.7.3: under consistent snapshots the file is fetched as DIR/HASH.NAME, HASH the first of
 * the entry's hashes (python-tuf's choice); otherwise as its target path. The path is a
 * target path, not a URL: "..", "?", "#" and "%" stay inside one segment of the base.
 */
export function artifactUrl(baseUrl: string, target: TargetFile, consistentSnapshot: boolean): URL {
  const base = new URL(baseUrl);
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new TypeError(`target base URL ${base.href} must be http:// or https://`);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  const segments = target.path.split('/');
  if (consistentSnapshot) {
    const hash = Object.values(target.hashes)[0]!;
    segments[segments.length - 1] = `${hash}.${segments[segments.length - 1]}`;
  }
  const url = new URL(segments.map(pathSegment).join('/'), base);
  if (url.origin !== base.origin || !url.pathname.startsWith(base.pathname)) throw new TypeError(`target ${JSON.stringify(target.path)} would leave ${base.href}`);
  return url;
}

/** One file per target path, whatever its content: the path quoted into a single file name. */
export function storedArtifactFile(dir: string, targetPath: string): string {
  const name = quoteRoleName(targetPath);
  return path.join(dir, name === '.' || name === '..' ? name.replace(/\./g, '%2E') : name);
}

/** Whether `file` already holds exactly this target (§5.7.3's checks on the stored bytes). */
export async function holdsTarget(file: string, target: TargetFile): Promise<boolean> {
  try {
    const s = await stat(file);
    if (!s.isFile() || s.size !== target.length) return false;
    checkMetaFile(await readFile(file), target, target.path, 'its trusted entry');
    return true;
  } catch {
    return false;
  }
}

export async function downloadTarget(url: URL, target: TargetFile, role: string, file: string): Promise<void> {
  const deadline = startDeadline(TIMEOUT_MS);
  const agent = url.protocol === 'https:' ? new https.Agent() : new http.Agent();
  let body: Uint8Array;
  try {
    const res = await httpGet({ url, agent, signal: deadline.signal, abortReason: deadline.reason, maxBytes: target.length });
    if (res.status !== 200) throw new Error(`GET ${url.href}: HTTP ${res.status}${res.statusMessage ? ` ${res.statusMessage}` : ''}`);
    body = res.body;
  } catch (e) {
    if (e instanceof GetFailure) throw new Error(`GET ${url.href}: ${e.message} (${role} declares ${target.length} bytes)`);
    throw e;
  } finally {
    deadline.dispose();
    agent.destroy();
  }
  try {
    checkMetaFile(body, target, target.path, `the entry in ${role}`);
  } catch (e) {
    if (e instanceof TufError) throw new Error(`GET ${url.href}: ${e.message}`);
    throw e;
  }
  await writeAtomically(file, body);
}
