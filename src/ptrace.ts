/**
 * The ptrace boundary (issue 11, section 2): below Yama's ptrace_scope 2 a user can write into the memory
 * of their own genuine mosh-server (process_vm_writev, /proc/PID/mem, or as its PTRACE_TRACEME parent
 * under scope 1) without a tracer ever showing, and so turn its opened port into a UDP service of theirs.
 * No check from outside the process can see that. Pure judgements here; the edges read and write.
 */

/** Where Yama's setting lives; missing when the kernel has no Yama. */
export const PTRACE_SCOPE_PATH = '/proc/sys/kernel/yama/ptrace_scope';
/** The drop-in `moshwall install --ptrace-scope` writes (and uninstall removes). */
export const PTRACE_SYSCTL_FILE = '/etc/sysctl.d/60-moshwall-ptrace.conf';
/** Its first line: how install and uninstall know the file is ours. */
const MARKER = '# Written by moshwall install --ptrace-scope; moshwall uninstall removes it.';

/** The sysctl.d drop-in that sets ptrace_scope 2 at every boot. */
export const PTRACE_SYSCTL_TEXT = `${MARKER}
# Only root (CAP_SYS_PTRACE) may ptrace, read or write another process's memory: users can no longer
# attach a debugger (gdb -p, strace -p) to their own processes. It keeps a user from injecting code
# into their own mosh-server after moshwall opened its port. Remove this file to undo (after a reboot,
# or at once with \`sysctl -w kernel.yama.ptrace_scope=1\`).
kernel.yama.ptrace_scope = 2
`;

/** True when `text` is the drop-in moshwall wrote (so install may rewrite it and uninstall remove it). */
export function isOurSysctlFile(text: string): boolean {
  return text.startsWith(MARKER);
}

/** Yama's ptrace_scope from the file's text, or undefined when there is no Yama (file missing or odd). */
export function parsePtraceScope(text: string | undefined): number | undefined {
  if (text === undefined || !/^\s*[0-3]\s*$/.test(text)) return undefined;
  return Number(text.trim());
}

/** What `status --json` says of the ptrace boundary. */
export interface PtraceReport {
  /** Yama's kernel.yama.ptrace_scope; null when the kernel has no Yama. */
  yamaPtraceScope: number | null;
  /** True at scope 2 or 3: only root can write into another process's memory. */
  injectionBlocked: boolean;
  /** One sentence on what that means for an opened port. */
  detail: string;
}

/** The ptrace boundary, as `status --json` reports it. */
export function ptraceReport(scope: number | undefined): PtraceReport {
  const blocked = scope !== undefined && scope >= 2;
  return {
    yamaPtraceScope: scope ?? null,
    injectionBlocked: blocked,
    detail: blocked
      ? 'only root may write into a mosh-server: its port serves the genuine program'
      : `${scope === undefined ? 'no Yama' : `ptrace_scope ${scope}`}: a user can write into their own mosh-server after its port opened, unseen (see \`moshwall doctor\`)`,
  };
}

/** The doctor finding for Yama's ptrace_scope. */
export function ptraceFinding(scope: number | undefined): {
  level: 'ok' | 'warn';
  check: string;
  message: string;
  fix?: string;
} {
  if (scope !== undefined && scope >= 2) {
    return {
      level: 'ok',
      check: 'ptrace',
      message: `Yama ptrace_scope is ${scope}: users cannot write into their mosh-server's memory`,
    };
  }
  const now =
    scope === undefined
      ? 'this kernel has no Yama (kernel.yama.ptrace_scope)'
      : `Yama ptrace_scope is ${scope}${scope === 1 ? ' (1 is not enough: a user starts mosh-server as their own PTRACE_TRACEME child, patches it and detaches)' : ''}`;
  return {
    level: 'warn',
    check: 'ptrace',
    message: `${now}: a user can write into their own genuine mosh-server after moshwall opened its port (process_vm_writev, /proc/PID/mem) and turn that port into a UDP service of theirs; no check from outside can see it`,
    fix:
      scope === undefined
        ? 'use a kernel with Yama (CONFIG_SECURITY_YAMA) to close this; moshwall cannot'
        : `put "kernel.yama.ptrace_scope = 2" in ${PTRACE_SYSCTL_FILE} (\`moshwall install --ptrace-scope\` writes it; --apply-ptrace-scope also sets it now). It costs: users can no longer debug their own processes (gdb -p, strace -p); root still can`,
  };
}
