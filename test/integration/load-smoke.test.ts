// A CI-sized run of the load suite (`npm run load` is the full one): a few seconds of
// open-loop admissions at a low rate against the real webhook process and the real stack.
// Every admission must be answered correctly: warm ones allowed and pinned to the signed
// digests, cold and unsigned ones denied naming the server. Nothing here is timed.
import { expect } from 'chai';
import { median, percentile, runLoad, type LoadReport } from '../load/load.js';
import { startStack, type Stack } from '../support/stack.js';

describe('integration: load smoke', function () {
  this.timeout(180_000);
  let stack: Stack;
  let report: LoadReport;

  before(async () => {
    stack = await startStack();
    report = await runLoad(stack, { durationS: 3, rate: 40, repos: 2, warmupS: 1, coldRatio: 0.2, unsignedRatio: 0.1, seed: 'ci-smoke' });
  });

  after(async () => {
    await stack?.stop();
  });

  it('answers every admission of the mix, with no errors', () => {
    expect(report.errorSamples).to.deep.equal([]);
    expect(report.errors).to.equal(0);
    expect(report.offered).to.equal(120);
    expect(report.answered).to.equal(report.offered);
    expect(report.allowed + report.intendedDenials).to.equal(report.answered);
    // The mix really contained each kind, so both allow and deny paths were under load.
    expect(report.byKind.warm).to.be.greaterThan(0);
    expect(report.byKind.cold).to.be.greaterThan(0);
    expect(report.byKind.unsigned).to.be.greaterThan(0);
    expect(report.allowed).to.equal(report.byKind.warm);
    expect(report.intendedDenials).to.equal(report.byKind.cold + report.byKind.unsigned);
  });

  it('reports latency percentiles and the webhook RSS it measured', () => {
    const l = report.latencyMs;
    expect(l.p50).to.be.greaterThan(0);
    expect([l.p50, l.p90, l.p99, l.p999, l.max]).to.deep.equal([l.p50, l.p90, l.p99, l.p999, l.max].sort((a, b) => a - b));
    expect(report.rssStartMb).to.be.greaterThan(10);
    expect(report.rssEndMb).to.be.greaterThan(10);
    expect(report.rssGrowthPct).to.be.closeTo(((report.rssEndMb - report.rssStartMb) / report.rssStartMb) * 100, 1e-9);
  });

  it('median of an odd and an even number of samples', () => {
    expect([median([3, 1, 2]), median([4, 1, 3, 2]), median([])]).to.deep.equal([2, 2.5, 0]);
  });

  it('percentile picks the nearest rank', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect([percentile(xs, 50), percentile(xs, 99), percentile(xs, 100), percentile([], 50)]).to.deep.equal([50, 99, 100, 0]);
  });
});
