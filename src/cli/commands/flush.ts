import { flushOurs } from '../../engine.ts';
import type { Command } from '../command.ts';
import { describeSpec } from '../format.ts';

export const flushCommand: Command = {
  name: 'flush',
  summary: 'Remove every rule of ours (and only ours)',
  description: `Removes every firewall rule that carries moshwall's tag, whether or not a session
holds its port, and whether or not the firewall is active. Rules without the tag are never touched.
Live sessions lose their port until the next sync.`,
  options: [{ name: 'json', kind: 'flag', description: 'print what was removed as JSON' }],
  needsRoot: true,
  async run(context, options) {
    const applied = await flushOurs(context.engine());
    const specs = applied.flatMap((change) => change.specs);
    if (options.json === true) context.out(JSON.stringify({ closed: specs }, null, 2));
    else {
      context.out(
        [
          ...specs.map((spec) => `close  ${describeSpec(spec)}`),
          `${specs.length} rule(s) of ours removed`,
        ].join('\n'),
      );
    }
    return 0;
  },
};
