#!/usr/bin/env node
/**
 * trustgate command line: verify | inspect | policy check | serve.
 * Exit codes: 0 success, 1 verification refused, 2 usage or input error.
 */
import { verifyCommand, inspectCommand } from './verify.js';
import { policyCheckCommand } from './policy-check.js';
import { processEnvironment, SettingsError } from './settings.js';
import { UsageError } from './usage.js';

const USAGE = `usage:
  trustgate verify IMAGE --policy FILE [--metadata-dir DIR] [--at RFC3339] [--output text|json] [--timeout SECONDS]
  trustgate inspect IMAGE --policy FILE [--metadata-dir DIR] [--at RFC3339] [--output text|json]
  trustgate policy check FILE...
  trustgate audit [--namespace NS] [--expiry-warning SECONDS] [--output text|json] [--timeout SECONDS]
  trustgate serve --policy-dir DIR | --kubernetes [--port 8443] [--tls-cert FILE --tls-key FILE] ...
  trustgate serve --help     every serve flag and environment variable`;


async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const env = processEnvironment();
  switch (command) {
    case 'verify':
      return verifyCommand(rest, env);
    case 'inspect':
      return inspectCommand(rest, env);
    case 'policy':
      if (rest[0] !== 'check') throw new UsageError(`unknown policy subcommand "${rest[0] ?? ''}"`);
      return policyCheckCommand(rest.slice(1));
    case 'audit': {
      const { auditCommand } = await import('./audit.js');
      return auditCommand(rest, env);
    }
    case 'serve': {
      const { serveCommand } = await import('./serve-command.js');
      return serveCommand(rest, env);
    }
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE + '\n');
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
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
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`trustgate: ${msg.split('\n')[0]}\n`);
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) process.stderr.write(USAGE + '\n');
    process.exitCode = 2;
  },
);
