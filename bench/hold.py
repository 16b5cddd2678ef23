#!/usr/bin/python3
"""Opens N idle connections to a proxy and holds them: the memory scenarios
of bench/run.

  hold.py relay PORT N HOST   each connection sends one keep-alive request
                              for /1k (so the proxy has chosen and connected
                              its upstream), reads the whole answer, then
                              stays idle.
  hold.py peek PORT N SNI     each connection sends the first part of a real
                              ClientHello (record header and 60 bytes), so
                              the proxy is waiting in its peek for the rest.

Prints "READY <n>" once every connection is in that state (or "FAIL <why>"
and exits 1), then holds them until its standard input closes or reaches
EOF, and exits. Bounded: gives up after --timeout seconds of setting up.
"""
import resource
import select
import socket
import ssl
import sys
import time

BATCH = 256


def client_hello(sni):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def read_response(s):
    """Reads one HTTP response with a Content-Length; True when whole."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return False
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = None
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    if length is None or not head.startswith(b"HTTP/1.1 200"):
        return False
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            return False
        body += chunk
    return True


def main():
    mode, port, n, name = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    timeout = 120.0
    if len(sys.argv) > 6 and sys.argv[5] == "--timeout":
        timeout = float(sys.argv[6])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    deadline = time.monotonic() + timeout
    if mode == "relay":
        payload = ("GET /1k HTTP/1.1\r\nHost: %s\r\n\r\n" % name).encode()
    elif mode == "peek":
        hello = client_hello(name)
        payload = hello[:65]  # header + 60 bytes of a longer record
        assert len(hello) > 100
    else:
        print("FAIL unknown mode", flush=True)
        return 1
    socks = []
    try:
        while len(socks) < n:
            if time.monotonic() > deadline:
                raise RuntimeError("timed out after %d connections" % len(socks))
            batch = []
            for _ in range(min(BATCH, n - len(socks))):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(10)
                s.connect(("127.0.0.1", port))
                s.sendall(payload)
                batch.append(s)
            if mode == "relay":
                for s in batch:
                    if not read_response(s):
                        raise RuntimeError("bad answer on connection %d" % len(socks))
            socks.extend(batch)
    except (OSError, RuntimeError) as e:
        print("FAIL %s (%d open)" % (e, len(socks)), flush=True)
        return 1
    # Let the last connections settle (the peek has read its bytes).
    time.sleep(0.5)
    # None may have been closed (or answered) by the proxy meanwhile.
    poller = select.poll()
    for s in socks:
        poller.register(s, select.POLLIN | select.POLLHUP | select.POLLERR)
    ready = poller.poll(0)
    if ready:
        print("FAIL %d of %d connections were closed or answered" % (len(ready), len(socks)),
              flush=True)
        return 1
    print("READY %d" % len(socks), flush=True)
    sys.stdin.read()
    for s in socks:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
