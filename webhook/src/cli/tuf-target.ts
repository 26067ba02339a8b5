/**
 * `trustgate tuf target`: the target entry a TUF 1.0 repository signs for an image, in the
 * two forms publishers take: RSTUF's artifacts API payload, or the entry of a targets file
 * (python-tuf, tuf-on-ci). The path and hash rules are the contract protocol-tuf policies
 * verify against, so this prints exactly what the webhook looks up.
 */
import { parseReference } from '../images/reference.js';
import { commandSpec, parseCommand } from './commands.js';
import { UsageError } from './usage.js';

export async function tufTargetCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(commandSpec('tuf target')!, argv);
  if (positionals.length !== 1) throw new UsageError('tuf target takes one image: NAME:TAG@sha256:DIGEST');
  let ref;
  try {
    ref = parseReference(positionals[0]!);
  } catch (e) {
    throw new UsageError(`${positionals[0]}: ${(e as Error).message}`);
  }
  // The target path is the tag; the digest is what the target signs. Both must be given.
  if (ref.digest === undefined || ref.tag === undefined) {
    throw new UsageError(`${positionals[0]}: give the tag and the digest, e.g. ${ref.name}:${ref.tag ?? '1.0'}@sha256:<manifest digest>`);
  }
  const size = values['size'] as string | undefined;
  if (size === undefined || !/^\d+$/.test(size) || !Number.isSafeInteger(Number(size))) {
    throw new UsageError(`--size must be the manifest's size in bytes (a whole number), got ${size === undefined ? 'nothing' : JSON.stringify(size)}`);
  }
  const format = values['format'] as string;
  if (format !== 'rstuf' && format !== 'targets') throw new UsageError(`--format must be rstuf or targets, got ${JSON.stringify(format)}`);
  const mediaType = values['media-type'] as string | undefined;
  const path = `${ref.name}:${ref.tag}`;
  const info = {
    length: Number(size),
    hashes: { sha256: ref.digest.slice('sha256:'.length) },
    ...(mediaType !== undefined ? { custom: { mediaType } } : {}),
  };
  const doc = format === 'rstuf' ? { artifacts: [{ path, info }] } : { [path]: info };
  process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
  return 0;
}
