// The demo's report: one line per admission request, fitted to a terminal width, with the
// full denial messages underneath (a clipped reason is a hint, the message is the answer).

export interface Row {
  /** ok when the webhook's answer is the one the demo expects for this case. */
  ok: boolean;
  label: string;
  /** Image(s) as the request named them. */
  image: string;
  result: 'allowed' | 'denied';
  /** Pinned digest, or why not. */
  detail: string;
  /** Full denial message, printed below the table. */
  message?: string;
}

export const ELLIPSIS = '…';

/** sha256:0123456789ab… : 12 hex digits identify an image among millions and stay readable. */
export function shortDigest(digest: string, hex = 12): string {
  const m = /^(sha256:)([0-9a-f]{64})$/.exec(digest);
  return m ? `${m[1]}${m[2]!.slice(0, hex)}${ELLIPSIS}` : digest;
}

/** The reference without the registry host, with any digest shortened. */
export function shortImage(image: string, registryHost: string): string {
  const local = image.startsWith(`${registryHost}/`) ? image.slice(registryHost.length + 1) : image;
  const at = local.indexOf('@');
  return at < 0 ? local : `${local.slice(0, at)}@${shortDigest(local.slice(at + 1), 8)}`;
}

export function clip(s: string, max: number): string {
  if (max <= 0) return '';
  return s.length <= max ? s : `${s.slice(0, Math.max(0, max - 1))}${ELLIPSIS}`;
}

/**
 * A table-sized reason from the webhook's denial message (`container "app" image "...":
 * <policy>, role <role>, server <url>: <why>`): the role and the innermost cause. Causes the
 * demo provokes get a few words; anything else is shown as the webhook said it, clipped.
 */
export function shortReason(message: string): string {
  const first = (message.split('\n')[0] ?? '').replace(/^.*? image "[^"]*": /, '');
  const role = /(?:^|, )role (\S+?)(?:, |: )/.exec(first)?.[1];
  const colon = first.lastIndexOf(': ');
  const cause = colon < 0 ? first : first.slice(colon + 2);
  if (role === undefined) return cause;
  const unsigned = /^(?:tag "[^"]*"|digest \S+) is not signed by ([^(]+?) \(/.exec(cause);
  if (unsigned) return `not signed by ${unsigned[1]}`;
  const expired = /^expired at \d{4}-\d\d-\d\dT(\d\d:\d\d:\d\d)/.exec(cause);
  if (expired) return `${role} expired ${expired[1]}Z`;
  return `${role}: ${cause}`;
}

const HEADERS = ['', 'CASE', 'IMAGE', 'RESULT', 'PINNED DIGEST / REASON'] as const;

/** Table lines, none longer than `width` characters. */
export function formatTable(rows: Row[], width = 100): string[] {
  const cells = rows.map((r) => [r.ok ? 'ok' : 'XX', r.label, r.image, r.result, r.detail]);
  const fixed = [0, 1, 2, 3].map((c) => Math.max(HEADERS[c]!.length, ...cells.map((row) => row[c]!.length)));
  // The case and image columns give way first when the terminal is narrow.
  const caps = [2, 22, 26, 7];
  const widths = fixed.map((w, i) => Math.min(w, caps[i]!));
  const used = widths.reduce((a, b) => a + b, 0) + 2 * widths.length;
  const detailWidth = Math.max(16, width - used);
  const line = (cols: readonly string[]) =>
    cols
      .slice(0, 4)
      .map((c, i) => clip(c, widths[i]!).padEnd(widths[i]!))
      .concat(clip(cols[4]!, detailWidth))
      .join('  ')
      .trimEnd();
  return [line(HEADERS), ...cells.map(line)];
}

/** "Why" section: each denied row's full message, wrapped to `width`. */
export function formatReasons(rows: Row[], width = 100): string[] {
  const out: string[] = [];
  rows.forEach((r, i) => {
    if (!r.message) return;
    const head = `[${i + 1}] ${r.label}: `;
    out.push(...wrap(head + r.message.replace(/\s*\n\s*/g, ' | '), width, ' '.repeat(4)));
  });
  return out;
}

function wrap(text: string, width: number, indent: string): string[] {
  const lines: string[] = [];
  let current = '';
  for (const word of text.split(' ')) {
    const candidate = current === '' ? word : `${current} ${word}`;
    if (candidate.length <= width || current.trim() === '') current = candidate;
    else {
      lines.push(current);
      current = indent + word;
    }
  }
  if (current.trim() !== '') lines.push(current);
  // A single word longer than the width (a URL) is cut rather than overflowing.
  return lines.flatMap((l) => (l.length <= width ? [l] : chunk(l, width, indent)));
}

function chunk(line: string, width: number, indent: string): string[] {
  const out = [line.slice(0, width)];
  for (let i = width; i < line.length; i += width - indent.length) out.push(indent + line.slice(i, i + width - indent.length));
  return out;
}
