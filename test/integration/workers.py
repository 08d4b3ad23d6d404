#!/usr/bin/python3
"""xtrunk multi-process tests: xtrunkd with workers = 2.

    /usr/bin/python3 workers.py --xtrunkd BIN --xtrunkctl CTL --dir DIR ...

Run by ops.sh after ops.py, with the same directory, PKI, mock leaves and
addresses (relay 127.0.0.40, metrics 127.0.0.40:9270), on DIR/relay-workers.conf
(relay.conf plus workers = 2). Checks that the supervisor tells systemd
READY=1 once both workers are ready, that inbound streams land on both
workers and their stanzas cross, that xtrunkctl status joins both workers
and the metrics endpoint sums them, that SIGHUP and "xtrunkctl reload"
reach both, that a killed worker is restarted, and that SIGTERM drains both
and leaves no process and no socket behind.

Prints "ok NAME" or "FAIL NAME: why" per case; exits 0 only if all passed.
"""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ops import Suite, main_with, scrape, val  # noqa: E402
from protocol import Fail, dialback_valid  # noqa: E402

STREAMS = 12


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not running
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class WorkersSuite(Suite):
    CONF = "relay-workers.conf"

    def worker_pids(self):
        """{worker number: pid} from xtrunkctl status."""
        out = self.ctl("status")
        pids = {}
        for m in re.finditer(r"^worker=(\d+) xtrunkd pid=(\d+) ", out, re.M):
            pids[int(m.group(1))] = int(m.group(2))
        return pids, out

    def wait_pids(self, old=None, timeout=10.0):
        deadline = time.monotonic() + timeout
        pids, out = {}, ""
        while time.monotonic() < deadline:
            try:
                pids, out = self.worker_pids()
            except Fail:
                pids = {}
            if sorted(pids) == [1, 2] and (old is None or pids != old):
                return pids
            time.sleep(0.2)
        raise Fail("status does not show two workers (old %r): %s" % (old, out[-600:]))

    def case_ready(self):
        self.start_relay()
        n = self.wait_note(lambda n: "READY=1" in n.split("\n"), 15)
        if "MAINPID=%d" % self.relay.pid not in n or "2 workers" not in n:
            raise Fail("READY message without the supervisor's MAINPID or '2 workers': %r" % n)
        self.wait_log(r"event=started config=\S+ workers=2")
        for w in (1, 2):
            self.wait_log(r"worker=%d event=started " % w)
        self.pids = self.wait_pids()
        for w, pid in self.pids.items():
            with open("/proc/%d/stat" % pid) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != self.relay.pid:
                raise Fail("worker %d (pid %d) has parent %d, not the supervisor %d"
                           % (w, pid, ppid, self.relay.pid))

    def case_sockets(self):
        for p in (self.sock, self.sock + ".1", self.sock + ".2"):
            if not os.path.exists(p):
                raise Fail("no control socket %s" % p)
            if os.stat(p).st_mode & 0o777 != 0o660:
                raise Fail("%s has mode %o" % (p, os.stat(p).st_mode & 0o777))
        out = self.ctl("status")
        if not out.startswith("xtrunkd pid=%d workers=2 " % self.relay.pid):
            raise Fail("status header: %r" % out[:200])

    def case_both_workers_serve(self):
        self.before = scrape()
        self.streams = []
        for i in range(STREAMS):
            c = self.stream("a.example", "sub.b.example")
            dialback_valid(c, "a.example", "sub.b.example")
            self.streams.append(c)
        for i, c in enumerate(self.streams):
            for k in range(2):
                c.send("<message from='alice@a.example/r' to='bob@sub.b.example' "
                       "id='w%d-%d'/>" % (i, k))
        for i in range(STREAMS):
            for k in range(2):
                if not self.arrived(self.b, "id='w%d-%d'" % (i, k)):
                    raise Fail("w%d-%d did not reach leaf-b" % (i, k))
        out = self.ctl("status")
        per = {}
        for m in re.finditer(r"^worker=(\d) stream=\d+ dir=in .* remote=a\.example ", out, re.M):
            per[int(m.group(1))] = per.get(int(m.group(1)), 0) + 1
        if sum(per.values()) != STREAMS or not per.get(1) or not per.get(2):
            raise Fail("inbound streams per worker %r (want %d, on both):\n%s"
                       % (per, STREAMS, out[-1500:]))
        # each worker forwarded stanzas: its own control socket says so
        for w in (1, 2):
            p = subprocess.run([self.args.xtrunkctl, "-s", "%s.%d" % (self.sock, w), "status"],
                               capture_output=True, text=True, timeout=15)
            m = re.search(r"^counter=stanzas-sent route=\*\.b\.example peer=leaf-b value=(\d+)",
                          p.stdout, re.M)
            if p.returncode != 0 or not m or int(m.group(1)) < 1:
                raise Fail("worker %d forwarded nothing: %s" % (w, p.stdout + p.stderr))
        self.per = per

    def case_metrics_summed(self):
        m = scrape()
        d = (val(m, "xtrunk_stanzas_sent_total", route="*.b.example", peer="leaf-b")
             - val(self.before, "xtrunk_stanzas_sent_total", route="*.b.example", peer="leaf-b"))
        if d != 2 * STREAMS:
            raise Fail("stanzas_sent_total moved by %g, expected %d" % (d, 2 * STREAMS))
        if val(m, "xtrunk_connections", direction="in", state="open") < STREAMS:
            raise Fail("open inbound connections %g < %d"
                       % (val(m, "xtrunk_connections", direction="in", state="open"), STREAMS))
        if val(m, "xtrunk_forward_latency_seconds_bucket", le="+Inf") != \
                val(m, "xtrunk_forward_latency_seconds_count"):
            raise Fail("summed histogram: +Inf bucket != count")
        # the sum is the sum of the workers' own texts
        total = 0
        for w in (1, 2):
            p = subprocess.run([self.args.xtrunkctl, "-s", "%s.%d" % (self.sock, w), "metrics"],
                               capture_output=True, text=True, timeout=15)
            mm = re.search(r'^xtrunk_stanzas_sent_total\{route="\*\.b\.example",peer="leaf-b"\} '
                           r'(\S+)$', p.stdout, re.M)
            total += float(mm.group(1)) if mm else 0
        if total != val(m, "xtrunk_stanzas_sent_total", route="*.b.example", peer="leaf-b"):
            raise Fail("summed %g, workers say %g in all"
                       % (val(m, "xtrunk_stanzas_sent_total", route="*.b.example",
                              peer="leaf-b"), total))

    def case_sighup_both(self):
        self.notes = []
        self.relay.send_signal(signal.SIGHUP)
        self.wait_note(lambda n: "RELOADING=1" in n, 5)
        self.wait_note(lambda n: "READY=1" in n and "reloaded" in n, 10)
        self.notes = []
        self.ctl("reload")
        self.wait_note(lambda n: "READY=1" in n and "reloaded" in n, 10)
        m = scrape()
        if val(m, "xtrunk_config_reloads_total", result="ok") != 4:
            raise Fail("reloads ok = %g, expected 4 (2 workers x SIGHUP + reload)"
                       % val(m, "xtrunk_config_reloads_total", result="ok"))
        for c in self.streams:
            c.send("<message from='alice@a.example/r' to='bob@sub.b.example' id='after-hup'/>")
        if not self.b.wait_for(lambda: sum(mc.raw.count("id='after-hup'")
                                           for mc in self.b.conns) == STREAMS, 8):
            raise Fail("not every stream carried a stanza after the reloads")

    def case_killed_worker_restarted(self):
        old = dict(self.pids)
        os.kill(old[1], signal.SIGKILL)
        self.wait_log(r"event=worker-exited worker=1 pid=%d status=0 signal=9" % old[1])
        pids = self.wait_pids(old)
        if pids[2] != old[2] or pids[1] == old[1]:
            raise Fail("after killing worker 1: %r (was %r)" % (pids, old))
        if alive(old[1]):
            raise Fail("killed worker %d still there" % old[1])
        # the restarted worker serves: new streams until one lands on it
        for i in range(16):
            c = self.stream("a.example", "sub.b.example")
            dialback_valid(c, "a.example", "sub.b.example")
            c.send("<message from='alice@a.example/r' to='bob@sub.b.example' id='re%d'/>" % i)
            if not self.arrived(self.b, "id='re%d'" % i):
                raise Fail("re%d not delivered after the restart" % i)
        p = subprocess.run([self.args.xtrunkctl, "-s", self.sock + ".1", "status"],
                           capture_output=True, text=True, timeout=15)
        if " dir=in " not in p.stdout:
            raise Fail("the restarted worker accepted none of 16 streams: %s" % p.stdout)
        self.pids = pids

    def case_sigterm_drains_both(self):
        self.notes = []
        self.relay.send_signal(signal.SIGTERM)
        self.wait_note(lambda n: "STOPPING=1" in n)
        try:
            rc = self.relay.wait(15)
        except subprocess.TimeoutExpired:
            raise Fail("supervisor still running 15 s after SIGTERM")
        if rc != 0:
            raise Fail("supervisor exit status %d" % rc)
        t = self.log_text()
        for w in (1, 2):
            if not re.search(r"worker=%d event=stopped loop-close=0" % w, t):
                raise Fail("worker %d did not stop cleanly" % w)
        if not re.search(r"event=stopped workers=2 loop-close=0", t):
            raise Fail("the supervisor did not stop cleanly")
        for w, pid in self.pids.items():
            if alive(pid):
                raise Fail("worker %d (pid %d) left running" % (w, pid))
        for p in (self.sock, self.sock + ".1", self.sock + ".2"):
            if os.path.exists(p):
                raise Fail("%s left behind" % p)

    def case_supervisor_killed(self):
        """SIGKILL to the supervisor: its workers get SIGTERM (PR_SET_PDEATHSIG),
        drain and exit; none is left running."""
        start = len(self.log_text())
        self.start_relay()
        self.wait_log(r"event=started config=\S+ workers=2", start, 15)
        pids = self.wait_pids()
        self.relay.send_signal(signal.SIGKILL)
        self.relay.wait(5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(p) for p in pids.values()):
            time.sleep(0.1)
        left = [p for p in pids.values() if alive(p)]
        if left:
            raise Fail("workers %r still running 10 s after the supervisor was killed" % left)
        t = self.log_text()[start:]
        for w in (1, 2):
            if not re.search(r"worker=%d event=stopped loop-close=0" % w, t):
                raise Fail("worker %d did not drain and stop" % w)

    def case_socket_activation(self):
        """systemd-socket-activate binds 127.0.0.40:5269 and starts xtrunkd on
        the first connection: one process (relay.conf), then the supervisor
        and two workers (relay-workers.conf)."""
        sa = "/usr/bin/systemd-socket-activate"
        if not os.access(sa, os.X_OK):
            raise Fail("%s missing (Debian package systemd)" % sa)
        for conf, n in (("relay.conf", 1), ("relay-workers.conf", 2)):
            start = len(self.log_text())
            logf = open(self.log, "ab")
            self.relay = subprocess.Popen(
                [sa, "-l", "127.0.0.40:5269", "-E", "NOTIFY_SOCKET=" + self.notify_path,
                 self.args.xtrunkd, "-d", "-f", os.path.join(self.dir, conf)],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
            logf.close()
            with open(os.path.join(self.dir, "relay.pid"), "w") as f:
                f.write("%d\n" % self.relay.pid)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # until the socket exists
                if any(ln.split()[1] == "2800007F:1495"
                       and ln.split()[3] == "0A" for ln in open("/proc/net/tcp")):
                    break
                time.sleep(0.05)
            c = self.stream("a.example", "sub.b.example")  # starts xtrunkd
            dialback_valid(c, "a.example", "sub.b.example")
            c.send("<message from='alice@a.example/r' to='bob@sub.b.example' id='sa%d'/>" % n)
            if not self.arrived(self.b, "id='sa%d'" % n):
                raise Fail("workers=%d: the stanza did not cross" % n)
            t = self.wait_log(r"event=socket-activated address=127\.0\.0\.40:5269", start)
            if n == 2 and not re.search(r"event=started config=\S+ workers=2", t):
                raise Fail("socket-activated supervisor did not start two workers")
            if "event=listen-failed" in t:
                raise Fail("workers=%d: a listener failed: %s" % (n, t[-400:]))
            c.close()
            self.relay.send_signal(signal.SIGTERM)
            try:
                rc = self.relay.wait(15)
            except subprocess.TimeoutExpired:
                raise Fail("workers=%d: still running 15 s after SIGTERM" % n)
            if rc != 0:
                raise Fail("workers=%d: exit status %d" % (n, rc))

    CASES = [
        ("workers-ready-notified", case_ready),
        ("workers-control-sockets", case_sockets),
        ("workers-both-serve", case_both_workers_serve),
        ("workers-metrics-summed", case_metrics_summed),
        ("workers-sighup-and-reload-reach-both", case_sighup_both),
        ("workers-killed-worker-restarted", case_killed_worker_restarted),
        ("workers-sigterm-drains-both", case_sigterm_drains_both),
        ("workers-supervisor-killed", case_supervisor_killed),
        ("socket-activation", case_socket_activation),
    ]


if __name__ == "__main__":
    main_with(WorkersSuite)
