"""acme-edge itself, twice: "acme-edge" on the I/O backend of --io-backend
and "acme-edge-epoll" on epoll, each with its own listeners, API and store."""
import hashlib
import os
import urllib.request

from ..common import ACME_NAME, API_TOKEN, EPOLL, FLOOD_NAME, KA, TOKEN, die
from ..proc import CLIENT_CPU, SERVER_CPU, retire, spawn, tree, wait_port
from .base import Server


def acme_edges(ctx):
    """The acme-edge instances of this run: "acme-edge" (io_backend from
    --io-backend) and, unless --no-epoll, "acme-edge-epoll"."""
    return ["acme-edge"] + ([EPOLL] if ctx.epoll else [])


class AcmeEdge(Server):
    """`acme-edge api` on the client CPU (it is not measured) and
    `acme-edge proxy` on the server CPU: the proxy is what is measured.
    Two instances run side by side: "acme-edge" (io_backend from
    --io-backend) and "acme-edge-epoll" (io_backend = epoll), each with its
    own listeners, API, store path (the proxy's counters live in
    "<store path>.proxy") and config file."""

    def __init__(self, ctx, name="acme-edge"):
        super().__init__(ctx)
        self.name = name
        self.api = None
        # "bench": limits opened wide for the throughput and memory runs;
        # "gateway": the defaults a production edge runs with, for the
        # flood scenarios (the runner switches before the first of them).
        self.profile = "bench"
        p = ctx.ports
        if name == EPOLL:
            self.io_backend = "epoll"
            self.http, self.https, self.api_port = p.ep_http, p.ep_https, p.ep_api
            self.store = ctx.store_epoll
        else:
            self.io_backend = ctx.io_backend
            self.http, self.https, self.api_port = p.ae_http, p.ae_https, p.ae_api
            self.store = ctx.store

    def conf(self):
        c = self.ctx
        if self.profile == "gateway":
            limits = "# peek_timeout, idle_timeout, max_connections: the defaults\n"
        else:
            limits = "peek_timeout = 300s\nidle_timeout = 10m\nmax_connections = 20000\n"
        return self._write("%s-%s-%d.conf" % (self.name, self.profile, c.workers), """[store]
path = {store}
capacity = 64

[api]
listen = 127.0.0.1:{api}

[client bench]
token_sha256 = {tok}
identifiers = *.example.com

[proxy]
http = 127.0.0.1:{http}
https = 127.0.0.1:{https}
workers = {workers}
io_backend = {backend}
http_miss = forward
tls_miss = forward
{limits}
[route flood]
names = {flood}
http = 127.0.0.1:{p.up_sink}
https = 127.0.0.1:{p.up_sink}

[route default]
http = 127.0.0.1:{p.up_http}
https = 127.0.0.1:{p.up_tls}

[log]
level = warn
""".format(p=c.ports, store=self.store, api=self.api_port, http=self.http,
           https=self.https, workers=c.workers, backend=self.io_backend,
           tok=hashlib.sha256(API_TOKEN.encode()).hexdigest(), limits=limits,
           flood=FLOOD_NAME))

    def start_api(self):
        c = self.ctx
        conf = self.conf()
        log = "%s/%s-api.log" % (c.work, self.name)
        self.api = spawn([c.exe, "api", "-c", conf], log, CLIENT_CPU, c.limit)
        if not wait_port(self.api_port, self.api):
            die("%s api did not start: see %s" % (self.name, log))
        auth = {"Authorization": "Bearer " + API_TOKEN}
        for url, body in (
                ("/v1/http-01/%s?identifier=%s" % (TOKEN, ACME_NAME), KA),
                ("/v1/tls-alpn-01/%s" % ACME_NAME, KA)):
            req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.api_port, url),
                                         data=body.encode(), method="PUT", headers=auth)
            with urllib.request.urlopen(req, timeout=10) as r:
                if r.status not in (200, 201):
                    die("%s api: PUT %s answered %d" % (self.name, url, r.status))

    def start(self):
        c = self.ctx
        if self.api is None or self.api.poll() is not None:
            self.start_api()
        conf = self.conf()
        log = "%s/%s-proxy.log" % (c.work, self.name)
        self._launch([c.exe, "proxy", "-c", conf], log, SERVER_CPU, (self.http, self.https),
                     "%s proxy did not start: see %s" % (self.name, log))
        self.main_pid = self._find_main("acme-edge")
        self.pids = tree(self.main_pid)

    def backend(self):
        """The backend the running proxy really uses: io_uring when it holds
        an io_uring descriptor (its workers are threads of this process)."""
        try:
            fds = os.listdir("/proc/%d/fd" % self.main_pid)
        except OSError:
            return "?"
        for fd in fds:
            try:
                if "io_uring" in os.readlink("/proc/%d/fd/%s" % (self.main_pid, fd)):
                    return "io_uring"
            except OSError:
                pass        # closed meanwhile
        return "epoll"

    def stop_all(self):
        self.stop()
        if self.api:
            retire(self.api)
            self.api = None
