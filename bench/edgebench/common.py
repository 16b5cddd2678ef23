"""What every part of the bench shares: where it lives, the challenge every
server answers, which instances are compared, and the run's log."""
import hashlib
import os

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP = os.path.dirname(BENCH)

# The challenge every server answers: an 87-byte key authorization.
TOKEN = "bEnChMaRkToKeN0123456789abcdefghijklmnopqrs"          # 43 chars
THUMB = "tHuMbPrInT0123456789abcdefghijklmnopqrstuvw"        # 43 chars
KA = TOKEN + "." + THUMB
assert len(KA) == 87, len(KA)
KA_SHA = hashlib.sha256(KA.encode()).hexdigest()
API_TOKEN = "bench-api-token"
ACME_NAME = "bench.example.com"     # the acme-tls/1 / http-01 identifier
PASS_NAME = "www.example.com"       # everything relayed
# The flood scenarios' passthrough name: routed by every gateway to the
# upstream's sink, which answers at once and closes (bench/README.md).
FLOOD_NAME = "flood.example.com"
CHAL_PATH = "/.well-known/acme-challenge/" + TOKEN

SERVERS = ["acme-edge", "acme-edge-epoll", "nginx", "haproxy", "haproxy-splice", "direct"]
PEERS = ["nginx", "haproxy", "haproxy-splice"]
# The second acme-edge instance, io_backend = epoll, so that both I/O
# backends are measured side by side: never a peer (ratios acme-edge ÷ peer
# do not use it).
EPOLL = "acme-edge-epoll"
# The requirement on the I/O backends: "the epoll backend must stay at
# least on par with HAProxy per core", judged on these scenarios; on par =
# epoll ÷ HAProxy ≥ this.
EPOLL_PAR = 0.95
EPOLL_PAR_SCENARIOS = ["http01-ka", "pass-replay"]

_log = None


def open_log(path):
    global _log
    _log = open(path, "w")


def close_log():
    global _log
    if _log:
        _log.close()
    _log = None


def say(*a):
    msg = " ".join(str(x) for x in a)
    print(msg, flush=True)
    if _log:
        _log.write(msg + "\n")
        _log.flush()


def die(msg):
    say("bench/run: " + msg)
    raise SystemExit(1)
