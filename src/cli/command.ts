import type { Config } from '../config.ts';
import type { DoctorFacts } from '../doctor.ts';
import type { EngineDeps } from '../engine.ts';
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
}

/** One `moshwall <verb>`. */
export interface Command {
  name: string;
  summary: string;
  /** Longer help text: what it does, what it prints, exit codes particular to it. */
  description: string;
  options: OptionSpec[];
  needsRoot: boolean;
  run(context: CommandContext, options: ParsedOptions): Promise<number>;
}
