/**
 * A trust server that misbehaves on demand, in front of the real notary-server. Every
 * connection gets the behaviour of the mode current when it was accepted:
 *
 *   forward     TCP pass-through to the real server (its own certificate, its own answers)
 *   stall       accepts, reads, never answers (not even the TLS handshake)
 *   reset       answers the connection with a TCP RST
 *   close       accepts and closes at once
 *   http500     valid TLS (stack CA), every request answered 500 with a Notary error body
 *   dribble     valid TLS, the real server's answer with headers at once and the body one
 *               byte every `dribbleMs`
 *   wrong-ca    a certificate for the right address from a CA nobody trusts
 *   wrong-host  a certificate from the trusted CA, for another host name
 *
 * Switching modes drops the open connections, as a restarting or failing server would, so
 * pooled keep-alive sockets cannot carry an old behaviour into the new mode.
 */
import { request as httpsRequest, createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { CertPair } from './certs.js';

export const FAULT_MODES = ['forward', 'stall', 'reset', 'close', 'http500', 'dribble', 'wrong-ca', 'wrong-host'] as const;
export type FaultMode = (typeof FAULT_MODES)[number];

export interface FaultProxyOptions {
  /** The real notary-server. */
  upstream: { host: string; port: number };
  /** CA of the real server, for the modes that fetch from it over their own TLS. */
  upstreamCa: string;
  /** good: trusted and right for 127.0.0.1; wrongCa: untrusted issuer; wrongHost: trusted issuer, other name. */
  certs: { good: CertPair; wrongCa: CertPair; wrongHost: CertPair };
  mode?: FaultMode;
  /** Delay between body bytes in dribble mode. Default 200 ms. */
  dribbleMs?: number;
}

type Terminated = 'http500' | 'dribble' | 'wrong-ca' | 'wrong-host';

export class FaultProxy {
  private readonly listener: Server;
  private readonly tls: Record<Terminated, HttpsServer>;
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private currentMode: FaultMode;
  private readonly dribbleMs: number;
  /** Connections accepted, per mode. */
  readonly connections: Record<FaultMode, number> = Object.fromEntries(FAULT_MODES.map((m) => [m, 0])) as Record<FaultMode, number>;
  port = 0;
  /** Body bytes sent so far in dribble mode. */
  dribbled = 0;

  private constructor(private readonly opts: FaultProxyOptions) {
    this.currentMode = opts.mode ?? 'forward';
    this.dribbleMs = opts.dribbleMs ?? 200;
    const answer500 = (_req: IncomingMessage, res: ServerResponse) => {
      const body = JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'injected fault: internal server error', detail: null }] });
      res.writeHead(500, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    };
    const refuse = (_req: IncomingMessage, res: ServerResponse) => {
      // Only reached if a client ignored the certificate problem.
      res.writeHead(418).end();
    };
    this.tls = {
      http500: createHttpsServer(opts.certs.good, answer500),
      dribble: createHttpsServer(opts.certs.good, (req, res) => this.dribble(req, res)),
      'wrong-ca': createHttpsServer(opts.certs.wrongCa, refuse),
      'wrong-host': createHttpsServer(opts.certs.wrongHost, refuse),
    };
    for (const s of Object.values(this.tls)) s.on('tlsClientError', () => undefined);
    this.listener = createServer((socket) => this.accept(socket));
  }

  static async start(opts: FaultProxyOptions): Promise<FaultProxy> {
    const proxy = new FaultProxy(opts);
    await new Promise<void>((resolve, reject) => {
      proxy.listener.once('error', reject);
      proxy.listener.listen(0, '127.0.0.1', () => resolve());
    });
    proxy.port = (proxy.listener.address() as AddressInfo).port;
    return proxy;
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  get mode(): FaultMode {
    return this.currentMode;
  }

  /** Switch behaviour; open connections are dropped. */
  setMode(mode: FaultMode): void {
    this.currentMode = mode;
    this.dropConnections();
  }

  dropConnections(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  async close(): Promise<void> {
    this.dropConnections();
    await new Promise<void>((resolve) => this.listener.close(() => resolve()));
    for (const s of Object.values(this.tls)) s.close();
  }

  private accept(socket: Socket): void {
    const mode = this.currentMode;
    this.connections[mode]++;
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    switch (mode) {
      case 'forward': {
        const up = connect(this.opts.upstream.port, this.opts.upstream.host);
        this.sockets.add(up);
        up.on('close', () => this.sockets.delete(up));
        // The real server is gone (killed): the client sees its connection reset.
        up.on('error', () => socket.resetAndDestroy());
        socket.on('close', () => up.destroy());
        up.on('close', () => socket.destroy());
        socket.pipe(up);
        up.pipe(socket);
        return;
      }
      case 'stall':
        socket.resume();
        return;
      case 'reset':
        socket.resetAndDestroy();
        return;
      case 'close':
        socket.end();
        return;
      default:
        this.tls[mode].emit('connection', socket);
    }
  }

  /** The real answer, trickled: headers now, then one body byte per interval. */
  private dribble(req: IncomingMessage, res: ServerResponse): void {
    const up = httpsRequest(
      { host: this.opts.upstream.host, port: this.opts.upstream.port, path: req.url, method: 'GET', ca: this.opts.upstreamCa, agent: false },
      (upRes) => {
        const chunks: Buffer[] = [];
        upRes.on('data', (c: Buffer) => chunks.push(c));
        upRes.on('end', () => {
          const body = Buffer.concat(chunks);
          res.writeHead(upRes.statusCode ?? 502, { 'Content-Type': 'application/json', 'Content-Length': body.length });
          res.flushHeaders();
          let i = 0;
          const next = () => {
            if (i >= body.length || res.destroyed) return void res.end();
            res.write(body.subarray(i, i + 1));
            i++;
            this.dribbled++;
            const t = setTimeout(() => {
              this.timers.delete(t);
              next();
            }, this.dribbleMs);
            this.timers.add(t);
          };
          next();
        });
      },
    );
    up.on('error', () => res.destroy());
    up.end();
  }
}
