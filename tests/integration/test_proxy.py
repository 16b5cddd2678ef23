#!/usr/bin/python3
"""
Real-socket integration tests of `acme-edge run`: the solver API and the
proxy together, driven from outside exactly as a CA validator, an ACME
client, ordinary web clients and the servers behind the gateway see it.

Each test class starts its own `acme-edge run -c CONF` (API + proxy, two
proxy workers) on free loopback ports (IPv4 and IPv6), with a config
written to a temp dir and a store under /dev/shm unique to the run, and
stops it with SIGTERM to the master at the end of the class, checking that
it exited 0 and that its log holds no sanitizer report; the store and its
.lock and .proxy files are removed. Challenges are pushed through the real
API with a bearer token. The upstreams (plain HTTP that echoes what it
received, raw echo, TLS with throwaway certificates made by the openssl
CLI, one that resets mid-stream) are threads of this process.

At the end of each class, acmeedge_proxy_challenges_total in /metrics must
match exactly the challenges the class's tests made, no completion may
have been stale, and the active-connection gauge must come back to 0.

Figures (relay throughput, the 1000-connection wall time, ...) are printed
to stderr as "[figure] ..." lines.

Python standard library only, plus the `openssl` and `curl` CLIs.
Environment: ACME_EDGE (the binary); PROXY_IO_BACKEND (optional: written
as io_backend in [proxy]; unset means io_backend = auto).
"""
import base64
import collections
import ctypes
import hashlib
import ipaddress
import json
import os
import re
import resource
import select
import selectors
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from harness import recv_all as harness_recv_all  # noqa: E402
from harness import (ACME_OID, M, Gateway, RawConn, b64url, client_ctx, conf_text,  # noqa: E402
                     connect, env_path, free_port, kernel_release, keyauth, main, make_cert,
                     new_token, openssl, outcome_ok, recv_until, result_failures,
                     sanitizer_marks, sha256_hex, sni_of, store_path)
ACME_EDGE = env_path("ACME_EDGE", "build/px/acme-edge")
IO_BACKEND = os.environ.get("PROXY_IO_BACKEND") or None
SAN_OID = "2.5.29.17"
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
TEST_LIMIT_S = 150          # the watchdog kills the gateway past this
MiB = 1 << 20

threading.stack_size(512 * 1024)


# ---- small helpers -------------------------------------------------------------

BEARER = b64url(32)


def u16(n):
    return n.to_bytes(2, "big")


def closed_port():
    """A loopback port nothing listens on (connections are refused)."""
    return free_port()


def figure(fmt, *args):
    sys.stderr.write("\n[figure] " + (fmt % args) + "\n")
    sys.stderr.flush()


def raise_nofile(want=16384):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < new:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


CH = "acmeedge_proxy_challenges_total"
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z acme-edge\[(\d+)\] "
                      r"(?:err|warn|info|debug): (\w+): ")
REFUSED = "acmeedge_proxy_refused_total"
CLOSED = "acmeedge_proxy_closed_total"
UPERR = "acmeedge_proxy_upstream_errors_total"


def recv_all(sock, limit=1 << 26):
    """Everything until EOF; a reset counts as the end (returned as is)."""
    return harness_recv_all(sock, limit, reset_ends=True)


def closed_without_data(sock, within):
    """True when the peer closes (EOF or RST) within `within` s, sending nothing."""
    sock.settimeout(within)
    try:
        d = sock.recv(65536)
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return d == b""


def parse_http(data, method="GET"):
    """One HTTP/1.1 response from bytes: (status, headers, body, rest)."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        raise AssertionError("no complete response head in %r" % data[:300])
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"^HTTP/1\.[01] (\d{3})", lines[0])
    if not m:
        raise AssertionError("bad status line %r" % lines[0])
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = 0 if method == "HEAD" else int(headers.get("content-length", "0"))
    if len(rest) < n:
        raise AssertionError("short body: %d of %d bytes" % (len(rest), n))
    return int(m.group(1)), headers, rest[:n], rest[n:]


def exchange(port, data, host="127.0.0.1", timeout=10.0, shut=False):
    """Sends data on a new connection, returns everything until EOF."""
    s = connect(port, host, timeout)
    try:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        return recv_all(s)
    finally:
        s.close()


def http_req(method, path, host, extra=None, body=b"", close=True):
    lines = ["%s %s HTTP/1.1" % (method, path)]
    if host is not None:
        lines.append("Host: " + host)
    lines.append("User-Agent: acme-edge-test")
    for k, v in (extra or {}).items():
        lines.append("%s: %s" % (k, v))
    if body:
        lines.append("Content-Length: %d" % len(body))
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# ---- TLS clients -----------------------------------------------------------------

class BioTls:
    """
    A TLS client whose bytes we move by hand (memory BIOs), so its
    ClientHello can be cut into single bytes or several records before the
    handshake goes on over a plain socket.
    """

    def __init__(self, sni, alpn=None, version=None):
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = client_ctx(alpn, version).wrap_bio(self.inc, self.out,
                                                      server_hostname=sni)
        self.close_notify = False

    def first_flight(self):
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.out.read()

    def _flush(self, sock):
        pending = self.out.read()
        if pending:
            sock.sendall(pending)

    def finish(self, sock, timeout=10.0):
        """Completes the handshake (after first_flight was sent somehow)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.obj.do_handshake()
                self._flush(sock)
                return
            except ssl.SSLWantReadError:
                self._flush(sock)
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            d = sock.recv(65536)
            if not d:
                raise EOFError("closed by the peer during the handshake")
            self.inc.write(d)

    def write(self, sock, data):
        self.obj.write(data)
        self._flush(sock)

    def read_until_close(self, sock, timeout=10.0, want=None):
        """Application data until close_notify/EOF (or `want` bytes)."""
        data = b""
        deadline = time.monotonic() + timeout
        while want is None or len(data) < want:
            try:
                d = self.obj.read(65536)
                if not d:           # SSLObject.read gives b"" on close_notify
                    self.close_notify = True
                    return data
                data += d
                continue
            except ssl.SSLZeroReturnError:
                self.close_notify = True
                return data
            except ssl.SSLWantReadError:
                pass
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                d = sock.recv(65536)
            except ConnectionResetError:
                return data
            if not d:
                return data
            self.inc.write(d)
        return data

    def cert_der(self):
        return self.obj.getpeercert(binary_form=True)

    def alpn(self):
        return self.obj.selected_alpn_protocol()

    def version(self):
        return self.obj.version()


def split_records(flight, pieces):
    """Re-frames one handshake record into len(pieces)+1 records, cut at pieces."""
    assert flight[0] == 22, flight[:5]
    n = int.from_bytes(flight[3:5], "big")
    assert len(flight) == 5 + n, "first flight is not one record"
    body = flight[5:]
    cuts = [0] + list(pieces) + [len(body)]
    out = b""
    for a, b in zip(cuts, cuts[1:]):
        out += flight[:3] + u16(b - a) + body[a:b]
    return out


def crafted_hello(sni, alpn=(), pad=0, record_size=16384):
    """A ClientHello built by hand (for sizes no TLS library sends)."""
    exts = b""
    if sni:
        name = sni.encode()
        lst = b"\x00" + u16(len(name)) + name
        exts += u16(0) + u16(len(lst) + 2) + u16(len(lst)) + lst
    if alpn:
        lst = b"".join(bytes([len(p)]) + p.encode() for p in alpn)
        exts += u16(16) + u16(len(lst) + 2) + u16(len(lst)) + lst
    exts += u16(43) + u16(5) + b"\x04" + u16(0x0304) + u16(0x0303)
    exts += u16(10) + u16(4) + u16(2) + u16(0x001d)
    exts += u16(13) + u16(4) + u16(2) + u16(0x0403)
    if pad:
        exts += u16(21) + u16(pad) + b"\x00" * pad
    body = (u16(0x0303) + os.urandom(32) + b"\x20" + os.urandom(32) +
            u16(4) + u16(0x1301) + u16(0xc02b) + b"\x01\x00" + u16(len(exts)) + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    out = b""
    for i in range(0, len(hs), record_size):
        chunk = hs[i:i + record_size]
        out += b"\x16\x03\x01" + u16(len(chunk)) + chunk
    return out


def proxy_v1(src, sport, dst, dport):
    fam = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


def proxy_v2(src, sport, dst, dport):
    if ":" in src:
        fam, af = 0x21, socket.AF_INET6
    else:
        fam, af = 0x11, socket.AF_INET
    addrs = (socket.inet_pton(af, src) + socket.inet_pton(af, dst) +
             u16(sport) + u16(dport))
    return V2_SIG + bytes([0x21, fam]) + u16(len(addrs)) + addrs


# ---- DER, for the RFC 8737 checks ------------------------------------------------

def der_tlv(buf, off):
    """(tag, content_start, content_end) of the TLV at off."""
    tag = buf[off]
    if tag & 0x1f == 0x1f:
        raise AssertionError("high-tag-number form at %d" % off)
    n = buf[off + 1]
    p = off + 2
    if n & 0x80:
        k = n & 0x7f
        if not 1 <= k <= 4:
            raise AssertionError("bad DER length at %d" % off)
        n = int.from_bytes(buf[p:p + k], "big")
        p += k
    if p + n > len(buf):
        raise AssertionError("DER overruns at %d" % off)
    return tag, p, p + n


def der_children(buf, start, end):
    out, off = [], start
    while off < end:
        tag, cs, ce = der_tlv(buf, off)
        out.append((tag, off, cs, ce))
        off = ce
    if off != end:
        raise AssertionError("DER children overrun")
    return out


def der_oid(b):
    first = b[0]
    parts = [first // 40 if first < 80 else 2, first % 40 if first < 80 else first - 80]
    v = 0
    for x in b[1:]:
        v = (v << 7) | (x & 0x7f)
        if not x & 0x80:
            parts.append(v)
            v = 0
    return ".".join(map(str, parts))


def parse_cert(der):
    """The parts of an X.509 certificate the validator rules look at."""
    tag, cs, ce = der_tlv(der, 0)
    if tag != 0x30 or ce != len(der):
        raise AssertionError("not one DER SEQUENCE")
    top = der_children(der, cs, ce)
    if len(top) != 3:
        raise AssertionError("certificate has %d parts" % len(top))
    (t_tag, t_off, t_cs, t_ce), (a_tag, _, a_cs, a_ce), (s_tag, _, s_cs, s_ce) = top
    tbs_fields = der_children(der, t_cs, t_ce)
    i = 1 if tbs_fields[0][0] == 0xa0 else 0
    serial, sigalg, issuer, validity, subject, spki = tbs_fields[i:i + 6]
    exts = []
    for tag, off, fcs, fce in tbs_fields[i + 6:]:
        if tag != 0xa3:
            continue
        _, lcs, lce = der_tlv(der, fcs)
        for _, _, ecs, ece in der_children(der, lcs, lce):
            parts = der_children(der, ecs, ece)
            oid = der_oid(der[parts[0][2]:parts[0][3]])
            critical = False
            if len(parts) == 3:
                if parts[1][0] != 0x01:
                    raise AssertionError("extension %s: no BOOLEAN" % oid)
                critical = der[parts[1][2]:parts[1][3]] != b"\x00"
            val = parts[-1]
            if val[0] != 0x04:
                raise AssertionError("extension %s: extnValue is not an "
                                     "OCTET STRING" % oid)
            exts.append((oid, critical, der[val[2]:val[3]]))
    alg = der_children(der, a_cs, a_ce)
    if s_tag != 0x03 or der[s_cs] != 0:
        raise AssertionError("signature is not a BIT STRING without unused bits")
    return {
        "tbs": der[t_off:t_ce],
        "sig_alg": der_oid(der[alg[0][2]:alg[0][3]]),
        "signature": der[s_cs + 1:s_ce],
        "issuer": der[issuer[1]:issuer[3]],
        "subject": der[subject[1]:subject[3]],
        "extensions": exts,
    }


SIG_DIGESTS = {
    "1.2.840.10045.4.3.2": "sha256", "1.2.840.10045.4.3.3": "sha384",
    "1.2.840.10045.4.3.4": "sha512", "1.2.840.113549.1.1.11": "sha256",
    "1.2.840.113549.1.1.12": "sha384", "1.2.840.113549.1.1.13": "sha512",
}


# ---- upstream servers (threads) -----------------------------------------------------

def read_exact(conn, n):
    out = b""
    while len(out) < n:
        d = conn.recv(n - len(out))
        if not d:
            raise EOFError("EOF inside a PROXY header")
        out += d
    return out


def read_proxy_header(conn):
    """Strips a PROXY v1/v2 header if the stream starts with one: (raw, parsed)."""
    deadline = time.monotonic() + 10
    while True:
        peek = conn.recv(16, socket.MSG_PEEK)
        if not peek:
            return b"", None
        if peek.startswith(b"PROXY ") or (len(peek) >= 12 and peek[:12] == V2_SIG):
            break
        if not (b"PROXY "[:len(peek)] == peek[:6] or V2_SIG[:len(peek)] == peek[:12]):
            return b"", None
        if len(peek) >= 16:
            return b"", None
        if time.monotonic() > deadline:
            return b"", None
        time.sleep(0.002)
    if peek.startswith(b"PROXY "):
        raw = b""
        while not raw.endswith(b"\r\n"):
            raw += read_exact(conn, 1)
            if len(raw) > 107:
                raise AssertionError("PROXY v1 line too long")
        f = raw[:-2].decode().split(" ")
        parsed = {"version": 1, "family": f[1]}
        if f[1] in ("TCP4", "TCP6"):
            parsed.update(src=f[2], dst=f[3], sport=int(f[4]), dport=int(f[5]))
        return raw, parsed
    raw = read_exact(conn, 16)
    n = int.from_bytes(raw[14:16], "big")
    raw += read_exact(conn, n)
    parsed = {"version": 2, "command": raw[12] & 0x0f, "fam": raw[13]}
    a = raw[16:]
    if raw[13] == 0x11:
        parsed.update(family="TCP4", src=socket.inet_ntop(socket.AF_INET, a[0:4]),
                      dst=socket.inet_ntop(socket.AF_INET, a[4:8]),
                      sport=int.from_bytes(a[8:10], "big"),
                      dport=int.from_bytes(a[10:12], "big"))
    elif raw[13] == 0x21:
        parsed.update(family="TCP6", src=socket.inet_ntop(socket.AF_INET6, a[0:16]),
                      dst=socket.inet_ntop(socket.AF_INET6, a[16:32]),
                      sport=int.from_bytes(a[32:34], "big"),
                      dport=int.from_bytes(a[34:36], "big"))
    return raw, parsed


class Upstream:
    """
    A server behind the gateway, one thread per connection. Modes:
      http   HTTP/1.1 keep-alive; answers every request with JSON telling
             who it is and the exact bytes it received (the PROXY header
             too, first on the connection); /after-eof answers only after
             the client's EOF.
      echo   raw echo until EOF, SHA-256 of what it received recorded.
      tls    TLS server (own certificate); replies "<name> sni=<sni>
             got=<data>" to whatever arrives.
      reset  sends a response head and 64 KiB of a longer body, then RST.
    Every connection is a record in self.records (dict), marked done at
    its end.
    """

    def __init__(self, name, mode, cert=None):
        self.name = name
        self.mode = mode
        self.cert = cert
        self.records = []
        self.cond = threading.Condition()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4096)
        self.port = self.sock.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.stopping = False
        if mode == "tls":
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(cert["crt"], cert["key"])
            self.ctx.sni_callback = self._on_sni
        self.thread = threading.Thread(target=self._accept_loop, daemon=True,
                                       name="upstream-" + name)
        self.thread.start()

    @staticmethod
    def _on_sni(sslsock, name, ctx):
        sslsock.edge_sni = name
        return None

    def close(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _accept_loop(self):
        while not self.stopping:
            try:
                conn, addr = self.sock.accept()
            except OSError:
                if self.stopping:
                    return
                time.sleep(0.01)
                continue
            threading.Thread(target=self._serve, args=(conn, addr), daemon=True).start()

    def _serve(self, conn, addr):
        rec = {"peer": addr, "t0": time.monotonic(), "done": False,
               "proxy_raw": b"", "proxy": None, "requests": []}
        with self.cond:
            self.records.append(rec)
        try:
            conn.settimeout(60)
            rec["proxy_raw"], rec["proxy"] = read_proxy_header(conn)
            getattr(self, "_mode_" + self.mode)(conn, rec)
        except Exception as e:      # noqa: BLE001 - recorded for the test
            rec["error"] = repr(e)
        finally:
            try:
                conn.close()
            except OSError:
                pass
            with self.cond:
                rec["done"] = True
                rec["t1"] = time.monotonic()
                self.cond.notify_all()

    def wait_record(self, pred, timeout=10.0, done=True):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for r in self.records:
                    if (r["done"] or not done) and pred(r):
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("upstream %s: no matching connection "
                                         "record within %.0fs" % (self.name, timeout))
                self.cond.wait(left)

    def count(self):
        with self.cond:
            return len(self.records)

    # -- modes --

    def _mode_http(self, conn, rec):
        buf = b""
        n = 0
        while True:
            while b"\r\n\r\n" not in buf:
                d = conn.recv(65536)
                if not d:
                    return
                buf += d
            head, _, rest = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ", 2)
            hdrs = {}
            for l in lines[1:]:
                k, _, v = l.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            cl = int(hdrs.get("content-length", "0"))
            while len(rest) < cl:
                d = conn.recv(65536)
                if not d:
                    break
                rest += d
            raw = head + b"\r\n\r\n" + rest[:cl]
            buf = rest[cl:]
            rec["requests"].append(raw)
            close = hdrs.get("connection", "").lower() == "close" or version == "HTTP/1.0"
            after = None
            if target == "/after-eof":
                after = buf
                while True:
                    d = conn.recv(65536)
                    if not d:
                        break
                    after += d
                buf = b""
                close = True
            info = {"upstream": self.name, "n": n, "method": method,
                    "target": target, "host": hdrs.get("host"),
                    "raw": base64.b64encode(raw).decode(),
                    "proxy_raw": base64.b64encode(rec["proxy_raw"]).decode() if n == 0 else "",
                    "proxy": rec["proxy"] if n == 0 else None,
                    "peer": list(rec["peer"][:2]),
                    "after_eof": None if after is None else base64.b64encode(after).decode()}
            body = json.dumps(info).encode()
            resp = ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    "Content-Length: %d\r\nX-Upstream: %s\r\nConnection: %s\r\n\r\n" % (
                        len(body), self.name, "close" if close else "keep-alive")).encode()
            conn.sendall(resp + (b"" if method == "HEAD" else body))
            n += 1
            if close:
                try:
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                # read what is left so our close is a FIN, not an RST
                conn.settimeout(5)
                try:
                    while conn.recv(65536):
                        pass
                except OSError:
                    pass
                return

    def _mode_echo(self, conn, rec):
        h = hashlib.sha256()
        n = 0
        while True:
            d = conn.recv(262144)
            if not d:
                break
            h.update(d)
            n += len(d)
            conn.sendall(d)
        rec["sha256"] = h.hexdigest()
        rec["bytes"] = n
        conn.shutdown(socket.SHUT_WR)

    def _mode_tls(self, conn, rec):
        s = self.ctx.wrap_socket(conn, server_side=True)
        try:
            self._tls_session(s, rec)
        finally:
            s.close()

    def _tls_session(self, s, rec):
        rec["sni"] = getattr(s, "edge_sni", None)
        rec["tls_version"] = s.version()
        while True:
            try:
                d = s.recv(65536)
            except (ssl.SSLError, OSError):
                break
            if not d:
                break
            rec["requests"].append(d)
            s.sendall(("%s sni=%s got=" % (self.name, rec["sni"])).encode() + d)
        try:
            s.unwrap()
        except (ssl.SSLError, OSError, ValueError):
            pass

    def _mode_reset(self, conn, rec):
        buf = recv_until(conn, b"\r\n\r\n")
        if b"\r\n\r\n" not in buf:
            return
        rec["requests"].append(buf)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n"
                     b"X-Upstream: reset\r\n\r\n" + b"r" * 65536)
        time.sleep(0.3)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


UP = {}                 # name -> Upstream
DOWN_PORTS = []         # two ports nothing listens on
SILENT = []             # a listener whose full accept queue drops every SYN, and its fillers
CERT_DIR = None


def setUpModule():
    global CERT_DIR
    raise_nofile()
    CERT_DIR = tempfile.mkdtemp(prefix="acme-edge-px-certs-")
    certs = {n: make_cert(CERT_DIR, n) for n in ("default-tls", "app-tls", "pp-tls")}
    for name, mode in (("default-http", "http"), ("app-http", "http"),
                       ("new-http", "http"), ("pp-http", "http"),
                       ("echo", "echo"), ("reset", "reset")):
        UP[name] = Upstream(name, mode)
    for name in certs:
        UP[name] = Upstream(name, "tls", cert=certs[name])
    DOWN_PORTS[:] = [closed_port(), closed_port()]
    # Linux drops a SYN when the listener's accept queue is full: with a
    # backlog of 0 and one connection never accepted, a connect to it
    # neither succeeds nor fails, which is what connect_timeout is for.
    lis = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lis.bind(("127.0.0.1", 0))
    lis.listen(0)
    SILENT.append(lis)
    for _ in range(2):
        f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        f.setblocking(False)
        try:
            f.connect(lis.getsockname())
        except BlockingIOError:
            pass
        SILENT.append(f)
        time.sleep(0.1)


def tearDownModule():
    for u in UP.values():
        u.close()
    for sock in SILENT:
        sock.close()
    if CERT_DIR:
        shutil.rmtree(CERT_DIR, ignore_errors=True)


def base_routes():
    """[route NAME] -> keys. Every class's gateway starts with these."""
    down = " ".join("127.0.0.1:%d" % p for p in DOWN_PORTS)
    return collections.OrderedDict([
        ("default", {"http": UP["default-http"].addr, "https": UP["default-tls"].addr,
                     "proxy_protocol": "off"}),
        ("app", {"names": "app.test *.app.test", "http": UP["app-http"].addr,
                 "https": UP["app-tls"].addr}),
        ("pp1", {"names": "pp1.test", "http": UP["pp-http"].addr,
                 "https": UP["pp-tls"].addr, "proxy_protocol": "v1"}),
        ("pp2", {"names": "pp2.test", "http": UP["pp-http"].addr,
                 "https": UP["pp-tls"].addr, "proxy_protocol": "v2"}),
        ("echo", {"names": "echo.test", "http": UP["echo"].addr,
                  "https": UP["echo"].addr}),
        ("reset", {"names": "reset.test", "http": UP["reset"].addr,
                   "https": UP["reset"].addr}),
        ("down", {"names": "down.test", "http": down, "https": down}),
        ("silent", {"names": "silent.test",
                    "http": "127.0.0.1:%d" % SILENT[0].getsockname()[1]}),
    ])


BASE_PROXY = collections.OrderedDict([
    ("workers", "2"),
    ("http_miss", "forward"),
    ("tls_miss", "forward"),
    ("peek_timeout", "5s"),
    ("connect_timeout", "2s"),
    ("idle_timeout", "30s"),
    ("grace", "10s"),
    ("max_connections", "4096"),
    ("trusted_proxies", "127.0.0.0/8"),
])


# ---- the gateway under test ----------------------------------------------------------

class ProxyGateway(Gateway):
    """One `acme-edge run` (master + API + proxy) with its config, log, store,
    listening on IPv6 too (http6, https6)."""

    def __init__(self, tmpdir, name, proxy=None):
        super().__init__(tmpdir, name, BEARER, store_path("px", name))
        self.http6 = free_port(socket.AF_INET6)
        self.https6 = free_port(socket.AF_INET6)
        self.proxy_opts = collections.OrderedDict(BASE_PROXY)
        self.proxy_opts.update(proxy or {})
        self.proxy_opts["io_backend"] = IO_BACKEND or "auto"
        self.routes = base_routes()
        self.killed = False
        self.write_config()

    def config_text(self, proxy=None, routes=None):
        p = collections.OrderedDict(self.proxy_opts)
        for k, v in (proxy or {}).items():
            if v is None:
                p.pop(k, None)
            else:
                p[k] = v
        listen = collections.OrderedDict([
            ("http", "127.0.0.1:%d [::1]:%d" % (self.http, self.http6)),
            ("https", "127.0.0.1:%d [::1]:%d" % (self.https, self.https6))])
        listen.update(p)
        sections = [
            ("store", {"path": self.store, "capacity": 64}),
            ("api", {"listen": "127.0.0.1:%d" % self.api_port, "timeout": "10s",
                     "max_connections": 64, "sweep_interval": "1s"}),
            ("client admin", {"token_sha256": sha256_hex(BEARER), "identifiers": "*"}),
            ("proxy", listen)]
        sections += [("route " + name, keys) for name, keys in (routes or self.routes).items()]
        sections.append(("log", {"level": "info"}))
        return conf_text(sections, "written by tests/integration/test_proxy.py")

    def write_config(self, proxy=None, routes=None):
        super().write_config(self.config_text(proxy, routes))

    def start(self):
        # The master gets SIGTERM (a graceful stop) if this process dies.
        pre = ["setpriv", "--pdeathsig", "TERM"] if shutil.which("setpriv") else []
        self.spawn(pre + [ACME_EDGE, "run", "-c", self.conf])

    def started(self):
        """(part, pid) of every process the supervisor said it started, in order."""
        return [(n, int(p)) for n, p in re.findall(r"run: started (\w+) \(pid (\d+)\)",
                                                   self.log())]

    def child_pids(self):
        return {pid for _, pid in self.started()}

    def proxy_pid(self):
        """The proxy process the supervisor started last."""
        return [pid for n, pid in self.started() if n == "proxy"][-1]

    def kill(self):
        """Last resort (the watchdog's too): SIGKILL master and children by PID."""
        self.killed = True
        pids = [self.proc.pid] + sorted(self.child_pids())
        for pid in pids:
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    if b"acme-edge" not in f.read():
                        continue
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def stop(self, timeout=30.0):
        """SIGTERM to the master; SIGKILL everything after timeout."""
        super().stop(timeout)
        if self.proc is None:
            return None
        # children the master did not reap (it never should leave any)
        for pid in self.child_pids():
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    if b"acme-edge" in f.read():
                        os.kill(pid, signal.SIGKILL)
                        self.rc = "child %d outlived the master" % pid
            except OSError:
                pass
        return self.rc

    def reload(self, proxy=None, routes=None, timeout=15.0):
        """Rewrites the config and SIGHUPs the master; returns once both
        children logged the reload and every worker had a loop turn."""
        self.write_config(proxy, routes)
        log = self.log()
        np, na = log.count("proxy: reloaded"), log.count("api: reloaded")
        self.signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if "reload of" in log[-4000:] and "failed" in log[-4000:]:
                raise AssertionError("reload failed:\n%s" % log[-4000:])
            if log.count("proxy: reloaded") > np and log.count("api: reloaded") > na:
                time.sleep(0.5)     # workers switch at their next loop turn (<= 100 ms)
                return
            time.sleep(0.02)
        raise AssertionError("no reload logged within %.0fs:\n%s" % (timeout, log[-4000:]))

    # -- the API --

    def challenges(self):
        st, _, body = self.api("GET", "/v1/challenges")
        if st != 200:
            raise AssertionError("GET /v1/challenges: %d %r" % (st, body))
        return json.loads(body)["challenges"]

    def wait_metric(self, key, pred, timeout=5.0):
        """Polls /metrics until pred(value) holds; the last value seen. A
        list of keys stands for the sum of their values (None if none)."""
        deadline = time.monotonic() + timeout
        keys = key if isinstance(key, list) else [key]
        while True:
            m = self.metrics()
            got = [m[k] for k in keys if k in m]
            v = sum(got) if got else None
            if pred(v) or time.monotonic() > deadline:
                return v
            time.sleep(0.05)


# ---- the base of every test class ----------------------------------------------------

class GatewayCase(unittest.TestCase):
    NAME = "gw"
    PROXY = {}
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="acme-edge-px-")
        cls.expect = collections.Counter()      # (kind, result) -> challenges made
        cls.failed = 0
        cls.gw = ProxyGateway(cls.tmp, cls.NAME, proxy=cls.PROXY)
        try:
            cls.gw.start()
            cls.gw.wait_ready()
        except BaseException:
            cls._finish(check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        cls._finish(check=True)

    @classmethod
    def _finish(cls, check):
        problems = []
        gw = cls.gw
        try:
            if check and gw.alive() and not cls.failed:
                problems += cls._final_checks()
        except Exception as e:      # noqa: BLE001
            problems.append("final checks: %r" % e)
        finally:
            rc, log = gw.finish()
            if gw.proc is not None and rc != 0 and \
                    not getattr(cls, "expect_rc_checked", False):
                problems.append("acme-edge run exited with %r (want 0 after SIGTERM)" % rc)
            marks = sanitizer_marks(log)
            if marks:
                problems.append("log has %r" % marks[0])
            if problems or cls.failed:
                sys.stderr.write("\n----- %s gateway log (tail) -----\n%s\n----- end -----\n"
                                 % (cls.__name__, log[-30000:]))
            shutil.rmtree(cls.tmp, ignore_errors=True)
        if problems:
            raise AssertionError("%s: %s" % (cls.__name__, "; ".join(problems)))

    @classmethod
    def _final_checks(cls):
        problems = []
        m = cls.gw.metrics()
        got = {k: int(m.get(M(CH, kind=k[0], result=k[1]), -1))
               for k in [("http-01", "answered"), ("http-01", "missed"),
                         ("tls-alpn-01", "answered"), ("tls-alpn-01", "missed")]}
        want = {k: cls.expect.get(k, 0) for k in got}
        if got != want:
            problems.append("%s: got %r, the class made %r" % (CH, got, want))
        # every challenge answered has its log line (misses are rate-limited)
        deadline = time.monotonic() + 3
        while True:
            log = cls.gw.log()
            lines = {r: len(re.findall(r"proxy: (?:http-01|tls-alpn-01) %s: client " % r, log))
                     for r in ("answered", "missed")}
            n_ans = want[("http-01", "answered")] + want[("tls-alpn-01", "answered")]
            n_miss = want[("http-01", "missed")] + want[("tls-alpn-01", "missed")]
            if lines["answered"] >= n_ans or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if lines["answered"] != n_ans:
            problems.append("%d 'answered' log lines for %d challenges answered" %
                            (lines["answered"], n_ans))
        # Every line: UTC time to the millisecond, the process's own pid
        # (the supervisor's children each log with theirs), the level.
        pids = collections.defaultdict(set)
        for line in log.splitlines():
            lm = LOG_LINE.match(line)
            if not lm:
                problems.append("a log line out of format: %r" % line[:160])
                break
            pids[lm.group(2)].add(int(lm.group(1)))
        if len(pids["proxy"]) != 1 or pids["proxy"] & pids["run"]:
            problems.append("log pids: proxy %r, run %r" % (pids["proxy"], pids["run"]))
        if (lines["missed"] != n_miss) if n_miss <= 20 else not 20 <= lines["missed"] <= n_miss:
            problems.append("%d 'missed' log lines for %d challenges missed" %
                            (lines["missed"], n_miss))
        stale = m.get(M("acmeedge_proxy_stale_completions_total"), 0)
        if stale:
            problems.append("%d stale completions" % stale)
        active = cls.gw.wait_metric(M("acmeedge_proxy_connections_active"),
                                    lambda v: v == 0, timeout=10)
        if active != 0:
            problems.append("acmeedge_proxy_connections_active stays at %r after the "
                            "class's tests (leaked connections)" % active)
        for name in ("acmeedge_proxy_relay_buffers_held", "acmeedge_proxy_relay_pipes_held"):
            held = cls.gw.metrics().get(M(name))
            if held != 0:
                problems.append("%s is %r with no connection left (leaked)" % (name, held))
        return problems

    def setUp(self):
        self.closers = []
        self._fail0 = result_failures(self)
        self.watchdog = threading.Timer(TEST_LIMIT_S, self._watchdog)
        self.watchdog.daemon = True
        self.watchdog.start()

    def _watchdog(self):
        sys.stderr.write("\n%s: over %d s: killing the gateway\n" % (self.id(), TEST_LIMIT_S))
        self.gw.kill()

    def tearDown(self):
        self.watchdog.cancel()
        for c in reversed(self.closers):
            try:
                c()
            except Exception:       # noqa: BLE001
                pass
        if not outcome_ok(self, self._fail0):
            type(self).failed += 1
        if self.gw.killed:
            self.fail("the watchdog killed the gateway")

    # -- counting --

    def count(self, kind, result, n=1):
        type(self).expect[(kind, result)] += n

    def metric_deltas(self, before, want, timeout=3.0):
        """Waits until every metric in want moved by exactly its value."""
        deadline = time.monotonic() + timeout
        while True:
            now = self.gw.metrics()
            got = {k: int(now.get(k, 0) - before.get(k, 0)) for k in want}
            if got == want or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(got, want, "metric deltas")
        return now

    def wait_log(self, pattern, n=1, timeout=3.0):
        """Waits until the run's log holds exactly n lines matching pattern
        (workers write their lines in batches, once per loop turn)."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.findall(pattern, self.gw.log())
            if len(found) >= n or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(len(found), n, "want %d log line(s) matching /%s/" % (n, pattern))

    # -- clients --

    def curl(self, url, host=None, head=False, timeout=10):
        hdr = os.path.join(self.tmp, "curl.h")
        body = os.path.join(self.tmp, "curl.b")
        for f in (hdr, body):
            if os.path.exists(f):
                os.unlink(f)
        args = ["curl", "-sS", "-g", "--max-time", str(timeout), "-D", hdr, "-o", body,
                "-w", "%{http_code} %{time_total}"]
        if head:
            args.append("-I")
        if host:
            args += ["-H", "Host: " + host]
        p = subprocess.run(args + [url], capture_output=True, timeout=timeout + 10)
        self.assertEqual(p.returncode, 0, "curl %s: %s" % (url, p.stderr.decode()))
        code, t = p.stdout.decode().split()
        with open(hdr, "rb") as f:
            blocks = f.read().decode("latin-1").strip().split("\r\n\r\n")
        headers = {}
        for l in blocks[-1].split("\r\n")[1:]:
            k, _, v = l.partition(":")
            headers[k.strip().lower()] = v.strip()
        with open(body, "rb") as f:
            data = f.read()
        return int(code), headers, data, float(t)

    def url(self, path, v6=False):
        if v6:
            return "http://[::1]:%d%s" % (self.gw.http6, path)
        return "http://127.0.0.1:%d%s" % (self.gw.http, path)

    def s_client(self, sni, version, v6=False, alpn="acme-tls/1", timeout=20):
        """openssl s_client: (returncode, all output, cert DER or None, ALPN, protocol)."""
        target = "[::1]:%d" % self.gw.https6 if v6 else "127.0.0.1:%d" % self.gw.https
        args = ["openssl", "s_client", "-connect", target, "-servername", sni,
                "-ign_eof", "-tls1_2" if version == "1.2" else "-tls1_3"]
        if alpn:
            args += ["-alpn", alpn]
        p = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout)
        out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
        m = re.search(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----",
                      out, re.S)
        der = base64.b64decode("".join(m.group(1).split())) if m else None
        a = re.search(r"^ALPN protocol: (\S+)", out, re.M)
        v = re.search(r"^New, (TLSv[\d.]+), Cipher", out, re.M)
        return p.returncode, out, der, a.group(1) if a else None, v.group(1) if v else None

    def tls_connect(self, sni, alpn=None, v6=False, port=None, timeout=10):
        """Python ssl through the proxy's HTTPS port."""
        host = "::1" if v6 else "127.0.0.1"
        s = connect(port or (self.gw.https6 if v6 else self.gw.https), host, timeout)
        try:
            return client_ctx(alpn).wrap_socket(s, server_hostname=sni)
        except BaseException:
            s.close()
            raise

    def _transfer(self, size, pace, out):
        """A paced echo transfer through the relay; out gets the outcome."""
        try:
            s = connect(self.gw.http, timeout=60)
            head = b"POST /slow HTTP/1.1\r\nHost: echo.test\r\n\r\n"
            sent = hashlib.sha256(head)
            block = os.urandom(64 * 1024)
            state = {"recv": 0}

            def rx():
                h = hashlib.sha256()
                while True:
                    try:
                        d = s.recv(1 << 16)
                    except OSError as e:
                        state["rx_error"] = repr(e)
                        break
                    if not d:
                        break
                    h.update(d)
                    state["recv"] += len(d)
                state["digest"] = h.hexdigest()

            t = threading.Thread(target=rx, daemon=True)
            t.start()
            out["rx"] = state
            s.sendall(head)
            for i in range(size // len(block)):
                chunk = block[i % 64:] + block[:i % 64]
                sent.update(chunk)
                s.sendall(chunk)
                time.sleep(pace)
            s.shutdown(socket.SHUT_WR)
            t.join(60)
            s.close()
            out["ok"] = (state.get("digest") == sent.hexdigest() and
                         state["recv"] == len(head) + size)
            out.update(state)
        except Exception as e:      # noqa: BLE001
            out["error"] = repr(e)
        out["done"] = True

    # -- RFC 8737, as the validators check it --

    def check_acme_cert(self, der, identifier, ka):
        """Applies every rule a validator checks (RFC 8737) to a served leaf."""
        self.assertIsNotNone(der, "no certificate served")
        c = parse_cert(der)
        pem = ssl.DER_cert_to_PEM_cert(der).encode()
        # self-signed: subject = issuer ...
        self.assertEqual(c["subject"], c["issuer"], "subject != issuer (DER)")
        names = openssl("x509", "-noout", "-subject", "-issuer", "-nameopt", "RFC2253",
                        data=pem).decode().splitlines()
        self.assertEqual(names[0].split("=", 1)[1], names[1].split("=", 1)[1], names)
        # ... and the signature verifies with the certificate's own key
        with tempfile.TemporaryDirectory(dir=self.tmp) as d:
            paths = {n: os.path.join(d, n) for n in ("tbs", "sig", "pub", "bad")}
            with open(paths["tbs"], "wb") as f:
                f.write(c["tbs"])
            with open(paths["bad"], "wb") as f:
                f.write(c["tbs"][:-1] + bytes([c["tbs"][-1] ^ 1]))
            with open(paths["sig"], "wb") as f:
                f.write(c["signature"])
            with open(paths["pub"], "wb") as f:
                f.write(openssl("x509", "-noout", "-pubkey", data=pem))
            if c["sig_alg"] == "1.3.101.112":
                verify = ["pkeyutl", "-verify", "-pubin", "-inkey", paths["pub"],
                          "-rawin", "-sigfile", paths["sig"], "-in"]
            else:
                self.assertIn(c["sig_alg"], SIG_DIGESTS, "unknown signature algorithm")
                verify = ["dgst", "-" + SIG_DIGESTS[c["sig_alg"]], "-verify", paths["pub"],
                          "-signature", paths["sig"]]
            p = subprocess.run(["openssl"] + verify + [paths["tbs"]], capture_output=True,
                               timeout=20)
            self.assertEqual(p.returncode, 0, "self-signature does not verify: %s" %
                             (p.stdout + p.stderr).decode(errors="replace"))
            p = subprocess.run(["openssl"] + verify + [paths["bad"]], capture_output=True,
                               timeout=20)
            self.assertNotEqual(p.returncode, 0, "a corrupted TBS verified: the "
                                                 "signature check is broken")
        # exactly one SAN extension, whose DER is exactly one name: the identifier
        sans = [e for e in c["extensions"] if e[0] == SAN_OID]
        self.assertEqual(len(sans), 1, "want exactly one SAN extension")
        val = sans[0][2]
        tag, cs, ce = der_tlv(val, 0)
        self.assertEqual((tag, ce), (0x30, len(val)), "SAN is not one SEQUENCE")
        gns = der_children(val, cs, ce)
        self.assertEqual(len(gns), 1, "want exactly one name in the SAN")
        gtag, _, gcs, gce = gns[0]
        try:
            ip = ipaddress.ip_address(identifier.strip("[]"))
            self.assertEqual(gtag, 0x87, "an IP identifier needs an iPAddress SAN")
            self.assertEqual(val[gcs:gce], ip.packed)
        except ValueError:
            self.assertEqual(gtag, 0x82, "a DNS identifier needs a dNSName SAN")
            self.assertEqual(val[gcs:gce], identifier.lower().encode())
        # a critical acmeIdentifier holding OCTET STRING(32) = SHA-256(key authorization)
        acme = [e for e in c["extensions"] if e[0] == ACME_OID]
        self.assertEqual(len(acme), 1, "want exactly one acmeIdentifier extension")
        self.assertTrue(acme[0][1], "acmeIdentifier is not critical")
        self.assertEqual(acme[0][2], b"\x04\x20" + hashlib.sha256(ka.encode()).digest(),
                         "acmeIdentifier is not SHA-256(key authorization)")
        # the same seen by openssl's own parser
        text = openssl("x509", "-noout", "-text", data=pem).decode()
        self.assertEqual(text.count("X509v3 Subject Alternative Name"), 1, text)
        self.assertRegex(text, r"(1\.3\.6\.1\.5\.5\.7\.1\.31|acmeIdentifier)\s*:\s*critical")


# =====================================================================================
# Challenges: http-01 and tls-alpn-01 answered by the proxy, misses, observability
# =====================================================================================

class ChallengeTest(GatewayCase):
    NAME = "challenge"

    def test_http01_curl_get(self):
        tok = new_token()
        ka = keyauth(tok)
        self.gw.put_http01(tok)
        code, h, body, t = self.curl(self.url("/.well-known/acme-challenge/" + tok))
        self.count("http-01", "answered")
        self.assertEqual(code, 200)
        self.assertEqual(h.get("content-type"), "application/octet-stream")
        self.assertEqual(h.get("content-length"), str(len(ka)))
        self.assertEqual(body, ka.encode())
        figure("http-01 answer through curl: %.1f ms", t * 1000)
        # the same over the IPv6 listener
        code, h, body, _ = self.curl(self.url("/.well-known/acme-challenge/" + tok, v6=True))
        self.count("http-01", "answered")
        self.assertEqual((code, body), (200, ka.encode()))

    def test_http01_head(self):
        tok = new_token()
        ka = keyauth(tok)
        self.gw.put_http01(tok)
        code, h, body, _ = self.curl(self.url("/.well-known/acme-challenge/" + tok), head=True)
        self.count("http-01", "answered")
        self.assertEqual(code, 200)
        self.assertEqual(h.get("content-type"), "application/octet-stream")
        self.assertEqual(h.get("content-length"), str(len(ka)))
        # On one connection: HEAD then GET; the HEAD answer carries no body,
        # so the next bytes are exactly the GET's answer.
        c = RawConn(self.gw.http)
        self.closers.append(c.close)
        path = "/.well-known/acme-challenge/" + tok
        c.send(http_req("HEAD", path, "x.test", close=False) +
               http_req("GET", path, "x.test", close=False))
        st, h, body = c.response("HEAD")
        self.count("http-01", "answered")
        self.assertEqual((st, body), (200, b""))
        self.assertEqual(h.get("content-length"), str(len(ka)))
        self.assertTrue(c.buf == b"" or c.buf.startswith(b"HTTP/1.1 200"),
                        "bytes after a HEAD answer: %r" % c.buf[:80])
        st, h, body = c.response("GET")
        self.count("http-01", "answered")
        self.assertEqual((st, body), (200, ka.encode()))

    def _read_to_fin(self, sock):
        """Everything until the proxy's FIN; a reset fails the test."""
        out = b""
        sock.settimeout(10)
        while True:
            try:
                d = sock.recv(65536)
            except ConnectionResetError:
                self.fail("reset after %d bytes: the answer may be lost" % len(out))
            if not d:
                return out
            out += d

    def test_http01_close_ends_with_fin(self):
        tok = new_token()
        ka = keyauth(tok)
        self.gw.put_http01(tok)
        path = "/.well-known/acme-challenge/" + tok
        # Connection: close and everything read: the answer, then FIN.
        s = connect(self.gw.http)
        self.closers.append(s.close)
        s.sendall(http_req("GET", path, "c.test", close=True))
        st, h, body, _ = parse_http(self._read_to_fin(s))
        self.count("http-01", "answered")
        self.assertEqual((st, body, h.get("connection")), (200, ka.encode(), "close"))
        # A body still on its way when the answer leaves: the proxy reads
        # and drops it before closing, so the client sees FIN, never RST.
        s = connect(self.gw.http)
        self.closers.append(s.close)
        body_len = 200000
        s.sendall(http_req("GET", path, "c.test", close=True,
                           extra={"Content-Length": str(body_len)}))
        head = b""
        s.settimeout(10)
        while ka.encode() not in head:
            d = s.recv(65536)
            self.assertTrue(d, "closed before the answer")
            head += d
        self.count("http-01", "answered")
        time.sleep(0.2)
        s.sendall(os.urandom(body_len))
        s.shutdown(socket.SHUT_WR)
        self._read_to_fin(s)

    def test_http01_keep_alive_pipelined(self):
        t1, t2 = new_token(), new_token()
        self.gw.put_http01(t1)
        self.gw.put_http01(t2)
        c = RawConn(self.gw.http)
        self.closers.append(c.close)
        p1, p2 = ("/.well-known/acme-challenge/" + t for t in (t1, t2))
        # two pipelined requests in one segment: two answers, in order
        c.send(http_req("GET", p1, "a.test", close=False) +
               http_req("GET", p2, "a.test", close=False))
        for t in (t1, t2):
            st, h, body = c.response()
            self.count("http-01", "answered")
            self.assertEqual((st, body), (200, keyauth(t).encode()))
            self.assertEqual(h.get("connection", "").lower(), "keep-alive", h)
        # a third one later on the same connection
        time.sleep(0.2)
        c.send(http_req("GET", p1, "a.test", close=False))
        st, _, body = c.response()
        self.count("http-01", "answered")
        self.assertEqual((st, body), (200, keyauth(t1).encode()))
        # then an ordinary request on the same connection is relayed, byte-exact
        req = http_req("GET", "/after/answers?x=1", "app.test")
        c.send(req)
        st, h, body = c.response()
        info = json.loads(body)
        self.assertEqual(st, 200)
        self.assertEqual(info["upstream"], "app-http")
        self.assertEqual(base64.b64decode(info["raw"]), req)
        c.sock.settimeout(5)
        self.assertEqual(recv_all(c.sock), b"", "bytes after the upstream's answer")
        # the same pipelined in one segment: the relay gets exactly the second request
        c = RawConn(self.gw.http)
        self.closers.append(c.close)
        req = http_req("POST", "/pipelined", "www.app.test", body=b"payload")
        c.send(http_req("GET", p2, "a.test", close=False) + req)
        st, _, body = c.response()
        self.count("http-01", "answered")
        self.assertEqual((st, body), (200, keyauth(t2).encode()))
        st, h, body = c.response()
        self.assertEqual((st, h.get("x-upstream")), (200, "app-http"))
        self.assertEqual(base64.b64decode(json.loads(body)["raw"]), req)

    def test_http01_bound_entry_and_host(self):
        tok = new_token()
        ka = keyauth(tok).encode()
        self.gw.put_http01(tok, identifier="bound.test")
        path = "/.well-known/acme-challenge/" + tok
        code, _, body, _ = self.curl(self.url(path), host="bound.test")
        self.count("http-01", "answered")
        self.assertEqual((code, body), (200, ka))
        # the name as validators send it: any case, Pebble adds the port
        for host in ("BOUND.test", "bound.test:%d" % self.gw.http):
            st, h, body, _ = parse_http(exchange(self.gw.http, http_req("GET", path, host)))
            self.count("http-01", "answered")
            self.assertEqual((st, body), (200, ka), host)
        # another name: a miss, forwarded (http_miss = forward) byte-exact
        for host in ("other.test", "bound.test.evil.test"):
            req = http_req("GET", path, host)
            st, h, body, _ = parse_http(exchange(self.gw.http, req))
            self.count("http-01", "missed")
            self.assertEqual(st, 200)
            info = json.loads(body)
            self.assertEqual(info["upstream"], "default-http", host)
            self.assertEqual(base64.b64decode(info["raw"]), req)
        # an IP identifier: Host is the bracketed literal (with a port)
        tok6 = new_token()
        self.gw.put_http01(tok6, identifier="::1")
        path6 = "/.well-known/acme-challenge/" + tok6
        code, _, body, _ = self.curl(self.url(path6, v6=True))      # Host: [::1]:port
        self.count("http-01", "answered")
        self.assertEqual((code, body), (200, keyauth(tok6).encode()))
        st, _, body, _ = parse_http(exchange(self.gw.http6, http_req("GET", path6, "[::2]"),
                                             host="::1"))
        self.count("http-01", "missed")
        self.assertEqual(json.loads(body)["upstream"], "default-http")

    def test_http01_unknown_token_forwarded_then_404_after_reload(self):
        tok = new_token()
        req = http_req("GET", "/.well-known/acme-challenge/" + tok, "example.test",
                       extra={"Accept": "*/*", "X-Probe": "1"})
        st, h, body, _ = parse_http(exchange(self.gw.http, req))
        self.count("http-01", "missed")
        self.assertEqual((st, h.get("x-upstream")), (200, "default-http"))
        self.assertEqual(base64.b64decode(json.loads(body)["raw"]), req,
                         "the upstream did not get the exact request bytes")
        try:
            self.gw.reload(proxy={"http_miss": "404"})
            code, h, body, _ = self.curl(self.url("/.well-known/acme-challenge/" + tok))
            self.count("http-01", "missed")
            self.assertEqual(code, 404, body)
            self.assertNotIn("x-upstream", h)
            # a bound entry asked with another Host is a miss too: 404
            t2 = new_token()
            self.gw.put_http01(t2, identifier="b404.test")
            code, _, _, _ = self.curl(self.url("/.well-known/acme-challenge/" + t2),
                                      host="other.test")
            self.count("http-01", "missed")
            self.assertEqual(code, 404)
            # whatever is not a challenge path is still relayed
            code, h, _, _ = self.curl(self.url("/.well-known/other/" + tok))
            self.assertEqual((code, h.get("x-upstream")), (200, "default-http"))
        finally:
            self.gw.reload()
        code, h, _, _ = self.curl(self.url("/.well-known/acme-challenge/" + tok))
        self.count("http-01", "missed")
        self.assertEqual((code, h.get("x-upstream")), (200, "default-http"),
                         "http_miss = forward is not back after the second reload")

    def _tls_answer(self, identifier, ka, version, v6=False):
        rc, out, der, alpn, proto = self.s_client(sni_of(identifier), version, v6=v6)
        self.count("tls-alpn-01", "answered")
        self.assertEqual(alpn, "acme-tls/1", out)
        self.assertEqual(proto, "TLSv" + version, out)
        self.check_acme_cert(der, identifier, ka)
        return der

    def test_tlsalpn01_dns_tls12_and_tls13(self):
        tok = new_token()
        ka = keyauth(tok)
        self.gw.put_tls("alpn.test", ka)
        d12 = self._tls_answer("alpn.test", ka, "1.2")
        d13 = self._tls_answer("alpn.test", ka, "1.3")
        self.assertEqual(d12, d13, "the stored certificate changed between handshakes")
        # a validator-like client: only acme-tls/1 offered, no application data,
        # close_notify at the end
        s = self.tls_connect("alpn.test", alpn=["acme-tls/1"])
        self.closers.append(s.close)
        self.count("tls-alpn-01", "answered")
        self.assertEqual(s.selected_alpn_protocol(), "acme-tls/1")
        self.assertEqual(s.getpeercert(binary_form=True), d13)
        s.settimeout(5)
        self.assertEqual(s.recv(100), b"", "application data or no close_notify")

    def test_tlsalpn01_ip_identifiers(self):
        ka4, ka6 = keyauth(new_token()), keyauth(new_token())
        self.gw.put_tls("127.0.0.1", ka4)
        self.gw.put_tls("::1", ka6)
        self.assertEqual(sni_of("127.0.0.1"), "1.0.0.127.in-addr.arpa")
        for version in ("1.2", "1.3"):
            self._tls_answer("127.0.0.1", ka4, version)
            self._tls_answer("::1", ka6, version, v6=True)

    def test_tls_miss_forward_then_reject_after_reload(self):
        # default tls_miss = forward: acme-tls/1 for an unknown name is relayed
        s = self.tls_connect("nochallenge.test", alpn=["acme-tls/1"])
        self.closers.append(s.close)
        self.count("tls-alpn-01", "missed")
        self.assertEqual(hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest(),
                         UP["default-tls"].cert["fp"], "not the upstream's certificate")
        s.sendall(b"hello\n")
        self.assertEqual(s.recv(200), b"default-tls sni=nochallenge.test got=hello\n")
        s.close()
        try:
            self.gw.reload(proxy={"tls_miss": "reject"})
            m0 = self.gw.metrics()
            rc, out, der, alpn, _ = self.s_client("nochallenge.test", "1.3")
            self.count("tls-alpn-01", "missed")
            self.assertIsNone(der, "a certificate was served under tls_miss = reject")
            self.assertNotEqual(rc, 0, out)
            self.assertRegex(out, r"(?i)unrecognized name.*alert number 112", out)
            # byte-exact: one fatal unrecognized_name alert, then EOF
            bio = BioTls("nochallenge.test", alpn=["acme-tls/1"])
            got = exchange(self.gw.https, bio.first_flight())
            self.count("tls-alpn-01", "missed")
            self.assertEqual(got, bytes.fromhex("15030300020270"))
            self.metric_deltas(m0, {M(REFUSED, reason="acme_tls_rejected"): 2})
            # TLS without acme-tls/1 is still relayed
            s = self.tls_connect("nochallenge.test", alpn=["h2", "http/1.1"])
            self.closers.append(s.close)
            self.assertEqual(hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest(),
                             UP["default-tls"].cert["fp"])
            s.close()
        finally:
            self.gw.reload()

    def test_acme_tls_without_sni_is_a_miss(self):
        # acme-tls/1 names no challenge without an SNI: a miss, relayed
        # under tls_miss = forward (the default route), refused under reject.
        gw = self.gw
        s = connect(gw.https)
        self.closers.append(s.close)
        bio = BioTls(None, alpn=["acme-tls/1"])
        s.sendall(bio.first_flight())
        bio.finish(s)
        self.count("tls-alpn-01", "missed")
        self.assertEqual(hashlib.sha256(bio.cert_der()).hexdigest(),
                         UP["default-tls"].cert["fp"], "not the upstream's certificate")
        s.close()
        self.wait_log(r"proxy: tls-alpn-01 missed: client 127\.0\.0\.1:\d+, identifier -, "
                      r"key -, forwarded")
        try:
            gw.reload(proxy={"tls_miss": "reject"})
            m0 = gw.metrics()
            got = exchange(gw.https, BioTls(None, alpn=["acme-tls/1"]).first_flight())
            self.count("tls-alpn-01", "missed")
            self.assertEqual(got, bytes.fromhex("15030300020270"),
                             "not one unrecognized_name alert")
            self.metric_deltas(m0, {M(REFUSED, reason="acme_tls_rejected"): 1,
                                    M(CH, kind="tls-alpn-01", result="missed"): 1})
        finally:
            gw.reload()

    def test_peer_bytes_escaped_in_the_log(self):
        # An SNI may hold any byte but NUL: a newline in it must not start
        # a forged log line. A request target may hold bytes past ASCII and
        # backslashes, the escape character itself.
        gw = self.gw
        forged = ("2026-01-01t00:00:00.000z acme-edge[1] info: proxy: tls-alpn-01 "
                  "answered for forged.test")
        s = connect(gw.https)
        s.sendall(crafted_hello("evil.test\n" + forged, ["acme-tls/1"]))
        recv_all(s)
        s.close()
        self.count("tls-alpn-01", "missed")
        self.wait_log(r"proxy: tls-alpn-01 missed: client 127\.0\.0\.1:\d+, identifier "
                      r"evil\.test\\x0a2026-01-01t00:00:00\.000z acme-edge\[1\] info: "
                      r"proxy: tls-alpn-01 answered for forged\.test, key evil\.test\\x0a2026")
        tok = "t0k\\x0a\u00e9".encode("utf-8")
        exchange(gw.http, b"GET /.well-known/acme-challenge/" + tok +
                 b" HTTP/1.1\r\nHost: esc.test\r\nConnection: close\r\n\r\n")
        self.count("http-01", "missed")
        self.wait_log(r"proxy: http-01 missed: client 127\.0\.0\.1:\d+, identifier "
                      r"esc\.test, key t0k\\x5cx0a\\xc3\\xa9, forwarded")
        log = gw.log()
        self.assertNotRegex(log, r"(?m)^2026-01-01t", "a forged log line")
        self.assertNotIn("t0k\\x0a", log)
        self.assertNotIn("\u00e9", log)

    def test_observability_logs_last_hit_metrics(self):
        tok, miss = new_token(), new_token()
        self.gw.put_http01(tok)
        ka_tls = keyauth(new_token())
        self.gw.put_tls("obs.test", ka_tls)
        # http-01 answered and missed, from known client ports
        s = connect(self.gw.http)
        port_ans = s.getsockname()[1]
        s.sendall(http_req("GET", "/.well-known/acme-challenge/" + tok, "obs.test"))
        self.assertEqual(parse_http(recv_all(s))[0], 200)
        s.close()
        self.count("http-01", "answered")
        s = connect(self.gw.http)
        port_miss = s.getsockname()[1]
        s.sendall(http_req("GET", "/.well-known/acme-challenge/" + miss, "obs.test"))
        self.assertEqual(parse_http(recv_all(s))[0], 200)
        s.close()
        self.count("http-01", "missed")
        # tls-alpn-01 answered and missed
        s = connect(self.gw.https)
        port_tls = s.getsockname()[1]
        bio = BioTls("obs.test", alpn=["acme-tls/1"])
        s.sendall(bio.first_flight())
        bio.finish(s)
        self.assertEqual(bio.alpn(), "acme-tls/1")
        self.assertEqual(bio.read_until_close(s), b"")
        self.assertTrue(bio.close_notify, "no close_notify after the acme-tls/1 handshake")
        s.close()
        self.count("tls-alpn-01", "answered")
        s = self.tls_connect("obs-miss.test", alpn=["acme-tls/1"])
        port_tls_miss = s.getsockname()[1]
        s.close()
        self.count("tls-alpn-01", "missed")

        # one log line each: client address, identifier, kind, outcome
        want = [
            r"proxy: http-01 answered: client 127\.0\.0\.1:%d, identifier obs\.test, key %s"
            % (port_ans, re.escape(tok)),
            r"proxy: http-01 missed: client 127\.0\.0\.1:%d, identifier obs\.test, key %s, "
            r"forwarded" % (port_miss, re.escape(miss)),
            r"proxy: tls-alpn-01 answered: client 127\.0\.0\.1:%d, identifier obs\.test, "
            r"key obs\.test, TLSv1\.3" % port_tls,
            r"proxy: tls-alpn-01 missed: client 127\.0\.0\.1:%d, identifier obs-miss\.test, "
            r"key obs-miss\.test, forwarded" % port_tls_miss,
        ]
        for w in want:
            self.wait_log(w)

        # GET /v1/challenges: last_hit with the peer address
        entries = {(e["kind"], e.get("token") or e.get("name")): e
                   for e in self.gw.challenges()}
        e = entries[("http-01", tok)]
        self.assertIn("last_hit", e, e)
        self.assertEqual(e["last_hit"]["peer"], "127.0.0.1:%d" % port_ans, e)
        self.assertEqual(e["last_hit"]["outcome"], "answered", e)
        self.assertRegex(e["last_hit"]["time"], r"^\d{4}-\d\d-\d\dT", e)
        e = entries[("tls-alpn-01", "obs.test")]
        self.assertEqual(e["last_hit"]["peer"], "127.0.0.1:%d" % port_tls, e)
        self.assertEqual(e["last_hit"]["outcome"], "answered", e)

        # /metrics: the challenge counters match what this class did so far
        m = self.gw.metrics()
        for (kind, result), n in sorted(type(self).expect.items()):
            self.assertEqual(int(m.get(M(CH, kind=kind, result=result), -1)), n,
                             "%s{kind=%s,result=%s}" % (CH, kind, result))
        backends = [dict(l)["backend"] for (n, l), v in m.items()
                    if n == "acmeedge_io_backend_info" and v == 1]
        self.assertEqual(len(backends), 1, "acmeedge_io_backend_info")
        if IO_BACKEND and IO_BACKEND != "auto":
            self.assertEqual(backends[0], IO_BACKEND)
        else:
            self.assertIn(backends[0], ("io_uring", "epoll"))
        self.assertEqual(m.get(M("acmeedge_proxy_workers")), 2)
        figure("io backend: %s", backends[0])


# =====================================================================================
# Relaying: passthrough, routes, PROXY protocol, throughput, reload under traffic
# =====================================================================================

class RelayTest(GatewayCase):
    NAME = "relay"

    def test_passthrough_sees_upstream_certificate(self):
        for v6 in (False, True):
            s = self.tls_connect("www.default.test", alpn=["http/1.1"], v6=v6)
            self.closers.append(s.close)
            der = s.getpeercert(binary_form=True)
            self.assertEqual(hashlib.sha256(der).hexdigest(), UP["default-tls"].cert["fp"])
            for i in range(3):
                s.sendall(b"ping %d\n" % i)
                self.assertEqual(s.recv(200),
                                 b"default-tls sni=www.default.test got=ping %d\n" % i)
            s.close()

    def test_sni_routes(self):
        cases = [("app.test", "app-tls"), ("www.app.test", "app-tls"),
                 ("other.test", "default-tls"), ("xapp.test", "default-tls"),
                 (None, "default-tls")]
        for sni, up in cases:
            s = self.tls_connect(sni)
            self.closers.append(s.close)
            self.assertEqual(hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest(),
                             UP[up].cert["fp"], "SNI %r" % sni)
            s.sendall(b"x\n")
            self.assertEqual(s.recv(200), ("%s sni=%s got=x\n" % (up, sni)).encode())
            s.close()

    def test_host_routes(self):
        cases = [("app.test", "app-http"), ("www.app.test", "app-http"),
                 ("APP.test:8080", "app-http"), ("other.test", "default-http"),
                 ("xapp.test", "default-http")]
        for host, up in cases:
            code, h, body, _ = self.curl(self.url("/route/check"), host=host)
            self.assertEqual((code, h.get("x-upstream")), (200, up), host)
            self.assertEqual(json.loads(body)["host"], host)

    def test_h2_prior_knowledge_relayed(self):
        # HTTP/2 with prior knowledge opens with a preface no HTTP/1 parser
        # takes; it asks no challenge, so it goes to the default route as
        # it came (the HTTP/1 upstream here reads its first line).
        preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
        for pieces in ([preface + settings], [preface[:5], preface[5:] + settings]):
            s = connect(self.gw.http)
            self.closers.append(s.close)
            for p in pieces:
                s.sendall(p)
                time.sleep(0.05)
            st, body = read_http(s)
            s.close()
            self.assertEqual(st, 200, body)
            info = json.loads(body)
            self.assertEqual(info["upstream"], "default-http")
            self.assertEqual(base64.b64decode(info["raw"]), b"PRI * HTTP/2.0\r\n\r\n")

    def test_proxy_protocol_to_upstream(self):
        gw = self.gw
        for route, version in (("pp1.test", 1), ("pp2.test", 2)):
            for v6 in (False, True):
                host = "::1" if v6 else "127.0.0.1"
                port = gw.http6 if v6 else gw.http
                s = connect(port, host)
                cport = s.getsockname()[1]
                req = http_req("GET", "/pp", route)
                s.sendall(req)
                st, h, body, _ = parse_http(recv_all(s))
                s.close()
                info = json.loads(body)
                self.assertEqual(info["upstream"], "pp-http")
                self.assertEqual(base64.b64decode(info["raw"]), req)
                p = info["proxy"]
                self.assertIsNotNone(p, "no PROXY header reached the upstream")
                self.assertEqual((p["version"], p["family"], p["src"], p["sport"],
                                  p["dst"], p["dport"]),
                                 (version, "TCP6" if v6 else "TCP4", host, cport, host, port))
                if version == 1:
                    self.assertEqual(base64.b64decode(info["proxy_raw"]),
                                     proxy_v1(host, cport, host, port))
                else:
                    self.assertEqual(base64.b64decode(info["proxy_raw"]),
                                     proxy_v2(host, cport, host, port))
        # the HTTPS port: the header, then the client's own TLS to the upstream
        for route, version in (("pp1.test", 1), ("pp2.test", 2)):
            s = self.tls_connect(route)
            cport = s.getsockname()[1]
            self.assertEqual(hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest(),
                             UP["pp-tls"].cert["fp"])
            s.sendall(b"tls-pp\n")
            self.assertEqual(s.recv(200), ("pp-tls sni=%s got=tls-pp\n" % route).encode())
            s.close()
            r = UP["pp-tls"].wait_record(lambda r: r["proxy"] and r["proxy"]["sport"] == cport)
            self.assertEqual((r["proxy"]["version"], r["proxy"]["src"], r["proxy"]["dport"]),
                             (version, "127.0.0.1", gw.https))

    def test_proxy_protocol_after_client_reset(self):
        # The client sends its request and resets at once: the kernel then
        # refuses getpeername, but the request is still relayed, so its
        # PROXY header must carry the client's address all the same; with
        # trusted_proxies and without (the address is needed at accept, or
        # only for the header).
        gw = self.gw
        try:
            for trusted in ("127.0.0.0/8", None):
                if trusted is None:
                    gw.reload(proxy={"trusted_proxies": None})
                for route, version in (("pp1.test", 1), ("pp2.test", 2)):
                    for v6 in (False, True):
                        self._reset_after_request(route, version, v6)
        finally:
            gw.reload()

    def _reset_after_request(self, route, version, v6):
        host = "::1" if v6 else "127.0.0.1"
        port = self.gw.http6 if v6 else self.gw.http
        tag = uuid.uuid4().hex
        s = connect(port, host)
        cport = s.getsockname()[1]
        s.sendall(http_req("GET", "/rst/" + tag, route, close=False))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        r = UP["pp-http"].wait_record(lambda r: any(tag.encode() in q for q in r["requests"]),
                                      timeout=5)
        p = r["proxy"]
        self.assertEqual((p["version"], p.get("family"), p.get("src"), p.get("sport"),
                          p.get("dst"), p.get("dport")),
                         (version, "TCP6" if v6 else "TCP4", host, cport, host, port),
                         "route %s" % route)

    def test_trusted_inbound_proxy_header(self):
        gw = self.gw
        # v1 in, v2 out (pp2) and v2 in, v1 out (pp1): the address is 203.0.113.7
        for hdr_in, route, out_v in ((proxy_v1("203.0.113.7", 4567, "198.51.100.1", 80),
                                      "pp2.test", 2),
                                     (proxy_v2("203.0.113.7", 4568, "198.51.100.1", 80),
                                      "pp1.test", 1)):
            req = http_req("GET", "/in", route)
            st, _, body, _ = parse_http(exchange(gw.http, hdr_in + req))
            info = json.loads(body)
            self.assertEqual(st, 200)
            self.assertEqual(base64.b64decode(info["raw"]), req)
            p = info["proxy"]
            sport = 4567 if out_v == 2 else 4568
            self.assertEqual((p["version"], p["src"], p["sport"], p["dst"], p["dport"]),
                             (out_v, "203.0.113.7", sport, "198.51.100.1", 80))
            if out_v == 1:
                self.assertEqual(base64.b64decode(info["proxy_raw"]),
                                 proxy_v1("203.0.113.7", 4568, "198.51.100.1", 80))
        # the HTTPS port: a v2 header in front of the ClientHello
        s = connect(gw.https)
        s.sendall(proxy_v2("203.0.113.7", 4570, "198.51.100.1", 443))
        bio = BioTls("pp1.test")
        s.sendall(bio.first_flight())
        bio.finish(s)
        self.assertEqual(hashlib.sha256(bio.cert_der()).hexdigest(), UP["pp-tls"].cert["fp"])
        bio.write(s, b"through-lb\n")
        exp = b"pp-tls sni=pp1.test got=through-lb\n"
        self.assertEqual(bio.read_until_close(s, want=len(exp)), exp)
        s.close()
        r = UP["pp-tls"].wait_record(lambda r: r["proxy"] and r["proxy"]["sport"] == 4570)
        self.assertEqual((r["proxy"]["version"], r["proxy"]["src"]), (1, "203.0.113.7"))
        # a challenge asked through the load balancer: logs and last_hit carry it
        tok = new_token()
        gw.put_http01(tok)
        got = exchange(gw.http, proxy_v1("203.0.113.7", 4571, "198.51.100.1", 80) +
                       http_req("GET", "/.well-known/acme-challenge/" + tok, "lb.test"))
        self.count("http-01", "answered")
        self.assertEqual(parse_http(got)[:3:2], (200, keyauth(tok).encode()))
        self.wait_log(r"http-01 answered: client 203\.0\.113\.7:4571, "
                      r"identifier lb\.test, key " + re.escape(tok))
        e = [e for e in gw.challenges() if e.get("token") == tok][0]
        self.assertEqual(e["last_hit"]["peer"], "203.0.113.7:4571", e)

    def test_untrusted_inbound_proxy_header_refused(self):
        gw = self.gw
        try:
            gw.reload(proxy={"trusted_proxies": "192.0.2.0/24"})
            m0 = gw.metrics()
            for hdr in (proxy_v1("203.0.113.7", 4567, "198.51.100.1", 80),
                        proxy_v2("203.0.113.7", 4567, "198.51.100.1", 80)):
                for port in (gw.http, gw.https):
                    s = connect(port)
                    s.sendall(hdr + http_req("GET", "/x", "other.test"))
                    self.assertTrue(closed_without_data(s, 5),
                                    "a PROXY header from an untrusted peer was not refused")
                    s.close()
            self.metric_deltas(m0, {M(REFUSED, reason="proxy_header_untrusted"): 4,
                                    M("acmeedge_proxy_relayed_total", port="http"): 0})
            # without a header the same peer is served as usual
            code, h, _, _ = self.curl(self.url("/plain"), host="other.test")
            self.assertEqual((code, h.get("x-upstream")), (200, "default-http"))
        finally:
            gw.reload()

    def test_relay_100mib_each_way(self):
        n = 100 * MiB
        seeds = [os.urandom(MiB) for _ in range(4)]
        head = b"POST /bulk HTTP/1.1\r\nHost: echo.test\r\nContent-Length: %d\r\n\r\n" % n
        total = len(head) + n
        s = connect(self.gw.http, timeout=60)
        self.closers.append(s.close)
        sent = hashlib.sha256()
        result = {}

        def sender():
            try:
                s.sendall(head)
                sent.update(head)
                for i in range(n // MiB):
                    k = (i * 7919) % MiB
                    seed = seeds[i % 4]
                    chunk = seed[k:] + seed[:k]
                    sent.update(chunk)
                    s.sendall(chunk)
                s.shutdown(socket.SHUT_WR)
            except Exception as e:      # noqa: BLE001
                result["send_error"] = repr(e)

        t0 = time.monotonic()
        th = threading.Thread(target=sender, daemon=True)
        th.start()
        got = hashlib.sha256()
        nrecv = 0
        while True:
            d = s.recv(1 << 18)
            if not d:
                break
            got.update(d)
            nrecv += len(d)
        t1 = time.monotonic()
        th.join(60)
        self.assertNotIn("send_error", result)
        self.assertEqual(nrecv, total)
        self.assertEqual(got.hexdigest(), sent.hexdigest(), "bytes changed on the way")
        r = UP["echo"].wait_record(lambda r: r.get("bytes") == total)
        self.assertEqual(r["sha256"], sent.hexdigest(), "the upstream got other bytes")
        # Both directions are bulk: they move through splice pipes.
        spliced = self.gw.metrics().get(M("acmeedge_proxy_spliced_bytes_total"), 0)
        self.assertGreater(spliced, n, "100 MiB each way went through user space")
        figure("relay, 100 MiB each way at once through the proxy (and a Python echo): "
               "%.2f s, %.0f MB/s per direction", t1 - t0, n / 1e6 / (t1 - t0))

    def test_splice_pipes_bound_and_off(self):
        gw = self.gw
        spliced = M("acmeedge_proxy_spliced_bytes_total")
        pipes = M("acmeedge_proxy_relay_pipes_held")
        try:
            # One pipe per worker for six bulk transfers at once: the others
            # copy through buffers meanwhile, and every byte still arrives.
            gw.reload(proxy={"splice_pipes": "1"})
            before = gw.metrics().get(spliced, 0)
            outs = [{} for _ in range(6)]
            threads = [threading.Thread(target=self._transfer, args=(16 * MiB, 0, o),
                                        daemon=True) for o in outs]
            for t in threads:
                t.start()
            most = 0
            while any(t.is_alive() for t in threads):
                most = max(most, gw.metrics().get(pipes, 0))
                time.sleep(0.01)
            for o in outs:
                self.assertTrue(o.get("ok"), "a transfer broke: %r" % o)
            self.assertLessEqual(most, 2, "more pipes held than splice_pipes x workers")
            self.assertGreater(gw.metrics().get(spliced, 0), before,
                               "no bulk transfer spliced")
            # splice_pipes = 0: bulk relays copy, nothing is spliced.
            gw.reload(proxy={"splice_pipes": "0"})
            before = gw.metrics().get(spliced, 0)
            out = {}
            self._transfer(16 * MiB, 0, out)
            self.assertTrue(out.get("ok"), "a transfer broke: %r" % out)
            self.assertEqual(gw.metrics().get(spliced, 0), before,
                             "spliced with splice_pipes = 0")
        finally:
            gw.reload()
        self.assertEqual(gw.wait_metric(pipes, lambda v: v == 0), 0)

    def _slices(self):
        """Each thread of the proxy process: the slice the scheduler reports
        for it (sched_getattr's sched_runtime, ns)."""
        nr = {"x86_64": 315, "aarch64": 275}.get(os.uname().machine)
        if nr is None:
            self.skipTest("sched_getattr: no syscall number known for this machine")
        libc = ctypes.CDLL(None, use_errno=True)
        pid = self.gw.proxy_pid()
        out = []
        for tid in os.listdir("/proc/%d/task" % pid):
            buf = ctypes.create_string_buffer(56)
            if libc.syscall(nr, int(tid), buf, 56, 0) == 0:
                out.append(struct.unpack_from("IIQiIQQQ", buf.raw)[5])
        return out

    def test_sched_slice(self):
        """The workers ask for a 100 us slice by default (sched_slice_us), a
        reload changes it, 0 gives the kernel's own back; a kernel before
        6.12 ignores the request and the proxy says so."""
        gw = self.gw
        release = kernel_release()
        if release < (6, 12):
            self.assertIn("sched_slice_us = 100 not applied", gw.log())
            self.skipTest("Linux %d.%d takes no slice requests" % release)
        self.assertIn("workers run with a 100 us scheduler slice", gw.log())
        self.assertEqual(self._slices().count(100000), 2, "not one per worker")
        try:
            gw.reload(proxy={"sched_slice_us": "2000"})
            self.assertEqual(self._slices().count(2000000), 2, "a reload did not apply")
            gw.reload(proxy={"sched_slice_us": "0"})
            got = self._slices()
            self.assertEqual(got.count(2000000) + got.count(100000), 0,
                             "0 kept a requested slice: %r" % got)
            self.assertEqual(len(set(got)), 1, "threads differ: %r" % got)
        finally:
            gw.reload()
        self.assertEqual(self._slices().count(100000), 2)

    def _yields(self, requests=20):
        """The sched_yield calls the proxy's threads make while `requests`
        GETs are relayed one after another, counted by strace."""
        if not shutil.which("strace"):
            self.skipTest("strace is not installed")
        out = os.path.join(self.tmp, "yields.strace")
        p = subprocess.Popen(["strace", "-f", "-e", "trace=sched_yield", "-o", out,
                              "-p", str(self.gw.proxy_pid())],
                             stderr=subprocess.PIPE, text=True)
        try:
            first = p.stderr.readline()     # "Process N attached" once a thread
            if "attached" not in first:
                self.skipTest("strace cannot attach here: %s" % first.strip())
            time.sleep(0.5)                 # the other threads' attach lines
            for i in range(requests):
                st, _, _, _ = parse_http(exchange(self.gw.http,
                                                  http_req("GET", "/y%d" % i, "www.default.test")))
                self.assertEqual(st, 200)
                time.sleep(0.01)            # a turn each: the slice passes between them
        finally:
            p.send_signal(signal.SIGINT)
            p.wait(10)
        with open(out) as f:
            return sum(1 for line in f if "sched_yield(" in line)

    def test_busy_worker_yields(self):
        """A worker that has run a slice (sched_slice_us) since it last
        yielded gives up the CPU after its turn, so that a second worker on
        its core does not wait for the scheduler's tick; with 0 the kernel
        alone decides."""
        gw = self.gw
        self.assertGreater(self._yields(), 0, "no worker yielded")
        try:
            gw.reload(proxy={"sched_slice_us": "0"})
            self.assertEqual(self._yields(), 0, "yielded with sched_slice_us = 0")
        finally:
            gw.reload()
        self.assertGreater(self._yields(), 0, "no yield once the slice was back")

    def test_idle_relayed_connections_hold_no_buffer(self):
        held = M("acmeedge_proxy_relay_buffers_held")
        self.assertEqual(self.gw.wait_metric(held, lambda v: v == 0), 0)
        # 200 keep-alive connections relayed to the upstream, then idle: each
        # has its upstream connection and no relay buffer while it waits.
        conns = []
        try:
            for i in range(200):
                c = RawConn(self.gw.http)
                conns.append(c)
                c.send(http_req("GET", "/idle/%d" % i, "app.test", close=False))
            for c in conns:
                self.assertEqual(c.response()[0], 200)
            self.assertEqual(self.gw.wait_metric(held, lambda v: v == 0), 0,
                             "idle relayed connections hold relay buffers")
            # ... and they still relay: a second request on each.
            for i, c in enumerate(conns):
                c.send(http_req("GET", "/again/%d" % i, "app.test", close=False))
            for c in conns:
                self.assertEqual(c.response()[0], 200)
            self.assertEqual(self.gw.wait_metric(held, lambda v: v == 0), 0)
        finally:
            for c in conns:
                c.close()
        # A client that stops reading: the echoed bytes back up into the
        # proxy, which holds them (bounded: one buffer per direction).
        s = connect(self.gw.http, timeout=30)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        head = b"POST /bulk HTTP/1.1\r\nHost: echo.test\r\nContent-Length: %d\r\n\r\n" % (
            64 * MiB)

        def sender():
            try:
                s.sendall(head + bytes(16 * MiB))
            except OSError:
                pass

        th = threading.Thread(target=sender, daemon=True)
        th.start()
        # Bulk bytes wait in a buffer, or in a splice pipe once the relay
        # splices: one per direction at most.
        held_any = [held, M("acmeedge_proxy_relay_pipes_held")]
        try:
            v = self.gw.wait_metric(held_any, lambda v: v is not None and v >= 1)
            self.assertIsNotNone(v)
            self.assertGreaterEqual(v, 1, "a backed-up relay holds neither buffer nor pipe")
            self.assertLessEqual(v, 2)
        finally:
            s.shutdown(socket.SHUT_RDWR)
            th.join(30)
            s.close()
        self.assertEqual(self.gw.wait_metric(held_any, lambda v: v == 0), 0,
                         "buffers or pipes not returned after the connection closed")

    def test_reload_under_traffic(self):
        gw = self.gw
        code, h, _, _ = self.curl(self.url("/r"), host="new.test")
        self.assertEqual(h.get("x-upstream"), "default-http")
        outs = [{} for _ in range(6)]
        threads = [threading.Thread(target=self._transfer, args=(8 * MiB, 0.025, o),
                                    daemon=True) for o in outs]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while not all(o.get("rx", {}).get("recv", 0) > 0 for o in outs):
            self.assertLess(time.monotonic(), deadline, "transfers did not start: %r" % outs)
            time.sleep(0.05)
        routes = base_routes()
        routes["new"] = {"names": "new.test", "http": UP["new-http"].addr,
                         "https": UP["default-tls"].addr}
        try:
            t0 = time.monotonic()
            gw.reload(routes=routes)
            running = sum(1 for o in outs if not o.get("done"))
            self.assertGreater(running, 0, "the transfers ended before the reload")
            # new connections take the new route at once, while the old ones go on
            code, h, _, _ = self.curl(self.url("/r"), host="new.test")
            self.assertEqual((code, h.get("x-upstream")), (200, "new-http"))
            for t in threads:
                t.join(90)
            for o in outs:
                self.assertTrue(o.get("ok"), "a transfer broke across the reload: %r" % o)
            figure("reload under traffic: %d of 6 relays running at SIGHUP, all intact; "
                   "reload to last transfer done %.2f s", running, time.monotonic() - t0)
        finally:
            gw.reload()
        code, h, _, _ = self.curl(self.url("/r"), host="new.test")
        self.assertEqual(h.get("x-upstream"), "default-http")


# =====================================================================================
# The cap: connections held in every way never keep a validator out (one worker)
# =====================================================================================

CAP = 16
CAP_RESERVE = 64            # what a worker keeps beside max_connections, at least
CAP_HELD = CAP + CAP_RESERVE + 16


def read_http(sock, timeout=5.0):
    """One HTTP response from sock (status, body), or (None, what came) at EOF."""
    sock.settimeout(timeout)
    buf = b""
    while True:
        try:
            st, _, body, _ = parse_http(buf)
            return st, body
        except AssertionError:
            pass
        try:
            d = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            d = b""
        if not d:
            return None, buf
        buf += d


class CapTest(GatewayCase):
    NAME = "cap"
    # defer_accept off: silent clients must reach the worker, whose room is
    # what these tests hold to.
    PROXY = {"workers": "1", "max_connections": str(CAP), "peek_timeout": "20s",
             "connect_timeout": "4s", "idle_timeout": "60s", "defer_accept": "0"}

    def setUp(self):
        super().setUp()
        self.held = []
        self.closers.append(self._release)

    def _release(self):
        for s in self.held:
            s.close()
        self.held = []
        self.gw.wait_metric(M("acmeedge_proxy_connections_active"), lambda v: v == 0,
                            timeout=15)

    def _hold(self, port, data, wait=None):
        """CAP_HELD connections, each sent data, one after the other, each
        past the peek (wait(sock) returns, or a moment passed) before the
        next: still at the peek, it would make room for the next itself."""
        for _ in range(CAP_HELD):
            s = connect(port)
            self.held.append(s)
            s.sendall(data)
            if wait:
                wait(s)
            else:
                time.sleep(0.01)

    def _validators_answered(self, what):
        gw = self.gw
        tok = new_token()
        gw.put_http01(tok)
        ka = keyauth(new_token())
        gw.put_tls("validator.test", ka)
        t0 = time.monotonic()
        got = exchange(gw.http, http_req("GET", "/.well-known/acme-challenge/" + tok,
                                         "validator.test"), timeout=5)
        self.count("http-01", "answered")
        self.assertTrue(got, "%s: the http-01 validator was refused" % what)
        self.assertEqual(parse_http(got)[:3:2], (200, keyauth(tok).encode()), what)
        try:
            s = self.tls_connect("validator.test", alpn=["acme-tls/1"], timeout=5)
        except (OSError, ssl.SSLError) as e:
            self.fail("%s: the tls-alpn-01 validator was refused: %r" % (what, e))
        self.count("tls-alpn-01", "answered")
        self.assertEqual(s.selected_alpn_protocol(), "acme-tls/1", what)
        s.close()
        dt = time.monotonic() - t0
        self.assertLess(dt, 3.0, "%s: the validators waited %.1f s" % (what, dt))

    def test_idle_relays(self):
        self._hold(self.gw.http, http_req("GET", "/held", "app.test", close=False),
                   wait=read_http)
        self._validators_answered("idle relays")
        # Past a second of silence, the relay idle longest makes room for a
        # new one. Waited 2.2 s: the connections refused 503 above linger
        # up to 2 s, and with them gone the descriptor room is not full, so
        # the one eviction counted is the relay's.
        time.sleep(2.2)
        m0 = self.gw.metrics()
        s = connect(self.gw.http)
        self.held.append(s)
        s.sendall(http_req("GET", "/new", "app.test", close=False))
        st, body = read_http(s)
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body)["upstream"], "app-http")
        self.metric_deltas(m0, {M(REFUSED, reason="evicted_at_cap"): 1})

    def test_idle_clients_fill_the_descriptor_room_before_any_is_closed(self):
        # A connection at the peek holds one descriptor, a relay two: with no
        # relay open, the room (2 x CAP + the reserve) holds that many idle
        # clients, none closed to make room (each one closed would be a
        # reconnect to take in). Counting connections, the cap used to close
        # one for each past CAP + the reserve.
        room = 2 * CAP + CAP_RESERVE
        m0 = self.gw.metrics()
        for i in range(room - 4):
            self.held.append(connect(self.gw.https if i % 2 else self.gw.http))
        self.gw.wait_metric(M("acmeedge_proxy_connections_active"),
                            lambda v: v >= room - 4, timeout=10)
        self._validators_answered("idle clients filling the room")
        self.metric_deltas(m0, {M(REFUSED, reason="evicted_at_cap"): 0})
        for s in self.held:
            self.assertFalse(closed_without_data(s, 0.01), "an idle client was closed")
        # Past the room, the one at the peek longest makes room for a new one.
        for _ in range(6):
            self.held.append(connect(self.gw.http))
        time.sleep(0.3)
        self.assertTrue(closed_without_data(self.held[0], 2), "the oldest was not closed")

    def test_slow_upstream_connects(self):
        self._hold(self.gw.http, http_req("GET", "/held", "silent.test", close=False))
        time.sleep(0.3)
        self._validators_answered("slow upstream connects")

    def test_lingering_closes(self):
        # Each is answered 431 and lingers, its client neither sending the
        # end of its head nor closing.
        self._hold(self.gw.http, b"GET / HTTP/1.1\r\nX: " + b"x" * 9000, wait=read_http)
        self._validators_answered("lingering closes")

    def test_stalled_handshakes(self):
        self.gw.put_tls("held.test", keyauth(new_token()))
        flight = BioTls("held.test", alpn=["acme-tls/1"]).first_flight()
        # The proxy's first flight arrives: the handshake waits for ours.
        self._hold(self.gw.https, flight, wait=lambda s: closed_without_data(s, 5))
        self._validators_answered("stalled acme-tls/1 handshakes")


# =====================================================================================
# Hostile and broken input, broken upstreams (peek_timeout = 1s)
# =====================================================================================

class HostileTest(GatewayCase):
    NAME = "hostile"
    PROXY = {"peek_timeout": "1s", "defer_accept": "1s"}

    def _bytewise(self, data, sock, delay=0.0005):
        for i in range(len(data)):
            sock.send(data[i:i + 1])
            if delay and i % 4 == 3:
                time.sleep(delay)

    def test_hello_one_byte_at_a_time(self):
        ka = keyauth(new_token())
        self.gw.put_tls("bytewise.test", ka)
        # answered: the whole acme-tls/1 handshake after a byte-by-byte hello
        s = connect(self.gw.https)
        self.closers.append(s.close)
        bio = BioTls("bytewise.test", alpn=["acme-tls/1"])
        t0 = time.monotonic()
        flight = bio.first_flight()
        self._bytewise(flight, s)
        bio.finish(s)
        self.count("tls-alpn-01", "answered")
        figure("a %d-byte ClientHello sent one byte per segment, handshake done in %.0f ms",
               len(flight), (time.monotonic() - t0) * 1000)
        self.assertEqual(bio.alpn(), "acme-tls/1")
        self.check_acme_cert(bio.cert_der(), "bytewise.test", ka)
        self.assertEqual(bio.read_until_close(s), b"")
        self.assertTrue(bio.close_notify)
        s.close()
        # relayed: no acme-tls/1, so the upstream finishes the handshake
        s = connect(self.gw.https)
        self.closers.append(s.close)
        bio = BioTls("other.test", alpn=["http/1.1"])
        self._bytewise(bio.first_flight(), s)
        bio.finish(s)
        self.assertEqual(hashlib.sha256(bio.cert_der()).hexdigest(),
                         UP["default-tls"].cert["fp"])
        bio.write(s, b"bytes\n")
        exp = b"default-tls sni=other.test got=bytes\n"
        self.assertEqual(bio.read_until_close(s, want=len(exp)), exp)

    def test_hello_spanning_two_records(self):
        ka = keyauth(new_token())
        self.gw.put_tls("tworec.test", ka)
        for sni, alpn in (("tworec.test", ["acme-tls/1"]), ("app.test", ["http/1.1"])):
            s = connect(self.gw.https)
            self.closers.append(s.close)
            bio = BioTls(sni, alpn=alpn)
            flight = bio.first_flight()
            two = split_records(flight, [100])
            self.assertEqual(len(two), len(flight) + 5)
            s.sendall(two[:60])         # and the segments cut elsewhere
            time.sleep(0.05)
            s.sendall(two[60:])
            bio.finish(s)
            if alpn == ["acme-tls/1"]:
                self.count("tls-alpn-01", "answered")
                self.assertEqual(bio.alpn(), "acme-tls/1")
                self.check_acme_cert(bio.cert_der(), sni, ka)
            else:
                self.assertEqual(hashlib.sha256(bio.cert_der()).hexdigest(),
                                 UP["app-tls"].cert["fp"])
                bio.write(s, b"two\n")
                exp = b"app-tls sni=app.test got=two\n"
                self.assertEqual(bio.read_until_close(s, want=len(exp)), exp)
            s.close()

    def _send_hostile(self, port, data, within=3.0):
        """Sends data (the peer may close mid-way), returns (closed?, bytes got)."""
        s = connect(port)
        self.closers.append(s.close)
        t0 = time.monotonic()
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        s.settimeout(within)
        got = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got += d
        except ConnectionResetError:
            pass
        except socket.timeout:
            return False, got, time.monotonic() - t0
        s.close()
        return True, got, time.monotonic() - t0

    def test_oversized_hello(self):
        m0 = self.gw.metrics()
        # one 20 KiB handshake message over two records
        big = crafted_hello("big.test", ["acme-tls/1"], pad=20000)
        self.assertGreater(len(big), 18 * 1024)
        closed, got, dt = self._send_hostile(self.gw.https, big)
        self.assertTrue(closed, "an oversized hello was not closed")
        self.assertEqual(got, b"")
        self.assertLess(dt, 0.9, "closed by the peek timeout, not the size check")
        # a small hello cut into 1-byte records: more than 18 KiB of records
        frag = crafted_hello("frag.test", ["acme-tls/1"], pad=3300, record_size=1)
        self.assertGreater(len(frag), 18 * 1024 + 100)
        closed, got, dt = self._send_hostile(self.gw.https, frag)
        self.assertTrue(closed)
        self.assertEqual(got, b"")
        self.metric_deltas(m0, {M(REFUSED, reason="hello_too_large"): 2,
                                M(REFUSED, reason="bad_hello"): 0,
                                M("acmeedge_proxy_relayed_total", port="https"): 0})

    def test_garbage_on_both_ports(self):
        m0 = self.gw.metrics()
        for junk in (b"\x16\x03\x01\x00\x05hello\r\n\r\n", b"GET / HTTP/9.9\r\nHost: a\r\n\r\n",
                     b"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n"):
            closed, got, _ = self._send_hostile(self.gw.http, junk)
            self.assertTrue(closed)
            self.assertEqual(parse_http(got)[0], 400, got)
        for junk in (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"\x17\x03\x03\x00\x10" + b"x" * 16,
                     b"\x16\x03\x01\x00\x08\x02\x00\x00\x04abcd",
                     bytes(range(256)) * 2):
            closed, got, dt = self._send_hostile(self.gw.https, junk)
            self.assertTrue(closed, junk[:20])
            self.assertEqual(got, b"", junk[:20])
            self.assertLess(dt, 0.9, "garbage hello closed only by the peek timeout")
        self.metric_deltas(m0, {M(REFUSED, reason="bad_request"): 3,
                                M(REFUSED, reason="bad_hello"): 4,
                                M("acmeedge_proxy_relayed_total", port="http"): 0,
                                M("acmeedge_proxy_relayed_total", port="https"): 0})

    def test_slow_clients_past_the_peek_timeout(self):
        m0 = self.gw.metrics()
        socks = []
        for port, data in ((self.gw.http, b""), (self.gw.http, b"GET /slow HTTP/1.1\r\nHo"),
                           (self.gw.https, b""), (self.gw.https, crafted_hello("s.test")[:40])):
            s = connect(port)
            self.closers.append(s.close)
            if data:
                s.sendall(data)
            socks.append((s, time.monotonic()))
        closed_at = {}
        deadline = time.monotonic() + 5
        while len(closed_at) < len(socks) and time.monotonic() < deadline:
            ready, _, _ = select.select([s for s, _ in socks if s not in closed_at],
                                        [], [], 0.05)
            for s in ready:
                self.assertTrue(closed_without_data(s, 1), "a slow client was sent data")
                closed_at[s] = time.monotonic()
        for (s, t0), silent in zip(socks, (True, False, True, False)):
            self.assertIn(s, closed_at, "a slow client was never closed")
            dt = closed_at[s] - t0
            # A silent client waits out defer_accept (1 s) in the kernel
            # first, then the peek timeout like any other.
            low, high = (1.8, 4.0) if silent else (0.8, 2.5)
            self.assertGreater(dt, low, "closed before peek_timeout")
            self.assertLess(dt, high, "closed long after peek_timeout")
        self.metric_deltas(m0, {M(REFUSED, reason="peek_timeout"): 4})

    def test_silent_clients_wait_in_the_kernel(self):
        """defer_accept: a connection that has sent nothing is neither
        accepted nor given a slot; its first byte brings it in at once."""
        m0 = self.gw.metrics()
        socks = [connect(port) for port in (self.gw.http, self.gw.https) for _ in range(20)]
        for s in socks:
            self.closers.append(s.close)
        time.sleep(0.5)
        self.metric_deltas(m0, {M("acmeedge_proxy_accepted_total", port="http"): 0,
                                M("acmeedge_proxy_accepted_total", port="https"): 0}, 0)
        self.assertEqual(self.gw.metrics().get(M("acmeedge_proxy_connections_active"), 0), 0)
        t0 = time.monotonic()
        socks[0].sendall(b"GET / HTTP/9.9\r\nHost: a\r\n\r\n")
        socks[0].settimeout(3)
        got = socks[0].recv(65536)
        self.assertEqual(parse_http(got)[0], 400, got)
        socks[20].sendall(b"\x16\x03\x01\x00\x08\x02\x00\x00\x04abcd")
        self.assertTrue(closed_without_data(socks[20], 3))
        # Well before the kernel's second runs out.
        self.assertLess(time.monotonic() - t0, 0.9, "the first byte did not bring it in")
        self.metric_deltas(m0, {M("acmeedge_proxy_accepted_total", port="http"): 1,
                                M("acmeedge_proxy_accepted_total", port="https"): 1,
                                M(REFUSED, reason="bad_request"): 1,
                                M(REFUSED, reason="bad_hello"): 1})
        # A client's FIN is a byte too: the rest come in, and leave.
        for s in socks:
            s.close()
        self.metric_deltas(m0, {M("acmeedge_proxy_accepted_total", port="http"): 20,
                                M("acmeedge_proxy_accepted_total", port="https"): 20})
        self.gw.wait_metric(M("acmeedge_proxy_connections_active"), lambda v: v == 0)

    def test_upstream_down(self):
        m0 = self.gw.metrics()
        st, h, body, _ = parse_http(exchange(self.gw.http, http_req("GET", "/", "down.test")))
        self.assertEqual(st, 502, body)
        s = connect(self.gw.https)
        self.closers.append(s.close)
        bio = BioTls("down.test", alpn=["http/1.1"])
        s.sendall(bio.first_flight())
        self.assertTrue(closed_without_data(s, 8), "HTTPS to a down upstream not closed")
        self.metric_deltas(m0, {M(UPERR, reason="connect_failed"): 4,
                                M(UPERR, reason="all_servers_failed"): 2,
                                M("acmeedge_proxy_relayed_total", port="http"): 0,
                                M("acmeedge_proxy_relayed_total", port="https"): 0})

    def test_upstream_connect_timeout(self):
        # The connect is cancelled at connect_timeout (2 s): counted, then
        # the route's only server has failed: 502.
        m0 = self.gw.metrics()
        t0 = time.monotonic()
        st, h, body, _ = parse_http(exchange(self.gw.http, http_req("GET", "/", "silent.test"),
                                             timeout=15))
        dt = time.monotonic() - t0
        self.assertEqual(st, 502, body)
        self.assertGreater(dt, 1.5, "answered before connect_timeout")
        self.assertLess(dt, 8, "the connect was not cancelled at connect_timeout")
        self.metric_deltas(m0, {M(UPERR, reason="connect_timeout"): 1,
                                M(UPERR, reason="all_servers_failed"): 1,
                                M("acmeedge_proxy_relayed_total", port="http"): 0})

    def test_upstream_resets_mid_stream(self):
        m0 = self.gw.metrics()
        s = connect(self.gw.http)
        self.closers.append(s.close)
        s.sendall(http_req("GET", "/big", "reset.test", close=False))
        t0 = time.monotonic()
        got = recv_all(s)
        dt = time.monotonic() - t0
        self.assertTrue(got.startswith(b"HTTP/1.1 200 OK"), got[:100])
        self.assertLess(len(got), 10485760, "the whole body arrived")
        self.assertLess(dt, 8, "the client was not told of the upstream's reset")
        self.metric_deltas(m0, {M(CLOSED, reason="reset"): 1})
        # and the proxy goes on serving
        code, h, _, _ = self.curl(self.url("/after-reset"), host="other.test")
        self.assertEqual((code, h.get("x-upstream")), (200, "default-http"))

    def test_client_half_close(self):
        # relayed: the upstream answers only after it saw the client's EOF
        req = http_req("GET", "/after-eof", "app.test", close=False)
        got = exchange(self.gw.http, req, shut=True)
        st, h, body, _ = parse_http(got)
        self.assertEqual(st, 200)
        info = json.loads(body)
        self.assertEqual(base64.b64decode(info["raw"]), req)
        self.assertEqual(info["after_eof"], "")
        # answered: a challenge request then EOF still gets its answer
        tok = new_token()
        self.gw.put_http01(tok)
        got = exchange(self.gw.http, http_req("GET", "/.well-known/acme-challenge/" + tok,
                                              "h.test", close=False), shut=True)
        self.count("http-01", "answered")
        self.assertEqual(parse_http(got)[2], keyauth(tok).encode())
        # the HTTPS relay: a hello for the echo upstream, more bytes, then our
        # FIN; everything comes back and then the upstream's own EOF
        flight = BioTls("echo.test", alpn=["http/1.1"]).first_flight()
        extra = os.urandom(3000)
        got = exchange(self.gw.https, flight + extra, shut=True)
        self.assertEqual(got, flight + extra)
        r = UP["echo"].wait_record(lambda r: r.get("sha256") == sha256_hex(flight + extra))
        self.assertEqual(r["bytes"], len(flight) + len(extra))


# =====================================================================================
# 1,000 connections at once, all three outcomes mixed
# =====================================================================================

class _Job:
    def __init__(self, kind, port, payload=None, sni=None):
        self.kind = kind
        self.port = port
        self.payload = payload
        self.sni = sni
        self.buf = b""
        self.out = b""
        self.done = False
        self.error = None
        self.bio = None


class LoadTest(GatewayCase):
    NAME = "load"

    def test_1000_concurrent_mixed(self):
        gw = self.gw
        n = 1000
        toks = [new_token() for _ in range(8)]
        for t in toks:
            gw.put_http01(t)
        ka = keyauth(new_token())
        gw.put_tls("load.test", ka)
        s = self.tls_connect("load.test", alpn=["acme-tls/1"])
        cert = s.getpeercert(binary_form=True)
        s.close()
        self.count("tls-alpn-01", "answered")
        self.check_acme_cert(cert, "load.test", ka)
        m0 = gw.metrics()

        jobs = []
        for i in range(n):
            k = i % 3
            if k == 0:
                t = toks[i % len(toks)]
                jobs.append(_Job("http01", gw.http, http_req(
                    "GET", "/.well-known/acme-challenge/" + t, "load.test")))
                jobs[-1].want = keyauth(t).encode()
            elif k == 1:
                jobs.append(_Job("tls", gw.https, sni="load.test"))
            else:
                req = http_req("GET", "/load/%d" % i, "app.test")
                jobs.append(_Job("relay", gw.http, req))
        sel = selectors.DefaultSelector()
        t0 = time.monotonic()
        deadline = t0 + 60
        try:
            # 1: every connection open at once
            pending = 0
            for j in jobs:
                j.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                j.sock.setblocking(False)
                err = j.sock.connect_ex(("127.0.0.1", j.port))
                self.assertIn(err, (0, 115), os.strerror(err))      # EINPROGRESS
                sel.register(j.sock, selectors.EVENT_WRITE, j)
                pending += 1
            while pending:
                self.assertLess(time.monotonic(), deadline, "connects did not finish")
                for key, _ in sel.select(1.0):
                    j = key.data
                    err = j.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    self.assertEqual(err, 0, os.strerror(err))
                    sel.unregister(j.sock)
                    pending -= 1
            t_conn = time.monotonic()
            # 2: every request sent, every answer read
            for j in jobs:
                if j.kind == "tls":
                    j.bio = BioTls(j.sni, alpn=["acme-tls/1"])
                    j.out = j.bio.first_flight()
                else:
                    j.out = j.payload
                sel.register(j.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, j)
            left = n
            while left:
                if time.monotonic() > deadline:
                    break
                for key, ev in sel.select(1.0):
                    j = key.data
                    if ev & selectors.EVENT_WRITE and j.out:
                        try:
                            k = j.sock.send(j.out)
                            j.out = j.out[k:]
                        except BlockingIOError:
                            pass
                        except OSError as e:
                            j.error = "send: %r" % e
                    if ev & selectors.EVENT_READ and not j.error:
                        try:
                            d = j.sock.recv(65536)
                        except BlockingIOError:
                            continue
                        except OSError as e:
                            d = b""
                            j.error = "recv: %r" % e
                        self._job_data(j, d)
                    if j.done or j.error:
                        sel.unregister(j.sock)
                        j.sock.close()
                        left -= 1
                    elif not j.out:
                        sel.modify(j.sock, selectors.EVENT_READ, j)
                    else:
                        sel.modify(j.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, j)
            t1 = time.monotonic()
        finally:
            for j in jobs:
                try:
                    j.sock.close()
                except Exception:   # noqa: BLE001
                    pass
            sel.close()
        byk = collections.Counter()
        bad = []
        for j in jobs:
            ok = j.done and not j.error and self._job_ok(j, cert)
            byk[(j.kind, ok)] += 1
            if not ok and len(bad) < 5:
                bad.append((j.kind, j.error, j.done, j.buf[:200]))
        self.count("http-01", "answered", sum(1 for j in jobs if j.kind == "http01"))
        self.count("tls-alpn-01", "answered", sum(1 for j in jobs if j.kind == "tls"))
        figure("1000 concurrent connections (334 http-01, 333 acme-tls/1, 333 relayed): "
               "all connected in %.2f s, all answered %.2f s after that, wall %.2f s",
               t_conn - t0, t1 - t_conn, t1 - t0)
        self.assertEqual(sum(v for (k, ok), v in byk.items() if ok), n,
                         "failures: %r; first: %r" % (dict(byk), bad))
        self.metric_deltas(m0, {
            M(CH, kind="http-01", result="answered"): 334,
            M(CH, kind="tls-alpn-01", result="answered"): 333,
            M("acmeedge_proxy_relayed_total", port="http"): 333,
            M("acmeedge_proxy_tls_handshakes_total", result="ok"): 333,
            M("acmeedge_proxy_tls_handshakes_total", result="failed"): 0})

    def test_reset_clients_released_while_others_keep_connecting(self):
        """
        A client that resets its connection is let go at once even when a
        new client connects during every turn of the loop: acme-tls/1
        hellos replayed by several threads keep the worker busy with
        handshakes and its listener never empty, and each thread resets
        its connection once the server's first flight is in. The workers
        may then hold a few connections per thread, never a backlog of
        reset ones (each holding a TLS state) waiting for a quiet turn.
        """
        gw = self.gw
        gw.put_tls("resets.test", keyauth(new_token()))
        hello = BioTls("resets.test", alpn=["acme-tls/1"]).first_flight()
        threads_n, secs = 16, 3.0
        stop = threading.Event()
        done = [0] * threads_n
        errors = []

        def client(k):
            linger = struct.pack("ii", 1, 0)
            while not stop.is_set():
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    s.settimeout(10)
                    s.connect(("127.0.0.1", gw.https))
                    s.sendall(hello)
                    if s.recv(1)[:1] != b"\x16":
                        errors.append("no handshake record")
                        return
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    done[k] += 1
                except OSError as e:
                    errors.append(repr(e))
                    return
                finally:
                    s.close()

        ts = [threading.Thread(target=client, args=(k,), daemon=True)
              for k in range(threads_n)]
        for t in ts:
            t.start()
        active = []
        t_end = time.monotonic() + secs
        try:
            while time.monotonic() < t_end:
                active.append(gw.metrics().get(M("acmeedge_proxy_connections_active"), 0))
                time.sleep(0.05)
        finally:
            stop.set()
            for t in ts:
                t.join(15)
        self.assertEqual(errors, [])
        figure("reset acme-tls/1 clients, %d threads for %.0f s: %d handshakes, "
               "connections held at most %d (median %d)", threads_n, secs, sum(done),
               max(active), sorted(active)[len(active) // 2])
        self.assertGreater(sum(done), threads_n)
        self.assertLessEqual(max(active), 4 * threads_n,
                             "reset connections piled up: %r" % active)

    @staticmethod
    def _job_data(j, d):
        if j.kind != "tls":
            if d:
                j.buf += d
            else:
                j.done = True
            return
        if d:
            j.bio.inc.write(d)
        else:
            j.bio.inc.write_eof()
        try:
            if not getattr(j, "hs_done", False):
                j.bio.obj.do_handshake()
                j.hs_done = True
                j.alpn = j.bio.alpn()
                j.cert = j.bio.cert_der()
            while True:
                r = j.bio.obj.read(65536)
                if not r:           # close_notify
                    j.close_notify = True
                    j.done = True
                    break
                j.buf += r
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            j.close_notify = True
            j.done = True
        except (ssl.SSLError, OSError) as e:
            j.error = "tls: %r" % e
        j.out += j.bio.out.read()
        if not d and not j.done and not j.error:
            j.error = "EOF without close_notify"

    @staticmethod
    def _job_ok(j, cert):
        if j.kind == "tls":
            return (getattr(j, "alpn", None) == "acme-tls/1" and j.cert == cert and
                    getattr(j, "close_notify", False) and j.buf == b"")
        try:
            st, h, body, rest = parse_http(j.buf)
        except AssertionError:
            return False
        if st != 200 or rest:
            return False
        if j.kind == "http01":
            return body == j.want
        info = json.loads(body)
        return info["upstream"] == "app-http" and base64.b64decode(info["raw"]) == j.payload


# =====================================================================================
# Graceful stop
# =====================================================================================

class StopTest(GatewayCase):
    NAME = "stop"
    PROXY = {"grace": "15s"}

    def test_sigterm_lets_a_running_transfer_finish(self):
        gw = self.gw
        out = {}
        th = threading.Thread(target=self._transfer, args=(12 * MiB, 0.02, out),
                              daemon=True)
        th.start()
        deadline = time.monotonic() + 10
        while out.get("rx", {}).get("recv", 0) == 0:
            self.assertLess(time.monotonic(), deadline, "the transfer did not start: %r" % out)
            time.sleep(0.02)
        t_term = time.monotonic()
        gw.signal(signal.SIGTERM)
        # new connections are refused soon after (refused, or reset unserved)
        refused_at = None
        probes = []
        while time.monotonic() - t_term < 5 and not out.get("done"):
            t = time.monotonic() - t_term
            try:
                s = connect(gw.http, timeout=1)
            except ConnectionRefusedError:
                probes.append((round(t, 2), "refused"))
                refused_at = refused_at if refused_at is not None else t
                time.sleep(0.1)
                continue
            try:
                s.sendall(http_req("GET", "/during-stop", "other.test"))
                s.settimeout(1.0)
                d = s.recv(65536)
                what = "served" if d else "closed"
            except ConnectionResetError:
                what = "reset"
            except socket.timeout:
                what = "hangs (accepted by the kernel, never by the proxy)"
            finally:
                s.close()
            probes.append((round(t, 2), what))
            if what in ("closed", "reset"):
                refused_at = refused_at if refused_at is not None else t
            else:
                refused_at = None
            time.sleep(0.1)
        th.join(60)
        self.assertTrue(out.get("ok"), "the running transfer broke on SIGTERM: %r" % out)
        t_done = time.monotonic() - t_term
        try:
            rc = gw.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.fail("acme-edge run still running 30 s after its transfer ended")
        t_exit = time.monotonic() - t_term
        self.assertEqual(rc, 0, gw.log()[-3000:])
        log = gw.log()
        self.assertIn("proxy: stopped", log)
        self.assertNotRegex(log, r"run: \w+ \(pid \d+\) (exited with status [1-9]|killed)")
        figure("graceful stop: new connections refused %s s after SIGTERM, the running "
               "transfer ended %.2f s after it, exit %.2f s after it",
               "never" if refused_at is None else "%.2f" % refused_at, t_done, t_exit)
        # checked last, so that a failure here still tells how the rest went
        self.assertIsNotNone(refused_at, "new connections were not refused after SIGTERM "
                                         "(seconds after SIGTERM, outcome): %r" % probes)
        self.assertLess(refused_at, 2.0, "refused only %.1f s after SIGTERM (seconds after "
                                         "SIGTERM, outcome): %r" % (refused_at, probes))


if __name__ == "__main__":
    main(need=[(ACME_EDGE, "ACME_EDGE")], tools=("openssl", "curl"))
