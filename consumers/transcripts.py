"""Chat transcripts for a production: per conversation, every version of every message, as JSON and HTML.

JSON for programs (each message with its versions: created, edited, deleted, each with its time,
text, document number and original; reactions apart), HTML for people (older versions struck
through, deletions marked). Both are built from the same dictionary, so they never disagree.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from typing import Any

from consumers.export_folder import OutputFolder
from consumers.query import _plain

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def write_transcripts(folder: OutputFolder, events: list[tuple[str, str, dict[str, Any]]]) -> list[dict[str, str]]:
    """(docid, native path, row) of each chat event in -> one JSON and one HTML file per conversation."""
    conversations: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for event in events:
        conversations.setdefault(event[2].get("conversation_id") or "(none)", []).append(event)
    written = []
    for conversation, items in conversations.items():
        first = items[0][2]
        # Later events often lack the channel's display name (only its id): take any event's.
        channel = next((r["channel"] for _, _, r in items if r.get("channel") and r["channel"] != conversation),
                       first.get("channel"))
        name = _UNSAFE.sub("_", channel or conversation).strip("._")[:60] or "conversation"
        stem = f"transcripts/{name}-{hashlib.sha256(conversation.encode()).hexdigest()[:10]}"
        messages: dict[str, dict[str, Any]] = {}
        for docid, native, row in items:
            message = messages.setdefault(row["message_uid"], {
                "message_uid": row["message_uid"], "message_id": row.get("message_id"),
                "thread_id": row.get("thread_id"), "parent_uid": row.get("parent_uid"),
                "sender": _plain(row.get("sender")), "sent_at": iso(row.get("sent_at")),
                "versions": [], "reactions": [], "deleted_at": None})
            event = {"docid": docid, "version": row["version"], "event_type": row["event_type"],
                     "at": event_time(row), "sender": _plain(row.get("sender")), "text": row.get("body_text"),
                     "attachments": _plain(row.get("attachments") or []), "headers": _plain(row.get("headers") or []),
                     "parse_status": row["parse_status"], "parse_error": row.get("parse_error"),
                     "native": native, "raw_sha256": row["raw_sha256"]}
            if row["event_type"] == "reaction":
                message["reactions"].append(event)
            else:
                message["versions"].append(event)
                if row["event_type"] == "deleted":
                    message["deleted_at"] = event["at"]
        body = {"conversation_id": conversation, "channel": channel, "platform": first.get("platform"),
                "workspace": first.get("workspace"), "messages": list(messages.values())}
        json_path = folder.write(f"{stem}.json", json.dumps(body, ensure_ascii=False, indent=1).encode("utf-8"))["path"]
        html_path = folder.write(f"{stem}.html", _html(body).encode("utf-8"))["path"]
        written.append({"conversation_id": conversation, "json": json_path, "html": html_path})
    return written


def _html(body: dict[str, Any]) -> str:
    e = lambda value: html.escape("" if value is None else str(value))  # noqa: E731
    out = [f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{e(body['channel'])}</title>",
           "<style>body{font-family:sans-serif} .old{color:#777;text-decoration:line-through}"
           " .meta{color:#555;font-size:90%} .msg{margin:1em 0;border-left:3px solid #ccc;padding-left:.6em}</style>",
           f"</head><body><h1>{e(body['channel'])}</h1>",
           f"<p class=\"meta\">{e(body['platform'])} · {e(body['workspace'])} · conversation {e(body['conversation_id'])}"
           f" · every version of every message, oldest first</p>"]
    for message in body["messages"]:
        sender = message["sender"] or {}
        out.append(f"<div class=\"msg\" id=\"{e(message['message_uid'])}\"><p><b>"
                   f"{e(sender.get('name') or sender.get('user_id') or sender.get('address'))}</b> "
                   f"<span class=\"meta\">{e(message['sent_at'])}"
                   + (f" · reply in thread {e(message['thread_id'])}" if message["thread_id"] else "") + "</span></p>")
        versions = message["versions"]
        for index, version in enumerate(versions):
            latest = index == len(versions) - 1
            label = {"created": "sent", "edited": "edited", "deleted": "deleted"}.get(version["event_type"],
                                                                                   version["event_type"])
            text = "(message deleted)" if version["event_type"] == "deleted" else version["text"]
            out.append(f"<p class=\"{'' if latest else 'old'}\">{e(text)}<br><span class=\"meta\">{label} "
                       f"{e(version['at'])} · version {version['version']} · {e(version['docid'])}</span></p>")
        for reaction in message["reactions"]:
            who = reaction["sender"] or {}
            out.append(f"<p class=\"meta\">reaction {e(reaction['text'])} by "
                       f"{e(who.get('name') or who.get('user_id'))} at {e(reaction['at'])} · {e(reaction['docid'])}</p>")
        out.append("</div>")
    out.append("</body></html>\n")
    return "\n".join(out)


def iso(value: Any) -> str:
    return value.isoformat() if value is not None else ""


def event_time(row: dict[str, Any]) -> str:
    if row.get("event_at") is not None:
        return iso(row["event_at"])
    edited = next((h["value"] for h in row.get("headers") or [] if h["name"] == "edited_at"), None)
    return edited if edited and row["event_type"] == "edited" else iso(row.get("sent_at"))
