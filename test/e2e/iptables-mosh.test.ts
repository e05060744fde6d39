// Real mosh sessions through an admin's own iptables firewall (no UFW), with `moshwall daemon` and the
// shim: Debian's iptables-persistent rules (INPUT policy DROP), restored with iptables-nft and with
// iptables-legacy (see _firewall-scenarios.ts for the scenarios, _firewalls.ts for the rules).
import { describeFirewallScenarios } from './_firewall-scenarios.ts';

describeFirewallScenarios('iptables-nft');
describeFirewallScenarios('iptables-legacy');
