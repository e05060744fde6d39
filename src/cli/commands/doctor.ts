import { diagnose, type Finding } from '../../doctor.ts';
import type { Command } from '../command.ts';
import { terminalText } from '../format.ts';

/** One line per finding: level, check, message, and how to fix it. */
function findingText(finding: Finding): string {
  const mark = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' }[finding.level];
  return `${mark}  ${finding.check.padEnd(12)} ${terminalText(finding.message)}${finding.fix ? `\n      ${' '.repeat(12)} fix: ${terminalText(finding.fix)}` : ''}`;
}

export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'Check the host and say what to fix',
  description: `Checks that moshwall can do its job here: root, the firewall present and active, the
real mosh-server present and root-owned, IPv6 handled consistently, conntrack(8) present (it deletes a
closed port's flows; without it an old client's flow reaches whatever binds the port next), no admin
rule that already opens (or blocks) the mosh range as a whole, processes whose open files cannot be
read, and whether io_uring lets users hide a socket from /proc. It warns when Yama's
kernel.yama.ptrace_scope is below 2 (or there is no Yama): then a user can write into their own
mosh-server once its port is open, which no check can see. Changes nothing. Exits 1 when a check fails.`,
  options: [{ name: 'json', kind: 'flag', description: 'print the findings as JSON' }],
  needsRoot: false,
  async run(context, options) {
    const facts = await context.doctorFacts();
    const findings = diagnose(facts);
    if (options.json === true) context.out(JSON.stringify({ findings }, null, 2));
    else context.out(findings.map(findingText).join('\n'));
    return findings.some((finding) => finding.level === 'fail') ? 1 : 0;
  },
};
