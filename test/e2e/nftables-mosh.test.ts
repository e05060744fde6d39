// Real mosh sessions through an admin's own nftables firewall (no UFW), with `moshwall daemon` and the
// shim: Debian's /etc/nftables.conf made default-deny, and RHEL's nftables service layout (see
// _firewall-scenarios.ts for the scenarios, _firewalls.ts for the rulesets).
import { describeFirewallScenarios } from './_firewall-scenarios.ts';

describeFirewallScenarios('nftables-debian');
describeFirewallScenarios('nftables-rhel');
