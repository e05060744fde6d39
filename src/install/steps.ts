/** The steps install and uninstall are made of, shared by plan.ts and ufw-hook.ts. */

/** One action of an install or uninstall, printed as is by --dry-run. */
export type Step =
  | { kind: 'mkdir'; path: string; mode: number }
  /** `interpreter`: the copy's first line becomes `#!<interpreter>` (the bundle's is `#!/usr/bin/env node`). */
  | { kind: 'copy'; from: string; to: string; mode: number; interpreter?: string }
  | { kind: 'symlink'; target: string; path: string }
  | { kind: 'write'; path: string; content: string; mode: number }
  | { kind: 'sudoers'; path: string; content: string }
  | { kind: 'run'; argv: string[] }
  | { kind: 'flush' }
  /** `ufw reload`; when it fails, these files are put back as they were and UFW is reloaded again. */
  | { kind: 'ufw-reload'; rollback: { path: string; content: string; mode: number }[] }
  /** `ipset destroy` each of these sets that exists (moshwall's own only). */
  | { kind: 'ipset-destroy'; sets: string[] }
  | { kind: 'remove'; path: string }
  | { kind: 'note'; text: string };

/** One line per step, as --dry-run prints them. */
export function describeStep(step: Step): string {
  switch (step.kind) {
    case 'mkdir':
      return `mkdir -m ${step.mode.toString(8)} ${step.path}`;
    case 'copy':
      return `install -m ${step.mode.toString(8)} ${step.from} ${step.to}${step.interpreter === undefined ? '' : ` (first line #!${step.interpreter})`}`;
    case 'symlink':
      return `ln -sfn ${step.target} ${step.path}`;
    case 'write':
      return `write ${step.path} (mode ${step.mode.toString(8)}, ${step.content.length} bytes)`;
    case 'sudoers':
      return `write ${step.path} (mode 440) after visudo -c accepts it: ${step.content.trim().split('\n').at(-1)}`;
    case 'run':
      return `run ${step.argv.join(' ')}`;
    case 'flush':
      return 'remove every firewall rule of ours (moshwall flush)';
    case 'remove':
      return `rm ${step.path} (a directory only if empty)`;
    case 'note':
      return `note: ${step.text}`;
    case 'ufw-reload':
      return `run ufw reload (on failure put back ${step.rollback.map((file) => file.path).join(', ')} and reload again)`;
    case 'ipset-destroy':
      return `run ipset destroy for each of ${step.sets.join(', ')} that exists`;
  }
}
