"""moshwall_fleet_table: one text table of every host's `moshwall status --json` (fleet-status.yml).

Pure Python (stdlib only). Input: the inventory hostnames and hostvars, where each host that was reached
has the registered result `moshwall_fleet_status` of `moshwall status --json`. A host that was not
reached, whose moshwall failed, or whose output is not the JSON expected is a row with its error: one
bad host never hides the others.
"""

import json
import re

REGISTERED = "moshwall_fleet_status"

# C0/C1 controls, DEL, the Unicode line/paragraph separators and bidi overrides: what a host's values
# (a process's exe or name, a reason quoting them, a login's SSH_CONNECTION) could use to forge rows or
# send escape sequences to the admin's terminal. The same set as moshwall's own terminalText().
_CONTROLS = re.compile("[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _visible(char):
    """A control character as visible text: \\n, \\r, \\t, else \\u and four hex digits."""
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, "\\u%04x" % ord(char))


def _safe(value):
    """One cell as one line of terminal text: every control character shown as an escape."""
    return _CONTROLS.sub(lambda match: _visible(match.group(0)), str(value))


def _age(seconds):
    """A short age: 45s, 12m03s, 3h07m, 2d04h."""
    try:
        total = int(seconds)
    except (TypeError, ValueError):
        return "?"
    if total < 60:
        return "%ds" % total
    if total < 3600:
        return "%dm%02ds" % (total // 60, total % 60)
    if total < 86400:
        return "%dh%02dm" % (total // 3600, total % 3600 // 60)
    return "%dd%02dh" % (total // 86400, total % 86400 // 3600)


def _first_line(text, limit=160):
    """The first non-empty line of text, cut to limit characters."""
    for line in str(text or "").splitlines():
        if line.strip():
            return line.strip()[:limit]
    return ""


def _error_of(result):
    """
    Why a host's moshwall failed: its own "moshwall: error: ..." line, else the last line of stderr (what
    comes first may be a warning: moshwall's "moshwall: warn ..." lines, or Node's, e.g. when root's
    environment names a NODE_EXTRA_CA_CERTS file that is missing), else the first line of Ansible's msg
    or of stdout.
    """
    lines = [line.strip() for line in str(result.get("stderr") or "").splitlines() if line.strip()]
    for line in lines:
        if line.startswith("moshwall: error:"):
            return line[:160]
    if lines:
        return lines[-1][:160]
    return _first_line(result.get("msg")) or _first_line(result.get("stdout"))


def _status_of(result):
    """(status dict, None) from one host's registered result, or (None, why it has none)."""
    if not isinstance(result, dict):
        return None, "no status gathered (the host was not in this run)"
    if result.get("unreachable"):
        return None, "unreachable: " + (_first_line(result.get("msg")) or "?")
    if result.get("rc") != 0:
        return None, "moshwall status failed (exit %s): %s" % (result.get("rc"), _error_of(result) or "no output")
    try:
        status = json.loads(result.get("stdout") or "")
    except ValueError:
        return None, "moshwall status printed no JSON: " + (_first_line(result.get("stdout")) or "nothing")
    if not isinstance(status, dict) or not isinstance(status.get("sessions"), list):
        return None, "moshwall status printed JSON of another shape"
    return status, None


def _problems_of(status):
    """Every problem one host's status names, one line each."""
    problems = []
    firewall = status.get("firewall") or {}
    if not firewall.get("active", False):
        problems.append("firewall %s is not active" % status.get("backend", "?"))
    for problem in firewall.get("problems") or []:
        problems.append("firewall: " + _first_line(problem))
    for warning in status.get("warnings") or []:
        problems.append("warning: " + _first_line(warning))
    for holder in status.get("refused") or []:
        problems.append(
            "refused: port %s/%s held by %s pid %s (%s)"
            % (holder.get("port"), holder.get("family"), holder.get("user"), holder.get("pid"), _first_line(holder.get("reason")))
        )
    for process in status.get("uninspected") or []:
        if process.get("root"):
            continue
        problems.append(
            "uninspected: pid %s %s (%s %s)"
            % (process.get("pid"), process.get("exe") or "?", process.get("path"), process.get("code"))
        )
    for rule in status.get("rules") or []:
        if rule.get("state") == "stale":
            problems.append("stale rule: %s/%s from %s" % (rule.get("port"), rule.get("family"), rule.get("source")))
    conntrack = status.get("conntrack")
    if isinstance(conntrack, dict) and not conntrack.get("available", True):
        problems.append("conntrack: " + (_first_line(conntrack.get("problem"), 120) or "not available"))
    return problems


def _table(header, rows):
    """Rows under a header, every cell made safe (_safe), columns padded to their widest cell."""
    cells = [[_safe(cell) for cell in row] for row in [header] + rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    return ["  ".join(cell.ljust(widths[index]) for index, cell in enumerate(row)).rstrip() for row in cells]


def moshwall_fleet_table(hostnames, hostvars):
    """The fleet's table as text: a line per host, a line per session, a line per problem."""
    hosts = []
    sessions = []
    problems = []
    for name in sorted(hostnames):
        status, error = _status_of((hostvars.get(name) or {}).get(REGISTERED))
        if status is None:
            hosts.append([name, "-", "-", "-", "-", 1])
            problems.append([name, error])
            continue
        own = _problems_of(status)
        live = [rule for rule in status.get("rules") or [] if rule.get("state") == "live"]
        hosts.append([name, status.get("backend", "?"), len(status["sessions"]), len(live), len(status.get("rules") or []), len(own)])
        for session in status["sessions"]:
            sessions.append(
                [
                    name,
                    session.get("user", "?"),
                    "%s/%s" % (session.get("port"), session.get("family")),
                    session.get("clientAddress") or "-",
                    _age(session.get("ageSeconds")),
                    session.get("rule", "?"),
                ]
            )
        problems.extend([name, line] for line in own)
    lines = _table(["HOST", "BACKEND", "SESSIONS", "LIVE RULES", "RULES OF OURS", "PROBLEMS"], hosts)
    lines += ["", "SESSIONS"]
    lines += _table(["HOST", "USER", "PORT", "CLIENT", "AGE", "RULE"], sessions) if sessions else ["(none)"]
    lines += ["", "PROBLEMS"]
    lines += _table(["HOST", "PROBLEM"], problems) if problems else ["(none)"]
    return "\n".join(lines)


class FilterModule(object):
    """Ansible's entry point for the filter."""

    def filters(self):
        return {"moshwall_fleet_table": moshwall_fleet_table}
