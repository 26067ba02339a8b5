/**
 * The Node flags the image runs trustgate with (the Dockerfile's ENTRYPOINT; the Dockerfile
 * test checks they match). The bench starts the webhook and its Node baselines with them, so
 * its figures are those of the process the chart runs.
 *
 * --v8-pool-size=1: V8 starts 4 background threads for garbage collection and compilation by
 * default. Under the chart's 1-CPU limit they compete with the thread that answers
 * admissions (CFS throttling), and while a verification worker's large heap is collected they
 * took ~6 CPU-seconds in 8 s on a 2-core machine; with one, the warm admissions of other
 * namespaces keep their p99 while a tenant's 63 MiB delegation is verified.
 */
export const RUNTIME_NODE_FLAGS: readonly string[] = ['--v8-pool-size=1'];
