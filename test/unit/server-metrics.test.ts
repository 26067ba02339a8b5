// The Prometheus text format of the small registry, and the JSON logger.
import { expect } from 'chai';
import { Counter, Histogram, Metrics } from '../../webhook/src/server/metrics.js';
import { createJsonLogger } from '../../webhook/src/server/log.js';

describe('server: metrics registry', () => {
  it('renders counters with HELP, TYPE and escaped label values', () => {
    const c = new Counter('x_total', 'Things.');
    c.inc({ path: 'a"b\\c\nd' });
    c.inc({ path: 'a"b\\c\nd' }, 2);
    c.inc({ path: 'plain' });
    expect(c.render().split('\n')).to.deep.equal(['# HELP x_total Things.', '# TYPE x_total counter', 'x_total{path="a\\"b\\\\c\\nd"} 3', 'x_total{path="plain"} 1']);
    expect(() => c.inc({}, -1)).to.throw(RangeError);
  });

  it('shows an untouched counter at 0', () => {
    expect(new Counter('y_total', 'Y.').render()).to.contain('\ny_total 0');
  });

  it('renders cumulative histogram buckets, sum and count', () => {
    const h = new Histogram('d_seconds', 'D.', [1, 0.1, 0.5]);
    for (const v of [0.05, 0.3, 0.3, 2]) h.observe(v, { webhook: 'mutate' });
    expect(h.render().split('\n')).to.deep.equal([
      '# HELP d_seconds D.',
      '# TYPE d_seconds histogram',
      'd_seconds_bucket{webhook="mutate",le="0.1"} 1',
      'd_seconds_bucket{webhook="mutate",le="0.5"} 3',
      'd_seconds_bucket{webhook="mutate",le="1"} 3',
      'd_seconds_bucket{webhook="mutate",le="+Inf"} 4',
      'd_seconds_sum{webhook="mutate"} 2.65',
      'd_seconds_count{webhook="mutate"} 4',
    ]);
  });

  it('can be handed to the engine: counts cache hits/misses and trust server errors, has no verificationSeconds', () => {
    const m = new Metrics();
    m.cacheMiss();
    m.cacheHit();
    m.trustServerError('https://n:4443', 'tls');
    m.trustServerError('https://n:4443', 'tls');
    const text = m.render();
    expect(text).to.contain('\ntrustgate_cache_hits_total 1\n');
    expect(text).to.contain('\ntrustgate_cache_misses_total 1\n');
    expect(text).to.contain('\ntrustgate_trust_server_errors_total{server="https://n:4443",kind="tls"} 2\n');
    expect(text.endsWith('\n')).to.equal(true);
    expect((m as unknown as Record<string, unknown>)['verificationSeconds']).to.equal(undefined);
  });

  it('admission() counts by operation/result/mode/webhook and times per webhook', () => {
    const m = new Metrics();
    m.admission({ operation: 'CREATE', result: 'denied', mode: 'enforce', webhook: 'validate' }, 0.2);
    m.admission({ operation: 'CREATE', result: 'denied', mode: 'enforce', webhook: 'validate' }, 0.3);
    expect(m.admissions.get({ operation: 'CREATE', result: 'denied', mode: 'enforce', webhook: 'validate' })).to.equal(2);
    expect(m.render()).to.contain('trustgate_admission_duration_seconds_count{webhook="validate"} 2');
  });
});

describe('server: JSON logger', () => {
  it('writes one JSON object per line at or above the level', () => {
    const out: string[] = [];
    const log = createJsonLogger('info', (l) => out.push(l), () => new Date('2030-01-02T03:04:05Z'));
    log.debug('hidden');
    log.info('admission', { uid: 'u1', images: ['a'] });
    log.error('boom');
    expect(out).to.have.length(2);
    expect(out.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n'))).to.equal(true);
    expect(JSON.parse(out[0]!)).to.deep.equal({ time: '2030-01-02T03:04:05.000Z', level: 'info', msg: 'admission', uid: 'u1', images: ['a'] });
  });

  it('survives fields that cannot be serialized', () => {
    const out: string[] = [];
    const log = createJsonLogger('debug', (l) => out.push(l));
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    log.warn('odd', { cyclic });
    expect(JSON.parse(out[0]!)).to.include({ level: 'warn', msg: 'odd' });
    expect(JSON.parse(out[0]!).logError).to.be.a('string');
  });
});
