/**
 * trustgate's TUF 1.0 client (tuf/tuf1 + tufrepo) behind the client-under-test protocol of
 * the TUF conformance suite (theupdateframework/tuf-conformance, CLIENT-CLI.md):
 *
 *   --metadata-dir D init TRUSTED_ROOT
 *   --metadata-dir D --metadata-url U refresh
 *   --metadata-dir D --metadata-url U --target-name P --target-base-url T --target-dir O download
 *
 * Exit 0 when the whole command succeeded, 1 otherwise (one line on stderr says why). The
 * clock is the system clock (the suite moves it with faketime).
 */
import { mkdir, readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { TufError } from '../webhook/src/tuf/errors.js';
import { SpecTrustedSet } from '../webhook/src/tuf/tuf1/trusted-set.js';
import { SpecHttpSource } from '../webhook/src/tufrepo/http-source.js';
import { refreshSpecRepository, type SpecRepository } from '../webhook/src/tufrepo/updater.js';
import { artifactUrl, downloadTarget, holdsTarget, storedArtifactFile } from './conformance/artifact.js';
import { MetadataDir } from './conformance/metadata-dir.js';

interface Options {
  'metadata-dir'?: string;
  'metadata-url'?: string;
  'target-name'?: string;
  'target-base-url'?: string;
  'target-dir'?: string;
}

function required(opts: Options, name: keyof Options, command: string): string {
  const v = opts[name];
  if (!v) throw new Error(`${command} needs --${name}`);
  return v;
}

/** A trusted root must at least be a root that signs itself (§5.2): nothing else would ever verify. */
function checkTrustedRoot(bytes: Uint8Array, file: string): void {
  try {
    new SpecTrustedSet(bytes, new Date());
  } catch (e) {
    if (e instanceof TufError) throw new Error(`the trusted root ${file} is not usable: ${e.message}`);
    throw e;
  }
}

async function init(dir: MetadataDir, trustedRootFile: string): Promise<void> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(trustedRootFile);
  } catch (e) {
    throw new Error(`cannot read the trusted root ${trustedRootFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  checkTrustedRoot(bytes, trustedRootFile);
  await mkdir(dir.dir, { recursive: true });
  await dir.write('root', bytes);
}

async function refresh(dir: MetadataDir, metadataUrl: string, use: (repo: SpecRepository) => Promise<void> = async () => {}): Promise<void> {
  const trustedRoot = await dir.read('root');
  if (!trustedRoot) throw new Error(`no trusted root at ${dir.fileOf('root')}: run init first`);
  // Before any request: a broken stored root is this client's problem, not the repository's.
  checkTrustedRoot(trustedRoot, dir.fileOf('root'));
  const source = new SpecHttpSource({ url: metadataUrl, requestTimeoutMs: 30_000 });
  try {
    await use(await refreshSpecRepository(source, { bootstrap: { trustedRoot }, now: new Date(), local: dir }));
  } catch (e) {
    // Refusals name the role and the reason; the repository they concern is added here.
    if (e instanceof TufError) throw new Error(`${source.server}: ${e.message}`);
    throw e;
  } finally {
    source.close();
  }
}

async function download(dir: MetadataDir, metadataUrl: string, targetPath: string, targetBaseUrl: string, targetDir: string): Promise<void> {
  await refresh(dir, metadataUrl, async (repo) => {
    const found = await repo.findTarget(targetPath);
    if (!found) throw new Error(`target ${JSON.stringify(targetPath)} is not listed by any role trusted for it`);
    const file = storedArtifactFile(targetDir, targetPath);
    if (await holdsTarget(file, found.target)) return;
    await mkdir(targetDir, { recursive: true });
    await downloadTarget(artifactUrl(targetBaseUrl, found.target, repo.trusted.root.consistentSnapshot), found.target, found.role, file);
  });
}

export async function main(argv: string[]): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        'metadata-dir': { type: 'string' },
        'metadata-url': { type: 'string' },
        'target-name': { type: 'string' },
        'target-base-url': { type: 'string' },
        'target-dir': { type: 'string' },
      },
    });
    const [command, ...rest] = positionals;
    const expected = command === 'init' ? 1 : 0;
    if (rest.length !== expected || !['init', 'refresh', 'download'].includes(command ?? '')) {
      throw new Error('usage: tuf-conformance-client --metadata-dir D [--metadata-url U] (init TRUSTED_ROOT | refresh | download)');
    }
    const dir = new MetadataDir(required(values, 'metadata-dir', command!));
    if (command === 'init') await init(dir, rest[0]!);
    else if (command === 'refresh') await refresh(dir, required(values, 'metadata-url', command));
    else {
      const need = (name: keyof Options) => required(values, name, 'download');
      await download(dir, need('metadata-url'), need('target-name'), need('target-base-url'), need('target-dir'));
    }
    return 0;
  } catch (e) {
    process.stderr.write(`tuf-conformance-client: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
