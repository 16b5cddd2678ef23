"""Before any server starts: the packages the bench drives, the binaries it
measures and runs, the certificates and the files served."""
import atexit
import os
import shutil
import subprocess

from .common import ACME_NAME, BENCH, KA_SHA, PASS_NAME, TOP, die, say
from .proc import CLIENT_CPU, SERVER_CPU, sh


SOMAXCONN = "/proc/sys/net/core/somaxconn"
LISTEN_QUEUE = 65535
WQ_CPUMASK = "/sys/devices/virtual/workqueue/cpumask"


def raise_somaxconn(ctx):
    """net.core.somaxconn at 65,535 for the run, the old value restored at
    exit: every gateway asks for that listen queue, and the kernel caps it
    here. The queue bounds the handshakes a server may leave deferred
    before SYN cookies take over, which on loopback cost a connection its
    64 KiB segments. ctx.somaxconn: (the servers' value, the machine's)."""
    try:
        with open(SOMAXCONN) as f:
            old = int(f.read())
    except (OSError, ValueError):
        ctx.somaxconn = (None, None)
        return
    ctx.somaxconn = (old, old)
    if old >= LISTEN_QUEUE:
        return
    try:
        with open(SOMAXCONN, "w") as f:
            f.write(str(LISTEN_QUEUE))
    except OSError:
        return

    def restore():
        with open(SOMAXCONN, "w") as f:
            f.write(str(old))
    atexit.register(restore)
    ctx.somaxconn = (LISTEN_QUEUE, old)


def _start_time(tid):
    """A thread's start time (clock ticks after boot), which tells it from
    a later thread given the same id; None once it is gone."""
    try:
        with open("/proc/%d/stat" % tid) as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _swap(path, new):
    """Sets a kernel setting: writes new(old text), or new itself; returns
    the old text, or None where it cannot be read or set."""
    try:
        with open(path) as f:
            old = f.read().strip()
        with open(path, "w") as f:
            f.write(new(old) if callable(new) else new)
    except (OSError, ValueError):
        return None
    return old


def shield_server_cpu(ctx):
    """The server CPU for the servers under test alone, for the run: every
    other thread allowed elsewhere too, every interrupt and the kernel's
    unbound work queues move off it, and get their old CPUs back at exit.
    Without this a machine's own agents run there whenever they wake, and
    a validator arriving meanwhile waits them out whatever the server does
    (bench/README.md: what this was seen to cost). Threads kept to the
    server CPU alone (a CPU's own kernel threads) stay. ctx.shield:
    (threads, interrupts) moved, and whether the work queues moved."""
    server, client = int(SERVER_CPU), int(CLIENT_CPU)
    threads, settings = [], []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            tids = os.listdir("/proc/%s/task" % pid)
        except OSError:
            continue
        for t in tids:
            tid = int(t)
            try:
                old = os.sched_getaffinity(tid)
                if server not in old or len(old) < 2:
                    continue
                started = _start_time(tid)
                os.sched_setaffinity(tid, old - {server})
            except OSError:     # gone, or a thread whose CPUs are fixed
                continue
            threads.append((tid, started, old))
    # An interrupt that cannot move (managed, per-CPU) keeps its CPUs.
    for irq in os.listdir("/proc/irq"):
        path = "/proc/irq/%s/smp_affinity_list" % irq
        old = _swap(path, str(client))
        if old is not None:
            settings.append((path, old))
    irqs = len(settings)
    wq = _swap(WQ_CPUMASK, lambda m: "%x" % (int(m, 16) & ~(1 << server)))
    if wq is not None:
        settings.append((WQ_CPUMASK, wq))

    def restore():
        for tid, started, old in threads:
            if _start_time(tid) == started:
                try:
                    os.sched_setaffinity(tid, old)
                except OSError:
                    pass
        for path, old in settings:
            _swap(path, old)
    atexit.register(restore)
    ctx.shield = (len(threads), irqs, wq is not None)


def install():
    """Debian packages the bench drives, installed only when missing."""
    need = {"nginx": "nginx", "haproxy": "haproxy", "wrk": "wrk",
            "gnuplot": "gnuplot-nox", "curl": "curl", "openssl": "openssl",
            "cc": "build-essential", "taskset": "util-linux",
            "timeout": "coreutils", "redis-server": "redis-server"}
    missing = sorted({pkg for cmd, pkg in need.items() if not shutil.which(cmd)})
    if not os.path.exists("/usr/lib/nginx/modules/ngx_stream_module.so"):
        missing.append("libnginx-mod-stream")
    if sh("dpkg-query -W -f='${Status}' libssl-dev 2>/dev/null").find("ok installed") < 0:
        missing.append("libssl-dev")
    deps = os.path.join(TOP, "deploy", "install-deps.sh")
    if os.path.exists(deps):
        r = subprocess.run([deps])
        if r.returncode != 0:
            die("deploy/install-deps.sh failed")
    if not missing:
        return
    if os.geteuid() != 0:
        die("need root to install: " + " ".join(missing))
    say("== installing " + " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Keep the packages' own services (nginx on :80) from starting.
    prc = "/usr/sbin/policy-rc.d"
    made = False
    if not os.path.exists(prc):
        with open(prc, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(prc, 0o755)
        made = True
    try:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"]
                       + missing, env=env, check=True, stdout=subprocess.DEVNULL)
    finally:
        if made:
            os.unlink(prc)
    # A service that started anyway is stopped: the bench owns the ports.
    for svc in ("nginx", "haproxy"):
        if shutil.which("service"):
            subprocess.run(["service", svc, "stop"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)


def acme_edge_exe():
    return os.path.join(TOP, "build", "release", "acme-edge")


def compile_clients(work, flags=("-Wall",)):
    """The bench's own load clients, tlsload and floodload: their paths."""
    out = []
    for name in ("tlsload", "floodload"):
        exe = os.path.join(work, name)
        # -I TOP: tlsload.c takes its small helpers from common/edge.h.
        subprocess.run(["cc", "-O2", "-I", TOP] + list(flags)
                       + ["-o", exe, os.path.join(BENCH, name + ".c"),
                          "-lssl", "-lcrypto", "-lpthread"], check=True)
        out.append(exe)
    return out


def build():
    say("== building acme-edge (Release)")
    subprocess.run(["cmake", "--preset", "release", "-S", TOP],
                   stdout=subprocess.DEVNULL, check=True, cwd=TOP)
    subprocess.run(["cmake", "--build", os.path.join(TOP, "build", "release"),
                    "-j%d" % (os.cpu_count() or 2)], check=True, cwd=TOP,
                   stdout=subprocess.DEVNULL)
    return acme_edge_exe()


def make_certs(work):
    """ECDSA P-256 everywhere: the upstream's certificate, and an RFC 8737
    certificate (SAN = the identifier, critical acmeIdentifier = SHA-256 of
    the key authorization) for the peers answering acme-tls/1."""
    ext = ":".join(KA_SHA[i:i + 2] for i in range(0, 64, 2))
    for name, cn, extra in (
            ("up", PASS_NAME, []),
            ("acme", ACME_NAME, ["-addext", "1.3.6.1.5.5.7.1.31=critical,DER:04:20:" + ext])):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
                        "-subj", "/CN=" + cn, "-addext", "subjectAltName=DNS:" + cn,
                        "-keyout", os.path.join(work, name + ".key"),
                        "-out", os.path.join(work, name + ".crt")] + extra,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(os.path.join(work, name + ".pem"), "w") as f:
            for part in ("crt", "key"):
                with open(os.path.join(work, name + "." + part)) as g:
                    f.write(g.read())


def make_www(work):
    www = os.path.join(work, "www")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "1k"), "wb") as f:
        f.write(b"k" * 1024)
    with open(os.path.join(www, "1m"), "wb") as f:
        f.write(os.urandom(1 << 20))
    with open(os.path.join(www, "1g"), "wb") as f:   # sparse: no disk, no I/O
        f.truncate(1 << 30)
    # Read once, so the page cache holds it before any server is timed: the
    # first reader of a sparse file pays for populating the cache.
    with open(os.path.join(www, "1g"), "rb", buffering=0) as f:
        buf = bytearray(1 << 20)
        while f.readinto(buf):
            pass
