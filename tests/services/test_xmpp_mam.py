"""`ingest xmpp-mam` against a real Prosody (Debian's, with mod_mam) started by the test.

Two users talk through the server with slixmpp (a correction, a retraction, a reaction); the
pull fetches the account's archive, a second pull fetches nothing, a third after more messages
fetches exactly those, and a correction in the third run continues the versions of the first.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from consumers.archiver import ParquetArchiver
from consumers.query import run_query
from consumers.runner import SinkRunner
from producers.chat.xmpp_mam import MamPull
from producers.ingest import ingest
from schemas.records import chat_uid

DOMAIN = "strongroom.test"
ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
PASSWORDS = {ALICE: "alice-secret-ä", BOB: "bob-secret-東"}
PAIR = f"{ALICE} {BOB}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _config(root: Path, port: int) -> Path:
    root_lines = 'run_as_root = true\nprosody_user = "root"\nprosody_group = "root"\n' if os.geteuid() == 0 else ""
    config = root / "prosody.cfg.lua"
    config.write_text(f"""{root_lines}pidfile = "{root}/prosody.pid"
data_path = "{root}/data"
certificates = "{root}/data"
daemonize = false
log = {{ info = "{root}/prosody.log"; error = "{root}/prosody.err" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_direct_tls_ports = {{}}
s2s_ports = {{}}
http_ports = {{}}
https_ports = {{}}
modules_enabled = {{ "roster"; "saslauth"; "disco"; "mam"; "ping" }}
modules_disabled = {{ "s2s"; "tls"; "offline"; "http"; "bosh"; "websocket"; "posix" }}
authentication = "internal_plain"
storage = "internal"
allow_unencrypted_plain_auth = true
c2s_require_encryption = false
archive_expires_after = "never"
default_archive_policy = true
VirtualHost "{DOMAIN}"
""")
    (root / "data").mkdir()
    return config


@pytest.fixture
def prosody(tmp_path):
    """Prosody on a free port of 127.0.0.1 with its own config and data; stopped at the end."""
    assert shutil.which("prosody") and shutil.which("prosodyctl"), "Debian's prosody package is required"
    root = tmp_path / "prosody"
    root.mkdir()
    port = _free_port()
    config = _config(root, port)
    for jid, password in PASSWORDS.items():
        user, _, host = jid.partition("@")
        subprocess.run(["prosodyctl", "--config", str(config), "register", user, host, password],
                       check=True, capture_output=True, timeout=60)
    server = subprocess.Popen(["prosody", "--config", str(config), "-F"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(150):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert server.poll() is None, (root / "prosody.err").read_text(errors="replace")
            time.sleep(0.2)
        else:
            pytest.fail(f"prosody did not listen on {port}: {(root / 'prosody.log').read_text(errors='replace')[-2000:]}")
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


async def _talk(port: int, jid: str, actions: list[tuple]) -> None:
    """Log in as `jid` and send: ("say", to, id, text), ("correct", to, id, text, of),
    ("retract", to, of), ("react", to, of, emoji)."""
    import slixmpp

    client = slixmpp.ClientXMPP(jid, PASSWORDS[jid])
    for plugin in ("xep_0030", "xep_0199", "xep_0308", "xep_0424", "xep_0444"):
        client.register_plugin(plugin)
    client.enable_direct_tls = client.enable_starttls = False
    client.enable_plaintext = True
    client.plugin["feature_mechanisms"].unencrypted_plain = True
    ready = asyncio.get_running_loop().create_future()
    client.add_event_handler("session_start", lambda _e: ready.done() or ready.set_result(True))
    client.connect("127.0.0.1", port)
    await asyncio.wait_for(ready, 30)
    for action in actions:
        kind, to = action[0], slixmpp.JID(action[1])
        if kind == "retract":
            client.plugin["xep_0424"].send_retraction(to, action[2], mtype="chat")
        elif kind == "react":
            client.plugin["xep_0444"].send_reactions(to, action[2], [action[3]])
        else:
            message = client.make_message(mto=to, mbody=action[3], mtype="chat")
            message["id"] = action[2]
            if kind == "correct":
                message["replace"]["id"] = action[4]
            message.send()
    # The server archives on receipt; a ping round trip proves it has read everything we sent.
    await client.plugin["xep_0199"].ping(jid=slixmpp.JID(DOMAIN), timeout=10)
    client.disconnect()
    await client.disconnected


def talk(port: int, jid: str, actions: list[tuple]) -> None:
    asyncio.run(_talk(port, jid, actions))


def pull(settings, port: int, jid: str = ALICE):
    puller = MamPull(settings, jid, PASSWORDS[jid], server=f"127.0.0.1:{port}", allow_unencrypted=True)
    summary = ingest(settings, "chat", puller.captures())
    puller.commit()
    return puller, summary


def test_archive_pull_is_incremental_and_keeps_every_version(settings, prosody, tmp_path):
    """First pull: everything; second: nothing; third: exactly the new messages, versions continued."""
    port = prosody
    talk(port, ALICE, [("say", BOB, "a1", "Grüße, Bob — 東京"), ("correct", BOB, "a2", "Grüße, Bob — Tokyo", "a1"),
                       ("say", BOB, "a3", "Kontonummer 1234, falscher Chat"), ("retract", BOB, "a3")])
    talk(port, BOB, [("say", ALICE, "b1", "Danke! Termin am Donnerstag"), ("react", ALICE, "a1", "👍")])

    first, summary = pull(settings, port)
    assert (first.fetched, summary.read, summary.produced, summary.failed) == (6, 6, 6, 0)
    SinkRunner(settings, ParquetArchiver(settings), settings.group("archiver")).run(until_idle=True)
    _, rows = run_query(settings, "SELECT message_id, version, event_type, body_text, sender.address FROM chat "
                                  "ORDER BY message_id, version")
    assert rows == [
        ("a1", 1, "created", "Grüße, Bob — 東京", ALICE), ("a1", 2, "edited", "Grüße, Bob — Tokyo", ALICE),
        ("a1", 3, "reaction", "👍", BOB),
        ("a3", 1, "created", "Kontonummer 1234, falscher Chat", ALICE),
        ("a3", 2, "deleted", "Kontonummer 1234, falscher Chat", ALICE),
        ("b1", 1, "created", "Danke! Termin am Donnerstag", BOB)]
    _, [(uid, deleted)] = run_query(settings, "SELECT message_uid, is_deleted FROM chat_latest WHERE message_id = 'a3'")
    assert uid == chat_uid("xmpp", None, PAIR, "a3") and deleted

    # Second run, through the command a user runs: nothing new on the server, nothing produced.
    env = {**os.environ, "STRONGROOM_NAMESPACE": settings.namespace, "STRONGROOM_STORAGE_URL": settings.storage.url,
           "ALICE_PASSWORD": PASSWORDS[ALICE]}
    # The installed script: `python -m strongroom.cli` would not see commands registered by modules.
    result = subprocess.run([str(Path(sys.executable).parent / "strongroom"), "ingest", "xmpp-mam", "--jid", ALICE,
                             "--password-env", "ALICE_PASSWORD", "--server", f"127.0.0.1:{port}", "--allow-unencrypted"],
                            capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stderr
    assert "chat: read 0, produced 0" in result.stdout and "0 archived messages fetched" in result.stdout
    refused = subprocess.run(result.args, capture_output=True, text=True, timeout=180,
                             env={**env, "ALICE_PASSWORD": "wrong"})
    assert refused.returncode == 2 and "refused the password" in refused.stderr.strip().splitlines()[-1]
    unreachable = subprocess.run([*result.args[:-3], "--server", f"127.0.0.1:{_free_port()}", "--allow-unencrypted"],
                                 capture_output=True, text=True, timeout=180, env=env)
    assert unreachable.returncode == 3 and "Connect call failed" in unreachable.stderr

    talk(port, BOB, [("correct", ALICE, "b2", "Danke! Termin am Freitag", "b1"), ("say", ALICE, "b3", "Bis dann 🙂")])
    third, summary = pull(settings, port)
    assert (third.fetched, summary.read, summary.produced, summary.duplicates) == (2, 2, 2, 0)
    SinkRunner(settings, ParquetArchiver(settings), settings.group("archiver")).run(until_idle=True)
    _, rows = run_query(settings, "SELECT message_id, version, event_type, body_text FROM chat "
                                  "WHERE message_id IN ('b1', 'b3') ORDER BY message_id, version")
    assert rows == [("b1", 1, "created", "Danke! Termin am Donnerstag"), ("b1", 2, "edited", "Danke! Termin am Freitag"),
                    ("b3", 1, "created", "Bis dann 🙂")]
    assert run_query(settings, "SELECT count(*) FROM chat")[1][0][0] == 8

    # Bob's own archive holds the same conversation: the same identities, so nothing new.
    _, from_bob = pull(settings, port, BOB)
    assert (from_bob.read, from_bob.produced, from_bob.duplicates) == (8, 0, 8)
