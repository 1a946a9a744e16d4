#!/usr/bin/env python3
"""Renders FusionPBX's shipped dialplan templates into the one document FusionPBX serves.

FusionPBX (https://github.com/fusionpbx/fusionpbx) never hands its templates to FreeSWITCH
as they are. This script replays, step by step, what its code does with them:

1. app/dialplans/resources/classes/dialplan.php, dialplan::import() (run from
   app/dialplans/app_defaults.php at install and on every upgrade): globs
   */*/resources/switch/conf/dialplan/*.xml (sorted), replaces {v_context} with the domain
   name and {v_pin_number} with generate_password(8, 1) (random digits), reads each file
   with simplexml and stores it as one v_dialplans row (name, `order` attribute as
   dialplan_order, `context` attribute with ${domain_name} replaced by the domain name,
   `continue`, `enabled` (true when absent), global="true" ones without a domain) and one
   v_dialplan_details row per condition / action / anti-action (field or application, data,
   break, inline, enabled, a group number that goes up after each condition that has actions
   or anti-actions, an order that goes up by 5). XML comments are lost on the way.
2. dialplan::xml() (source "details", destination "database") reads the details back
   (detail enabled, ordered by group, then condition < action < anti-action, then order),
   drops disabled ones, replaces "$$" with "$" in the data, and writes each dialplan's
   dialplan_xml: <extension name=... continue=... uuid=...>, conditions with field /
   expression / break, actions with inline. Values are written as they are, unescaped.
   dialplan_continue is a PostgreSQL boolean column (app/dialplans/app_config.php) and
   PDO returns it as a PHP bool, which the string concatenation turns into "1" (true) or ""
   (false, or NULL when the template has no continue attribute).
3. app/switch/resources/scripts/app/xml_handler/resources/scripts/dialplan/dialplan.lua
   serves the dialplan section for a call in context C: the dialplan_xml of every enabled
   row whose dialplan_context is C, '${domain_name}' or 'global' (hostname unset), ordered
   by dialplan_order, inside <document type="freeswitch/xml"><section name="dialplan">
   <context name="C" destination_number=... hostname=...>, lines joined by "\n".

What FusionPBX leaves to chance is fixed here so that the output is reproducible:
- uuid attributes (uuid() in PHP): a UUIDv5 of the template's app_uuid and the domain;
- PIN numbers (generate_password(8, 1)): 8 digits from SHA-256 of the app_uuid and domain;
- rows with the same dialplan_order (PostgreSQL gives no order among them): by
  dialplan_name, then file name, as dialplan::xml() itself sorts them;
- the context's destination_number / hostname attributes (the call that built the cached
  document; FreeSWITCH does not read them): --destination and --hostname.

Usage (no packages beyond python3's standard library):
    render.py --git-dir /path/to/fusionpbx.git --commit <sha> [--domain pbx.example.com] > dialplan.xml
    render.py --src /path/to/fusionpbx-checkout [--domain pbx.example.com] > dialplan.xml
"""

import argparse
import fnmatch
import hashlib
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

# dialplan.php: the condition types written as time attributes (none in the templates).
TIME_TYPES = {
    "hour", "minute", "minute-of-day", "mday", "mweek", "mon", "time-of-day", "yday",
    "year", "wday", "week", "date-time",
}
GLOB = "*/*/resources/switch/conf/dialplan/*.xml"


class Source:
    """The FusionPBX tree: a bare git directory at a commit, or a checked-out directory."""

    def __init__(self, git_dir=None, commit=None, src=None):
        self.git_dir, self.commit, self.src = git_dir, commit, src

    def files(self):
        if self.src:
            return sorted(str(p.relative_to(self.src)) for p in Path(self.src).glob(GLOB))
        out = subprocess.run(
            ["git", "--git-dir", self.git_dir, "ls-tree", "-r", "--name-only", self.commit],
            check=True, capture_output=True, text=True,
        ).stdout.splitlines()
        # PHP's glob() sorts its matches; `*` does not cross "/".
        return sorted(
            p for p in out if p.count("/") == GLOB.count("/") and fnmatch.fnmatch(p, GLOB)
        )

    def read(self, path):
        if self.src:
            return (Path(self.src) / path).read_bytes()
        return subprocess.run(
            ["git", "--git-dir", self.git_dir, "show", f"{self.commit}:{path}"],
            check=True, capture_output=True,
        ).stdout


def php_str(v):
    """PHP's string conversion of a value read from the database."""
    if v is True:
        return "1"
    if v is False or v is None:
        return ""
    return str(v)


def php_bool(s):
    """PostgreSQL's reading of 'true' / 'false' into a boolean column, as PDO returns it."""
    if s is None:
        return None
    if isinstance(s, bool):
        return s
    return s.strip().lower() in ("true", "t", "yes", "on", "1")


def pin(app_uuid, domain):
    h = hashlib.sha256(f"{app_uuid}/{domain}/pin".encode()).hexdigest()
    return "".join(str(int(c, 16) % 10) for c in h[:8])


def import_template(name, text, domain):
    """dialplan::import() for one file: the v_dialplans row and its v_dialplan_details."""
    app_uuid = ET.fromstring(text.lstrip("\ufeff")).get("app_uuid", "")
    text = text.replace("{v_context}", domain).replace("{v_pin_number}", pin(app_uuid, domain))
    root = ET.fromstring(text.lstrip("\ufeff"))
    a = root.attrib
    is_global = a.get("global") == "true"
    row = {
        "file": name,
        "app_uuid": a.get("app_uuid"),
        "dialplan_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"fusionpbx:{a.get('app_uuid')}:{domain}")),
        "domain": None if is_global else domain,
        "dialplan_name": a.get("name"),
        "dialplan_context": a.get("context", "").replace("${domain_name}", domain),
        # `continue` only when not empty; NULL otherwise.
        "dialplan_continue": php_bool(a["continue"]) if a.get("continue") else None,
        "dialplan_order": int(a.get("order")),
        "dialplan_enabled": php_bool(a["enabled"]) if a.get("enabled") else True,
        "details": [],
    }
    details = row["details"]
    group, order = 0, 5
    for cond in root.findall("condition"):
        ca = cond.attrib
        details.append({
            "tag": "condition",
            "order": order,
            "type": ca.get("field"),
            "data": ca.get("expression"),
            "break": ca.get("break") or None,
            "inline": None,
            "group": group,
            "enabled": php_bool(ca["enabled"]) if "enabled" in ca else True,
        })
        actions = cond.findall("action")
        antis = cond.findall("anti-action")
        if actions or antis:
            self_closing = False
            order += 5
            for tag, items in (("action", actions), ("anti-action", antis)):
                for x in items:
                    xa = x.attrib
                    details.append({
                        "tag": tag,
                        "order": order,
                        "type": xa.get("application"),
                        "data": xa.get("data"),
                        "break": None,
                        "inline": xa.get("inline") or None,
                        "group": group,
                        "enabled": php_bool(xa["enabled"]) if "enabled" in xa else True,
                    })
                    order += 5
        else:
            self_closing = True
        if not self_closing:
            group += 1
        order += 5
    return row


TAG_RANK = {"condition": 0, "regex": 1, "action": 2, "anti-action": 3}


def dialplan_xml(rows):
    """dialplan::xml() with source "details": one dialplan_xml string per dialplan_uuid.

    A line-by-line port of the PHP state machine, quirks (spacing) included."""
    details = []
    for r in sorted(rows, key=lambda r: (r["dialplan_order"], r["dialplan_name"], r["dialplan_uuid"])):
        ds = [d for d in r["details"] if d["enabled"] is not False]
        ds.sort(key=lambda d: (d["group"], TAG_RANK.get(d["tag"], 100), d["order"]))
        details += [(r, d) for d in ds]
    dialplans = {}
    prev_uuid, prev_group = "", ""
    dialplan_tag_status = ""
    condition_tag_status = "closed"
    condition_attribute = condition_break = condition = ""
    xml = ""
    uid = None
    for r, d in details:
        uid = r["dialplan_uuid"]
        tag, typ, group = d["tag"], d["type"], d["group"]
        data = (d["data"] or "").replace("$$", "$")
        detail_inline = f' inline="{d["inline"]}"' if d["inline"] else ""
        # close the tags
        if dialplan_tag_status != "closed":
            if prev_uuid != uid or prev_group != group:
                if condition_tag_status != "closed":
                    if condition_attribute:
                        xml += f"\t<condition {condition_attribute}{condition_break}/>\n"
                        condition_attribute = ""
                    elif condition and condition.endswith(">"):
                        xml += " " + condition
                        condition = ""
                    elif condition:
                        xml += " " + condition + "/>"
                        condition = ""
                    else:
                        xml += "\t</condition>\n"
                    condition_tag_status = "closed"
            if prev_uuid != uid:
                if prev_uuid:
                    xml += "</extension>\n"
                dialplans[prev_uuid] = xml
                xml = ""
                dialplan_tag_status = "closed"
        # open the tags
        if dialplan_tag_status == "closed":
            xml = (
                f'<extension name="{r["dialplan_name"]}" continue="{php_str(r["dialplan_continue"])}"'
                f' uuid="{uid}">\n'
            )
            dialplan_tag_status = "open"
            condition = condition_attribute = ""
        if tag in ("condition", "regex"):
            condition_type = "time" if typ in TIME_TYPES else "default"
            if condition_tag_status == "open":
                if condition and condition.endswith(">"):
                    xml += condition + "\n"
                    condition = ""
                    condition_tag_status = "closed"
                elif condition:
                    xml += condition + "/>\n"
                    condition = ""
                    condition_tag_status = "closed"
                elif condition_attribute and condition_type != "time":
                    xml += f"\t<condition {condition_attribute}{condition_break}/>\n"
                    condition_attribute = ""
                    condition_tag_status = "closed"
            condition_break = f' break="{d["break"]}"' if d["break"] else ""
            if condition_type == "default":
                if typ is not None and tag == "condition" and typ == "regex":
                    condition = f'\t<condition regex="{data}"{condition_break}>'
                elif typ is not None and tag == "regex":
                    condition = f'\t\t<regex field="{typ}" expression="{data}"{condition_break}/>'
                else:
                    condition = f'\t<condition field="{typ or ""}" expression="{data}"{condition_break}'
            else:
                condition_attribute += f'{typ}="{data}" '
                condition = ""
            condition_tag_status = "open"
        if tag in ("action", "anti-action") and condition_tag_status == "open":
            if condition_attribute:
                xml += f"\t<condition {condition_attribute}{condition_break}>\n"
                condition_attribute = ""
            elif condition and condition.endswith(">"):
                xml += condition + "\n"
                condition = ""
            elif condition:
                xml += condition + ">\n"
                condition = ""
        if tag in ("action", "anti-action"):
            xml += f'\t\t<{tag} application="{typ}" data="{data}"{detail_inline}/>\n'
        prev_uuid, prev_group = uid, group
    if dialplan_tag_status == "open":
        if condition_tag_status == "open":
            if condition_attribute:
                xml += f"\t<condition {condition_attribute}{condition_break}/>\n"
            elif condition and condition.endswith(">"):
                xml += condition + "\n"
            elif condition:
                xml += condition + "/>\n"
            else:
                xml += "\t</condition>\n"
        xml += "</extension>\n"
        dialplans[uid] = xml
    return dialplans


def sanitize(s):
    """xml.sanitize() of app/switch/resources/scripts/resources/functions/xml.lua."""
    for a, b in (("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&apos;"), ("$", "")):
        s = s.replace(a, b)
    return s


def render(source, domain, destination, hostname):
    rows = [
        import_template(f, source.read(f).decode("utf-8"), domain) for f in source.files()
    ]
    xmls = dialplan_xml(rows)
    served = [
        r for r in rows
        if r["dialplan_context"] in (domain, "${domain_name}", "global")
        and r["dialplan_enabled"] is True
    ]
    served.sort(key=lambda r: (r["dialplan_order"], r["dialplan_name"], r["file"]))
    out = [
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
        '<document type="freeswitch/xml">',
        '\t<section name="dialplan" description="">',
        f'\t\t<context name="{sanitize(domain)}" destination_number="{sanitize(destination)}"'
        f' hostname="{sanitize(hostname)}">',
    ]
    out += [xmls[r["dialplan_uuid"]] for r in served]
    out += ["\t\t</context>", "\t</section>", "</document>"]
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--git-dir", help="a bare FusionPBX repository")
    p.add_argument("--commit", default="HEAD", help="with --git-dir")
    p.add_argument("--src", help="a FusionPBX work tree, instead of --git-dir")
    p.add_argument("--domain", default="pbx.example.com")
    p.add_argument("--destination", default="1000")
    p.add_argument("--hostname", default="fusionpbx")
    a = p.parse_args()
    if not (a.git_dir or a.src):
        p.error("give --git-dir or --src")
    src = Source(git_dir=a.git_dir, commit=a.commit, src=a.src)
    sys.stdout.write(render(src, a.domain, a.destination, a.hostname))


if __name__ == "__main__":
    main()
