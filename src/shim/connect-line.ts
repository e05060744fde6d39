/** `MOSH CONNECT <port> <key>` as mosh-server prints it (the key is 22 base64 characters). */
const CONNECT_LINE = /^MOSH CONNECT (\d{1,5}) [A-Za-z0-9/+]{22}\r?$/;

/** The port of a MOSH CONNECT line, or undefined when the line is not one. */
export function connectPort(line: string): number | undefined {
  const match = CONNECT_LINE.exec(line);
  if (!match) return undefined;
  const port = Number(match[1]);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/**
 * Splits a byte stream into what may pass at once and the MOSH CONNECT line to hold back. Feed it
 * chunks in order; it returns, for each chunk, the bytes to pass now, and once (the first time a
 * complete MOSH CONNECT line is seen) the held line with its port. Bytes after the held line are kept
 * until release() so that output order never changes.
 */
export interface ConnectSplitter {
  push(chunk: Buffer): { pass: Buffer; connect?: { port: number } };
  /** Everything held back (the connect line and whatever followed), in order; later chunks pass at once. */
  release(): Buffer;
  /** Remaining partial line at end of stream (passed through unchanged). */
  end(): Buffer;
}

/** A ConnectSplitter (see its doc). */
export function createConnectSplitter(): ConnectSplitter {
  let partial = Buffer.alloc(0);
  let held: Buffer[] | undefined;
  let found = false;
  let insideLongLine = false;
  return {
    push(chunk) {
      if (found) {
        if (held === undefined) return { pass: chunk };
        held.push(chunk);
        return { pass: Buffer.alloc(0) };
      }
      let data = Buffer.concat([partial, chunk]);
      let passFirst = Buffer.alloc(0);
      if (insideLongLine) {
        // The rest of a line already passed on as too long to be MOSH CONNECT: pass it up to its end.
        const end = data.indexOf(0x0a);
        if (end < 0) return { pass: data };
        insideLongLine = false;
        passFirst = data.subarray(0, end + 1);
        data = data.subarray(end + 1);
      }
      let start = 0;
      let newline = data.indexOf(0x0a, start);
      while (newline >= 0) {
        const line = data.subarray(start, newline).toString('latin1');
        const port = connectPort(line);
        if (port !== undefined) {
          found = true;
          held = [data.subarray(start)];
          partial = Buffer.alloc(0);
          return { pass: Buffer.concat([passFirst, data.subarray(0, start)]), connect: { port } };
        }
        start = newline + 1;
        newline = data.indexOf(0x0a, start);
      }
      partial = data.subarray(start);
      // A line longer than any MOSH CONNECT line cannot become one: pass it on instead of holding it.
      if (partial.length > 128) {
        partial = Buffer.alloc(0);
        insideLongLine = true;
        return { pass: Buffer.concat([passFirst, data]) };
      }
      return { pass: Buffer.concat([passFirst, data.subarray(0, start)]) };
    },
    release() {
      const out = Buffer.concat(held ?? []);
      held = undefined;
      return out;
    },
    end() {
      const out = Buffer.concat([partial, ...(held ?? [])]);
      partial = Buffer.alloc(0);
      held = undefined;
      return out;
    },
  };
}
