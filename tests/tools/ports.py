"""Loopback ports for the servers the tests start.

A port the kernel hands out for bind(0) lies in its ephemeral range, the
range it also takes the source ports of outgoing connections from: between
choosing such a port and the server binding it, any connection the tests
(or a suite running beside them) open may take it, and the server fails
with EADDRINUSE. Ports are therefore drawn below that range, checked
bindable, and never handed out twice in one process.
"""
import random
import socket
import threading

_lock = threading.Lock()
_given = set()


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(family=socket.AF_INET):
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    hi = _ephemeral_low() - 1
    lo = 10000 if hi >= 12000 else 1024
    with _lock:
        for _ in range(1000):
            port = random.randint(lo, hi)
            if port in _given:
                continue
            with socket.socket(family, socket.SOCK_STREAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
            _given.add(port)
            return port
    raise RuntimeError("no free loopback port in %d..%d" % (lo, hi))
