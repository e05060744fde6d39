import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import type { DaemonDeps } from '../daemon/daemon.ts';
import type { OpenedPort } from '../daemon/protocol.ts';
import type { DoctorFacts } from '../doctor.ts';
import type { EngineDeps } from '../engine.ts';
import type { InstallFacts, InstallLayout, Manifest, Step } from '../install/plan.ts';
import type { Logger } from '../log.ts';
import type { OptionSpec, ParsedOptions } from './args.ts';

/** What a command may use: config, output channels and a factory for the engine's edges. */
export interface CommandContext {
  config: Config;
  /** Writes one line (or block) to standard output. */
  out: (text: string) => void;
  log: Logger;
  isRoot: boolean;
  verbose: boolean;
  /** Builds the backend, /proc reader and lock for this run. */
  engine: () => EngineDeps;
  /** Gathers what `doctor` judges. */
  doctorFacts: () => Promise<DoctorFacts>;
  /** Writes one line to standard error (the daemon's log goes here, for journald). */
  err: (text: string) => void;
  /** Reads the config again the way this run first did (for SIGHUP). */
  reloadConfig: () => Config;
  /** The daemon's edges. */
  daemon: (config: Config, log: Logger) => DaemonDeps;
  /** Where this program runs from, and the --config it was given (to start copies of itself). */
  selfPath: string;
  configPath: string | undefined;
  /** Install, uninstall and hook edges. */
  host: HostActions;
  /** What `status` asks the daemon and a terminal (absent: no open times, no --watch). */
  statusEdges?: StatusEdges;
}

/** `moshwall status`'s edges beyond the engine: the daemon's open times, wall time, the terminal. */
export interface StatusEdges {
  /** The daemon's list of ports it opened and when, or undefined when no daemon answers. */
  openedPorts: (config: Config) => Promise<OpenedPort[] | undefined>;
  /** Unix ms now. */
  wallNow: () => number;
  /** The refresh timer of --watch (its timers keep the process alive). */
  clock: Clock;
  /** Calls `handler` on SIGINT (and SIGTERM) until the returned function is called. */
  onInterrupt: (handler: () => void) => () => void;
  /** Whether standard output is a terminal (then --watch redraws in place). */
  isTerminal: boolean;
  /** Clears the terminal and puts the cursor home (raw escape codes, past the output's escaping). */
  clearScreen: () => void;
}

/** Side effects of install/uninstall/hook that commands ask the host for. */
export interface HostActions {
  /** Facts for install planning about this host. */
  installFacts: (layout: InstallLayout, selfPath: string) => InstallFacts;
  /** Carries out install steps, telling the admin each one through `say` (the command's output). */
  applySteps: (steps: Step[], config: Config, log: Logger, say: (line: string) => void) => Promise<void>;
  /** The manifest a previous install wrote, or undefined. */
  readManifest: (layout: InstallLayout) => Manifest | undefined;
  /** `moshwall hook`: records the deadline and starts the watcher in the background. */
  startHook: (config: Config, selfPath: string, configPath: string | undefined) => Promise<void>;
  /**
   * `moshwall hook --watch`: watches until the latest deadline; resolves with reconciles run.
   * `holdingLock`: the hook passed the watcher's lock, already taken, as fd 3.
   */
  watchHook: (config: Config, log: Logger, holdingLock: boolean) => Promise<number>;
}

/** One `moshwall <verb>`. */
export interface Command {
  name: string;
  summary: string;
  /** Longer help text: what it does, what it prints, exit codes particular to it. */
  description: string;
  options: OptionSpec[];
  needsRoot: boolean;
  /** Arguments go to the command unparsed (the shim passes them to the real mosh-server). */
  rawArguments?: boolean;
  run(context: CommandContext, options: ParsedOptions, rawArguments: string[]): Promise<number>;
}
