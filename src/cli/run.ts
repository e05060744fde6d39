import { type Config, loadConfig } from '../config.ts';
import type { DaemonDeps } from '../daemon/daemon.ts';
import type { DoctorFacts } from '../doctor.ts';
import type { EngineDeps } from '../engine.ts';
import { describeError, exitCodeFor, MoshwallError, UsageError } from '../errors.ts';
import { createLogger, type Logger } from '../log.ts';
import { type OptionSpec, parseGlobalArgs, parseOptions } from './args.ts';
import type { Command, HostActions, StatusEdges } from './command.ts';
import { checkConfigCommand } from './commands/check-config.ts';
import { daemonCommand } from './commands/daemon.ts';
import { doctorCommand } from './commands/doctor.ts';
import { flushCommand } from './commands/flush.ts';
import { hookCommand } from './commands/hook.ts';
import { installCommand, uninstallCommand } from './commands/install.ts';
import { shimCommand } from './commands/shim.ts';
import { statusCommand } from './commands/status.ts';
import { syncCommand } from './commands/sync.ts';
import { escapeControls } from './format.ts';

export const VERSION = '0.1.0';

export const COMMANDS: Command[] = [
  syncCommand,
  statusCommand,
  flushCommand,
  doctorCommand,
  daemonCommand,
  shimCommand,
  hookCommand,
  installCommand,
  uninstallCommand,
  checkConfigCommand,
];

/** The outside world as runMain sees it; the entry point passes the real one, tests a fake. */
export interface MainIo {
  argv: string[];
  env: NodeJS.ProcessEnv;
  uid: number;
  /** The base name this program was started as ("mosh-server" when installed as the shim). */
  invokedAs: string;
  /** The path this program was started from (process.argv[1]). */
  selfPath: string;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Bytes to stdout exactly as given (only the shim's pass-through of mosh-server's output uses it). */
  passThrough: (data: Buffer) => Promise<void>;
  edges: HostEdges;
}

/** How the shim was started: the real mosh-server's arguments and where moshwall itself lives. */
export interface ShimInvocation {
  args: string[];
  configPath: string | undefined;
  env: NodeJS.ProcessEnv;
  /** The path this program was started from, so the shim can refuse to run itself. */
  selfPath: string;
  warn: (text: string) => void;
  /** Writes mosh-server's own output on, byte for byte. */
  passThrough: (data: Buffer) => Promise<void>;
}

/** The factories that reach the machine: the engine's edges and doctor's fact gathering. */
export interface HostEdges {
  engine: (config: Config, log: Logger) => EngineDeps;
  doctorFacts: (config: Config, log: Logger, isRoot: boolean) => Promise<DoctorFacts>;
  daemon: (config: Config, log: Logger, reloadConfig: () => Config) => DaemonDeps;
  /** Runs the shim with these mosh-server arguments; resolves with the exit code to use. */
  shim: (request: ShimInvocation) => Promise<number>;
  host: HostActions;
  /** `status`'s daemon, time and terminal edges (optional: without, no open times and no --watch). */
  status?: StatusEdges;
  /** Why moshwall's own files or config could be changed by someone other than root, or undefined. */
  unsafeFiles: (selfPath: string, config: Config) => string | undefined;
}

const EXIT_CODES = `Exit codes:
  0   done (sync/flush/status), or no problem found (doctor)
  1   a firewall command or /proc failed; doctor found a problem to fix
  2   bad command-line usage
  3   bad config file (file, line and key are named)
  4   the firewall tool is missing or unusable
  5   another moshwall run held the lock too long
  6   not running as root
  7   moshwall's own files or config are writable by someone other than root
  70  internal error (a bug: please report it with the stack trace)`;

/** The top-level help text. */
function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((command) => command.name.length));
  return `moshwall ${VERSION}: open exactly the UDP ports genuine mosh-server processes hold

Usage: moshwall [--config FILE] [--verbose] <command> [options]

Commands:
${COMMANDS.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`).join('\n')}

Global options:
  --config FILE  config file (default: $MOSHWALL_CONFIG, else /etc/moshwall/moshwall.toml if it exists)
  --verbose, -v  log every step (to stderr)
  --help, -h     this help; \`moshwall <command> --help\` for a command
  --version      print the version

${EXIT_CODES}`;
}

/** Help text of one command. */
function commandHelp(command: Command): string {
  const options: OptionSpec[] = [
    ...command.options,
    { name: 'help', kind: 'flag', description: 'this help' },
  ];
  const optionLines = options.map(
    (option) =>
      `  --${option.name}${option.kind === 'value' ? ` ${option.placeholder ?? 'VALUE'}` : ''}  ${option.description}`,
  );
  return `Usage: moshwall [--config FILE] ${command.name} [options]

${command.summary}.

${command.description}

Options:
${optionLines.join('\n')}
${command.needsRoot ? '\nNeeds root.\n' : ''}
${EXIT_CODES}`;
}

/** Parses argv, runs one command, and returns the exit code; never throws. */
export async function runMain(rawIo: MainIo): Promise<number> {
  // Every line moshwall prints goes out with control characters escaped (see escapeControls); the
  // shim's pass-through of mosh-server's own output is not a line of ours and is never touched.
  const io: MainIo = {
    ...rawIo,
    stdout: (text) => rawIo.stdout(escapeControls(text)),
    stderr: (text) => rawIo.stderr(escapeControls(text)),
  };
  if (io.invokedAs === 'mosh-server') {
    // Installed as /usr/local/bin/mosh-server: every argument belongs to the real mosh-server.
    return io.edges.shim({
      args: io.argv,
      configPath: undefined,
      env: io.env,
      selfPath: io.selfPath,
      warn: io.stderr,
      passThrough: io.passThrough,
    });
  }
  let verbose = io.argv.includes('--verbose') || io.argv.includes('-v');
  try {
    const global = parseGlobalArgs(io.argv);
    verbose = global.verbose;
    if (global.version) {
      io.stdout(VERSION);
      return 0;
    }
    if (global.command === undefined) {
      if (global.help) {
        io.stdout(mainHelp());
        return 0;
      }
      throw new UsageError('no command given (see `moshwall --help`)');
    }
    const command = COMMANDS.find((candidate) => candidate.name === global.command);
    if (!command) throw new UsageError(`unknown command "${global.command}" (see \`moshwall --help\`)`);
    const wantsHelp = command.rawArguments
      ? global.rest[0] === '--help'
      : global.rest.includes('--help') || global.rest.includes('-h');
    if (global.help || wantsHelp) {
      io.stdout(commandHelp(command));
      return 0;
    }
    if (command.name === 'shim') {
      const args = global.rest[0] === '--' ? global.rest.slice(1) : global.rest;
      return await io.edges.shim({
        args,
        configPath: global.config,
        env: io.env,
        selfPath: io.selfPath,
        warn: io.stderr,
        passThrough: io.passThrough,
      });
    }
    const options = parseOptions(global.rest, command.options, command.name);
    const log = createLogger((line) => io.stderr(`moshwall: ${line}`), verbose ? 'debug' : 'warn');
    const reloadConfig = () => loadConfig(global.config, io.env);
    const config = reloadConfig();
    if (command.needsRoot && io.uid !== 0) {
      throw new MoshwallError(
        'ENOTROOT',
        `moshwall ${command.name} must run as root (try: sudo moshwall ${command.name})`,
      );
    }
    if (command.needsRoot) {
      const unsafe = io.edges.unsafeFiles(io.selfPath, config);
      if (unsafe)
        throw new MoshwallError(
          'EUNSAFE',
          `refusing to run as root: ${unsafe}; make it and every directory above it owned by root and not writable by group or others`,
        );
    }
    return await command.run(
      {
        config,
        out: io.stdout,
        log,
        isRoot: io.uid === 0,
        verbose,
        engine: () => io.edges.engine(config, log),
        doctorFacts: () => io.edges.doctorFacts(config, log, io.uid === 0),
        err: io.stderr,
        reloadConfig,
        daemon: (current, daemonLog) => io.edges.daemon(current, daemonLog, reloadConfig),
        selfPath: io.selfPath,
        configPath: global.config,
        host: io.edges.host,
        ...(io.edges.status === undefined ? {} : { statusEdges: io.edges.status }),
      },
      options,
      global.rest,
    );
  } catch (error) {
    const code = exitCodeFor(error);
    io.stderr(`moshwall: error: ${describeError(error)}`);
    if (!(error instanceof MoshwallError) || verbose) {
      io.stderr(error instanceof Error && error.stack ? error.stack : String(error));
    }
    return code;
  }
}
