// A TUF 1.0 repository is static files: this serves a directory over HTTPS (or plain HTTP,
// as the TUF conformance suite serves its clients) with Debian's nginx on 127.0.0.1
// (installed when missing and we are root), started in the foreground with its own prefix,
// and stopped by PID. Every request is logged, so tests can check which files a client fetched.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCa, issueServerCert, type CertAuthority } from '../fault/certs.js';
import { freePorts, pidAlive } from './stack.js';

export interface StaticServer {
  /** https://127.0.0.1:PORT/ (http:// with `tls: false`) */
  url: string;
  ca: CertAuthority;
  pid: number;
  /** nginx's prefix (configuration, certificate, logs), removed by stop(). */
  dir: string;
  /** Request paths (as sent, still percent-encoded) since the last call, in order. */
  takeRequests(): Promise<string[]>;
  stop(): Promise<void>;
}

const NGINX = '/usr/sbin/nginx';

export function ensureNginx(): void {
  if (existsSync(NGINX)) return;
  if (process.getuid?.() !== 0) throw new Error(`${NGINX} is missing: apt-get install nginx (as root)`);
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'nginx'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

function waitForPort(port: number, child: ChildProcess, log: () => string): Promise<void> {
  const until = Date.now() + 15_000;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (child.exitCode !== null) return reject(new Error(`nginx exited with ${child.exitCode}: ${log()}`));
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > until) reject(new Error(`nginx did not listen on 127.0.0.1:${port}: ${log()}`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

/** Serves `root` (read-only) at https://127.0.0.1:PORT/ with a certificate of a fresh CA, or over plain HTTP with `tls: false`. */
export async function startStaticServer(root: string, opts: { ca?: CertAuthority; tls?: boolean } = {}): Promise<StaticServer> {
  const tls = opts.tls ?? true;
  ensureNginx();
  const dir = mkdtempSync(join(tmpdir(), 'trustgate-nginx-'));
  const ca = opts.ca ?? makeCa(dir, 'trustgate test CA');
  const leaf = issueServerCert(ca, dir, '127.0.0.1', ['IP:127.0.0.1']);
  writeFileSync(join(dir, 'leaf.crt'), leaf.cert);
  writeFileSync(join(dir, 'leaf.key'), leaf.key, { mode: 0o600 });
  const [port] = await freePorts(1);
  const user = process.getuid?.() === 0 ? 'user root root;' : '';
  const accessLog = join(dir, 'access.log');
  writeFileSync(accessLog, '');
  writeFileSync(
    join(dir, 'nginx.conf'),
    `${user}
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  log_format uri '$request_uri';
  access_log ${accessLog} uri;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  types { application/json json; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port}${tls ? ' ssl' : ''};
    ssl_certificate ${dir}/leaf.crt;
    ssl_certificate_key ${dir}/leaf.key;
    root ${root};
    location / { try_files $uri =404; }
  }
}
`,
  );
  const child = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  await waitForPort(port!, child, () => stderr).catch((e) => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw e;
  });
  const pid = child.pid!;
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}/`;
  let seen = 0;
  let marks = 0;
  return {
    url,
    ca,
    pid,
    dir,
    async takeRequests() {
      // nginx logs a request once it is finished; one worker finishes requests in order, so a
      // marker request that is in the log means every earlier request is too.
      const mark = `/.mark-${++marks}`;
      await new Promise<void>((resolve, reject) => {
        const req = tls ? httpsGet(url + mark.slice(1), { ca: ca.certPem }, (res) => res.resume().on('end', resolve)) : httpGet(url + mark.slice(1), (res) => res.resume().on('end', resolve));
        req.on('error', reject);
      });
      for (;;) {
        const lines = readFileSync(accessLog, 'utf8').split('\n').filter((l) => l !== '');
        const at = lines.indexOf(mark, seen);
        if (at >= 0) {
          const fresh = lines.slice(seen, at).filter((l) => !l.startsWith('/.mark-'));
          seen = at + 1;
          return fresh;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async stop() {
      if (pidAlive(pid)) {
        // SIGQUIT: nginx's graceful stop; its master takes the worker with it.
        child.kill('SIGQUIT');
        const until = Date.now() + 5000;
        while (pidAlive(pid) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
        if (pidAlive(pid)) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
