#!/usr/bin/python3
"""xtrunk operations tests: control socket, metrics, sd_notify, logs.

    /usr/bin/python3 ops.py --xtrunkd BIN --xtrunkctl CTL --dir DIR

Run by ops.sh, which writes DIR/relay.conf and the PKI. This script starts
the relay itself (so that it can give it NOTIFY_SOCKET, the datagram
socket systemd would pass) and writes its PID to DIR/relay.pid for ops.sh
to clean up. The leaves are protocol.py's raw-socket mocks:
  a.example   -> leaf-a 127.0.0.41 (mock)
  *.b.example -> leaf-b 127.0.0.42 (mock)
  c.example   -> down   127.0.0.43 (nothing listens)
relay on 127.0.0.40:5269, metrics on 127.0.0.40:9270.

Prints "ok NAME" or "FAIL NAME: why" per case; exits 0 only if all passed.
Every wait has a timeout. The metrics text is parsed with Debian's
python3-prometheus-client parser (text format 0.0.4).
"""

import argparse
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from protocol import (Fail, MockLeaf, dialback_valid, open_stream, short)  # noqa: E402

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

RELAY = ("127.0.0.40", 5269)
METRICS = ("127.0.0.40", 9270)


def http(raw, timeout=8.0):
    """Send raw bytes to the metrics listener, return (status, headers, body)."""
    s = socket.create_connection(METRICS, timeout=timeout)
    try:
        if raw:
            s.sendall(raw)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                raise Fail("metrics listener: no answer within %.0f s" % timeout)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.1 (\d{3}) ", lines[0])
    if not m:
        raise Fail("bad status line %r" % lines[0])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(m.group(1)), hdrs, body


def scrape():
    """The metrics as {(name, frozenset(labels)): value}, parsed strictly."""
    status, hdrs, body = http(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    if status != 200:
        raise Fail("GET /metrics: status %d" % status)
    if not hdrs.get("content-type", "").startswith("text/plain; version=0.0.4"):
        raise Fail("content type %r" % hdrs.get("content-type"))
    if int(hdrs.get("content-length", -1)) != len(body):
        raise Fail("content-length %s for %d bytes" % (hdrs.get("content-length"), len(body)))
    text = body.decode("utf-8")
    out = {}
    families = list(text_string_to_metric_families(text))
    for fam in families:
        if not fam.name.startswith("xtrunk_"):
            raise Fail("metric family %s without the xtrunk_ prefix" % fam.name)
        if fam.type == "counter" and not text.count("# TYPE %s_total counter" % fam.name):
            raise Fail("counter %s is not named *_total" % fam.name)
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    if len(families) < 12:
        raise Fail("only %d metric families" % len(families))
    return out


def val(m, name, **labels):
    return m.get((name, frozenset(labels.items())), 0.0)


class Suite:
    CONF = "relay.conf"

    def __init__(self, args):
        self.args = args
        self.dir = args.dir
        self.sock = os.path.join(self.dir, "control.sock")
        self.log = os.path.join(self.dir, "relay.log")
        self.notify_path = os.path.join(self.dir, "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notify.settimeout(0.2)
        self.notes = []
        self.a = MockLeaf("a.example", ("127.0.0.41", 5269), args.cert, args.key)
        self.b = MockLeaf("b.example", ("127.0.0.42", 5269), args.cert, args.key)
        self.relay = None
        self.conns = []

    # ---- helpers
    def start_relay(self):
        env = dict(os.environ, NOTIFY_SOCKET=self.notify_path)
        logf = open(self.log, "ab")
        self.relay = subprocess.Popen([self.args.xtrunkd, "-d", "-f",
                                       os.path.join(self.dir, self.CONF)],
                                      stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                      env=env)
        logf.close()
        with open(os.path.join(self.dir, "relay.pid"), "w") as f:
            f.write("%d\n" % self.relay.pid)

    def wait_note(self, pred, timeout=5.0):
        """Collect sd_notify datagrams until one satisfies pred."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for n in self.notes:
                if pred(n):
                    return n
            try:
                self.notes.append(self.notify.recv(4096).decode())
            except socket.timeout:
                pass
        raise Fail("no sd_notify message matching; got %r" % self.notes)

    def ctl(self, *argv, want=0):
        p = subprocess.run([self.args.xtrunkctl, "-s", self.sock] + list(argv),
                           capture_output=True, text=True, timeout=15)
        if p.returncode != want:
            raise Fail("xtrunkctl %s: status %d (expected %d): %s%s"
                       % (" ".join(argv), p.returncode, want, p.stdout, p.stderr))
        return p.stdout + p.stderr

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def wait_log(self, pattern, start=0, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t = self.log_text()[start:]
            if re.search(pattern, t):
                return t
            time.sleep(0.05)
        raise Fail("relay log has no %r after offset %d" % (pattern, start))

    def stream(self, frm, to):
        c = open_stream(RELAY, frm, to)
        self.conns.append(c)
        return c

    def arrived(self, mock, data, timeout=5.0):
        return mock.wait_for(lambda: any(data in mc.raw for mc in mock.conns), timeout)

    # ---- cases
    def case_ready_notified(self):
        self.start_relay()
        n = self.wait_note(lambda n: "READY=1" in n.split("\n"), 10)
        if "STATUS=" not in n or "MAINPID=%d" % self.relay.pid not in n:
            raise Fail("READY message without STATUS/MAINPID: %r" % n)
        self.wait_log(r"event=started")

    def case_socket_permissions(self):
        st = os.stat(self.sock)
        if not stat.S_ISSOCK(st.st_mode):
            raise Fail("%s is not a socket" % self.sock)
        if stat.S_IMODE(st.st_mode) != 0o660:
            raise Fail("control socket mode %o, expected 660" % stat.S_IMODE(st.st_mode))
        out = self.ctl("ping")
        if out.strip():
            raise Fail("ping printed %r" % out)

    def case_metrics_parse(self):
        m = scrape()
        for name in ("xtrunk_forward_latency_seconds_count", "xtrunk_forward_latency_seconds_sum"):
            if (name, frozenset()) not in m:
                raise Fail("no %s" % name)
        self.before = m

    def case_status_live_stream(self):
        c = self.stream("a.example", "sub.b.example")
        dialback_valid(c, "a.example", "sub.b.example")
        self.live = c
        for i in range(3):
            msg = ("<message from='alice@a.example/r' to='bob@sub.b.example' id='ops%d'>"
                   "<body>hi</body></message>" % i)
            c.send(msg)
            if not self.arrived(self.b, msg):
                raise Fail("message %d did not reach leaf-b" % i)
        out = self.ctl("status")
        lines = out.splitlines()
        if not lines or not lines[0].startswith("xtrunkd pid=%d " % self.relay.pid):
            raise Fail("status header: %r" % short(out))
        inb = [x for x in lines if " dir=in " in x and " remote=a.example " in x
               and " local=sub.b.example " in x]
        if not inb:
            raise Fail("no inbound stream a.example -> sub.b.example in status:\n%s" % out)
        for want in (" auth=dialback ", " pairs=1 ", " peer=leaf-a ", " tls=TLS1.", " state=open "):
            if want not in inb[0]:
                raise Fail("inbound stream line lacks %r: %s" % (want, inb[0]))
        outb = [x for x in lines if " dir=out " in x and " peer=leaf-b " in x
                and " local=a.example " in x and " remote=sub.b.example " in x]
        if not outb or " state=established " not in outb[0] or " auth=dialback " not in outb[0] \
                or " queued=0 " not in outb[0] or " tls=TLS1." not in outb[0]:
            raise Fail("no established outbound stream to leaf-b in status:\n%s" % out)
        want = "counter=stanzas-sent route=*.b.example peer=leaf-b value="
        if not any(x.startswith(want) for x in lines):
            raise Fail("status has no per-route counter %r:\n%s" % (want, out))

    def case_metrics_move(self):
        m = scrape()
        b = self.before
        d_in = (val(m, "xtrunk_stanzas_received_total", route="*.b.example", peer="leaf-a")
                - val(b, "xtrunk_stanzas_received_total", route="*.b.example", peer="leaf-a"))
        d_out = (val(m, "xtrunk_stanzas_sent_total", route="*.b.example", peer="leaf-b")
                 - val(b, "xtrunk_stanzas_sent_total", route="*.b.example", peer="leaf-b"))
        d_lat = (val(m, "xtrunk_forward_latency_seconds_count")
                 - val(b, "xtrunk_forward_latency_seconds_count"))
        if (d_in, d_out, d_lat) != (3, 3, 3):
            raise Fail("after 3 stanzas: received +%g, sent +%g, latency count +%g"
                       % (d_in, d_out, d_lat))
        inf = val(m, "xtrunk_forward_latency_seconds_bucket", le="+Inf")
        if inf != val(m, "xtrunk_forward_latency_seconds_count"):
            raise Fail("+Inf bucket %g != count" % inf)
        if val(m, "xtrunk_connections", direction="out", state="established") < 1:
            raise Fail("no established outbound connection in the gauge")
        if val(m, "xtrunk_connections", direction="in", state="open") < 1:
            raise Fail("no open inbound connection in the gauge")
        if val(m, "xtrunk_streams_opened_total", direction="in") < 1:
            raise Fail("streams_opened_total{direction=in} did not move")
        self.before = m

    def case_bounce_counted(self):
        c = self.live
        dialback_valid(c, "a.example", "c.example")
        msg = "<message from='alice@a.example/r' to='carol@c.example' id='opsb'/>"
        c.send(msg)
        if not self.a.wait_for(lambda: any("remote-server-not-found" in mc.raw
                                           and "opsb" in mc.raw for mc in self.a.conns), 8):
            raise Fail("no bounce reached leaf-a")
        m = scrape()
        d = (val(m, "xtrunk_bounces_total", condition="remote-server-not-found")
             - val(self.before, "xtrunk_bounces_total", condition="remote-server-not-found"))
        if d != 1:
            raise Fail("bounces_total{remote-server-not-found} moved by %g" % d)

    def case_trace_and_level(self):
        c = self.live
        self.ctl("trace", "stanza", "on")
        start = len(self.log_text())
        c.send("<message from='alice@a.example/r' to='bob@sub.b.example' id='tr1'/>")
        self.wait_log(r"event=stanza kind=message from=a.example to=sub.b.example", start)
        out = self.ctl("trace", "stanza", "off")
        if "trace=none" not in out:
            raise Fail("trace off answered %r" % out)
        self.ctl("log", "warning")
        start = len(self.log_text())
        c.send("<message from='alice@a.example/r' to='bob@sub.b.example' id='tr2'/>")
        if not self.arrived(self.b, "id='tr2'"):
            raise Fail("tr2 not delivered")
        time.sleep(0.3)
        t = self.log_text()[start:]
        if "event=forward" in t or "event=stanza" in t:
            raise Fail("info/trace lines logged at level warning: %r" % short(t))
        self.ctl("log", "info")
        err = self.ctl("log", "loud", want=1)
        if "unknown level" not in err:
            raise Fail("bad level answered %r" % err)

    def case_reload(self):
        conf = os.path.join(self.dir, "relay.conf")
        self.notes = []
        out = self.ctl("reload")
        self.wait_note(lambda n: "RELOADING=1" in n)
        self.wait_note(lambda n: "READY=1" in n and "reloaded" in n)
        with open(conf) as f:
            good = f.read()
        with open(conf, "w") as f:
            f.write(good + "\nbogus_key = 1;\n")
        try:
            err = self.ctl("reload", want=1)
        finally:
            with open(conf, "w") as f:
                f.write(good)
        if "unknown key \"bogus_key\"" not in err or "old configuration stays" not in err:
            raise Fail("failed reload answered %r" % err)
        m = scrape()
        if (val(m, "xtrunk_config_reloads_total", result="ok"),
                val(m, "xtrunk_config_reloads_total", result="failed")) != (1, 1):
            raise Fail("reload counters ok=%g failed=%g"
                       % (val(m, "xtrunk_config_reloads_total", result="ok"),
                          val(m, "xtrunk_config_reloads_total", result="failed")))
        # the live stream survived both
        self.live.send("<message from='alice@a.example/r' to='bob@sub.b.example' id='rl1'/>")
        if not self.arrived(self.b, "id='rl1'"):
            raise Fail("the stream established before the reloads stopped working")
        _ = out

    def case_http_strict(self):
        # exactly the limit: the listener reads every byte before it
        # answers, so its close cannot reset the connection under the answer
        LONG = b"GET /metrics HTTP/1.1\r\nX: "
        LONG += b"a" * (4096 - len(LONG))
        for raw, want in ((b"POST /metrics HTTP/1.1\r\n\r\n", 405),
                          (b"GET /nope HTTP/1.1\r\n\r\n", 404),
                          (b"GET /metrics HTTP/1.1\nHost: x\n\n", 400),
                          (b"\x16\x03\x01\x00\xa5\x01\x00", 400),
                          (LONG, 431)):
            status, hdrs, body = http(raw)
            if status != want or body:
                raise Fail("%r: status %d body %r, expected %d and no body"
                           % (raw[:30], status, body[:40], want))
        status, hdrs, body = http(b"HEAD /metrics HTTP/1.0\r\n\r\n")
        if status != 200 or body or int(hdrs["content-length"]) < 100:
            raise Fail("HEAD: %d %r %r" % (status, hdrs, body[:40]))
        t0 = time.monotonic()
        status, _, _ = http(b"GET /metr", timeout=10)
        if status != 408 or not 4 <= time.monotonic() - t0 <= 8:
            raise Fail("a stalled request got %d after %.1f s, expected 408 after 5 s"
                       % (status, time.monotonic() - t0))

    def case_no_secrets_logged(self):
        t = self.log_text()
        if self.args.secret in t:
            raise Fail("the dialback secret appears in the log")
        if "<body>" in t:
            raise Fail("a stanza body appears in the log")

    def case_stopping_notified(self):
        self.notes = []
        self.relay.send_signal(signal.SIGTERM)
        self.wait_note(lambda n: "STOPPING=1" in n)
        try:
            rc = self.relay.wait(10)
        except subprocess.TimeoutExpired:
            raise Fail("relay still running 10 s after SIGTERM")
        if rc != 0:
            raise Fail("exit status %d" % rc)
        if os.path.exists(self.sock):
            raise Fail("control socket %s left behind" % self.sock)

    CASES = [
        ("ready-notified", case_ready_notified),
        ("control-socket-permissions", case_socket_permissions),
        ("metrics-parse", case_metrics_parse),
        ("status-live-stream", case_status_live_stream),
        ("metrics-counters-move", case_metrics_move),
        ("bounce-counted", case_bounce_counted),
        ("trace-and-level", case_trace_and_level),
        ("reload-control-and-notify", case_reload),
        ("metrics-http-strict", case_http_strict),
        ("no-secrets-logged", case_no_secrets_logged),
        ("stopping-notified", case_stopping_notified),
    ]

    def run(self):
        failed = 0
        for name, fn in self.CASES:
            t0 = time.monotonic()
            try:
                fn(self)
                print("ok %s (%d ms)" % (name, (time.monotonic() - t0) * 1000), flush=True)
            except Exception as e:
                failed += 1
                why = str(e) if isinstance(e, Fail) else "%s: %s" % (type(e).__name__, e)
                print("FAIL %s: %s" % (name, short(why, 1500)), flush=True)
                if self.relay is None or self.relay.poll() is not None:
                    print("FAIL relay-gone: the relay is not running; stopping", flush=True)
                    return failed + 1
        return failed

    def close(self):
        for c in self.conns:
            c.close()
        self.a.close()
        self.b.close()
        if self.relay is not None and self.relay.poll() is None:
            self.relay.kill()
            self.relay.wait(5)
        self.notify.close()
        os.unlink(self.notify_path)


def main_with(cls):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--xtrunkd", required=True)
    p.add_argument("--xtrunkctl", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    args = p.parse_args()
    suite = cls(args)
    try:
        failed = suite.run()
    finally:
        suite.close()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main_with(Suite)
