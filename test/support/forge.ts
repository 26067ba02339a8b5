/**
 * Metadata forge for the TUF core tests: builds a whole Notary v1 repository signed with
 * real keys (node:crypto key pairs, X.509 certificates made by the `openssl` CLI) so that
 * tests exercise the same bytes a notary-server would serve, and can then break them in
 * precise ways. Nothing here is trusted by the code under test: it only produces bytes.
 *
 * Time is always relative to the `now` the test pins; no date of the machine is used, so
 * metadata and certificates are valid (or expired) exactly as the test says.
 */
import { execFileSync } from 'node:child_process';
import { createHash, constants, generateKeyPairSync, sign as nodeSign, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalBytes } from '../../webhook/src/tuf/canonical.js';
import type { JsonValue } from '../../webhook/src/tuf/json.js';

export const GUN = 'localhost:5000/demo/app';
export const DAY = 24 * 3600 * 1000;
export const YEAR = 365 * DAY;

// Signed bodies are free-form JSON that tests mutate at will.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Doc = Record<string, any>;

/** A prototype-free object, so that names such as `__proto__` stay plain keys. */
export function dict(entries: Record<string, unknown> = {}): Doc {
  const d = Object.create(null) as Doc;
  for (const k of Object.keys(entries)) d[k] = entries[k];
  return d;
}

/** Go's time.Time text form: RFC 3339, fraction without trailing zeros. */
export function goTime(d: Date): string {
  return d.toISOString().replace(/\.?0+Z$/, 'Z');
}

export function sha256hex(b: Uint8Array | string): string {
  return createHash('sha256').update(b).digest('hex');
}
function b64(alg: 'sha256' | 'sha512', b: Uint8Array): string {
  return createHash(alg).update(b).digest('base64');
}

export type KeyType = 'ecdsa' | 'ecdsa-x509' | 'rsa' | 'rsa-x509' | 'ed25519';

export interface CertOptions {
  cn: string;
  notBefore: Date;
  notAfter: Date;
  /** Extra lines for the openssl extension section (default: Notary's leaf profile). */
  extensions?: string[];
  /** Digest of the certificate signature (default sha256). */
  md?: string;
}

/** Key ID exactly as Notary computes it, independent of the core's own keyId(). */
export function notaryKeyId(keytype: string, publicB64: string): string {
  const json = `{"keytype":"${keytype}","keyval":{"private":null,"public":"${publicB64}"}}`;
  return sha256hex(json);
}

/** A real key pair and its TUF public-key object. */
export class ForgeKey {
  private constructor(
    readonly keytype: KeyType,
    /** keyval.public as written in metadata. */
    readonly publicB64: string,
    readonly privateKey: KeyObject,
    readonly publicKey: KeyObject,
    readonly certPem?: string,
  ) {}

  static ecdsa(): ForgeKey {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    return new ForgeKey('ecdsa', spki(publicKey).toString('base64'), privateKey, publicKey);
  }

  static rsa(bits = 2048): ForgeKey {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
    return new ForgeKey('rsa', spki(publicKey).toString('base64'), privateKey, publicKey);
  }

  static ed25519(): ForgeKey {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    // keyval.public of an ed25519 key is the raw 32 bytes: the tail of the SPKI.
    return new ForgeKey('ed25519', spki(publicKey).subarray(-32).toString('base64'), privateKey, publicKey);
  }

  /** A self-signed certificate over this key (ecdsa or rsa), as an x509 key. */
  withCertificate(opts: CertOptions): ForgeKey {
    if (this.keytype !== 'ecdsa' && this.keytype !== 'rsa') throw new Error(`cannot certify a ${this.keytype} key`);
    const pem = selfSignedCert(this.privateKey, opts);
    return new ForgeKey(`${this.keytype}-x509`, Buffer.from(pem, 'utf8').toString('base64'), this.privateKey, this.publicKey, pem);
  }

  /** The same key pair as a plain (non-certificate) key. */
  plain(): ForgeKey {
    if (this.keytype === 'ecdsa-x509' || this.keytype === 'rsa-x509') {
      const t = this.keytype === 'ecdsa-x509' ? 'ecdsa' : 'rsa';
      return new ForgeKey(t, spki(this.publicKey).toString('base64'), this.privateKey, this.publicKey);
    }
    return this;
  }

  /**
   * The same key pair under another key object, hence another key ID: `keytype` and
   * `keyval.public` as given (e.g. a plain key as its certificate, or the public value
   * encoded another way). What an attacker uses to make one key count as two.
   */
  alias(keytype: KeyType, publicB64: string): ForgeKey {
    const certPem = keytype.endsWith('-x509') ? Buffer.from(publicB64, 'base64').toString('utf8') : undefined;
    return new ForgeKey(keytype, publicB64, this.privateKey, this.publicKey, certPem);
  }

  get id(): string {
    return notaryKeyId(this.keytype, this.publicB64);
  }

  /** For x509 keys, the ID of the plain key inside the certificate (Notary's CanonicalKeyID). */
  get canonicalId(): string {
    return this.plain().id;
  }

  /** PEM of the public key (what a policy may pin instead of the certificate). */
  get publicPem(): string {
    return this.publicKey.export({ format: 'pem', type: 'spki' }).toString();
  }

  json(): Doc {
    return dict({ keytype: this.keytype, keyval: dict({ private: null, public: this.publicB64 }) });
  }

  get defaultMethod(): string {
    if (this.keytype === 'ed25519') return 'eddsa';
    return this.keytype.startsWith('ecdsa') ? 'ecdsa' : 'rsapss';
  }

  /**
   * A real signature. `method` picks the algorithm (ecdsa: raw r||s; ecdsa-der: ASN.1 DER,
   * which Notary does not accept; rsapss; rsapkcs1v15; eddsa).
   */
  sign(message: Uint8Array, method: string = this.defaultMethod): Buffer {
    switch (method) {
      case 'ecdsa':
        return nodeSign('sha256', message, { key: this.privateKey, dsaEncoding: 'ieee-p1363' });
      case 'ecdsa-der':
        return nodeSign('sha256', message, { key: this.privateKey, dsaEncoding: 'der' });
      case 'rsapss':
        return nodeSign('sha256', message, { key: this.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
      case 'rsapkcs1v15':
        return nodeSign('sha256', message, { key: this.privateKey, padding: constants.RSA_PKCS1_PADDING });
      case 'eddsa':
        return nodeSign(null, message, this.privateKey);
      default:
        throw new Error(`forge cannot sign with method ${method}`);
    }
  }
}

function spki(k: KeyObject): Buffer {
  return k.export({ format: 'der', type: 'spki' });
}

const NOTARY_LEAF = [
  'basicConstraints = critical,CA:FALSE',
  'keyUsage = critical,digitalSignature,keyEncipherment',
  'extendedKeyUsage = codeSigning',
];

function opensslTime(d: Date): string {
  // GeneralizedTime, second precision: YYYYMMDDHHMMSSZ.
  return d.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
}

/**
 * Self-signed certificate made by the openssl CLI. `openssl ca -selfsign` is the one
 * OpenSSL 3.0 command that takes explicit start and end dates, which the pinned clock needs.
 */
function selfSignedCert(key: KeyObject, opts: CertOptions): string {
  const dir = mkdtempSync(join(tmpdir(), 'tuf-forge-'));
  try {
    writeFileSync(join(dir, 'key.pem'), key.export({ format: 'pem', type: 'pkcs8' }));
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'serial'), randomSerial() + '\n');
    if (/[\n\\"]/.test(opts.cn)) throw new Error('forge: CN must not contain newlines, quotes or backslashes');
    const conf = [
      '[ req ]',
      'prompt = no',
      'distinguished_name = dn',
      '[ dn ]',
      `CN = "${opts.cn}"`,
      '[ ca ]',
      'default_ca = own',
      '[ own ]',
      `database = ${join(dir, 'index.txt')}`,
      `new_certs_dir = ${dir}`,
      `serial = ${join(dir, 'serial')}`,
      `default_md = ${opts.md ?? 'sha256'}`,
      'policy = any',
      'unique_subject = no',
      'email_in_dn = no',
      'x509_extensions = ext',
      '[ any ]',
      'commonName = supplied',
      '[ ext ]',
      ...(opts.extensions ?? NOTARY_LEAF),
      '',
    ].join('\n');
    writeFileSync(join(dir, 'openssl.cnf'), conf);
    const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    run(['req', '-new', '-config', 'openssl.cnf', '-key', 'key.pem', '-out', 'csr.pem']);
    run([
      'ca', '-batch', '-config', 'openssl.cnf', '-selfsign', '-keyfile', 'key.pem', '-in', 'csr.pem', '-notext',
      '-startdate', opensslTime(opts.notBefore), '-enddate', opensslTime(opts.notAfter), '-out', 'cert.pem',
    ]);
    return readFileSync(join(dir, 'cert.pem'), 'utf8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function randomSerial(): string {
  // Positive 64-bit serial in hex, as openssl's serial file wants it.
  return '4' + createHash('sha256').update(String(Math.random()) + process.hrtime.bigint()).digest('hex').slice(0, 15);
}

/** Certificate key valid around `now` (Notary's root profile: 10 years). */
export function certKey(base: ForgeKey, cn: string, now: Date, opts: Partial<CertOptions> = {}): ForgeKey {
  return base.withCertificate({
    cn,
    notBefore: new Date(now.getTime() - DAY),
    notAfter: new Date(now.getTime() + 10 * YEAR),
    ...opts,
  });
}

// ---------------------------------------------------------------------------------------
// Envelopes

/** One signature to put on a file: a key (default method), or full control over each field. */
export interface SigSpec {
  key: ForgeKey;
  /** Method written in the signature (default: the key's method). */
  method?: string;
  /** Algorithm actually used to sign (default: `method`). */
  signWith?: string;
  /** Key ID written in the signature (default: the key's ID). */
  keyid?: string;
  /** Change the signature bytes after signing. */
  mangle?: (sig: Buffer) => Buffer;
}
export type Signer = ForgeKey | SigSpec;

export type Layout = 'notary' | 'pretty';

/**
 * Serialise like Notary: compact, `signed` first and in canonical form, then the
 * signatures. 'pretty' writes the same JSON indented, with keys in insertion order, to show
 * that signatures cover the canonical form and not the bytes.
 */
export function envelope(signed: Doc, signers: Signer[], layout: Layout = 'notary'): Buffer {
  const canonical = checkedCanonical(signed);
  const signatures = signers.map((s) => {
    const spec: SigSpec = s instanceof ForgeKey ? { key: s } : s;
    const method = spec.method ?? spec.key.defaultMethod;
    let sig = spec.key.sign(canonical, spec.signWith ?? method);
    if (spec.mangle) sig = spec.mangle(sig);
    return { keyid: spec.keyid ?? spec.key.id, method, sig: sig.toString('base64') };
  });
  if (layout === 'pretty') {
    return Buffer.from(JSON.stringify({ signed, signatures }, null, 2), 'utf8');
  }
  return Buffer.concat([
    Buffer.from('{"signed":'),
    canonical,
    Buffer.from(',"signatures":' + JSON.stringify(signatures) + '}'),
  ]);
}

/**
 * The core's canonical form, cross-checked against a second encoder written here from the
 * rules in FORMAT.md §2: signing with the core's encoder alone would hide a bug in it, since
 * the core would then verify exactly what it got wrong.
 */
export function checkedCanonical(signed: Doc): Buffer {
  const core = canonicalBytes(signed as JsonValue, 'forge');
  const own = Buffer.from(ownCanonical(signed), 'utf8');
  if (!core.equals(own)) throw new Error(`forge: core canonical form differs from the reference:\n${core}\n${own}`);
  return core;
}

function ownCanonical(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new Error(`forge: ${v} is not an integer`);
    return String(v);
  }
  if (typeof v === 'string') return '"' + v.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
  if (Array.isArray(v)) return '[' + v.map(ownCanonical).join(',') + ']';
  const obj = v as Doc;
  const keys = Object.keys(obj).sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
  return '{' + keys.map((k) => ownCanonical(k) + ':' + ownCanonical(obj[k])).join(',') + '}';
}

/** Parse a served file back into its parts (prototype-free objects). */
export function openEnvelope(bytes: Uint8Array): { signed: Doc; signatures: { keyid: string; method: string; sig: string }[] } {
  return JSON.parse(Buffer.from(bytes).toString('utf8'), (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? dict(v as Record<string, unknown>) : v,
  ) as { signed: Doc; signatures: { keyid: string; method: string; sig: string }[] };
}

/**
 * Change a signed file after signing, keeping its signatures: what an attacker without the
 * keys can do. The result is serialised canonically like the original.
 */
export function tamper(bytes: Uint8Array, change: (signed: Doc) => void): Buffer {
  const { signed, signatures } = openEnvelope(bytes);
  change(signed);
  return Buffer.concat([
    Buffer.from('{"signed":'),
    checkedCanonical(signed),
    Buffer.from(',"signatures":' + JSON.stringify(signatures) + '}'),
  ]);
}

/** Replace the signatures of a file (e.g. to add a duplicate or remove one). */
export function withSignatures(bytes: Uint8Array, change: (sigs: { keyid: string; method: string; sig: string }[]) => void): Buffer {
  const { signed, signatures } = openEnvelope(bytes);
  change(signatures);
  return Buffer.concat([
    Buffer.from('{"signed":'),
    checkedCanonical(signed),
    Buffer.from(',"signatures":' + JSON.stringify(signatures) + '}'),
  ]);
}

/** Flip one bit of the byte at `index` (negative: from the end). */
export function flipByte(bytes: Uint8Array, index: number): Buffer {
  const out = Buffer.from(bytes);
  const i = index < 0 ? out.length + index : index;
  out[i] = out[i]! ^ 0x01;
  return out;
}

/** Replace the first occurrence of `from` by `to` in the raw bytes (same signatures). */
export function replaceText(bytes: Uint8Array, from: string, to: string): Buffer {
  const s = Buffer.from(bytes).toString('utf8');
  if (!s.includes(from)) throw new Error(`forge: "${from}" not found`);
  return Buffer.from(s.replace(from, to), 'utf8');
}

// ---------------------------------------------------------------------------------------
// Repository

export type Algorithm = 'ecdsa' | 'ed25519';

export interface ForgeOptions {
  /** The test's clock: every expiry and certificate date is relative to it. */
  now: Date;
  gun?: string;
  /** Key type of targets, snapshot, timestamp and targets/releases/nightly. */
  algorithm?: Algorithm;
  /** Number of root certificate keys (default 1) and the root threshold (default 1). */
  rootKeys?: number;
  rootThreshold?: number;
  /** Build without any delegation (targets only). */
  noDelegations?: boolean;
  /**
   * Take the key set shared by every forge with the same clock, GUN, algorithm and number of
   * root keys instead of generating new keys and certificates (RSA key generation and openssl
   * runs make up most of a build). Off by default: two forges are two repositories with
   * different keys unless a test asks otherwise.
   */
  sharedKeys?: boolean;
}

export interface RoleState {
  signed: Doc;
  signers: Signer[];
  layout: Layout;
}

export interface ForgedRepo {
  gun: string;
  now: Date;
  /** role -> served bytes: root (newest), timestamp, snapshot, targets, targets/... */
  files: Map<string, Buffer>;
  /** Every root version in order: roots[0] is version 1, the last is `files.get('root')`. */
  roots: Buffer[];
  /** PEM certificates of the root keys of version 1: what a policy pins. */
  rootPems: string[];
  get(role: string): Buffer;
}

export interface BuildHooks {
  /** Edit a role's signed body after the forge filled in meta, before it is signed. */
  beforeSign?: (role: string, signed: Doc) => void;
  /** Roles to leave out of snapshot.meta. */
  omitFromSnapshot?: string[];
}

export interface RepoKeys {
  root: ForgeKey[];
  targets: ForgeKey;
  snapshot: ForgeKey;
  timestamp: ForgeKey;
  releases: ForgeKey;
  qa: ForgeKey;
  nightly: ForgeKey;
}

function newRepoKeys(gun: string, now: Date, opts: ForgeOptions): RepoKeys {
  const plain = opts.algorithm === 'ed25519' ? () => ForgeKey.ed25519() : () => ForgeKey.ecdsa();
  return {
    root: Array.from({ length: opts.rootKeys ?? 1 }, () => certKey(ForgeKey.ecdsa(), gun, now)),
    targets: plain(),
    snapshot: plain(),
    timestamp: plain(),
    releases: certKey(ForgeKey.ecdsa(), 'releases', now),
    qa: certKey(ForgeKey.rsa(), 'qa', now),
    nightly: plain(),
  };
}

const keyCache = new Map<string, RepoKeys>();
/** A copy of the shared key set: forges may replace their keys without touching others. */
function sharedRepoKeys(gun: string, now: Date, opts: ForgeOptions): RepoKeys {
  const id = [gun, now.getTime(), opts.algorithm ?? 'ecdsa', opts.rootKeys ?? 1].join('|');
  let keys = keyCache.get(id);
  if (!keys) {
    keys = newRepoKeys(gun, now, opts);
    keyCache.set(id, keys);
  }
  return { ...keys, root: [...keys.root] };
}


/** Fake manifest bytes for a label: targets are named by tag and hashed like manifests. */
export function manifest(label: string): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', label }));
}

/**
 * A mutable repository: each role's signed body and signers. `build()` serialises the
 * delegations and targets, then computes snapshot and timestamp meta from the exact bytes,
 * like a Notary publish.
 */
export class RepoForge {
  readonly now: Date;
  readonly gun: string;
  readonly keys: RepoKeys;
  readonly roles = new Map<string, RoleState>();
  /** Frozen earlier root versions (bytes), oldest first. */
  readonly rootHistory: Buffer[] = [];
  private readonly firstRootPems: string[];
  private readonly cache = new Map<string, { fingerprint: string; bytes: Buffer }>();

  constructor(opts: ForgeOptions) {
    this.now = opts.now;
    this.gun = opts.gun ?? GUN;
    this.keys = opts.sharedKeys ? sharedRepoKeys(this.gun, this.now, opts) : newRepoKeys(this.gun, this.now, opts);
    this.firstRootPems = this.keys.root.map((k) => k.certPem!);
    const k = this.keys;
    const threshold = opts.rootThreshold ?? 1;
    const keyMap = dict();
    for (const key of [...k.root, k.targets, k.snapshot, k.timestamp]) keyMap[key.id] = key.json();
    this.roles.set('root', {
      signed: dict({
        _type: 'Root',
        consistent_snapshot: false,
        expires: this.expiresIn(10 * YEAR),
        keys: keyMap,
        roles: dict({
          root: roleKeys(k.root, threshold),
          snapshot: roleKeys([k.snapshot], 1),
          targets: roleKeys([k.targets], 1),
          timestamp: roleKeys([k.timestamp], 1),
        }),
        version: 1,
      }),
      signers: [...k.root],
      layout: 'notary',
    });
    const targets = this.targetsBody(2);
    this.roles.set('targets', { signed: targets, signers: [k.targets], layout: 'notary' });
    this.addTarget('targets', 'v1.0', manifest('v1.0'));
    this.addTarget('targets', 'hello-file', Buffer.from('hello world\n'), true);
    if (!opts.noDelegations) {
      this.delegate('targets', 'targets/releases', [k.releases], ['']);
      this.delegate('targets', 'targets/qa', [k.qa], ['qa/']);
      this.delegate('targets/releases', 'targets/releases/nightly', [k.nightly], ['nightly/']);
      this.addTarget('targets/releases', 'v2.0', manifest('v2.0'));
      this.addTarget('targets/releases', 'v1.0', manifest('v1.0'));
      this.addTarget('targets/qa', 'qa/rc1', manifest('qa/rc1'));
      this.addTarget('targets/releases/nightly', 'nightly/20310601', manifest('nightly'));
    }
    this.roles.set('snapshot', {
      signed: dict({ _type: 'Snapshot', expires: this.expiresIn(3 * YEAR), meta: dict(), version: 2 }),
      signers: [k.snapshot],
      layout: 'notary',
    });
    this.roles.set('timestamp', {
      signed: dict({ _type: 'Timestamp', expires: this.expiresIn(14 * DAY), meta: dict(), version: 1 }),
      signers: [k.timestamp],
      layout: 'notary',
    });
  }

  expiresIn(ms: number): string {
    return goTime(new Date(this.now.getTime() + ms));
  }

  role(name: string): RoleState {
    const r = this.roles.get(name);
    if (!r) throw new Error(`forge: no role ${name}`);
    return r;
  }

  /** The mutable signed body of a role. */
  signed(name: string): Doc {
    return this.role(name).signed;
  }

  /** Set expiry to now + ms (negative or zero: already expired). */
  expire(name: string, ms: number): this {
    this.signed(name).expires = this.expiresIn(ms);
    return this;
  }

  bump(name: string, by = 1): this {
    (this.signed(name).version as number) += by;
    return this;
  }

  setVersion(name: string, v: number): this {
    this.signed(name).version = v;
    return this;
  }

  signWith(name: string, signers: Signer[]): this {
    this.role(name).signers = signers;
    return this;
  }

  layout(name: string, layout: Layout): this {
    this.role(name).layout = layout;
    return this;
  }

  targetsBody(version: number): Doc {
    return dict({
      _type: 'Targets',
      delegations: dict({ keys: dict(), roles: [] }),
      expires: this.expiresIn(3 * YEAR),
      targets: dict(),
      version,
    });
  }

  /** Sign `content` as target `name` in `role` (sha256, plus sha512 like `notary add`). Returns the sha256 hex. */
  addTarget(role: string, name: string, content: Buffer, withSha512 = false): string {
    const hashes = dict({ sha256: b64('sha256', content) });
    if (withSha512) hashes.sha512 = b64('sha512', content);
    this.signed(role).targets[name] = dict({ hashes, length: content.length });
    return sha256hex(content);
  }

  /** Add (or replace) a delegation `child` of `parent` with its own empty targets file. */
  delegate(parent: string, child: string, keys: ForgeKey[], paths: string[], threshold = 1): this {
    const d = this.signed(parent).delegations;
    for (const key of keys) d.keys[key.id] = key.json();
    const roles = d.roles as Doc[];
    const entry = dict({ keyids: keys.map((x) => x.id), name: child, paths, threshold });
    const at = roles.findIndex((r) => r.name === child);
    if (at >= 0) roles[at] = entry;
    else roles.push(entry);
    if (!this.roles.has(child)) this.roles.set(child, { signed: this.targetsBody(1), signers: [...keys], layout: 'notary' });
    return this;
  }

  /** The delegation entry for `child` in its parent's file. */
  delegationEntry(parent: string, child: string): Doc {
    const e = (this.signed(parent).delegations.roles as Doc[]).find((r) => r.name === child);
    if (!e) throw new Error(`forge: ${parent} does not delegate ${child}`);
    return e;
  }

  /**
   * Serialise a role. Signatures by ECDSA are randomised, so an unchanged role keeps its
   * earlier bytes, as an unchanged file on a Notary server does.
   */
  serialise(name: string): Buffer {
    const r = this.role(name);
    const fingerprint = fingerprintOf(r);
    const cached = this.cache.get(name);
    if (fingerprint !== undefined && cached?.fingerprint === fingerprint) return cached.bytes;
    const bytes = envelope(r.signed, r.signers, r.layout);
    if (fingerprint !== undefined) this.cache.set(name, { fingerprint, bytes });
    return bytes;
  }

  /** Serialise the current root version as it stands. */
  rootBytes(): Buffer {
    return this.serialise('root');
  }

  /**
   * Freeze the current root and start version n+1 with the same keys, signed by the
   * current root keys (e.g. after a targets key rotation).
   */
  nextRoot(): this {
    this.rootHistory.push(this.rootBytes());
    const r = this.role('root');
    r.signed.version = (r.signed.version as number) + 1;
    r.signers = [...this.keys.root];
    return this;
  }

  /**
   * Root rotation as `notary key rotate <gun> root` does it: version n+1 lists the new
   * certificate keys as the root role, keeps the old ones in `keys`, and is signed by the
   * old and the new keys (override with `signers`).
   */
  rotateRoot(newKeys: ForgeKey[], opts: { threshold?: number; signers?: Signer[] } = {}): this {
    const old = this.keys.root;
    this.nextRoot();
    const r = this.role('root');
    for (const key of newKeys) r.signed.keys[key.id] = key.json();
    r.signed.roles.root = roleKeys(newKeys, opts.threshold ?? 1);
    r.signers = opts.signers ?? [...newKeys, ...old];
    this.keys.root = newKeys;
    return this;
  }

  /** Replace a top-level role's key in root (a new root version must follow: call nextRoot first). */
  setRoleKey(role: 'targets' | 'snapshot' | 'timestamp', keys: ForgeKey[], threshold = 1): this {
    const r = this.signed('root');
    for (const key of keys) r.keys[key.id] = key.json();
    r.roles[role] = roleKeys(keys, threshold);
    if (keys.length === 1) this.keys[role] = keys[0]!;
    this.role(role).signers = [...keys];
    return this;
  }

  /**
   * Serialise everything: delegations and targets as they stand, then snapshot over their
   * bytes and the newest root, then timestamp over the snapshot.
   */
  build(hooks: BuildHooks = {}): ForgedRepo {
    const files = new Map<string, Buffer>();
    const serialise = (name: string) => {
      hooks.beforeSign?.(name, this.role(name).signed);
      const bytes = this.serialise(name);
      files.set(name, bytes);
      return bytes;
    };
    const rootBytes = serialise('root');
    const delegated = [...this.roles.keys()].filter((n) => n.startsWith('targets/'));
    for (const name of ['targets', ...delegated]) serialise(name);

    const snapMeta = dict();
    for (const name of ['root', 'targets', ...delegated]) {
      if (hooks.omitFromSnapshot?.includes(name)) continue;
      snapMeta[name] = fileMeta(files.get(name)!);
    }
    this.signed('snapshot').meta = snapMeta;
    const snapshot = serialise('snapshot');
    this.signed('timestamp').meta = dict({ snapshot: fileMeta(snapshot) });
    serialise('timestamp');
    const roots = [...this.rootHistory, rootBytes];
    return {
      gun: this.gun,
      now: this.now,
      files,
      roots,
      rootPems: [...this.firstRootPems],
      get(role: string) {
        const b = files.get(role);
        if (!b) throw new Error(`forge: no file for ${role}`);
        return b;
      },
    };
  }
}

/** What a role's bytes depend on; undefined when a signer mangles its signature (never cached). */
function fingerprintOf(r: RoleState): string | undefined {
  const signers: string[] = [];
  for (const s of r.signers) {
    if (s instanceof ForgeKey) signers.push(s.id);
    else if (s.mangle) return undefined;
    else signers.push(JSON.stringify([s.key.id, s.method, s.signWith, s.keyid]));
  }
  let canonical: Buffer;
  try {
    canonical = canonicalBytes(r.signed as JsonValue, 'forge');
  } catch {
    return undefined;
  }
  return sha256hex(canonical) + r.layout + JSON.stringify(signers);
}

function roleKeys(keys: ForgeKey[], threshold: number): Doc {
  return dict({ keyids: keys.map((k) => k.id), threshold });
}

export function fileMeta(bytes: Uint8Array): Doc {
  return dict({ hashes: dict({ sha256: b64('sha256', bytes), sha512: b64('sha512', bytes) }), length: bytes.length });
}
