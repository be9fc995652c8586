"""localstripe (a stateful fake of Stripe's API, with a stand-in for Stripe.js at
/js.stripe.com/v3/) of this test run's own, on a free loopback port, as
tests/redis_server.py does for Redis: started once per test process, the first time
a test asks for it, and stopped when the process ends.

localstripe writes its whole store to /tmp/localstripe.pickle after every POST,
the same file for every run on the machine: the server here keeps nothing on disk
and starts from scratch."""

from __future__ import annotations

import atexit
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.redis_server import free_port

_MAIN = """
import sys
from aiohttp import web
from localstripe import server
from localstripe.resources import store
store.dump_to_disk = lambda: None
web.run_app(server.app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

SECRET_KEY = "sk_test_portal_localstripe"
PUBLISHABLE_KEY = "pk_test_portal_localstripe"
WEBHOOK_SECRET = "whsec_portal_localstripe"


@dataclass
class StripeServer:
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StripeServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / "localstripe.log", "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-c", _MAIN, str(self.port)], stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/js.stripe.com/v3/", timeout=0.5) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"localstripe did not start on port {self.port}: see {self.workdir / 'localstripe.log'}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_localstripe(workdir: Path) -> StripeServer:
    server = StripeServer(workdir).start()
    atexit.register(server.stop)
    return server


def portal_env(server: StripeServer) -> dict[str, str]:
    """The settings that make the portal (`portal serve`, a job) take cards with Stripe at `server`."""
    return {
        "PAYMENT_PROCESSOR": "stripe",
        "STRIPE_SECRET_KEY": SECRET_KEY,
        "STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": server.url,
    }
