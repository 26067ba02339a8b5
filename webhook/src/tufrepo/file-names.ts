/**
 * File names of TUF 1.0 metadata (§5.3.3 N.root.json; §5.5.1 / §5.6.1 VERSION.ROLE.json under
 * consistent snapshots, ROLE.json otherwise). A delegated role's name is chosen by whoever
 * signs its parent, so it is percent-encoded as python-tuf does (urllib's quote with no
 * safe characters): "/", "..", "%", "?" and "#" cannot leave the metadata directory.
 */
export function quoteRoleName(role: string): string {
  return encodeURIComponent(role).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

export function rootFile(version: number): string {
  return `${version}.root.json`;
}

export function roleFile(role: string, version: number | undefined): string {
  const name = `${quoteRoleName(role)}.json`;
  return version === undefined ? name : `${version}.${name}`;
}
