import type { Command } from '../command.ts';

export const checkConfigCommand: Command = {
  name: 'check-config',
  summary: 'Check a config file and print the settings in force',
  description: `Reads the config (--config FILE, $MOSHWALL_CONFIG or /etc/moshwall/moshwall.toml) and
exits 3 with the file, line and key of the first problem, or 0 and the settings in force. Changes
nothing and needs no root: use it to validate a config before putting it in place (Ansible's
\`validate: moshwall --config %s check-config\`).`,
  options: [{ name: 'json', kind: 'flag', description: 'print the settings as JSON' }],
  needsRoot: false,
  async run(context, options) {
    if (options.json === true) context.out(JSON.stringify(context.config, null, 2));
    else context.out(`ok: ${context.config.source}`);
    return 0;
  },
};
