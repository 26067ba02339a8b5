/**
 * §5.6.7 the pre-order depth-first search of the delegation graph for one target path:
 * which roles to visit, in which order, where to stop. A generator so the caller (which
 * fetches and verifies each role through SpecTrustedSet) drives it and this stays pure.
 */
import { mayDelegatePrefix, rolesForTarget, succinctRoleNames } from './delegation.js';
import type { SpecTargets } from './metadata.js';

export interface RoleVisit {
  readonly role: string;
  /** The role whose delegation names this one ("root" for top-level targets). */
  readonly parent: string;
}

type Delegations = NonNullable<SpecTargets['delegations']>;

/**
 * The depth-first, pre-order visit both searches share: each role once (cycles and diamonds
 * end there), at most `maxDelegations` roles (§5.6.7: the spec's bound on the walk); a
 * terminating child ends the search of everything that would have come after it (§5.6.7.2.1).
 */
function* visitDelegations(
  maxDelegations: number,
  childrenOf: (d: Delegations) => Iterable<{ name: string; terminating: boolean }>,
): Generator<RoleVisit, { exhausted: boolean }, SpecTargets> {
  const stack: RoleVisit[] = [{ role: 'targets', parent: 'root' }];
  const visited = new Set<string>();
  let budget = maxDelegations;
  while (stack.length > 0) {
    const next = stack.pop()!;
    if (visited.has(next.role)) continue;
    if (budget-- <= 0) return { exhausted: true };
    visited.add(next.role);
    const targets: SpecTargets = yield next;
    if (!targets.delegations) continue;
    const children: RoleVisit[] = [];
    for (const child of childrenOf(targets.delegations)) {
      children.push({ role: child.name, parent: next.role });
      if (child.terminating) {
        stack.length = 0;
        break;
      }
    }
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
  }
  return { exhausted: false };
}

/** Yields each role to visit for one target path; the caller sends back that role's verified targets. */
export function preorderWalk(path: string, maxDelegations: number): Generator<RoleVisit, { exhausted: boolean }, SpecTargets> {
  return visitDelegations(maxDelegations, (d) => rolesForTarget(d, path));
}

/**
 * The roles that may list some path starting with `prefix` (all tags of one repository), in
 * pre-order, each once, at most `maxDelegations`. Only finds candidates: a target found this
 * way is trusted only after preorderWalk for its exact path reaches the same answer. Nothing
 * terminates here: which role a terminating one shadows depends on the whole path.
 */
export function prefixWalk(prefix: string, maxDelegations: number): Generator<RoleVisit, { exhausted: boolean }, SpecTargets> {
  return visitDelegations(maxDelegations, (d) =>
    d.roles ? d.roles.filter((r) => mayDelegatePrefix(r, prefix)).map((r) => ({ name: r.name, terminating: false })) : [...succinctRoleNames(d.succinct!)].map((name) => ({ name, terminating: false })),
  );
}
