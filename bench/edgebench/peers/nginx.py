"""nginx twice: as a peer under test (http for HTTP-01, stream for
acme-tls/1, the :443 passthrough and the :80 relay), and as the upstream
every proxy relays to, on the client CPU."""
import time

from ..common import CHAL_PATH, FLOOD_NAME, KA, PASS_NAME
from ..proc import CLIENT_CPU, SERVER_CPU, tree
from .base import Server

NGINX_COMMON = """
daemon off;
master_process on;
user root root;
worker_rlimit_nofile 20000;
pid {work}/{name}.pid;
events {{ worker_connections 20000; }}
"""
NGINX_HTTP_COMMON = """
  access_log off;
  server_tokens off;
  default_type application/octet-stream;
  keepalive_timeout 600s;
  keepalive_requests 1000000;
  client_body_temp_path {work}/tmp/body;
  proxy_temp_path {work}/tmp/proxy;
  fastcgi_temp_path {work}/tmp/fastcgi;
  uwsgi_temp_path {work}/tmp/uwsgi;
  scgi_temp_path {work}/tmp/scgi;
"""


class Upstream(Server):
    """nginx on the client CPU: the HTTP and TLS servers behind every proxy."""
    name = "upstream"

    def start(self):
        c = self.ctx
        conf = self._write("upstream.conf", NGINX_COMMON.format(work=c.work, name="upstream")
                           + "worker_processes 1;\nerror_log %s/upstream.err crit;\n" % c.work
                           + "http {\n" + NGINX_HTTP_COMMON.format(work=c.work) + """
  sendfile on;
  tcp_nopush on;
  server {{ listen 127.0.0.1:{p.up_http} backlog=4096; root {work}/www; }}
  # The flood scenarios' sink: a ClientHello is no HTTP request, so nginx
  # answers 400 at once and closes, the cheapest upstream there is.
  server {{ listen 127.0.0.1:{p.up_sink} backlog=4096; return 400; }}
  server {{
    listen 127.0.0.1:{p.up_tls} ssl backlog=4096;
    ssl_certificate {work}/up.crt;
    ssl_certificate_key {work}/up.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    root {work}/www;
  }}
}}
""".format(p=c.ports, work=c.work))
        self._launch(["nginx", "-e", c.work + "/upstream.err", "-p", c.work, "-c", conf],
                     c.work + "/upstream.log", CLIENT_CPU,
                     (c.ports.up_http, c.ports.up_tls, c.ports.up_sink),
                     "the upstream nginx did not start: see %s/upstream.err" % c.work)
        self.main_pid = self._find_main("nginx")
        self.pids = tree(self.main_pid)


class Nginx(Server):
    name = "nginx"

    def start(self):
        c = self.ctx
        conf = self._write("nginx-%d.conf" % c.workers,
                           "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n"
                           + NGINX_COMMON.format(work=c.work, name="nginx")
                           + "worker_processes %d;\nerror_log %s/nginx.err error;\n"
                           % (c.workers, c.work)
                           + "http {\n" + NGINX_HTTP_COMMON.format(work=c.work) + """
  server {{
    listen 127.0.0.1:{p.ng_http01} backlog=4096 reuseport;
    location = {path} {{ return 200 "{ka}"; }}
  }}
  # The gateway's :80: the challenge answered, everything else proxied
  # unbuffered over kept-alive upstream connections. Its listeners, as
  # acme-edge's, ask for a 65,535 listen queue, and this one defers a
  # connection until it sends (nginx's deferred: a fixed second; the stream
  # module's listen has no such parameter in Debian 12's nginx 1.22).
  upstream gw_up_http {{ server 127.0.0.1:{p.up_http}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{p.ng_gw80} backlog=65535 deferred reuseport;
    client_header_timeout 10s;
    location = {path} {{ return 200 "{ka}"; }}
    location / {{
      proxy_pass http://gw_up_http;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_buffering off;
    }}
  }}
}}
stream {{
  upstream up_tls {{ server 127.0.0.1:{p.up_tls}; }}
  upstream up_http {{ server 127.0.0.1:{p.up_http}; }}
  map $ssl_preread_server_name $tls_up {{ {pass_name} up_tls; default up_tls; }}
  # The gateway's :443: acme-tls/1 to the local answerer below, the rest by
  # name to the upstreams.
  upstream acme_local {{ server 127.0.0.1:{p.ng_alpn}; }}
  upstream up_sink {{ server 127.0.0.1:{p.up_sink}; }}
  map $ssl_preread_server_name $gw_by_name {{ {flood_name} up_sink; default up_tls; }}
  map $ssl_preread_alpn_protocols $gw_up {{ "~(^|,)acme-tls/1(,|$)" acme_local; default $gw_by_name; }}
  server {{
    listen 127.0.0.1:{p.ng_gw443} backlog=65535 reuseport;
    ssl_preread on;
    preread_timeout 10s;
    proxy_timeout 600s;
    proxy_pass $gw_up;
  }}
  server {{
    listen 127.0.0.1:{p.ng_alpn} ssl backlog=4096 reuseport;
    ssl_certificate {work}/acme.crt;
    ssl_certificate_key {work}/acme.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    ssl_alpn acme-tls/1;
    return "";
  }}
  server {{
    listen 127.0.0.1:{p.ng_pass} backlog=4096 reuseport;
    ssl_preread on;
    preread_timeout 300s;
    proxy_timeout 600s;
    proxy_pass $tls_up;
  }}
  server {{
    listen 127.0.0.1:{p.ng_relay} backlog=4096 reuseport;
    proxy_timeout 600s;
    proxy_pass up_http;
  }}
}}
""".format(p=c.ports, work=c.work, path=CHAL_PATH, ka=KA, pass_name=PASS_NAME,
           flood_name=FLOOD_NAME))
        p = c.ports
        self._launch(["nginx", "-e", c.work + "/nginx.err", "-p", c.work, "-c", conf],
                     c.work + "/nginx.log", SERVER_CPU,
                     (p.ng_http01, p.ng_alpn, p.ng_pass, p.ng_relay, p.ng_gw80, p.ng_gw443),
                     "nginx did not start: see %s/nginx.err" % c.work)
        self.main_pid = self._find_main("nginx")
        end = time.monotonic() + 5
        while len(tree(self.main_pid)) < 1 + c.workers and time.monotonic() < end:
            time.sleep(0.05)
        self.pids = tree(self.main_pid)
