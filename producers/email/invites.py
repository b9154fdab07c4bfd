"""Calendar invites (iCalendar, RFC 5545): the searchable gist of a text/calendar part.

A small unfold-and-read rather than the icalendar package: we need a handful of properties as
text (what, when, where, who), never a model of the calendar, and this never raises on the broken
invites mailers send (missing END lines, stray bytes, unknown time zones). Times are rendered as
written, with their TZID or "UTC", not converted: the invite's own words are what a reviewer
searches for.
"""

from __future__ import annotations

import re

_FOLD = re.compile(r"\r?\n[ \t]")
_DATE_TIME = re.compile(r"(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})?(Z?))?")
_PARAM = re.compile(r';([A-Za-z0-9-]+)=("[^"]*"|[^;:]*)')
_ESCAPES = {"n": "\n", "N": "\n", ",": ",", ";": ";", "\\": "\\"}
_ESCAPE = re.compile(r"\\(.)")
_LABELS = (("SUMMARY", "Event"), ("DTSTART", "Start"), ("DTEND", "End"), ("LOCATION", "Location"),
           ("ORGANIZER", "Organizer"), ("ATTENDEE", "Attendee"), ("STATUS", "Status"),
           ("DESCRIPTION", "Description"))
_MAX_LINES = 2000  # attendees of a huge meeting; the rest is in the blob


def invite_text(ics: str) -> str:
    """'Method: REQUEST\\nEvent: ...\\nStart: 2024-03-04 09:15 UTC\\n...' for every VEVENT/VTODO."""
    lines: list[str] = []
    method = None
    in_event = False
    for line in _FOLD.sub("", ics).splitlines():
        name, params, value = _property(line)
        if name == "BEGIN" and value.upper() in ("VEVENT", "VTODO"):
            in_event = True
            if lines:
                lines.append("")
        elif name == "END" and value.upper() in ("VEVENT", "VTODO"):
            in_event = False
        elif name == "METHOD" and not in_event:
            method = value.strip()
        elif in_event:
            label = dict(_LABELS).get(name)
            if label:
                lines.append(f"{label}: {_render(name, params, value)}")
        if len(lines) >= _MAX_LINES:
            break
    if method:
        lines.insert(0, f"Method: {method}")
    return "\n".join(lines)


def _property(line: str) -> tuple[str, dict[str, str], str]:
    """NAME;PARAM=x;PARAM="a:b":value -> (NAME, params, value); a colon in a quoted param stays."""
    head = re.match(r"[A-Za-z0-9-]+", line)
    if not head:
        return "", {}, ""
    name = head.group(0).upper()
    params: dict[str, str] = {}
    position = head.end()
    while position < len(line) and line[position] == ";":
        match = _PARAM.match(line, position)
        if not match:
            break
        params[match.group(1).upper()] = match.group(2).strip('"')
        position = match.end()
    if position >= len(line) or line[position] != ":":
        colon = line.find(":", position)
        if colon < 0:
            return name, params, ""
        position = colon
    return name, params, line[position + 1:]


def _render(name: str, params: dict[str, str], value: str) -> str:
    if name in ("DTSTART", "DTEND"):
        match = _DATE_TIME.fullmatch(value.strip())
        if not match:
            return value.strip()
        year, month, day, hour, minute, _second, utc = match.groups()
        when = f"{year}-{month}-{day}" + (f" {hour}:{minute}" if hour else "")
        zone = "UTC" if utc else params.get("TZID")
        return f"{when} {zone}" if zone and hour else when
    if name in ("ORGANIZER", "ATTENDEE"):
        address = value.strip()
        address = address[7:] if address.lower().startswith("mailto:") else address
        common_name = params.get("CN")
        return f"{common_name} <{address}>" if common_name else address
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), value).strip()
