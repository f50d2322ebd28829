"""A throwaway Request Tracker 5 for the tests, from Debian's packages.

A site config in a temporary folder (``RT_SITE_CONFIG``; ``RT_SITE_CONFIG_DIR`` points at an
empty folder, so the package's own config, with its database, is not read) names a new
SQLite database there; ``rt-setup-database --action init`` makes it, ``--action insert``
adds a customer (unprivileged, may create and answer tickets in General); RT's standalone
server (``rt-server``) serves it on a free loopback port. ``root`` / ``password`` is RT's
initial administrator. ``scripts/test.sh`` installs the packages where they are missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

SERVER = Path("/usr/share/request-tracker5/libexec/rt-server")
SETUP = Path("/usr/sbin/rt-setup-database")
CUSTOMER = ("customer", "customer-pass", "customer@example.com")

SITE_CONFIG = """Set($rtname, 'bigramlm-test');
Set($Organization, 'bigramlm.test');
Set($Timezone, 'UTC');
Set($DatabaseType, 'SQLite');
Set($DatabaseName, '{db}');
Set($DatabaseUser, '');
Set($DatabasePassword, '');
Set($WebPath, '');
Set($WebDomain, '127.0.0.1');
Set($WebPort, {port});
Set($LogToSyslog, undef);
Set($LogToSTDERR, 'warning');
Set($MailCommand, 'testfile');
1;
"""
INITIAL_DATA = """@Users = ({{ Name => '{name}', EmailAddress => '{email}', Password => '{password}', Privileged => 0 }});
@ACL = map {{ {{ GroupDomain => 'SystemInternal', GroupType => 'Everyone', Right => $_, Queue => 'General' }} }}
       qw(CreateTicket ReplyToTicket SeeQueue ShowTicket);
1;
"""


def installed() -> bool:
    return SERVER.exists() and SETUP.exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RTServer:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bigramlm-rt-"))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (self.root / "conf.d").mkdir()
        (self.root / "RT_SiteConfig.pm").write_text(SITE_CONFIG.format(db=self.root / "rt.db", port=self.port))
        name, password, email = CUSTOMER
        (self.root / "initialdata").write_text(INITIAL_DATA.format(name=name, password=password, email=email))
        self.env = {**os.environ, "RT_SITE_CONFIG": str(self.root / "RT_SiteConfig.pm"),
                    "RT_SITE_CONFIG_DIR": str(self.root / "conf.d")}
        self._setup("--action", "init", "--skip-create")
        self._setup("--action", "insert", "--datafile", str(self.root / "initialdata"))
        self.log = open(self.root / "server.log", "wb")
        self.proc = subprocess.Popen([str(SERVER), "--port", str(self.port)], env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready(120.0)

    def _setup(self, *args: str) -> None:
        proc = subprocess.run([str(SETUP), *args], env=self.env, capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError(f"rt-setup-database {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rt-server exited: {(self.root / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/REST/2.0/rt", auth=("root", "password"), timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)  # polling a starting server, bounded by the deadline
        raise RuntimeError("rt-server did not answer in time")

    def client(self, user: str = "root", password: str = "password") -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/REST/2.0", auth=(user, password), timeout=30)

    def remove(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)
