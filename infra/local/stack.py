#!/usr/bin/env python3
"""Start, stop and report the four local services strongroom runs on, without Docker.

    python3 infra/local/stack.py up | down [--wipe] | status   [SERVICE...]

Standard library only, so it runs before any virtualenv exists. Each service lives in
services.py; this module is the life cycle they share:

1. install: download once into the cache (keyed by version, outside the repo);
2. prepare: write its config under the data dir (default .strongroom/, STRONGROOM_INFRA_DIR);
3. start: spawn it detached in its own session, its pid and version recorded;
4. wait: until it answers a real request, or fail naming it and showing its log's tail.

`up` is idempotent: a service whose recorded pid is alive and that answers is left alone.
`down` stops only what `up` started (recorded pids); `--wipe` also removes the data.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def versions() -> dict[str, str]:
    pins = {}
    for line in (REPO / "infra" / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pins[key.strip()] = value.strip()
    return pins


def infra_dir() -> Path:
    return Path(os.environ.get("STRONGROOM_INFRA_DIR") or REPO / ".strongroom").resolve()


def cache_dir() -> Path:
    if os.environ.get("STRONGROOM_CACHE_DIR"):
        return Path(os.environ["STRONGROOM_CACHE_DIR"]).resolve()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "strongroom"


class StackError(Exception):
    """A service could not be installed or started; the message names it."""


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def run(cmd: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    """Run an install step; its output is shown only when it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise StackError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc


def log_tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return f"(no log at {path})"
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 64 * 1024))
        text = handle.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


class Service:
    """One local service: subclasses say how to install, configure, run and probe it."""

    name = "service"
    port = 0
    start_timeout = 90.0
    run_as: str | None = None  # a system user, for services that refuse root

    def __init__(self, pins: dict[str, str]):
        self.pins = pins
        self.dir = infra_dir() / self.name
        self.cache = cache_dir()

    # -- what subclasses provide -------------------------------------------------------
    @property
    def version(self) -> str:
        raise NotImplementedError

    def install(self) -> None:
        """Fetch what the service needs into the cache, once per version."""

    def prepare(self) -> None:
        """Write configuration and create data directories; safe to repeat."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def probe(self) -> str | None:
        """Ask the service a real question; its version when it answers, else None."""
        raise NotImplementedError

    def after_start(self) -> None:
        """One-time set-up that needs the running service (buckets, templates)."""

    # -- shared life cycle -------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.name}.log"

    @property
    def state_path(self) -> Path:
        return self.dir / "service.json"

    def state(self) -> dict:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}

    def pid(self) -> int | None:
        """The recorded pid, if that process is still ours (a recycled pid is not)."""
        pid = self.state().get("pid")
        if not pid:
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if self.state().get("marker", "").encode() in cmdline else None

    def safe_probe(self) -> str | None:
        try:
            return self.probe()
        except Exception:  # any failure to answer means "not up yet"
            return None

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        log = open(self.log_path, "ab")
        log.write(f"\n--- strongroom: starting {self.name} {self.version} at {time.ctime()}\n".encode())
        log.flush()
        kwargs = {}
        if self.run_as:
            kwargs.update(user=self.run_as, group=self.run_as, extra_groups=[])
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=self.dir, env=self.environment(), **kwargs,
        )
        marker = self.marker()
        self.state_path.write_text(json.dumps(
            {"pid": proc.pid, "version": self.version, "port": self.port, "marker": marker,
             "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))

    def marker(self) -> str:
        # A string in the process's command line that tells our process from a stranger.
        return str(self.dir)

    def wait(self, deadline: float) -> str:
        while time.monotonic() < deadline:
            version = self.safe_probe()
            if version:
                return version
            if self.pid() is None:
                raise StackError(f"{self.name} exited during start-up; last lines of {self.log_path}:\n"
                                 + log_tail(self.log_path))
            time.sleep(0.5)
        raise StackError(f"{self.name} did not answer on port {self.port} within "
                         f"{self.start_timeout:.0f}s; last lines of {self.log_path}:\n" + log_tail(self.log_path))

    def stop(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.2)
            _reap(pid)
        if Path(f"/proc/{pid}").exists():
            os.killpg(pid, signal.SIGKILL)
        self.state_path.unlink(missing_ok=True)
        return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def all_services(names: list[str] | None = None) -> list[Service]:
    """Every service, or only those named (kafka, s3, registry, opensearch)."""
    sys.path.insert(0, str(HERE))
    from services import SERVICES  # noqa: E402  (sibling module, found via HERE)

    pins = versions()
    services = [cls(pins) for cls in SERVICES]
    unknown = set(names or ()) - {svc.name for svc in services}
    if unknown:
        raise StackError(f"no service named {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(svc.name for svc in services)}")
    return [svc for svc in services if not names or svc.name in names]


def up(names: list[str]) -> int:
    services = all_services(names)
    pending = []
    for svc in services:
        if svc.pid() and svc.safe_probe():
            print(f"{svc.name:<10} already up on 127.0.0.1:{svc.port}")
            continue
        if svc.pid() is None and port_open(svc.port):
            raise StackError(f"{svc.name}: port {svc.port} is taken by a process strongroom did not start; "
                             f"stop it or point strongroom at it (see README, 'existing clusters')")
        if svc.pid():  # ours but not answering: restart it cleanly
            svc.stop()
        print(f"{svc.name:<10} starting {svc.version}", flush=True)
        try:
            svc.install()
            svc.prepare()
            svc.start()
        except (OSError, subprocess.SubprocessError) as exc:
            raise StackError(f"{svc.name} could not be started: {exc}") from exc
        pending.append(svc)
    # The JVMs start in parallel; each is then waited for in turn.
    for svc in pending:
        version = svc.wait(time.monotonic() + svc.start_timeout)
        svc.after_start()
        print(f"{svc.name:<10} up on 127.0.0.1:{svc.port} ({version})", flush=True)
    return 0


def down(names: list[str], wipe: bool) -> int:
    for svc in reversed(all_services(names)):
        stopped = svc.stop()
        print(f"{svc.name:<10} {'stopped' if stopped else 'was not running'}")
        if wipe and svc.dir.exists():
            shutil.rmtree(svc.dir, ignore_errors=True)
            link = infra_dir() / svc.name  # a service may keep its data elsewhere behind a link
            if link.is_symlink():
                link.unlink()
            print(f"{svc.name:<10} data removed ({svc.dir})")
    return 0


def status(names: list[str]) -> int:
    healthy = True
    for svc in all_services(names):
        version = svc.safe_probe() if svc.pid() else None
        state = "up" if version else "down"
        healthy &= bool(version)
        print(f"{svc.name:<10} {state:<5} 127.0.0.1:{svc.port:<6} {version or svc.version:<12} {svc.dir}")
    return 0 if healthy else 3


def main(argv: list[str]) -> int:
    usage = "usage: stack.py up | down [--wipe] | status  [SERVICE...]"
    if not argv or argv[0] not in {"up", "down", "status"}:
        print(usage, file=sys.stderr)
        return 2
    names = [arg for arg in argv[1:] if not arg.startswith("-")]
    try:
        if argv[0] == "up":
            return up(names)
        if argv[0] == "down":
            return down(names, "--wipe" in argv[1:])
        return status(names)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # Run through the importable module, so services.py and this share one StackError class.
    sys.path.insert(0, str(HERE))
    import stack

    sys.exit(stack.main(sys.argv[1:]))
