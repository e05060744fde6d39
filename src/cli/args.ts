import { UsageError } from '../errors.ts';

/** One option a command accepts. */
export interface OptionSpec {
  name: string;
  kind: 'flag' | 'value';
  description: string;
  /** Placeholder shown in help for a value option. */
  placeholder?: string;
}

/** Parsed options: flags as booleans, values as strings; positionals are refused. */
export type ParsedOptions = Record<string, string | boolean>;

/** Parses `--name`, `--name value` and `--name=value` against the specs; anything else is a UsageError. */
export function parseOptions(args: string[], specs: OptionSpec[], command: string): ParsedOptions {
  const parsed: ParsedOptions = {};
  for (let index = 0; index < args.length; index++) {
    const arg = args[index] ?? '';
    const match = /^--([a-z][a-z-]*)(?:=(.*))?$/s.exec(arg);
    if (!match)
      throw new UsageError(`${command}: unexpected argument "${arg}" (see \`moshwall ${command} --help\`)`);
    const [, name = '', inline] = match;
    const spec = specs.find((candidate) => candidate.name === name);
    if (!spec)
      throw new UsageError(`${command}: unknown option --${name} (see \`moshwall ${command} --help\`)`);
    if (spec.kind === 'flag') {
      if (inline !== undefined) throw new UsageError(`${command}: --${name} takes no value`);
      parsed[name] = true;
      continue;
    }
    const value = inline ?? args[++index];
    if (value === undefined || value === '') throw new UsageError(`${command}: --${name} needs a value`);
    parsed[name] = value;
  }
  return parsed;
}

/** The global part of argv: options before the command, the command, and the rest. */
export interface GlobalArgs {
  config?: string;
  verbose: boolean;
  help: boolean;
  version: boolean;
  command?: string;
  rest: string[];
}

/** Splits argv into global options (before the command name), the command and its own arguments. */
export function parseGlobalArgs(argv: string[]): GlobalArgs {
  const result: GlobalArgs = { verbose: false, help: false, version: false, rest: [] };
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index] ?? '';
    if (arg === '--help' || arg === '-h') result.help = true;
    else if (arg === '--version') result.version = true;
    else if (arg === '--verbose' || arg === '-v') result.verbose = true;
    else if (arg === '--config' || arg.startsWith('--config=')) {
      const value = arg === '--config' ? argv[++index] : arg.slice('--config='.length);
      if (!value) throw new UsageError('--config needs a file path');
      result.config = value;
    } else if (arg.startsWith('-')) {
      throw new UsageError(`unknown option ${arg} (see \`moshwall --help\`)`);
    } else {
      result.command = arg;
      result.rest = argv.slice(index + 1);
      break;
    }
  }
  return result;
}
