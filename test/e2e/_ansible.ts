// The Ansible controller of the ansible-*.test.ts and guest-ansible.test.ts files: its own ansible.cfg,
// home, temp and control sockets, all in a lab directory, so nothing of this machine's Ansible setup
// (or of root's home) is read or written.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Writes `dir`/ansible.cfg and `dir`/ansible-home; returns the environment ansible-playbook runs with. */
export function ansibleController(dir: string): Record<string, string> {
  const home = join(dir, 'ansible-home');
  mkdirSync(home, { mode: 0o700 });
  const config = join(dir, 'ansible.cfg');
  writeFileSync(
    config,
    [
      '[defaults]',
      'host_key_checking = False',
      'interpreter_python = /usr/bin/python3',
      `local_tmp = ${home}/tmp`,
      'retry_files_enabled = False',
      'timeout = 30',
      '[ssh_connection]',
      'ssh_args = -F /dev/null -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o IdentityAgent=none',
      `control_path_dir = ${home}/cp`,
      'pipelining = True',
      '',
    ].join('\n'),
  );
  return {
    HOME: home,
    ANSIBLE_CONFIG: config,
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_FORCE_COLOR: '0',
    LANG: 'C.UTF-8',
  };
}
