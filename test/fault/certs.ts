/**
 * TLS material for fake trust servers, made with the openssl CLI: a leaf issued by the
 * stack's own CA (trusted by the policies under test) or by a CA nobody trusts, for the
 * names the test chooses, so a wrong certificate is wrong in exactly one way.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CertPair {
  cert: string;
  key: string;
}

export interface CertAuthority {
  certFile: string;
  keyFile: string;
  certPem: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A fresh self-signed ECDSA CA in `parent` (a temporary directory inside it). */
export function makeCa(parent: string, cn: string): CertAuthority {
  const dir = mkdtempSync(join(parent, 'ca-'));
  const keyFile = join(dir, 'ca.key');
  const certFile = join(dir, 'ca.crt');
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyFile], dir);
  openssl([
    'req', '-x509', '-new', '-key', keyFile, '-sha256', '-days', '30', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', certFile,
  ], dir);
  return { certFile, keyFile, certPem: readFileSync(certFile, 'utf8') };
}

/** The CA that hack/notary-stack.sh made for a stack in `stackDir`. */
export function stackCa(stackDir: string): CertAuthority {
  const certFile = join(stackDir, 'pki', 'ca.crt');
  return { certFile, keyFile: join(stackDir, 'pki', 'ca.key'), certPem: readFileSync(certFile, 'utf8') };
}

/**
 * A serverAuth leaf for `sans` (openssl subjectAltName syntax, e.g. "IP:127.0.0.1") issued
 * by `ca`, with its key, as PEM strings.
 */
export function issueServerCert(ca: CertAuthority, parent: string, cn: string, sans: string[]): CertPair {
  const dir = mkdtempSync(join(parent, 'leaf-'));
  const keyFile = join(dir, 'leaf.key');
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyFile], dir);
  openssl(['req', '-new', '-key', keyFile, '-subj', `/CN=${cn}`, '-out', 'leaf.csr'], dir);
  writeFileSync(
    join(dir, 'leaf.ext'),
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      `subjectAltName=${sans.join(',')}`,
      '',
    ].join('\n'),
  );
  openssl([
    'x509', '-req', '-in', 'leaf.csr', '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-CAserial', join(dir, 'ca.srl'),
    '-sha256', '-days', '7', '-extfile', 'leaf.ext', '-out', 'leaf.crt',
  ], dir);
  return { cert: readFileSync(join(dir, 'leaf.crt'), 'utf8'), key: readFileSync(keyFile, 'utf8') };
}
