/** Every error moshwall raises on purpose carries a code, a one-line message and its context. */
export type ErrorCode =
  | 'EUSAGE'
  | 'ECONFIG'
  | 'EPROC'
  | 'EFIREWALL'
  | 'ENOFIREWALL'
  | 'ELOCK'
  | 'ENOTROOT'
  | 'EEXEC'
  | 'EINSTALL'
  | 'EUNSAFE'
  | 'EINTERNAL';

export type ErrorContext = Record<string, string | number | boolean | undefined>;

/** The base error: `code` says what kind, `context` the values involved, `cause` what it wraps. */
export class MoshwallError extends Error {
  readonly code: ErrorCode;
  readonly context: ErrorContext;

  constructor(code: ErrorCode, message: string, options: { context?: ErrorContext; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MoshwallError';
    this.code = code;
    this.context = options.context ?? {};
  }
}

/** Bad command-line arguments. */
export class UsageError extends MoshwallError {
  constructor(message: string, context?: ErrorContext) {
    super('EUSAGE', message, context ? { context } : {});
    this.name = 'UsageError';
  }
}

/** A config file that cannot be used: names the file, line and key. */
export class ConfigError extends MoshwallError {
  constructor(message: string, context: { file: string; line?: number; key?: string }, cause?: unknown) {
    super('ECONFIG', message, { context, cause });
    this.name = 'ConfigError';
  }
}

/** /proc could not be read or made no sense where it must (e.g. /proc/net/udp itself). */
export class ProcError extends MoshwallError {
  constructor(message: string, context: ErrorContext, cause?: unknown) {
    super('EPROC', message, { context, cause });
    this.name = 'ProcError';
  }
}

/** The firewall tool failed or answered something we cannot parse. */
export class FirewallError extends MoshwallError {
  constructor(message: string, context: ErrorContext, cause?: unknown) {
    super('EFIREWALL', message, { context, cause });
    this.name = 'FirewallError';
  }
}

/** The firewall tool is not installed or not usable at all. */
export class NoFirewallError extends MoshwallError {
  constructor(message: string, context: ErrorContext, cause?: unknown) {
    super('ENOFIREWALL', message, { context, cause });
    this.name = 'NoFirewallError';
  }
}

/** Another moshwall run held the lock longer than we were willing to wait. */
export class LockError extends MoshwallError {
  constructor(message: string, context: ErrorContext, cause?: unknown) {
    super('ELOCK', message, { context, cause });
    this.name = 'LockError';
  }
}

/** A child process could not be started, timed out or was killed. */
export class ExecError extends MoshwallError {
  constructor(message: string, context: ErrorContext, cause?: unknown) {
    super('EEXEC', message, { context, cause });
    this.name = 'ExecError';
  }
}

/** Each code's process exit code, as the README's "Exit codes" table documents them. */
export const EXIT_CODES: Record<ErrorCode, number> = {
  EUSAGE: 2,
  ECONFIG: 3,
  ENOFIREWALL: 4,
  ELOCK: 5,
  ENOTROOT: 6,
  EUNSAFE: 7,
  EPROC: 1,
  EFIREWALL: 1,
  EEXEC: 1,
  EINSTALL: 1,
  EINTERNAL: 70,
};

/** The process exit code for an error: its code's (EXIT_CODES), 70 for anything else (a bug). */
export function exitCodeFor(error: unknown): number {
  return error instanceof MoshwallError ? (EXIT_CODES[error.code] ?? 70) : 70;
}

/** One line for the terminal: the message, then the context as key=value pairs. */
export function describeError(error: unknown): string {
  if (!(error instanceof MoshwallError)) return error instanceof Error ? error.message : String(error);
  const context = Object.entries(error.context)
    .filter(([, value]) => value !== undefined && value !== '')
    .map(([key, value]) => `${key}=${JSON.stringify(value)}`)
    .join(' ');
  const cause = error.cause instanceof Error ? ` (cause: ${error.cause.message})` : '';
  return `${error.message}${context ? ` [${context}]` : ''}${cause}`;
}
