#!/usr/bin/python3
"""xtrunk soak: a long load through a running relay with faults injected.

    /usr/bin/python3 soak.py --xtrunkd build/xtrunkd --conf relay.conf \
        --log relay.log --secret S --cert leaf.pem --key leaf.key --seconds 120

Run by soak.sh, which makes the PKI and the configuration:
  relay  127.0.0.30:5269  (started here, so its exit status is ours to see)
  leaf-a 127.0.0.31:5269  a.example: the sender's side, its authoritative
                          server (answers db:verify) and where bounces arrive
  leaf-b 127.0.0.32:5269  *.b.example: the sink, where faults are injected

The leaves are protocol.MockLeaf (test/integration/protocol.py) with a
stream-parsing _serve that keeps no transcript (bounded memory), never
ends a stream on its own, and can be told to misbehave.

Load: K inbound streams (STARTTLS, dialback a.example -> d0..d{N-1}.b.example,
protocol.open_stream / dialback_valid), stanzas at a fixed offered rate, each
with a unique id 's<seq>' (90% message, 5% iq get, 5% presence). The sink
counts every id once (duplicates separately); leaf-a records every bounce
(type='error', the original id) with its condition and checks its addresses.

Faults, on a schedule drawn from a seeded RNG (each kind once in the first
round, then at random):
  sighup     SIGHUP the relay (the same file); wait for event=reloaded
  refuse     leaf-b closes its listener for a while; the streams of some
             domains are first closed while idle, so new ones are refused
  stall      leaf-b accepts and never answers: either nothing at all after
             the TCP connect, or no answer to db:result; some domains' idle
             streams closed first so the relay must reconnect into the stall
  kill-idle  leaf-b resets (RST) the streams of some domains after the sender
             has paused those domains and the streams went quiet
  kill-busy  leaf-b resets the streams of some domains under load
A reset established s2s stream without XEP-0198 loses what was in flight:
ids sent to a busy-killed domain within [kill-2 s, kill+1 s] that neither
arrived nor bounced are counted as "lost-in-flight at killed connections",
any other missing id as lost. zero-loss requires lost == 0.

Prints the figures, the relay's RSS and open fds every 5 s (table), then one
line per check, "ok NAME" or "FAIL NAME: why". Every wait is bounded. """

import argparse
import array
import ctypes
import os
import random
import re
import select
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ next to protocol.py
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import protocol  # noqa: E402
from protocol import (HEADER_RE, NS_DB_FEATURE, NS_STREAM, PROCEED, STARTTLS,  # noqa: E402
                      Fail, attrs, dialback_valid, open_stream)

SENDER_JID = "s@a.example/soak"
FAULTS = ["sighup", "refuse", "stall", "kill-idle", "kill-busy"]
INFLIGHT_BEFORE = 2.0  # seconds before a busy kill
INFLIGHT_AFTER = 1.0   # and after it

EL_RE = re.compile(
    r"\s*(?:(?P<tls><starttls\b[^>]*?(?:/>|>.*?</starttls>))"
    r"|<db:verify\b(?P<va>[^>]*?)(?:/>|>(?P<vk>[^<]*)</db:verify>)"
    r"|<db:result\b(?P<ra>[^>]*?)(?:/>|>(?P<rk>[^<]*)</db:result>)"
    r"|<(?P<st>message|presence|iq)\b(?P<sa>[^>]*?)(?:/>|>(?P<sb>.*?)</(?P=st)>)"
    r"|(?P<end></stream:stream>))", re.S)
ID_RE = re.compile(r"\bid='s(\d+)'")
TYPE_RE = re.compile(r"\btype='([\w-]+)'")
FROM_RE = re.compile(r"\bfrom='([^']*)'")
TO_RE = re.compile(r"\bto='([^']*)'")
COND_RE = re.compile(r"<error\b[^>]*>\s*<([a-z-]+)\b")
DOM_RE = re.compile(r"^d(\d+)\.b\.example$")


def now():
    return time.monotonic()


# ---------------------------------------------------------------- accounting

class Ledger:
    """Per id (seq): target domain, send time, times delivered, bounced, the
    bounce condition. Fixed arrays, so memory does not grow with the run."""

    def __init__(self, cap, t0):
        self.cap = cap
        self.t0 = t0
        self.dom = bytearray(cap)
        self.kind = bytearray(cap)
        self.t_sent = array.array("f", bytes(4 * cap))
        self.delivered = bytearray(cap)
        self.bounced = bytearray(cap)
        self.cond = bytearray(cap)
        self.conds = ["?"]
        self.cond_ix = {}
        self.n_sent = 0
        self.n_delivered = 0  # distinct
        self.n_bounced = 0    # distinct
        self.dups = 0
        self.dup_bounces = 0
        self.misrouted = 0     # arrived at the sink on a stream for another domain
        self.bad_bounce = 0    # bounce with wrong addresses
        self.unknown = 0       # ids never sent
        self.err_at_sink = 0   # error stanzas at leaf-b
        self.nonerr_at_a = 0   # non-error stanzas at leaf-a
        self.lock = threading.Lock()
        self.bad_examples = []

    def note_bad(self, what):
        if len(self.bad_examples) < 8:
            self.bad_examples.append(protocol.short(what, 300))

    def deliver(self, seq, conn_dom, to):
        with self.lock:
            if seq >= self.n_sent:
                self.unknown += 1
                self.note_bad("unknown id at sink: %d" % seq)
                return
            if self.dom[seq] != conn_dom or to != "r@d%d.b.example" % self.dom[seq]:
                self.misrouted += 1
                self.note_bad("misrouted s%d (d%d) on stream for d%d to=%s"
                              % (seq, self.dom[seq], conn_dom, to))
            n = self.delivered[seq]
            if n == 0:
                self.n_delivered += 1
            else:
                self.dups += 1
            if n < 255:
                self.delivered[seq] = n + 1

    def bounce(self, seq, cond, frm, to):
        with self.lock:
            if seq >= self.n_sent:
                self.unknown += 1
                self.note_bad("unknown bounced id: %d" % seq)
                return
            if frm != "r@d%d.b.example" % self.dom[seq] or to != SENDER_JID:
                self.bad_bounce += 1
                self.note_bad("bounce of s%d from=%s to=%s" % (seq, frm, to))
            ix = self.cond_ix.get(cond)
            if ix is None:
                ix = self.cond_ix[cond] = len(self.conds)
                self.conds.append(cond)
            n = self.bounced[seq]
            if n == 0:
                self.n_bounced += 1
                self.cond[seq] = ix
            else:
                self.dup_bounces += 1
            if n < 255:
                self.bounced[seq] = n + 1

    def accounted(self):
        with self.lock:
            return self.n_delivered + self.n_bounced


# ---------------------------------------------------------------- mock leaves

class Live:
    """One connection the relay made to a mock leaf."""

    def __init__(self, key, peer, mode):
        self.key = key
        self.peer = peer
        self.mode = mode      # normal / stall-dialback
        self.dom = -1         # index of dN.b.example from the stream 'to'
        self.to = ""
        self.established = False
        self.last_rx = now()
        self.rx = 0
        self.kill = None      # busy / idle / stall-end
        self.done = threading.Event()


class SoakLeaf(protocol.MockLeaf):
    """MockLeaf with a stream-parsing _serve: no transcript, no 60 s limit,
    stanzas handed to the ledger, and faults: refuse, stall, kill."""

    def __init__(self, domain, addr, certfile, keyfile, ledger, role, events):
        self.ledger = ledger
        self.role = role          # sink (leaf-b) or origin (leaf-a)
        self.events = events      # kill records (shared list)
        self.mode = "normal"      # normal / stall-tcp / stall-dialback
        self.refusing = False
        self.live = {}
        self.stalled = []         # sockets accepted in stall-tcp mode, never read
        self.nconn = 0
        self.ndb = 0
        self.stall_conns = 0
        self.accept_thread = None
        super().__init__(domain, addr, certfile, keyfile)
        self.accept_thread = self.thread

    # -- listener
    def _accept_loop(self):
        ls = self.lsock
        while not self.stop and not self.refusing:
            try:
                s, peer = ls.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            mode = self.mode
            if mode == "stall-tcp":
                with self.lock:
                    self.stalled.append(s)
                    self.stall_conns += 1
                continue
            threading.Thread(target=self._serve, args=(s, peer, mode), daemon=True).start()
        try:
            ls.close()  # queued connections get a reset
        except OSError:
            pass

    def refuse(self):
        self.refusing = True
        self.accept_thread.join(2.0)

    def listen_again(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(self.addr)
        ls.listen(64)
        ls.settimeout(0.2)
        self.lsock = ls
        self.refusing = False
        self.accept_thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.accept_thread.start()

    def end_stall(self):
        self.mode = "normal"
        with self.lock:
            stalled, self.stalled = self.stalled, []
            waiting = [lc for lc in self.live.values() if lc.mode == "stall-dialback"]
        for s in stalled:
            try:
                s.close()
            except OSError:
                pass
        for lc in waiting:
            lc.kill = "stall-end"
        for lc in waiting:
            lc.done.wait(2.0)

    def conns_for(self, doms):
        with self.lock:
            return [lc for lc in self.live.values() if lc.dom in doms]

    def kill(self, doms, kind):
        """Reset every connection for the domains; wait (bounded) until done."""
        lcs = self.conns_for(doms)
        for lc in lcs:
            lc.kill = kind
        for lc in lcs:
            lc.done.wait(2.0)
        return len(lcs)

    # -- one connection
    def _reply_header(self, sock, a, tls):
        with self.lock:
            self.n += 1
            n = self.n
        out = ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
               "xmlns:stream='%s' xmlns:db='jabber:server:dialback' "
               "id='soak-%s-%d' from='%s' to='%s' version='1.0'>"
               "<stream:features>%s<dialback xmlns='%s'><errors/></dialback>"
               "</stream:features>"
               % (NS_STREAM, self.domain, n, a.get("to", self.domain), a.get("from", ""),
                  "" if tls else STARTTLS, NS_DB_FEATURE))
        sock.sendall(out.encode())

    def _stanza(self, lc, name, at, body):
        m = ID_RE.search(at)
        if m is None:
            with self.ledger.lock:
                self.ledger.note_bad("stanza without a soak id at %s: %s" % (self.role, at))
            return
        seq = int(m.group(1))
        t = TYPE_RE.search(at)
        typ = t.group(1) if t else ""
        fm, tm = FROM_RE.search(at), TO_RE.search(at)
        frm, to = fm.group(1) if fm else "", tm.group(1) if tm else ""
        if self.role == "sink":
            if typ == "error":
                with self.ledger.lock:
                    self.ledger.err_at_sink += 1
                    self.ledger.note_bad("error stanza at the sink: %s" % at)
                return
            self.ledger.deliver(seq, lc.dom, to)
            lc.last_seq = seq
        else:
            if typ != "error":
                with self.ledger.lock:
                    self.ledger.nonerr_at_a += 1
                    self.ledger.note_bad("non-error stanza at leaf-a: %s" % at)
                return
            c = COND_RE.search(body or "")
            self.ledger.bounce(seq, c.group(1) if c else "(none)", frm, to)

    def _serve(self, sock, peer, mode="normal"):
        with self.lock:
            self.nconn += 1
            lc = Live(self.nconn, peer, mode)
            self.live[lc.key] = lc
        buf, pos, phase, tls = "", 0, "header", False
        try:
            sock.settimeout(0.2)
            while not self.stop:
                while True:
                    if phase == "header":
                        m = HEADER_RE.search(buf, pos)
                        if m is None:
                            break
                        a = attrs(m.group(0))
                        pos = m.end()
                        lc.to = a.get("to", "")
                        d = DOM_RE.match(lc.to)
                        lc.dom = int(d.group(1)) if d else -1
                        self._reply_header(sock, a, tls)
                        phase = "open"
                        continue
                    m = EL_RE.match(buf, pos)
                    if m is None:
                        break
                    pos = m.end()
                    if m.group("tls"):
                        if tls or buf[pos:].strip():
                            raise Fail("bad STARTTLS from the relay")
                        sock.sendall(PROCEED.encode())
                        sock.settimeout(5)
                        sock = self.ctx.wrap_socket(sock, server_side=True)
                        sock.settimeout(0.2)
                        tls, buf, pos, phase = True, "", 0, "header"
                    elif m.group("va") is not None:
                        a = attrs(m.group("va"))
                        key = (m.group("vk") or "").strip()
                        sock.sendall(("<db:verify from='%s' to='%s' id='%s' type='%s'/>"
                                      % (a.get("to"), a.get("from"), a.get("id"),
                                         self.verify_answer(key))).encode())
                    elif m.group("ra") is not None:
                        a = attrs(m.group("ra"))
                        with self.lock:
                            self.ndb += 1
                        if lc.mode == "stall-dialback":
                            continue  # never answered
                        sock.sendall(("<db:result from='%s' to='%s' type='valid'/>"
                                      % (a.get("to"), a.get("from"))).encode())
                        lc.established = True
                    elif m.group("st"):
                        self._stanza(lc, m.group("st"), m.group("sa"), m.group("sb"))
                    else:  # </stream:stream>
                        sock.sendall(b"</stream:stream>")
                        return
                if pos:
                    buf, pos = buf[pos:], 0
                if len(buf) > 4 * 1024 * 1024:
                    raise Fail("4 MiB without a complete element: %r" % protocol.short(buf))
                if lc.kill:
                    quiet = now() - lc.last_rx
                    if lc.kill != "stall-end":
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        struct.pack("ii", 1, 0))
                    sock.close()
                    if lc.kill != "stall-end":
                        kind = lc.kill
                        if kind == "idle" and quiet < 0.3:
                            kind = "idle-but-busy"
                        with self.lock:
                            self.events.append((now(), lc.dom, kind, quiet, lc.established))
                    return
                try:
                    data = sock.recv(65536)
                except (socket.timeout, ssl.SSLWantReadError):
                    continue
                except (ssl.SSLError, OSError):
                    return
                if not data:
                    return
                lc.last_rx = now()
                lc.rx += len(data)
                buf += data.decode("latin-1")
        except Exception as e:
            with self.lock:
                if len(self.errors) < 50:
                    self.errors.append("%s: %s" % (type(e).__name__, e))
        finally:
            with self.lock:
                self.live.pop(lc.key, None)
            lc.done.set()
            try:
                sock.close()
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.refusing = True
        with self.lock:
            for s in self.stalled:
                try:
                    s.close()
                except OSError:
                    pass
            self.stalled = []


# ---------------------------------------------------------------- the sender

class Sender(threading.Thread):
    """K inbound streams, one thread, a fixed offered rate in 10 ms ticks."""

    def __init__(self, args, ledger, ndom):
        super().__init__(daemon=True)
        host, port = args.relay.rsplit(":", 1)
        self.relay = (host, int(port))
        self.args = args
        self.ledger = ledger
        self.ndom = ndom
        self.rate = args.rate
        self.conns = [None] * args.streams
        self.paused = frozenset()  # replaced, never mutated (read by the thread)
        self.last_sent_to = [0.0] * ndom
        self.stop_flag = False
        self.reconnects = 0
        self.from_relay = []  # anything the relay said on an inbound stream
        self.send_errors = []
        self.t_start = None
        self.t_stop = None
        self.full = False
        rng = random.Random(args.seed + 1)
        self.bodies = ["x" * rng.randint(16, 512) for _ in range(97)]

    def connect(self, k):
        c = open_stream(self.relay, "a.example", "d0.b.example")
        for d in range(self.ndom):
            dialback_valid(c, "a.example", "d%d.b.example" % d, key="k" + protocol.unique_key())
        c.sock.settimeout(10)
        self.conns[k] = c

    def connect_all(self):
        for k in range(len(self.conns)):
            self.connect(k)

    def stanza(self, seq, d):
        r = seq % 20
        to = "r@d%d.b.example" % d
        if r == 7:
            return ("<iq from='%s' to='%s' id='s%d' type='get'>"
                    "<query xmlns='jabber:iq:version'/></iq>" % (SENDER_JID, to, seq))
        if r == 13:
            return ("<presence from='%s' to='%s' id='s%d'><status>%s</status></presence>"
                    % (SENDER_JID, to, seq, self.bodies[seq % 97][:40]))
        return ("<message from='%s' to='%s' id='s%d' type='chat'><body>%s</body></message>"
                % (SENDER_JID, to, seq, self.bodies[seq % 97]))

    def _check_input(self, k):
        c = self.conns[k]
        s = c.sock
        try:
            r, _, _ = select.select([s], [], [], 0)
        except (OSError, ValueError):
            r = [s]
        if not r and not s.pending():
            return
        s.settimeout(0.0)
        try:
            data = s.recv(65536)
            if not data:
                raise ConnectionResetError("EOF")
            if len(self.from_relay) < 20:
                self.from_relay.append("stream %d: %s" % (k, protocol.short(data.decode("latin-1"))))
            if b"stream:error" in data or b"</stream:stream>" in data:
                raise ConnectionResetError("stream error or close from the relay")
        except (ssl.SSLWantReadError, BlockingIOError, socket.timeout):
            pass
        except (OSError, ssl.SSLError) as e:
            self._reconnect(k, "read: %s" % e)
            return
        finally:
            try:
                self.conns[k].sock.settimeout(10)
            except OSError:
                pass

    def _reconnect(self, k, why):
        self.reconnects += 1
        if len(self.send_errors) < 20:
            self.send_errors.append("%.1fs stream %d: %s" % (now() - self.ledger.t0, k, why))
        self.conns[k].close()
        for _ in range(5):
            try:
                self.connect(k)
                return
            except (Fail, OSError) as e:
                if len(self.send_errors) < 20:
                    self.send_errors.append("reconnect %d: %s" % (k, e))
                time.sleep(1)
        raise RuntimeError("cannot reconnect inbound stream %d" % k)

    def run(self):
        led = self.ledger
        K = len(self.conns)
        self.t_start = now()
        tick = 0.01
        next_t = self.t_start
        while not self.stop_flag:
            t = now()
            due = int(self.rate * (t - self.t_start)) - led.n_sent
            due = min(due, max(1, self.rate // 10))
            active = [d for d in range(self.ndom) if d not in self.paused]
            if due > 0 and active:
                if led.n_sent + due > led.cap:
                    self.full = True
                    break
                batches = [[] for _ in range(K)]
                rel = t - led.t0
                base = led.n_sent
                na = len(active)
                for i in range(due):
                    seq = base + i
                    d = active[seq % na]
                    led.dom[seq] = d
                    led.t_sent[seq] = rel
                    batches[seq % K].append(self.stanza(seq, d))
                    self.last_sent_to[d] = t
                with led.lock:
                    led.n_sent = base + due
                for k in range(K):
                    if batches[k]:
                        data = "".join(batches[k]).encode()
                        try:
                            self.conns[k].sock.sendall(data)
                        except (OSError, ssl.SSLError) as e:
                            self._reconnect(k, "send: %s" % e)
            for k in range(K):
                self._check_input(k)
            next_t += tick
            d = next_t - now()
            if d > 0:
                time.sleep(d)
            else:
                next_t = now()
        self.t_stop = now()

    def close(self):
        for c in self.conns:
            if c is not None:
                try:
                    c.send("</stream:stream>")
                except OSError:
                    pass
                c.close()


# ---------------------------------------------------------------- the relay

class LogTail(threading.Thread):
    """Reads the relay log as it grows; counts what matters."""

    KEYS = ["event=reloaded", "event=reload-failed", "event=write-failed", "event=queue-full",
            "event=shutdown-drop", "event=connection-lost", "event=refused",
            "event=stream-error", "event=drained complete=yes", "event=drained complete=no"]

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.off = 0
        self.part = b""
        self.lines = 0
        self.count = {k: 0 for k in self.KEYS}
        self.ise = []          # lines with internal-server-error / internal-error
        self.ise_n = 0
        self.drops = []
        self.drops_n = 0
        self.errwarn = []
        self.errwarn_n = 0
        self.hop_failed = {}   # (condition, reason) -> n
        self.bounce_cond = {}  # logged event=bounce conditions
        self.stop_flag = False
        self.lock = threading.Lock()

    def poll(self):
        with self.lock:
            try:
                with open(self.path, "rb") as f:
                    f.seek(self.off)
                    data = f.read(64 * 1024 * 1024)
            except OSError:
                return
            self.off += len(data)
            data = self.part + data
            lines = data.split(b"\n")
            self.part = lines.pop()
            for raw in lines:
                self.lines += 1
                if b"event=forward" in raw:
                    continue
                line = raw.decode("utf-8", "replace")
                for k in self.KEYS:
                    if k in line:
                        self.count[k] += 1
                if "internal-server-error" in line or "internal-error" in line:
                    self.ise_n += 1
                    if len(self.ise) < 10:
                        self.ise.append(line)
                if "event=drop" in line:
                    self.drops_n += 1
                    if len(self.drops) < 10:
                        self.drops.append(line)
                if " err " in line or " warn " in line or " crit " in line:
                    self.errwarn_n += 1
                    if len(self.errwarn) < 10:
                        self.errwarn.append(line)
                if "event=next-hop-failed" in line:
                    c = re.search(r"condition=(\S+)", line)
                    r = re.search(r'reason="([^"]*)"', line)
                    k = (c.group(1) if c else "?", r.group(1) if r else "?")
                    self.hop_failed[k] = self.hop_failed.get(k, 0) + 1
                elif "event=bounce " in line:
                    c = re.search(r"condition=(\S+)", line)
                    k = c.group(1) if c else "?"
                    self.bounce_cond[k] = self.bounce_cond.get(k, 0) + 1

    def run(self):
        while not self.stop_flag:
            self.poll()
            time.sleep(0.5)

    def wait_for(self, key, before, timeout):
        deadline = now() + timeout
        while now() < deadline:
            self.poll()
            if self.count[key] > before:
                return True
            time.sleep(0.05)
        return False


def proc_status(pid):
    rss = None
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        fds = len(os.listdir("/proc/%d/fd" % pid))
    except (OSError, ValueError):
        return None, None
    return rss, fds


class Sampler(threading.Thread):
    def __init__(self, pid, ledger, t0, csv_path, every=5.0):
        super().__init__(daemon=True)
        self.pid, self.ledger, self.t0, self.every = pid, ledger, t0, every
        self.rows = []  # (t, rss, fds, sent, delivered, bounced)
        self.csv = open(csv_path, "w")
        self.csv.write("t_s,rss_kib,fds,sent,delivered,bounced\n")
        self.stop_flag = False

    def sample(self):
        rss, fds = proc_status(self.pid)
        if rss is None:
            return None
        led = self.ledger
        row = (now() - self.t0, rss, fds, led.n_sent, led.n_delivered, led.n_bounced)
        self.rows.append(row)
        self.csv.write("%.0f,%d,%d,%d,%d,%d\n" % row)
        self.csv.flush()
        return row

    def run(self):
        nxt = now()
        while not self.stop_flag:
            self.sample()
            nxt += self.every
            while not self.stop_flag and now() < nxt:
                time.sleep(0.2)


def pdeathsig():
    """In the child: SIGTERM the relay if this process dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


# ---------------------------------------------------------------- the run

class Soak:
    def __init__(self, args):
        self.args = args
        self.t0 = now()
        self.ndom = args.domains
        cap = int(args.rate * (args.seconds + 60) * 1.1) + 100000
        self.ledger = Ledger(cap, self.t0)
        self.kills = []    # (t, dom, kind, quiet_s, established) from leaf-b
        self.faults = []   # (t, name, detail)
        self.reload_kept = [0, 0]  # established leaf-b streams kept across SIGHUP / seen
        self.rng = random.Random(args.seed)
        self.relay = None
        self.dead_during_run = None

    def log(self, msg):
        print("# %6.1fs %s" % (now() - self.t0, msg), flush=True)

    def rel(self):
        return now() - self.t0

    def relay_alive(self):
        if self.relay.poll() is not None:
            if self.dead_during_run is None:
                self.dead_during_run = (self.rel(), self.relay.returncode)
            return False
        return True

    def start_relay(self):
        a = self.args
        logf = open(a.log, "ab")
        self.relay = subprocess.Popen([a.xtrunkd, "-d", "-f", a.conf], stdin=subprocess.DEVNULL,
                                      stdout=logf, stderr=subprocess.STDOUT,
                                      preexec_fn=pdeathsig)
        logf.close()
        with open(a.pidfile, "w") as f:
            f.write("%d\n" % self.relay.pid)
        deadline = now() + 5
        while now() < deadline:
            if self.relay.poll() is not None:
                raise Fail("the relay exited at start (status %d)" % self.relay.returncode)
            with open(a.log, "rb") as f:
                if b"event=started" in f.read():
                    return
            time.sleep(0.05)
        raise Fail("the relay did not log event=started within 5 s")

    # -- faults
    def idle_kill(self, doms, settle=5.0):
        """Pause the domains at the sender, wait until their streams at
        leaf-b are quiet, reset them, resume. Returns conns killed."""
        s = self.sender
        s.paused = s.paused | set(doms)
        t_pause = now()
        deadline = t_pause + settle
        while now() < deadline:
            time.sleep(0.1)
            if now() - t_pause < 0.8:
                continue
            lcs = self.b.conns_for(doms)
            if all(now() - lc.last_rx >= 0.5 for lc in lcs):
                break
        n = self.b.kill(doms, "idle")
        s.paused = s.paused - set(doms)
        return n

    def pick_doms(self, lo, hi):
        k = self.rng.randint(lo, min(hi, self.ndom - 1))
        return sorted(self.rng.sample(range(self.ndom), k))

    def fault(self, name):
        r = self.rng
        t = self.rel()
        if name == "sighup":
            before = self.tail.count["event=reloaded"]
            failed_before = self.tail.count["event=reload-failed"]
            with self.b.lock:
                est = set(k for k, lc in self.b.live.items() if lc.established)
            rec = self.sender.reconnects
            os.kill(self.relay.pid, signal.SIGHUP)
            ok = self.tail.wait_for("event=reloaded", before, 5.0)
            bad = self.tail.count["event=reload-failed"] > failed_before
            time.sleep(1.0)
            with self.b.lock:
                kept = len(est & set(self.b.live))
            self.reload_kept[0] += kept
            self.reload_kept[1] += len(est)
            detail = "reloaded" if ok and not bad else "NO event=reloaded (reload-failed=%s)" % bad
            detail += "; %d/%d established streams at leaf-b kept, inbound reconnects %d" % (
                kept, len(est), self.sender.reconnects - rec)
        elif name == "refuse":
            dur = r.uniform(3, 10)
            doms = self.pick_doms(1, max(1, self.ndom // 2))
            self.b.refuse()
            n = self.idle_kill(doms)
            time.sleep(max(0.0, dur - (self.rel() - t)))
            self.b.listen_again()
            detail = "%.1fs, idle streams of %s reset first (%d conns)" % (
                self.rel() - t, ",".join("d%d" % d for d in doms), n)
        elif name == "stall":
            dur = r.uniform(4, 15)
            phase = r.choice(["stall-tcp", "stall-dialback"])
            doms = self.pick_doms(1, max(1, self.ndom // 2))
            self.b.mode = phase
            n = self.idle_kill(doms)
            time.sleep(max(0.0, dur - (self.rel() - t)))
            stalled = self.b.stall_conns
            self.b.end_stall()
            detail = "%s %.1fs, idle streams of %s reset first (%d conns), %d stalled accepts" % (
                phase, self.rel() - t, ",".join("d%d" % d for d in doms), n, stalled)
        elif name == "kill-idle":
            doms = self.pick_doms(1, 3)
            n = self.idle_kill(doms)
            detail = "%s (%d conns)" % (",".join("d%d" % d for d in doms), n)
        elif name == "kill-busy":
            doms = self.pick_doms(1, 2)
            n = self.b.kill(doms, "busy")
            detail = "%s (%d conns)" % (",".join("d%d" % d for d in doms), n)
        else:
            raise ValueError(name)
        self.faults.append((t, name, detail))
        self.log("fault %s (from %.1fs): %s" % (name, t, detail))

    # -- main
    def run(self):
        a = self.args
        self.start_relay()
        self.a = SoakLeaf("a.example", (a.leaf_a, 5269), a.cert, a.key, self.ledger, "origin",
                          self.kills)
        self.b = SoakLeaf("b.example", (a.leaf_b, 5269), a.cert, a.key, self.ledger, "sink",
                          self.kills)
        self.tail = LogTail(a.log)
        self.tail.start()
        self.sampler = Sampler(self.relay.pid, self.ledger, self.t0, a.csv)
        self.sampler.start()
        self.sender = Sender(a, self.ledger, self.ndom)
        self.sender.connect_all()
        self.log("relay pid %d; %d inbound streams x %d domains authenticated; load %d/s for %ds"
                 % (self.relay.pid, a.streams, self.ndom, a.rate, a.seconds))
        t_load = now()
        self.sender.start()
        t_end = t_load + a.seconds
        warmup = min(30.0, max(10.0, a.seconds * 0.1))
        gap = a.fault_gap or min(20.0, max(5.0, a.seconds / 8.0))
        self.warm_rss = None
        self.fault_error = None
        order = FAULTS[:]
        self.rng.shuffle(order)
        next_fault = t_load + warmup + 1
        next_progress = t_load + a.progress
        while now() < t_end:
            time.sleep(0.2)
            if not self.relay_alive():
                self.log("the relay DIED (status %d)" % self.relay.returncode)
                break
            if not self.sender.is_alive():
                self.log("the sender stopped%s" % (" (ledger full)" if self.sender.full else ""))
                break
            if self.warm_rss is None and now() >= t_load + warmup:
                row = self.sampler.sample()
                self.warm_rss = row[1] if row else None
                self.log("warm-up done: RSS %s KiB" % self.warm_rss)
            if now() >= next_progress:
                next_progress += a.progress
                rss, fds = proc_status(self.relay.pid)
                led = self.ledger
                self.log("sent %d delivered %d bounced %d  rss %s KiB fds %s" % (
                    led.n_sent, led.n_delivered, led.n_bounced, rss, fds))
            if now() >= next_fault and now() < t_end - max(5.0, min(gap, 20.0)):
                name = order.pop(0) if order else self.rng.choice(FAULTS)
                try:
                    self.fault(name)
                except Exception as e:  # a broken fault is a broken test
                    self.fault_error = "%s: %s: %s" % (name, type(e).__name__, e)
                    self.log("fault %s raised %s" % (name, self.fault_error))
                    break
                next_fault = now() + self.rng.uniform(0.5 * gap, 1.5 * gap)
        # stop: faults are over (each restores leaf-b before returning)
        self.sender.stop_flag = True
        self.sender.join(15)
        led = self.ledger
        sent = led.n_sent
        load_s = (self.sender.t_stop or now()) - (self.sender.t_start or t_load)
        self.log("load stopped: %d sent in %.0fs (%.0f/s); draining (at most %ds)"
                 % (sent, load_s, sent / max(load_s, 0.001), a.drain))
        deadline = now() + a.drain
        last, last_change = led.accounted(), now()
        while now() < deadline:
            acc = led.accounted()
            if acc >= sent:
                break
            if acc != last:
                last, last_change = acc, now()
            elif now() - last_change > a.quiet:
                break
            time.sleep(0.2)
        self.drain_s = a.drain - max(0.0, deadline - now())
        alive = self.relay_alive()
        final = self.sampler.sample() if alive else None
        self.sampler.stop_flag = True
        # SIGTERM with the inbound streams still open
        exit_status = None
        if alive:
            self.relay.send_signal(signal.SIGTERM)
            try:
                exit_status = self.relay.wait(a.stop_timeout)
            except subprocess.TimeoutExpired:
                self.relay.kill()
                self.relay.wait(5)
                exit_status = "still running %ds after SIGTERM (killed)" % a.stop_timeout
        else:
            exit_status = self.relay.returncode
        time.sleep(0.3)
        self.tail.stop_flag = True
        self.tail.join(5)
        self.tail.poll()
        self.sender.close()
        self.a.close()
        self.b.close()
        return self.report(sent, load_s, alive, final, exit_status)

    def report(self, sent, load_s, alive, final, exit_status):
        a, led, tail = self.args, self.ledger, self.tail
        busy = [(t, d) for (t, d, kind, q, est) in self.kills if kind in ("busy", "idle-but-busy")]
        lost_ids, inflight_ids, both = [], [], 0
        cond_hist = {}
        with led.lock:
            dl, bo, cd, dm, ts = led.delivered, led.bounced, led.cond, led.dom, led.t_sent
            for seq in range(sent):
                if dl[seq]:
                    if bo[seq]:
                        both += 1
                    continue
                if bo[seq]:
                    c = led.conds[cd[seq]]
                    cond_hist[c] = cond_hist.get(c, 0) + 1
                    continue
                tr = ts[seq] + self.t0
                if any(d == dm[seq] and tk - INFLIGHT_BEFORE <= tr <= tk + INFLIGHT_AFTER
                       for tk, d in busy):
                    inflight_ids.append(seq)
                else:
                    lost_ids.append(seq)
        p = lambda s="": print(s, flush=True)  # noqa: E731
        p("== soak figures (%ds load, offered %d/s, %d inbound streams, %d domains, seed %d)"
          % (a.seconds, a.rate, a.streams, self.ndom, a.seed))
        p("sent       %d (%.0f/s achieved)" % (sent, sent / max(load_s, 0.001)))
        p("delivered  %d distinct at leaf-b; duplicates %d; misrouted %d"
          % (led.n_delivered, led.dups, led.misrouted))
        p("bounced    %d distinct at leaf-a; duplicate bounces %d; bad addresses %d; "
          "both delivered and bounced %d" % (led.n_bounced, led.dup_bounces, led.bad_bounce, both))
        for c, n in sorted(cond_hist.items(), key=lambda x: -x[1]):
            p("  %-24s %d" % (c, n))
        p("lost       %d  (sent - delivered - bounced, not explained by a reset)" % len(lost_ids))
        p("lost-in-flight at killed connections: %d  (ids to a domain whose busy stream leaf-b "
          "reset, sent within -%.0fs..+%.0fs of the reset)" % (len(inflight_ids), INFLIGHT_BEFORE,
                                                               INFLIGHT_AFTER))
        if lost_ids:
            p("  first lost ids: %s" % " ".join(
                "s%d(d%d,%.2fs)" % (s, led.dom[s], led.t_sent[s]) for s in lost_ids[:12]))
        if led.unknown or led.err_at_sink or led.nonerr_at_a or led.bad_examples:
            p("anomalies: unknown ids %d, errors at the sink %d, non-errors at leaf-a %d"
              % (led.unknown, led.err_at_sink, led.nonerr_at_a))
            for x in led.bad_examples:
                p("  %s" % x)
        kinds = {}
        for _, name, _ in self.faults:
            kinds[name] = kinds.get(name, 0) + 1
        p("faults     %d: %s" % (len(self.faults), ", ".join(
            "%s %d" % (k, kinds.get(k, 0)) for k in FAULTS)))
        kk = {}
        for _, _, kind, _, est in self.kills:
            kk[kind] = kk.get(kind, 0) + 1
        p("resets     %s (connections leaf-b reset, by kind)" % (
            ", ".join("%s %d" % x for x in sorted(kk.items())) or "none"))
        if inflight_ids:
            p("  in flight: %s" % " ".join(
                "s%d(d%d,sent %.2fs)" % (s, led.dom[s], led.t_sent[s]) for s in inflight_ids[:8]))
            p("  busy resets at: %s" % " ".join("d%d@%.2fs" % (d, t - self.t0) for t, d in busy[:8]))
        p("reloads    %d established leaf-b streams open at a SIGHUP, %d still open 1 s later"
          % (self.reload_kept[1], self.reload_kept[0]))
        if any("NO event" in d for _, _, d in self.faults):
            p("  a SIGHUP was not followed by event=reloaded")
        with open(a.faults_file, "w") as f:
            for t, name, detail in self.faults:
                f.write("%.1f %s %s\n" % (t, name, detail))
            for t, d, kind, q, est in self.kills:
                f.write("reset %.1f d%d %s quiet=%.2fs established=%s\n"
                        % (t - self.t0, d, kind, q, est))
        p("sender     reconnects %d%s" % (self.sender.reconnects, "".join(
            "\n  %s" % x for x in self.sender.send_errors + self.sender.from_relay)))
        p("mock leaves: leaf-b %d conns (%d stalled at TCP), leaf-a %d conns; errors %d/%d%s"
          % (self.b.nconn, self.b.stall_conns, self.a.nconn, len(self.b.errors),
             len(self.a.errors), "".join("\n  %s" % x for x in (self.b.errors + self.a.errors)[:5])))
        p("relay log  %d lines; reloads %d, reload-failed %d, queue-full %d, write-failed %d, "
          "event=drop %d, shutdown-drop %d, drained complete=yes %d/no %d"
          % (tail.lines, tail.count["event=reloaded"], tail.count["event=reload-failed"],
             tail.count["event=queue-full"], tail.count["event=write-failed"], tail.drops_n,
             tail.count["event=shutdown-drop"], tail.count["event=drained complete=yes"],
             tail.count["event=drained complete=no"]))
        p("next-hop-failed (relay log), by condition and reason:")
        for (c, r), n in sorted(tail.hop_failed.items(), key=lambda x: -x[1]):
            p("  %-24s %-48s %d" % (c, r, n))
        p("internal-server-error in the relay log: %d line(s)" % tail.ise_n)
        for line in tail.ise[:5]:
            p("  %s" % line)
        if tail.drops:
            p("event=drop lines (first %d of %d):" % (min(5, len(tail.drops)), tail.drops_n))
            for line in tail.drops[:5]:
                p("  %s" % line)
        if tail.errwarn:
            p("err/warn lines (first %d of %d):" % (min(5, len(tail.errwarn)), tail.errwarn_n))
            for line in tail.errwarn[:5]:
                p("  %s" % line)
        # memory table, at most ~30 rows
        rows = self.sampler.rows
        p("relay memory (sampled every 5 s; %d samples, all in %s):" % (len(rows), a.csv))
        p("  %7s %9s %5s %10s %10s %9s" % ("t(s)", "RSS KiB", "fds", "sent", "delivered",
                                           "bounced"))
        step = max(1, (len(rows) + 29) // 30)
        shown = rows[::step]
        if rows and shown[-1] is not rows[-1]:
            shown.append(rows[-1])
        for r in shown:
            p("  %7.0f %9d %5d %10d %10d %9d" % r)
        if rows:
            rs = [r[1] for r in rows]
            fs = [r[2] for r in rows]
            p("  RSS min %d max %d KiB; fds min %d max %d" % (min(rs), max(rs), min(fs), max(fs)))
        p("relay exit status after SIGTERM: %s" % exit_status)
        # checks
        checks = []
        why = []
        if lost_ids:
            why.append("%d lost" % len(lost_ids))
        if sent == 0:
            why.append("nothing sent")
        checks.append(("zero-loss", not why, ", ".join(why)))
        died = self.dead_during_run
        checks.append(("relay-alive", alive and died is None,
                       "relay exited with status %s at %.0fs" % (died[1], died[0]) if died
                       else "not running at the end"))
        checks.append(("clean-exit", exit_status == 0, "exit status %s" % exit_status))
        warm = self.warm_rss
        fin = final[1] if final else None
        checks.append(("memory-bounded", warm is not None and fin is not None and fin < 2 * warm,
                       "final RSS %s KiB, after warm-up %s KiB" % (fin, warm)))
        rate_ok = sent >= 0.5 * a.rate * a.seconds
        flow_ok = led.n_delivered >= 0.5 * sent and self.fault_error is None
        checks.append(("load-flowed", rate_ok and flow_ok,
                       "sent %d of %d offered, delivered %d%s" % (
                           sent, a.rate * a.seconds, led.n_delivered,
                           "; " + self.fault_error if self.fault_error else "")))
        p("memory: RSS after warm-up %s KiB, final %s KiB (limit 2x)" % (warm, fin))
        failed = 0
        for name, ok, reason in checks:
            if ok:
                p("ok %s" % name)
            else:
                failed += 1
                p("FAIL %s: %s" % (name, reason))
        return failed


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--xtrunkd", required=True)
    p.add_argument("--conf", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--pidfile", required=True)
    p.add_argument("--csv", required=True, help="RSS samples")
    p.add_argument("--faults-file", required=True, help="fault and reset records")
    p.add_argument("--relay", default="127.0.0.30:5269")
    p.add_argument("--leaf-a", default="127.0.0.31")
    p.add_argument("--leaf-b", default="127.0.0.32")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--seconds", type=int, default=120)
    p.add_argument("--rate", type=int, default=2000, help="offered stanzas per second, total")
    p.add_argument("--streams", type=int, default=4, help="inbound streams (K)")
    p.add_argument("--domains", type=int, default=8, help="target domains dN.b.example (N)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--fault-gap", type=float, default=0.0, help="mean seconds between faults")
    p.add_argument("--drain", type=int, default=60, help="at most, after the load")
    p.add_argument("--quiet", type=float, default=15.0,
                   help="drain ends early after this long without progress")
    p.add_argument("--stop-timeout", type=int, default=20, help="SIGTERM to exit")
    p.add_argument("--progress", type=float, default=60.0)
    args = p.parse_args()
    if args.domains < 2 or args.domains > 255:
        p.error("--domains: 2..255")
    soak = Soak(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        failed = soak.run()
    except Fail as e:
        print("FAIL soak-setup: %s" % e, flush=True)
        failed = 1
    finally:
        if soak.relay is not None and soak.relay.poll() is None:
            soak.relay.kill()
            soak.relay.wait(5)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
