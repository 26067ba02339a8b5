#!/usr/bin/env node
/**
 * trustgate command line: check | verify | inspect | policy init | policy check | serve.
 * Exit codes: 0 success, 1 verification refused, 2 usage or input error.
 *
 * Each command's module is imported only when that command runs, so `--version`, `--help`
 * and the offline commands never load what only `serve` needs (express, the Kubernetes client).
 */
import { commandHelp, commandSpec, overview } from './commands.js';
import { InputError } from './inputs.js';
import { processEnvironment, SettingsError, type Env } from './settings.js';
import { UsageError } from './usage.js';
import { packageVersion } from './version.js';

type Run = (argv: string[], env: Env) => Promise<number>;

const RUNNERS: Record<string, () => Promise<Run>> = {
  check: async () => (await import('./check.js')).checkCommand,
  verify: async () => (await import('./verify.js')).verifyCommand,
  inspect: async () => (await import('./verify.js')).inspectCommand,
  'policy init': async () => (await import('./policy-init.js')).policyInitCommand,
  'policy check': async () => (await import('./policy-check.js')).policyCheckCommand,
  audit: async () => (await import('./audit.js')).auditCommand,
  serve: async () => (await import('./serve-command.js')).serveCommand,
  'tuf target': async () => (await import('./tuf-target.js')).tufTargetCommand,
};

const wantsHelp = (argv: string[]) => argv.includes('--help') || argv.includes('-h');

/** 'policy init' from ['policy', 'init', ...], with the rest of the arguments. */
function commandOf(argv: string[]): { name: string; rest: string[] } {
  const [first, second, ...more] = argv;
  if (first === 'policy') {
    if (second === undefined || second.startsWith('-')) throw new UsageError('policy needs a subcommand: policy init IMAGE ... or policy check FILE...');
    const name = `policy ${second}`;
    if (!(name in RUNNERS)) throw new UsageError(`unknown command "policy ${second}": use policy init or policy check`);
    return { name, rest: more };
  }
  if (first === 'tuf') {
    if (second !== 'target') throw new UsageError('tuf needs a subcommand: tuf target IMAGE:TAG@sha256:DIGEST --size BYTES');
    return { name: 'tuf target', rest: more };
  }
  if (first === undefined || !(first in RUNNERS)) throw new UsageError(`unknown command "${first ?? ''}"`);
  return { name: first, rest: argv.slice(1) };
}

async function help(name: string): Promise<string> {
  if (name === 'serve') return (await import('./settings.js')).serveHelp();
  return commandHelp(commandSpec(name)!);
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === '--version' || argv[0] === '-V' || argv[0] === 'version') {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  if (argv.length === 0) {
    process.stderr.write(overview(packageVersion()) + '\n');
    return 2;
  }
  if (argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    const topic = argv.slice(1);
    process.stdout.write((topic.length === 0 ? overview(packageVersion()) : await help(commandOf(topic).name)) + '\n');
    return 0;
  }
  const { name, rest } = commandOf(argv);
  if (wantsHelp(rest)) {
    process.stdout.write((await help(name)) + '\n');
    return 0;
  }
  const run = await RUNNERS[name]!();
  return run(rest, processEnvironment());
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const msg = e instanceof Error ? e.message : String(e);
    if (e instanceof SettingsError) {
      // Every problem, so one start-up names them all; the help has every accepted value.
      process.stderr.write(`trustgate: ${msg}\n${process.argv[2] === 'serve' ? 'See `trustgate serve --help` for every setting.\n' : ''}`);
    } else if (e instanceof InputError) {
      process.stderr.write(`trustgate: ${msg}\n`);
    } else if (e instanceof UsageError) {
      process.stderr.write(`trustgate: ${msg}\nSee \`trustgate --help\` for the commands, \`trustgate help COMMAND\` for one command's options.\n`);
    } else {
      process.stderr.write(`trustgate: ${msg.split('\n')[0]}\n`);
    }
    process.exitCode = 2;
  },
);
