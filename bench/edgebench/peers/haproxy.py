"""HAProxy as a peer: one process, one frontend per scenario family, and a
second :80 relay with splicing."""

from ..common import CHAL_PATH, FLOOD_NAME, KA, PASS_NAME
from ..proc import SERVER_CPU, tree
from .base import Server


class Haproxy(Server):
    name = "haproxy"

    def start(self):
        c = self.ctx
        conf = self._write("haproxy-%d.cfg" % c.workers, """global
  nbthread {workers}
  maxconn 9600
  # maxconn*2 fds plus 2 per pipe must stay under the 20000 open files
  maxpipes 300
  tune.ssl.cachesize 0
  ssl-default-bind-options no-tls-tickets ssl-min-ver TLSv1.2

defaults
  timeout connect 5s
  timeout client 600s
  timeout server 600s
  timeout http-request 10s
  timeout http-keep-alive 600s
  maxconn 9600

frontend http01
  mode http
  bind 127.0.0.1:{p.ha_http01}
  http-request return status 200 content-type application/octet-stream string "{ka}" if {{ path {path} }}
  http-request deny

frontend alpn
  mode tcp
  bind 127.0.0.1:{p.ha_alpn} ssl crt {work}/acme.pem alpn acme-tls/1
  tcp-request session reject

frontend pass
  mode tcp
  bind 127.0.0.1:{p.ha_pass}
  tcp-request inspect-delay 300s
  tcp-request content accept if {{ req.ssl_hello_type 1 }}
  use_backend up_tls if {{ req.ssl_sni -i {pass_name} }}
  default_backend up_tls

frontend relay
  mode tcp
  bind 127.0.0.1:{p.ha_relay}
  default_backend up_http

frontend relay_splice
  mode tcp
  bind 127.0.0.1:{p.ha_splice}
  option splice-request
  option splice-response
  default_backend up_http_splice

# The gateway: :80 answers the challenge and relays the rest (mode http),
# :443 sends acme-tls/1 to the local answerer above and the rest by name.
# Its listeners, as acme-edge's, ask for a 65,535 listen queue and defer a
# connection until it sends (HAProxy's defer-accept: a fixed second).
frontend gw80
  mode http
  bind 127.0.0.1:{p.ha_gw80} backlog 65535 defer-accept
  timeout http-request 10s
  http-request return status 200 content-type application/octet-stream string "{ka}" if {{ path {path} }}
  default_backend gw_up_http

frontend gw443
  mode tcp
  bind 127.0.0.1:{p.ha_gw443} backlog 65535 defer-accept
  tcp-request inspect-delay 10s
  tcp-request content accept if {{ req.ssl_hello_type 1 }}
  tcp-request content reject
  use_backend acme_local if {{ req.ssl_alpn acme-tls/1 }}
  use_backend up_sink if {{ req.ssl_sni -i {flood_name} }}
  default_backend up_tls

backend gw_up_http
  mode http
  http-reuse always
  server s1 127.0.0.1:{p.up_http}

backend acme_local
  mode tcp
  server s1 127.0.0.1:{p.ha_alpn}

backend up_sink
  mode tcp
  server s1 127.0.0.1:{p.up_sink}

backend up_tls
  mode tcp
  server s1 127.0.0.1:{p.up_tls}

backend up_http
  mode tcp
  server s1 127.0.0.1:{p.up_http}

backend up_http_splice
  mode tcp
  option splice-request
  option splice-response
  server s1 127.0.0.1:{p.up_http}
""".format(p=c.ports, work=c.work, workers=c.workers, ka=KA, path=CHAL_PATH,
           pass_name=PASS_NAME, flood_name=FLOOD_NAME))
        p = c.ports
        self._launch(["haproxy", "-db", "-f", conf], c.work + "/haproxy.log", SERVER_CPU,
                     (p.ha_http01, p.ha_alpn, p.ha_pass, p.ha_relay, p.ha_splice,
                      p.ha_gw80, p.ha_gw443),
                     "haproxy did not start: see %s/haproxy.log" % c.work)
        self.main_pid = self._find_main("haproxy")
        self.pids = tree(self.main_pid)
