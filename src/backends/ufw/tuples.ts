import { FirewallError } from '../../errors.ts';
import type { Family, PortRange } from '../../model.ts';
import { parseCidr } from '../../net.ts';
import { type FirewallRule, RULE_TAG, specOfRule } from '../../rules.ts';

/*
 * ufw keeps its rules as "### tuple ###" lines in /etc/ufw/user.rules (v4) and user6.rules (v6), written
 * by UFWBackendIptables._write_rules (ufw 0.36.2):
 *   ### tuple ### ACTION PROTO DPORT DST SPORT SRC DIRECTION [comment=HEX]
 *   ### tuple ### ACTION PROTO DPORT DST SPORT SRC DAPP SAPP DIRECTION [comment=HEX]
 * ACTION is allow|deny|reject|limit, "_log" or "_log-all" appended when logged, "route:" prepended for
 * routed rules; DIRECTION is in|out, in_IFACE|out_IFACE, or in_IFACE!out_IFACE; DAPP/SAPP are "-" or an
 * application name with spaces as %20; ports are "any", "N", "N:M" or comma lists of those. Files from
 * older ufw lack DIRECTION (6 or 8 fields), which ufw still reads, as "in".
 */

const TUPLE_PREFIX = /^### tuple ###\s*/;
const COMMENT_MARK = ' comment=';

type ParseFailure = (reason: string) => never;

/** The action, log type and route flag of an ACTION field. */
function parseAction(text: string, fail: ParseFailure) {
  const route = text.startsWith('route:');
  const [base = '', logtype = '', ...rest] = (route ? text.slice('route:'.length) : text).split('_');
  if (rest.length > 0 || (logtype !== '' && logtype !== 'log' && logtype !== 'log-all')) {
    fail(`bad action \`${text}\``);
  }
  const action: FirewallRule['action'] =
    base === 'allow' || base === 'deny' || base === 'reject' || base === 'limit' ? base : 'other';
  return { action, logtype, route };
}

/** The direction and interface(s) of a DIRECTION field. */
function parseDirection(text: string, fail: ParseFailure) {
  const match = /^(in|out)(?:_([^!\s]+)(?:!out_([^!\s]+))?)?$/.exec(text);
  if (match === null || (match[3] !== undefined && match[1] !== 'in'))
    return fail(`bad direction \`${text}\``);
  const direction: 'in' | 'out' = match[1] === 'out' ? 'out' : 'in';
  // One interface is named as is; "in_eth0!out_eth1" (routed rules only) is kept whole.
  const iface = match[3] === undefined ? match[2] : text;
  return { direction, iface };
}

/** Ports of a DPORT/SPORT field: "any", or the listed ports and ranges in file order. */
function parsePorts(text: string, fail: ParseFailure): PortRange[] | 'any' {
  if (text === 'any') return 'any';
  return text.split(',').map((part) => {
    const match = /^(\d{1,5})(?::(\d{1,5}))?$/.exec(part);
    if (match === null) return fail(`bad port list \`${text}\``);
    const first = Number(match[1]);
    const last = match[2] === undefined ? first : Number(match[2]);
    if (first < 1 || last > 65535 || first > last) fail(`bad port list \`${text}\``);
    return { first, last };
  });
}

/** A SRC/DST field as a canonical network, or as written when ufw keeps a non-contiguous netmask. */
function parseAddress(text: string, family: Family, fail: ParseFailure) {
  const cidr = parseCidr(text);
  if (cidr !== undefined) {
    if (cidr.family !== family) fail(`${cidr.family} address \`${text}\` in the ${family} rules`);
    return { value: cidr.network, exact: !cidr.hostBitsSet };
  }
  const [address = '', mask = ''] = text.split('/');
  if (family === 'v4' && parseCidr(address)?.family === 'v4' && parseCidr(mask)?.family === 'v4') {
    return { value: text, exact: false };
  }
  return fail(`bad address \`${text}\``);
}

/** The text of a hex comment (ufw stores comments hex-encoded UTF-8). */
function decodeComment(hex: string, fail: ParseFailure): string {
  if (!/^(?:[0-9a-f]{2})*$/i.test(hex)) fail(`bad comment encoding \`${hex}\``);
  return Buffer.from(hex, 'hex').toString('utf8');
}

/** An application field: "-" for none, otherwise the name with %20 turned back into spaces. */
function parseApp(text: string | undefined): string | undefined {
  return text === undefined || text === '-' ? undefined : text.replaceAll('%20', ' ');
}

/** The rule of one tuple line (without the "### tuple ###" prefix). */
function parseTuple(body: string, family: Family, fail: ParseFailure): FirewallRule {
  const mark = body.indexOf(COMMENT_MARK);
  const fieldsText = mark === -1 ? body : body.slice(0, mark);
  const comment = mark === -1 ? '' : decodeComment(body.slice(mark + COMMENT_MARK.length).trim(), fail);
  const fields = fieldsText.trim().split(/\s+/);
  if (fields.length < 6 || fields.length > 9) fail(`expected 6 to 9 fields, found ${fields.length}`);
  const [actionText = '', protocolText = '', dport = '', dst = '', sport = '', src = ''] = fields;
  const hasApps = fields.length >= 8;
  const hasDirection = fields.length === 7 || fields.length === 9;
  const { action, logtype, route } = parseAction(actionText, fail);
  const { direction, iface } = hasDirection
    ? parseDirection(fields[fields.length - 1] ?? '', fail)
    : { direction: 'in' as const, iface: undefined };
  const source = parseAddress(src, family, fail);
  const destination = parseAddress(dst, family, fail);
  const sourcePorts = parsePorts(sport, fail);
  const protocol =
    protocolText === 'udp' || protocolText === 'tcp' || protocolText === 'any' ? protocolText : 'other';
  const application = hasApps ? (parseApp(fields[6]) ?? parseApp(fields[7])) : undefined;
  const rule: FirewallRule = {
    family,
    action,
    direction: route ? 'other' : direction,
    protocol,
    ports: parsePorts(dport, fail),
    source: source.value,
    destination: destination.value,
    comment,
    ours: false,
    raw: body.trim(),
  };
  if (sourcePorts !== 'any') rule.sourcePorts = sport;
  if (iface !== undefined) rule.interface = iface;
  if (application !== undefined) rule.application = application;
  rule.ours =
    comment === RULE_TAG &&
    action === 'allow' &&
    logtype === '' &&
    !route &&
    source.exact &&
    /^\d+$/.test(dport) &&
    specOfRule(rule) !== undefined;
  return rule;
}

/**
 * Every rule in the text of a ufw user rules file (user.rules for v4, user6.rules for v6), in file
 * order, ours flagged strictly. A line ufw would not have written throws a FirewallError naming file and line.
 */
export function parseUserRules(text: string, family: Family, file: string): FirewallRule[] {
  const rules: FirewallRule[] = [];
  for (const [index, line] of text.split('\n').entries()) {
    if (!TUPLE_PREFIX.test(line)) continue;
    const fail: ParseFailure = (reason) => {
      throw new FirewallError(`Cannot read ufw rule at ${file}:${index + 1}: ${reason}`, {
        file,
        line: index + 1,
        text: line,
      });
    };
    rules.push(parseTuple(line.replace(TUPLE_PREFIX, ''), family, fail));
  }
  return rules;
}
