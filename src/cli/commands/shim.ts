import type { Command } from '../command.ts';

export const shimCommand: Command = {
  name: 'shim',
  summary: 'Run the real mosh-server, holding MOSH CONNECT until the port is open',
  description: `Installed as /usr/local/bin/mosh-server (a link to moshwall), which a non-login ssh
command finds before /usr/bin/mosh-server, so clients need no change. It runs the real mosh-server
(mosh_server in the config) with the same arguments, passes every byte of its output through
unchanged, but holds the MOSH CONNECT line until the daemon confirms the port is open (at most
shim_timeout_ms), and exits with the real server's exit code. If the daemon cannot be reached or
refuses, the line still goes out and a warning goes to stderr: the daemon's poll is the safety net.
The session key is never logged or sent anywhere. \`moshwall shim -- ARGS\` runs it by hand.`,
  options: [],
  needsRoot: false,
  rawArguments: true,
  async run() {
    // runMain hands the shim to the host edge directly; this entry exists for help and the command list.
    return 2;
  },
};
