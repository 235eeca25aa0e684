"""A throw-away PostgreSQL cluster for the tests and benchmarks: `initdb` + `pg_ctl` in a temp
folder, listening on a socket there and on a free loopback port, run by an unprivileged user when
this process is root (PostgreSQL refuses to run as root). No system service is touched.

`LEDGER_TEST_POSTGRES`, when set, names a server to use instead (a URL whose user may create
databases); otherwise the binaries are looked for in /usr/lib/postgresql/*/bin and on PATH, and
`Unavailable` says why none could be started (the tests skip with that reason).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

ENV_SERVER = "LEDGER_TEST_POSTGRES"
USER = "ledger"
PASSWORD = "ledger-test-password"


class Unavailable(Exception):
    """No PostgreSQL server can be had here (the message says why)."""


def _bindir() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0, reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _runner() -> tuple[list[str], int | None, int | None]:
    """The command prefix that runs a program as an unprivileged user, and that user's ids (None
    when this process is not root: it runs the cluster itself)."""
    if os.geteuid() != 0:
        return [], None, None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups", "--"], entry.pw_uid, entry.pw_gid
    raise Unavailable("running as root and there is no unprivileged user (postgres, nobody) to run PostgreSQL as")


@dataclass
class Cluster:
    """A running server: `url(db)` names a database on it over the socket (no password);
    `tcp_url(db, password)` over TCP with a password."""

    host: str
    port: int
    folder: Path | None = None
    bindir: Path | None = None
    prefix: Sequence[str] = ()
    external: str | None = None
    options: str = ""
    _made: list[str] = field(default_factory=list)

    def url(self, db: str = "postgres") -> str:
        """A URL of database `db` (over the socket for a cluster of our own)."""
        if self.external is not None:
            parts = urlsplit(self.external)
            return urlunsplit(parts._replace(path=f"/{db}"))
        return f"postgresql://{USER}@/{db}?host={quote(self.host, safe='')}&port={self.port}"

    def tcp_url(self, db: str = "postgres", password: str = PASSWORD) -> str:
        """A URL of database `db` over TCP on the loopback, with a password."""
        if self.external is not None:
            return self.url(db)
        return f"postgresql://{USER}:{quote(password, safe='')}@127.0.0.1:{self.port}/{db}"

    def create_database(self, prefix: str = "t") -> str:
        """A new, empty database; returns its name."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self._made.append(name)
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database made by `create_database` (ending its connections)."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def crash(self) -> None:
        """Stop a cluster of our own as a crash would (`pg_ctl stop -m immediate`: the server's
        processes quit at once, writing nothing more), keeping its data for `start_again`."""
        self._ctl("-m", "immediate", "-w", "stop")

    def start_again(self) -> None:
        """Start a cluster of our own again on its data (after `crash`, a recovery from its WAL)."""
        assert self.folder is not None
        self._ctl("-l", str(self.folder / "log"), "-o", self.options, "-w", "-t", "120", "start")

    def _ctl(self, *args: str) -> None:
        if self.folder is None or self.bindir is None:
            raise Unavailable("an external server cannot be stopped or started by the tests")
        subprocess.run([*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"), *args], check=True, capture_output=True, timeout=180)

    def stop(self) -> None:
        """Stop a cluster of our own and remove its folder."""
        if self.folder is None or self.bindir is None:
            return
        subprocess.run([*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop"],
                       check=False, capture_output=True, timeout=120)
        shutil.rmtree(self.folder, ignore_errors=True)


def start(*, durable: bool = False) -> Cluster:
    """A server to test against: `$LEDGER_TEST_POSTGRES`, else a throw-away cluster (without
    fsync unless `durable`: the tests prove order and atomicity, not the disk; benchmarks pass
    `durable=True`). Raises `Unavailable`."""
    external = os.environ.get(ENV_SERVER)
    if external:
        return Cluster(host="", port=0, external=external)
    bindir = _bindir()
    if bindir is None:
        raise Unavailable("no PostgreSQL binaries (initdb) found; install Debian's postgresql or set LEDGER_TEST_POSTGRES")
    prefix, uid, gid = _runner()
    folder = Path(tempfile.mkdtemp(prefix="ledger-pg-"))
    if uid is not None and gid is not None:
        os.chown(folder, uid, gid)
    folder.chmod(0o700)
    pwfile = folder / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if uid is not None and gid is not None:
        os.chown(pwfile, uid, gid)
    port = _free_port()
    data = folder / "data"
    try:
        subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}", "--auth-local=trust",
                        "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"],
                       check=True, capture_output=True, timeout=300)
        options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} -c max_connections=200 " \
                  f"-c shared_buffers=64MB"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-o", options, "-w", "-t", "120", "start"],
                       check=True, capture_output=True, timeout=180)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        log = (folder / "log").read_text(errors="replace")[-500:] if (folder / "log").exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        raise Unavailable(f"could not start a throw-away PostgreSQL: {exc} {detail.decode(errors='replace')[-500:]} {log}") from None
    return Cluster(host=str(folder), port=port, folder=folder, bindir=bindir, prefix=prefix, options=options)
