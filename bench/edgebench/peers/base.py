"""Ports of every listener, and what every server process shares."""
import os
import time

from ..common import EPOLL, die
from ..proc import children, cpu_split, retire, rss_bytes, spawn, wait_port


class Ports:
    def __init__(self, base):
        self.up_http, self.up_tls, self.up_sink = base, base + 1, base + 2
        self.ae_http, self.ae_https, self.ae_api = base + 10, base + 11, base + 12
        # acme-edge-epoll: its own proxy listeners and its own API
        self.ep_http, self.ep_https, self.ep_api = base + 13, base + 14, base + 15
        self.ng_http01, self.ng_alpn, self.ng_pass, self.ng_relay = range(base + 20, base + 24)
        self.ha_http01, self.ha_alpn, self.ha_pass, self.ha_relay, self.ha_splice = \
            range(base + 30, base + 35)
        # The whole challenge gateway on two ports, as acme-edge's own two:
        # :80 answers http-01 and relays the rest, :443 sends acme-tls/1 to
        # its local answerer and passes the rest through.
        self.ng_gw80, self.ng_gw443 = base + 24, base + 25
        self.ha_gw80, self.ha_gw443 = base + 35, base + 36

    def all(self):
        return [v for v in vars(self).values()]

    def target(self, family, server):
        t = {
            "http01": {"acme-edge": self.ae_http, EPOLL: self.ep_http,
                       "nginx": self.ng_http01, "haproxy": self.ha_http01},
            "alpn": {"acme-edge": self.ae_https, EPOLL: self.ep_https,
                     "nginx": self.ng_alpn, "haproxy": self.ha_alpn},
            "pass": {"acme-edge": self.ae_https, EPOLL: self.ep_https,
                     "nginx": self.ng_pass, "haproxy": self.ha_pass,
                     "direct": self.up_tls},
            "relay": {"acme-edge": self.ae_http, EPOLL: self.ep_http,
                      "nginx": self.ng_relay, "haproxy": self.ha_relay,
                      "haproxy-splice": self.ha_splice, "direct": self.up_http},
            "gw80": {"acme-edge": self.ae_http, EPOLL: self.ep_http,
                     "nginx": self.ng_gw80, "haproxy": self.ha_gw80},
            "gw443": {"acme-edge": self.ae_https, EPOLL: self.ep_https,
                      "nginx": self.ng_gw443, "haproxy": self.ha_gw443},
        }
        return t[family][server]


class Server:
    name = ""

    def __init__(self, ctx):
        self.ctx = ctx
        self.proc = None
        self.main_pid = None
        self.pids = []

    def start(self):
        raise NotImplementedError

    def stop(self):
        if self.proc:
            retire(self.proc)
        self.proc = None
        self.pids = []

    def _write(self, name, text):
        """The configuration file `name` in the work folder; its path."""
        path = os.path.join(self.ctx.work, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def _launch(self, cmd, log, cpu, ports, failed):
        """Starts cmd and waits until each of ports accepts; a port that never
        does ends the bench with the message `failed`."""
        self.proc = spawn(cmd, log, cpu, self.ctx.limit)
        for port in ports:
            if not wait_port(port, self.proc):
                die(failed)

    def restart(self):
        self.stop()
        self.start()

    def _find_main(self, exe_name):
        """The server's own pid: the child of timeout(1) (taskset execs)."""
        end = time.monotonic() + 5
        while time.monotonic() < end:
            for c in children(self.proc.pid):
                try:
                    with open("/proc/%d/comm" % c) as f:
                        if f.read().strip().startswith(exe_name[:15]):
                            return c
                except OSError:
                    pass
            time.sleep(0.02)
        die("%s: cannot find its process" % self.name)

    def cpu_split(self):
        return cpu_split(self.pids)

    def rss(self):
        return rss_bytes(self.pids)
