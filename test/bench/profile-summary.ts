// Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time and total time per
// function, so a benchmark's hot spots can be named with file and line.
//
//   node profile-summary.js FILE.cpuprofile [--top 25] [--filter webhook/src]
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

export function summarise(profile: Profile): { totalMs: number; rows: Row[] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  }
  const label = (n: Node) => {
    const url = n.callFrame.url.replace(/^file:\/\/.*?\/dist\//, '').replace(/^node:/, 'node:');
    return `${n.callFrame.functionName || '(anonymous)'} ${url}:${n.callFrame.lineNumber + 1}`;
  };
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

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '25' }, filter: { type: 'string' }, by: { type: 'string', default: 'self' } },
  });
  const file = positionals[0];
  if (!file) throw new Error('usage: profile-summary.js FILE.cpuprofile [--top N] [--filter TEXT] [--by self|total]');
  const { totalMs, rows } = summarise(JSON.parse(readFileSync(file, 'utf8')) as Profile);
  const key = values.by === 'total' ? 'totalMs' : 'selfMs';
  const shown = rows.filter((r) => !values.filter || r.name.includes(values.filter)).sort((a, b) => b[key] - a[key]);
  console.log(`profile ${file}: ${totalMs.toFixed(0)} ms wall`);
  console.log('   self ms   total ms  function');
  for (const r of shown.slice(0, Number(values.top))) {
    console.log(`${r.selfMs.toFixed(1).padStart(9)} ${r.totalMs.toFixed(1).padStart(10)}  ${r.name}`);
  }
}
