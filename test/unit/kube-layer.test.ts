// Every Kubernetes API adapter lives in webhook/src/kube/: policy/ and verify/ (and every
// other layer) reach the cluster only through it, so they can be read and tested without
// the Kubernetes client, and check/verify never load it.
import { expect } from 'chai';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { repoRoot } from '../support/stack.js';

function modulesImporting(pattern: RegExp): string[] {
  const src = join(repoRoot(), 'webhook', 'src');
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.ts') && pattern.test(readFileSync(path, 'utf8'))) found.push(relative(src, path).split(sep).join('/'));
    }
  };
  walk(src);
  return found.sort();
}

describe('the kube/ layer', () => {
  const clientNode = /(from\s+|import\s*\(\s*)['"]@kubernetes\/client-node['"]/;

  it('is the only place under webhook/src that imports @kubernetes/client-node', () => {
    const importers = modulesImporting(clientNode);
    expect(importers.filter((m) => !m.startsWith('kube/'))).to.deep.equal([]);
    // The pattern does match what it is meant to find, so the check above is not vacuous.
    expect(importers).to.include.members(['kube/policy-source.ts', 'kube/policy-status-writer.ts', 'kube/configmap-version-store.ts', 'kube/credential-secrets.ts']);
  });

  it('leaves policy/ and verify/ free of the Kubernetes client', () => {
    const importers = modulesImporting(clientNode);
    expect(importers.filter((m) => m.startsWith('policy/') || m.startsWith('verify/'))).to.deep.equal([]);
  });
});
