// Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time and total time per
// function, so a benchmark's hot spots can be named with file and line.
//
//   node profile-summary.js FILE.cpuprofile [--top 25] [--filter webhook/src] [--long-tasks MS]
//     --long-tasks MS  also list every stretch of MS or more without an idle sample (a stalled
//                      event loop, on a main thread's profile) with what ran in it
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface Row {
  name: string;
  selfMs: number;
  totalMs: number;
}

export function summarise(profile: Profile, from = 0, to = profile.samples.length): { totalMs: number; rows: Row[] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  for (let i = from; i < to; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  }
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    self.set(label(n), (self.get(label(n)) ?? 0) + us);
    // Each function on the stack counts once per sample, however often it recurses.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const l = label(byId.get(cur)!);
      if (seen.has(l)) continue;
      seen.add(l);
      total.set(l, (total.get(l) ?? 0) + us);
    }
  }
  const rows = [...total.keys()].map((name) => ({ name, selfMs: (self.get(name) ?? 0) / 1000, totalMs: total.get(name)! / 1000 }));
  return { totalMs: (profile.endTime - profile.startTime) / 1000, rows };
}

function label(n: Node): string {
  const url = n.callFrame.url.replace(/^file:\/\/.*?\/dist\//, '').replace(/^node:/, 'node:');
  return `${n.callFrame.functionName || '(anonymous)'} ${url}:${n.callFrame.lineNumber + 1}`;
}

export interface LongTask {
  /** ms since the profile started. */
  atMs: number;
  ms: number;
  /** Sample indexes [from, to). */
  from: number;
  to: number;
}

/** Stretches of at least `minMs` in which no sample was idle: the thread did not get back to its event loop. */
export function longTasks(profile: Profile, minMs: number): LongTask[] {
  const idle = new Set(profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
  const out: LongTask[] = [];
  let t = 0;
  let start = -1;
  let startT = 0;
  let busyUs = 0;
  for (let i = 0; i <= profile.samples.length; i++) {
    const isIdle = i === profile.samples.length || idle.has(profile.samples[i]!);
    if (!isIdle && start < 0) {
      start = i;
      startT = t;
      busyUs = 0;
    }
    if (isIdle && start >= 0) {
      if (busyUs >= minMs * 1000) out.push({ atMs: startT / 1000, ms: busyUs / 1000, from: start, to: i });
      start = -1;
    }
    const d = profile.timeDeltas[i + 1] ?? 0;
    if (start >= 0) busyUs += d;
    t += d;
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '25' }, filter: { type: 'string' }, by: { type: 'string', default: 'self' }, 'long-tasks': { type: 'string' } },
  });
  const file = positionals[0];
  if (!file) throw new Error('usage: profile-summary.js FILE.cpuprofile [--top N] [--filter TEXT] [--by self|total]');
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const { totalMs, rows } = summarise(profile);
  const key = values.by === 'total' ? 'totalMs' : 'selfMs';
  const shown = rows.filter((r) => !values.filter || r.name.includes(values.filter)).sort((a, b) => b[key] - a[key]);
  console.log(`profile ${file}: ${totalMs.toFixed(0)} ms wall`);
  console.log('   self ms   total ms  function');
  for (const r of shown.slice(0, Number(values.top))) {
    console.log(`${r.selfMs.toFixed(1).padStart(9)} ${r.totalMs.toFixed(1).padStart(10)}  ${r.name}`);
  }
  if (values['long-tasks'] !== undefined) {
    const tasks = longTasks(profile, Number(values['long-tasks']));
    const busy = tasks.reduce((a, t) => a + t.ms, 0);
    console.log(`\n${tasks.length} stretches of >= ${values['long-tasks']} ms without idle (${busy.toFixed(0)} ms together); longest first:`);
    for (const t of [...tasks].sort((a, b) => b.ms - a.ms).slice(0, Number(values.top))) {
      const top = summarise(profile, t.from, t.to)
        .rows.filter((r) => r.name !== '(root) :0')
        .sort((a, b) => b.selfMs - a.selfMs)
        .slice(0, 4)
        .map((r) => `${r.name} ${r.selfMs.toFixed(1)}`);
      console.log(`${t.ms.toFixed(1).padStart(8)} ms at ${(t.atMs / 1000).toFixed(2)} s: ${top.join(' | ')}`);
    }
  }
}
