/** Structured-enough logging: one line per event, `key=value` pairs, as journald shows well. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type LogFields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

/** One log line: `level event key=value …`, values quoted only when they need it. */
export function formatLogLine(level: LogLevel, event: string, fields: LogFields = {}): string {
  const pairs = Object.entries(fields)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => {
      const text = String(value);
      return `${key}=${/^[\w.:/@,+-]+$/.test(text) ? text : JSON.stringify(text)}`;
    });
  return [level, event, ...pairs].join(' ');
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** A logger writing lines at `minimum` level and above to `write`. */
export function createLogger(write: (line: string) => void, minimum: LogLevel): Logger {
  const emit = (level: LogLevel) => (event: string, fields?: LogFields) => {
    if (RANK[level] >= RANK[minimum]) write(formatLogLine(level, event, fields));
  };
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}

/** A logger that drops everything (tests, --json output). */
export const silentLogger: Logger = createLogger(() => {}, 'error');
