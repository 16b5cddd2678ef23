"""Processes the bench starts: pinned to a CPU, bounded in time, killed by
PID at exit; and what /proc says they cost (CPU time, RSS)."""
import os
import signal
import socket
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

SERVER_CPU = "0"   # the server under test (and only it)
CLIENT_CPU = "1"   # load generators, the upstream, the API

PROCS = []          # every process we started: killed by PID at exit


def cpu_steal(cpu=None):
    """(steal, total) clock ticks so far of all CPUs, or of CPU `cpu`, from
    /proc/stat: what a virtual machine's host took for other work, and the
    whole."""
    name = "cpu" if cpu is None else "cpu%s" % cpu
    with open("/proc/stat") as f:
        for line in f:
            if line.split(None, 1)[0] == name:
                v = [int(x) for x in line.split()[1:]]
                break
        else:
            return 0, 0
    # user nice system idle iowait irq softirq steal (guest time is in user)
    return v[7], sum(v[:8])


def steal_pct(before, after):
    """The share of the time between two cpu_steal() readings the host took."""
    ticks = after[1] - before[1]
    return 100.0 * (after[0] - before[0]) / ticks if ticks > 0 else 0.0


def spawn(cmd, log, cpu, limit):
    """Starts cmd pinned to cpu, bounded to `limit` seconds by timeout(1)
    (so nothing outlives an interrupted bench), in its own session."""
    full = ["timeout", "-k", "5", str(int(limit)), "taskset", "-c", cpu] + cmd
    f = open(log, "ab")
    p = subprocess.Popen(full, stdout=f, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    f.close()
    PROCS.append(p)
    return p


def stop_proc(p, grace=5.0):
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        p.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(5)


def retire(p):
    """Stops p and forgets it: stop_all must not wait for it again."""
    stop_proc(p)
    if p in PROCS:
        PROCS.remove(p)


def stop_all():
    for p in reversed(PROCS):
        stop_proc(p)
    PROCS.clear()


def children(pid):
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def tree(pid):
    """pid and all its descendants."""
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += children(p)
    return seen


def proc_stat(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    return s[s.rindex(")") + 2:].split()


def cpu_split(pids):
    """(user, kernel) CPU seconds of pids: utime, stime (fields 14, 15)."""
    u = k = 0
    for pid in pids:
        st = proc_stat(pid)
        if st:
            u += int(st[11])
            k += int(st[12])
    return u / CLK_TCK, k / CLK_TCK


def rss_bytes(pids):
    t = 0
    for pid in pids:
        try:
            with open("/proc/%d/statm" % pid) as f:
                t += int(f.read().split()[1]) * PAGE
        except OSError:
            pass
    return t


def wait_port(port, proc, secs=10.0):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def port_free(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def run_client(cmd, timeout):
    """A load generator, pinned to the client CPU, bounded in time."""
    full = ["taskset", "-c", CLIENT_CPU] + cmd
    try:
        r = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, timeout=timeout,
                           start_new_session=True)
    except subprocess.TimeoutExpired:
        return None, "timed out after %ds" % timeout
    return r, None


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, **kw).stdout.strip()
