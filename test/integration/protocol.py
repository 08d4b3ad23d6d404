#!/usr/bin/python3
"""xtrunk protocol tests: raw-socket XMPP s2s against a running xtrunkd.

    /usr/bin/python3 protocol.py --relay 127.0.0.20:5269 --secret SECRET \
        --cert leaf.pem --key leaf.key

Run by protocol.sh, which starts the relay with a matching configuration:
a.example -> leaf-a 127.0.0.21:5269, *.b.example -> leaf-b 127.0.0.22:5269,
c.example -> "down" 127.0.0.23:5269 (nothing listens), inbound STARTTLS
required. This script plays the leaves with plain sockets and the ssl
module (standard library only):

  * the initiating leaf: connects to the relay, sends headers, STARTTLS,
    dialback and stanzas as raw XML strings;
  * mock authoritative / receiving servers for a.example (127.0.0.21) and
    b.example (127.0.0.22), one thread per connection: they answer the
    relay's header with one carrying an id, offer STARTTLS, answer
    db:verify (valid, or invalid for keys starting with "dead") and accept
    every db:result (type='valid'), and record every byte received after
    the stream header.

Prints one line per case, "ok NAME" or "FAIL NAME: why"; exits 0 only if
every case passed. Every wait has a timeout; the caller bounds the run. """

import argparse
import base64
import hashlib
import hmac
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time

NS_STREAM = "http://etherx.jabber.org/streams"
NS_STREAMS_ERR = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_DB_FEATURE = "urn:xmpp:features:dialback"

# default per expectation; protocol.sh raises it when the relay runs under valgrind
READ_TIMEOUT = float(os.environ.get("PROTO_READ_TIMEOUT", "4"))
SLOW = READ_TIMEOUT / 4.0  # scales the other waits the same way
HEADER_RE = re.compile(r"<stream:stream\b[^>]*>")
ATTR_RE = re.compile(r"([A-Za-z_][\w:.-]*)\s*=\s*(['\"])(.*?)\2", re.S)
PROCEED = "<proceed xmlns='%s'/>" % NS_TLS
STARTTLS = "<starttls xmlns='%s'/>" % NS_TLS


class Fail(Exception):
    pass


def attrs(tag):
    return {m.group(1): m.group(3) for m in ATTR_RE.finditer(tag)}


def short(s, n=300):
    s = s.replace("\n", "\\n").replace("\r", "\\r")
    return s if len(s) <= n else s[:n] + "...(%d more)" % (len(s) - n)


def stream_err(condition):
    return "<%s xmlns='%s'/>" % (condition, NS_STREAMS_ERR)


def header(frm, to, version=True, default_ns="jabber:server", stream_ns=NS_STREAM):
    return ("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' "
            "xmlns:db='jabber:server:dialback'%s to='%s'%s>"
            % (default_ns, stream_ns, " from='%s'" % frm if frm else "", to,
               " version='1.0'" if version else ""))


def db_key(secret, receiving, originating, stream_id):
    """XEP-0185: HEX(HMAC-SHA256(HEX(SHA256(secret)), recv ' ' orig ' ' id))."""
    k = hashlib.sha256(secret.encode()).hexdigest().encode()
    return hmac.new(k, ("%s %s %s" % (receiving, originating, stream_id)).encode(),
                    hashlib.sha256).hexdigest()


EL_RE = re.compile(r"<([\w:.-]+)((?:\s+[\w:.-]+\s*=\s*(?:'[^']*'|\"[^\"]*\"))*)\s*(/>|>(.*)</\1>)$", re.S)


def parse_el(el):
    """(name, attributes, text or None) of a simple element, or None."""
    m = EL_RE.match(el.strip())
    if m is None:
        return None
    return m.group(1), attrs(m.group(2)), m.group(4)


def same_el(got, want):
    """Equal up to attribute order and quoting."""
    return parse_el(got) is not None and parse_el(got) == parse_el(want)


def unique_key():
    return os.urandom(16).hex()


# ---------------------------------------------------------------- client side

class Conn:
    """One TCP (later TLS) connection to the relay with an incremental reader:
    everything received goes into buf; expectations consume from it."""

    def __init__(self, addr, timeout=3.0):
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.buf = ""
        self.eof = False
        self.stream_id = None

    def send(self, data):
        self.sock.sendall(data.encode())

    def _recv_some(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout()
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionResetError,
                BrokenPipeError):
            data = b""
        except ssl.SSLError as e:
            if "EOF" in str(e) or "RECORD" in str(e):
                data = b""
            else:
                raise
        if not data:
            self.eof = True
        else:
            self.buf += data.decode("latin-1")

    def read_until(self, pattern, timeout=READ_TIMEOUT, what=None):
        """Wait until pattern (a substring or compiled regex) is in buf; consume
        buf up to the end of the match; return (consumed text, match)."""
        deadline = time.monotonic() + timeout
        while True:
            if isinstance(pattern, str):
                i = self.buf.find(pattern)
                m = None if i < 0 else (i, i + len(pattern))
            else:
                r = pattern.search(self.buf)
                m = None if r is None else (r.start(), r.end())
            if m is not None:
                text = self.buf[:m[1]]
                match = self.buf[m[0]:m[1]]
                self.buf = self.buf[m[1]:]
                return text, match
            if self.eof:
                raise Fail("connection closed while waiting for %s; got %r"
                           % (what or short(str(getattr(pattern, "pattern", pattern))),
                              short(self.buf)))
            try:
                self._recv_some(deadline)
            except socket.timeout:
                raise Fail("timed out (%.0fs) waiting for %s; got %r"
                           % (timeout, what or short(str(getattr(pattern, "pattern", pattern))),
                              short(self.buf)))

    def expect_closed(self, timeout=READ_TIMEOUT):
        """Wait for EOF; return whatever arrived (and was not consumed) before it."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                self._recv_some(deadline)
            except socket.timeout:
                raise Fail("connection not closed within %.0fs; pending %r"
                           % (timeout, short(self.buf)))
        rest, self.buf = self.buf, ""
        return rest

    def expect_open(self, seconds):
        """Nothing closes the connection for `seconds`; return what arrived."""
        deadline = time.monotonic() + seconds
        while not self.eof:
            try:
                self._recv_some(deadline)
            except socket.timeout:
                return self.buf
        raise Fail("connection closed unexpectedly; got %r" % short(self.buf))

    def starttls(self, sni, ca=None, server_hostname=None, client_cert=None):
        """TLS on this connection; with ca, the relay's certificate must
        verify against it for server_hostname (default: sni)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if ca:
            ctx.load_verify_locations(ca)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_REQUIRED
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if client_cert:
            ctx.load_cert_chain(*client_cert)
        if self.buf:
            raise Fail("bytes after <proceed/>: %r" % short(self.buf))
        self.sock.settimeout(READ_TIMEOUT)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=sni)
        if ca:
            name = server_hostname or sni
            cert = self.sock.getpeercert()
            sans = [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
            if name not in sans:
                raise Fail("relay presented a certificate for %r, not %r" % (sans, name))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def expect_stream_error(c, condition, timeout=READ_TIMEOUT):
    """The exact stream error element, inside <stream:error>, then EOF."""
    want = stream_err(condition)
    c.read_until("<stream:error>", timeout, what="<stream:error>")
    text, _ = c.read_until("</stream:error>", timeout, what="</stream:error>")
    if not text.startswith(want):
        raise Fail("expected %s, got <stream:error>%s" % (want, short(text)))
    rest = c.expect_closed(timeout)
    if rest.strip() not in ("</stream:stream>",):
        raise Fail("after the stream error expected </stream:stream> and EOF, got %r"
                   % short(rest))


def read_header(c, timeout=READ_TIMEOUT):
    _, tag = c.read_until(HEADER_RE, timeout, what="the relay's stream header")
    a = attrs(tag)
    if a.get("xmlns:stream") != NS_STREAM:
        raise Fail("relay header without the stream namespace: %r" % tag)
    return a


def read_features(c, timeout=READ_TIMEOUT):
    c.read_until("<stream:features>", timeout, what="<stream:features>")
    text, _ = c.read_until("</stream:features>", timeout, what="</stream:features>")
    return text[:-len("</stream:features>")]


def open_stream(relay, frm="a.example", to="sub.b.example", tls=True, client_cert=None):
    """Header, features, STARTTLS, restart. Returns the connection with
    stream_id = the relay's id on the (post-TLS) stream."""
    c = Conn(relay)
    try:
        c.send(header(frm, to))
        h = read_header(c)
        feats = read_features(c)
        c.stream_id = h.get("id")
        if tls:
            if "<starttls xmlns='%s'>" % NS_TLS not in feats and STARTTLS not in feats:
                raise Fail("no STARTTLS offered: %r" % short(feats))
            c.send(STARTTLS)
            c.read_until(PROCEED, what="<proceed/>")
            c.starttls(to, client_cert=client_cert)
            c.send(header(frm, to))
            h = read_header(c)
            c.features = read_features(c)
            c.stream_id = h.get("id")
            if not c.stream_id:
                raise Fail("post-TLS header without id: %r" % h)
        return c
    except BaseException:
        c.close()
        raise


DBRES_RE = re.compile(r"<db:result\b[^>]*?(?:/>|>.*?</db:result>)", re.S)
DBVER_RE = re.compile(r"<db:verify\b[^>]*?(?:/>|>.*?</db:verify>)", re.S)


def dialback(c, frm, to, key):
    c.send("<db:result from='%s' to='%s'>%s</db:result>" % (frm, to, key))
    _, el = c.read_until(DBRES_RE, what="a db:result answer")
    return el


def dialback_valid(c, frm, to, key=None):
    el = dialback(c, frm, to, key or unique_key())
    want = "<db:result from='%s' to='%s' type='valid'/>" % (to, frm)
    if not same_el(el, want):
        raise Fail("dialback: expected %s, got %s" % (want, el))


# ---------------------------------------------------------------- mock leaves

class MockConn:
    def __init__(self, peer):
        self.peer = peer
        self.headers = []  # attrs of every stream header received
        self.tls = False
        self.raw = ""  # everything received after the last stream header
        self.closed = False

    @property
    def hdr(self):
        return self.headers[-1] if self.headers else {}


class MockLeaf:
    """A server for `domain` on addr:5269 that speaks just enough s2s."""

    ELEM_RE = re.compile(
        r"<starttls\b[^>]*?(?:/>|>.*?</starttls>)"
        r"|<db:verify\b([^>]*?)(?:/>|>([^<]*)</db:verify>)"
        r"|<db:result\b([^>]*?)(?:/>|>([^<]*)</db:result>)"
        r"|</stream:stream>", re.S)

    def __init__(self, domain, addr, certfile, keyfile, direct=False, deaf=False):
        self.domain = domain
        self.addr = addr
        self.direct = direct  # XEP-0368: TLS from the first byte
        self.deaf = deaf      # after dialback, never read again (small receive buffer)
        self.result_delay = 0.0
        self.sni = []         # server names the relay sent
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(certfile, keyfile)
        if direct:
            self.ctx.set_alpn_protocols(["xmpp-server"])
            self.ctx.sni_callback = lambda s, name, c: self.sni.append(name) and None
        self.lock = threading.Condition()
        self.conns = []
        self.verifies = []  # (attrs, key, answer)
        self.results = []   # (attrs, key)
        self.errors = []
        self.stop = False
        self.n = 0
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if deaf:  # inherited by accepted sockets: the kernel buffers little for us
            self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        self.lsock.bind(addr)
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def verify_answer(self, key):
        return "invalid" if key.startswith("dead") else "valid"

    def _accept_loop(self):
        while not self.stop:
            try:
                s, peer = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s, peer), daemon=True).start()

    def _notify(self):
        with self.lock:
            self.lock.notify_all()

    def _serve(self, sock, peer):
        mc = MockConn(peer)
        with self.lock:
            self.conns.append(mc)
        buf = ""
        phase = "header"
        pos = 0
        deadline = time.monotonic() + 60
        try:
            if self.direct:
                sock.settimeout(5)
                sock = self.ctx.wrap_socket(sock, server_side=True)
                mc.tls = True
                mc.alpn = sock.selected_alpn_protocol()
            sock.settimeout(0.2)
            while not self.stop and time.monotonic() < deadline:
                progressed = True
                while progressed:
                    progressed = False
                    if phase == "header":
                        m = HEADER_RE.search(buf)
                        if m is None:
                            break
                        a = attrs(m.group(0))
                        self.n += 1
                        with self.lock:
                            mc.headers.append(a)
                            mc.raw = ""
                        buf = buf[m.end():]
                        out = ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                               "xmlns:stream='%s' xmlns:db='jabber:server:dialback' "
                               "id='mock-%s-%d' from='%s' to='%s' version='1.0'>"
                               "<stream:features>%s<dialback xmlns='%s'><errors/></dialback>"
                               "</stream:features>"
                               % (NS_STREAM, self.domain, self.n, a.get("to", self.domain),
                                  a.get("from", ""), "" if mc.tls else STARTTLS, NS_DB_FEATURE))
                        sock.sendall(out.encode())
                        with self.lock:
                            mc.raw += buf
                        phase, pos, progressed = "open", 0, True
                        continue
                    m = self.ELEM_RE.search(buf, pos)
                    if m is None:
                        break
                    pos, progressed = m.end(), True
                    el = m.group(0)
                    if el.startswith("<starttls"):
                        if mc.tls or buf[pos:]:
                            raise Fail("bad STARTTLS (tls=%s, trailing %r)" % (mc.tls, buf[pos:]))
                        sock.sendall(PROCEED.encode())
                        sock.settimeout(5)
                        sock = self.ctx.wrap_socket(sock, server_side=True)
                        sock.settimeout(0.2)
                        mc.tls = True
                        buf, phase, pos = "", "header", 0
                    elif el.startswith("<db:verify"):
                        a, key = attrs(m.group(1)), (m.group(2) or "").strip()
                        ans = self.verify_answer(key)
                        with self.lock:
                            self.verifies.append((a, key, ans))
                        sock.sendall(("<db:verify from='%s' to='%s' id='%s' type='%s'/>"
                                      % (a.get("to"), a.get("from"), a.get("id"), ans)).encode())
                    elif el.startswith("<db:result"):
                        a, key = attrs(m.group(3)), (m.group(4) or "").strip()
                        with self.lock:
                            self.results.append((a, key))
                        time.sleep(self.result_delay)  # a slow authoritative server
                        sock.sendall(("<db:result from='%s' to='%s' type='valid'/>"
                                      % (a.get("to"), a.get("from"))).encode())
                        if self.deaf:  # a next hop that stops reading
                            self._notify()
                            while not self.stop:
                                time.sleep(0.05)
                            return
                    else:  # </stream:stream>
                        sock.sendall(b"</stream:stream>")
                        return
                    self._notify()
                try:
                    data = sock.recv(65536)
                except (socket.timeout, ssl.SSLWantReadError):
                    continue
                except (ssl.SSLError, OSError):
                    return
                if not data:
                    return
                text = data.decode("latin-1")
                buf += text
                if phase == "open":
                    with self.lock:
                        mc.raw += text
                self._notify()
        except Exception as e:  # recorded; cases report it if relevant
            with self.lock:
                self.errors.append("%s: %s" % (type(e).__name__, e))
        finally:
            with self.lock:
                mc.closed = True
                self.lock.notify_all()
            try:
                sock.close()
            except OSError:
                pass

    def wait_for(self, pred, timeout):
        """Wait until pred() (called under the lock) is truthy; return its value."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                v = pred()
                if v:
                    return v
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return v
                self.lock.wait(remaining)

    def all_raw(self):
        with self.lock:
            return "".join(mc.raw for mc in self.conns)

    def close(self):
        self.stop = True
        try:
            self.lsock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- cases

class Suite:
    def __init__(self, args):
        host, port = args.relay.rsplit(":", 1)
        self.relay = (host, int(port))
        self.secret = args.secret
        self.a = MockLeaf("a.example", (args.leaf_a, 5269), args.cert, args.key)
        self.b = MockLeaf("b.example", (args.leaf_b, 5269), args.cert, args.key)
        self.d = MockLeaf("d2.example", ("127.0.0.24", 5269), args.cert, args.key, direct=True)
        self.conns = []
        self.args = args

    def conn(self, *a, **kw):
        c = Conn(self.relay, *a, **kw)
        self.conns.append(c)
        return c

    def stream(self, *a, **kw):
        c = open_stream(self.relay, *a, **kw)
        self.conns.append(c)
        return c

    def arrived_at(self, mock, data, timeout=5.0 * SLOW):
        """The conn of mock whose recorded stream holds data, or None."""
        def pred():
            for mc in mock.conns:
                if data in mc.raw:
                    return mc
            return None
        return mock.wait_for(pred, timeout)

    # 1
    def case_header_host_unknown(self):
        c = self.conn()
        c.send(header("a.example", "nowhere.example"))
        read_header(c)  # the relay's own header comes first
        expect_stream_error(c, "host-unknown")

    # 2
    def case_header_wildcard_route(self):
        for to, norm in (("x.y.b.example", "x.y.b.example"), ("B.EXAMPLE.", "b.example")):
            c = self.conn()
            c.send(header("a.example", to))
            h = read_header(c)
            if not h.get("id"):
                raise Fail("to=%r: header without id: %r" % (to, h))
            feats = read_features(c)
            want = "<starttls xmlns='%s'><required/></starttls>" % NS_TLS
            if want not in feats:
                raise Fail("to=%r: features without %s: %r" % (to, want, short(feats)))
            if "stream:error" in c.buf:
                raise Fail("to=%r: stream error %r" % (to, short(c.buf)))
            c.send("</stream:stream>")
            c.expect_closed()

    # 3
    def case_header_no_version(self):
        c = self.conn()
        c.send(header("a.example", "sub.b.example", version=False))
        read_header(c)
        expect_stream_error(c, "unsupported-version")

    # 4
    def case_header_bad_namespace(self):
        c = self.conn()
        c.send(header("a.example", "sub.b.example", stream_ns="http://example.com/not-streams"))
        read_header(c)
        expect_stream_error(c, "invalid-namespace")
        c = self.conn()
        c.send(header("a.example", "sub.b.example", default_ns="jabber:client"))
        read_header(c)
        expect_stream_error(c, "invalid-namespace")
        c = self.conn()
        c.send("this is not XML at all\r\n")
        read_header(c)
        expect_stream_error(c, "not-well-formed")
        c = self.conn()
        c.send(header("a.example", "sub.b.example"))
        read_header(c)
        read_features(c)
        c.send("<message to='bob@sub.b.example'><<<>>></message>")
        expect_stream_error(c, "not-well-formed")

    # 5
    def case_tls_required(self):
        c = self.conn()
        c.send(header("a.example", "sub.b.example"))
        read_header(c)
        read_features(c)
        c.send("<db:result from='a.example' to='sub.b.example'>%s</db:result>" % unique_key())
        expect_stream_error(c, "policy-violation")

    # 6
    def case_starttls_injection(self):
        c = self.conn()
        c.send(header("a.example", "sub.b.example"))
        read_header(c)
        read_features(c)
        before = len(self.a.verifies)
        c.send(STARTTLS + "<db:result from='a.example' to='sub.b.example'>%s</db:result>"
               % unique_key())
        c.read_until(PROCEED, what="<proceed/>")
        rest = c.expect_closed()
        if rest:
            raise Fail("bytes after <proceed/> (the injected element was processed?): %r"
                       % short(rest))
        time.sleep(0.3)
        if len(self.a.verifies) != before:
            raise Fail("the injected db:result caused a db:verify at leaf-a")

    # 7
    def case_dialback_valid_then_forward(self):
        c = self.stream("a.example", "sub.b.example")
        if "<dialback xmlns='%s'>" % NS_DB_FEATURE not in c.features:
            raise Fail("post-TLS features without dialback: %r" % short(c.features))
        key = unique_key()
        c.send("<db:result from='a.example' to='sub.b.example'>%s</db:result>" % key)
        v = self.a.wait_for(lambda: [x for x in self.a.verifies if x[1] == key], 5 * SLOW)
        if not v:
            raise Fail("no db:verify with our key reached leaf-a (a.example); verifies: %r; "
                       "relay said %r" % (self.a.verifies[-3:], short(c.buf)))
        a = v[0][0]
        want = {"from": "sub.b.example", "to": "a.example", "id": c.stream_id}
        got = {k: a.get(k) for k in want}
        if got != want:
            raise Fail("db:verify attributes %r, expected %r" % (got, want))
        _, el = c.read_until(DBRES_RE, what="db:result answer")
        w = "<db:result type='valid' from='sub.b.example' to='a.example'/>"
        if not same_el(el, w):
            raise Fail("expected %s, got %s" % (w, el))
        msg = ("<message from='alice@a.example/r' to='bob@sub.b.example' id='m1'>"
               "<body>hi</body></message>")
        c.send(msg)
        mc = self.arrived_at(self.b, msg)
        if mc is None:
            raise Fail("message did not reach leaf-b byte-identical; leaf-b got %r; errors %r"
                       % (short(self.b.all_raw()), self.b.errors))
        h = mc.hdr
        if (h.get("from"), h.get("to")) != ("a.example", "sub.b.example") or not mc.tls:
            raise Fail("message arrived on stream from=%r to=%r tls=%s"
                       % (h.get("from"), h.get("to"), mc.tls))
        if "stream:error" in c.buf:
            raise Fail("relay sent a stream error: %r" % short(c.buf))

    # 8
    def case_dialback_invalid(self):
        c = self.stream("a.example", "sub.b.example")
        key = "dead" + unique_key()
        el = dialback(c, "a.example", "sub.b.example", key)
        want = "<db:result from='sub.b.example' to='a.example' type='invalid'/>"
        if not same_el(el, want):
            raise Fail("expected %s, got %s" % (want, el))
        if not [x for x in self.a.verifies if x[1] == key and x[2] == "invalid"]:
            raise Fail("leaf-a never answered invalid for our key")
        rest = c.expect_closed()
        if rest.strip() not in ("", "</stream:stream>"):
            raise Fail("after invalid: expected close, got %r" % short(rest))

    # 9
    def case_invalid_from(self):
        c = self.stream("a.example", "sub.b.example")
        dialback_valid(c, "a.example", "sub.b.example")
        msg = ("<message from='alice@A.EXAMPLE.' to='bob@sub.b.example' id='m9'>"
               "<body>case and dot</body></message>")
        c.send(msg)
        if self.arrived_at(self.b, msg) is None:
            raise Fail("from='alice@A.EXAMPLE.' not forwarded to leaf-b; relay said %r"
                       % short(c.buf))
        c.send("<message from='mallory@evil.example' to='bob@sub.b.example' id='m9x'>"
               "<body>spoof</body></message>")
        expect_stream_error(c, "invalid-from")
        if self.arrived_at(self.b, "id='m9x'", timeout=0.5):
            raise Fail("the spoofed message reached leaf-b")

    # 10
    def case_improper_addressing(self):
        c = self.stream("a.example", "sub.b.example")
        dialback_valid(c, "a.example", "sub.b.example")
        c.send("<message from='alice@a.example/r' id='m10'><body>nowhere</body></message>")
        expect_stream_error(c, "improper-addressing")

    # 11
    def case_unsolicited_dialback_answer(self):
        c = self.stream("a.example", "sub.b.example")
        c.send("<db:result type='valid' from='a.example' to='sub.b.example'/>")
        c.send("<message from='alice@a.example/r' to='bob@sub.b.example' id='m11'>"
               "<body>unauthenticated</body></message>")
        try:
            expect_stream_error(c, "invalid-from")
        except Fail as e:
            raise Fail("the unsolicited answer was not simply dropped: %s" % e)
        finally:
            leaked = self.arrived_at(self.b, "id='m11'", timeout=0.5)
        if leaked:
            raise Fail("the unauthenticated message reached leaf-b")

    # 12
    def case_db_verify_answered(self):
        # the XEP-0185 / XEP-0220 test vectors, to trust db_key() itself
        if db_key("s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229F") != \
                "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643":
            raise Fail("db_key() test vector mismatch (test bug)")
        c = self.stream("sub.b.example", "a.example")
        sid = "X" + unique_key()[:10]
        key = db_key(self.secret, "sub.b.example", "a.example", sid)
        c.send("<db:verify from='sub.b.example' to='a.example' id='%s'>%s</db:verify>"
               % (sid, key))
        _, el = c.read_until(DBVER_RE, what="db:verify answer")
        want = "<db:verify from='a.example' to='sub.b.example' id='%s' type='valid'/>" % sid
        if not same_el(el, want):
            raise Fail("right key: expected %s, got %s" % (want, el))
        bad = db_key(self.secret + "x", "sub.b.example", "a.example", sid)
        c.send("<db:verify from='sub.b.example' to='a.example' id='%s'>%s</db:verify>"
               % (sid, bad))
        _, el = c.read_until(DBVER_RE, what="db:verify answer")
        want = "<db:verify from='a.example' to='sub.b.example' id='%s' type='invalid'/>" % sid
        if not same_el(el, want):
            raise Fail("wrong key: expected %s, got %s" % (want, el))
        c.send("</stream:stream>")
        c.expect_closed()

    # 13
    def case_next_hop_down_bounce(self):
        c = self.stream("a.example", "c.example")
        dialback_valid(c, "a.example", "c.example")
        c.send("<message from='alice@a.example/r' to='carol@c.example' id='m13'>"
               "<body>secret13</body></message>")
        pat = re.compile(r"<message\b[^>]*\bid='m13'[^>]*>.*?</message>", re.S)

        def find():
            for mc in self.a.conns:
                m = pat.search(mc.raw)
                if m:
                    return mc, m.group(0)
            return None
        r = self.a.wait_for(find, 6 * SLOW)
        if not r:
            raise Fail("no bounce for m13 reached leaf-a; leaf-a got %r; relay said %r"
                       % (short(self.a.all_raw(), 600), short(c.buf)))
        mc, bounce = r
        a = attrs(bounce[:bounce.index(">") + 1])
        want = {"from": "carol@c.example", "to": "alice@a.example/r", "type": "error",
                "id": "m13"}
        if {k: a.get(k) for k in want} != want:
            raise Fail("bounce attributes %r, expected %r" % (a, want))
        if "<remote-server-not-found xmlns='%s'/>" % NS_STANZAS not in bounce:
            raise Fail("bounce without remote-server-not-found: %r" % short(bounce))
        if "<body" in bounce or "secret13" in bounce:
            raise Fail("bounce carries the original content: %r" % short(bounce))
        if (mc.hdr.get("from"), mc.hdr.get("to")) != ("c.example", "a.example"):
            raise Fail("bounce came on stream from=%r to=%r" % (mc.hdr.get("from"),
                                                                mc.hdr.get("to")))
        # right after a failure the next hop is in backoff: bounced at once,
        # without hammering it with connection attempts
        t0 = time.monotonic()
        c.send("<message from='alice@a.example/r' to='carol@c.example' id='m13b'>"
               "<body>again</body></message>")
        pat2 = re.compile(r"<message\b[^>]*\bid='m13b'[^>]*>.*?</message>", re.S)
        b2 = self.a.wait_for(lambda: [m.group(0) for mc2 in self.a.conns
                                      for m in [pat2.search(mc2.raw)] if m], 3)
        if not b2 or "next attempt in" not in b2[0] or "remote-server-not-found" not in b2[0]:
            raise Fail("no backoff bounce for the second message: %r" % (b2,))
        if "event=peer-backoff peer=down" not in open(self.args.log).read():
            raise Fail("no event=peer-backoff in the relay log")
        # an error is never answered with an error
        before = self.a.all_raw().count("<message")
        c.send("<message from='alice@a.example/r' to='carol@c.example' id='m13e' type='error'>"
               "<error type='cancel'><item-not-found xmlns='%s'/></error></message>"
               % NS_STANZAS)
        time.sleep(2.0)
        raw = self.a.all_raw()
        if "m13e" in raw or raw.count("<message") != before:
            raise Fail("an error stanza was bounced: %r" % short(raw[-400:]))
        if "stream:error" in c.buf or c.eof:
            raise Fail("inbound stream broken: %r" % short(c.buf))

    # 15: XEP-0368 direct TLS; the enclave CA issues for the SNI name
    def case_direct_tls_sni(self):
        host, port = self.relay
        c = self.conn()
        c.sock.close()
        c.sock = socket.create_connection((host, port + 1), timeout=3.0)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.args.ca)
        ctx.check_hostname = True
        ctx.set_alpn_protocols(["xmpp-server"])
        c.sock = ctx.wrap_socket(c.sock, server_hostname="x.sub.b.example")
        if c.sock.selected_alpn_protocol() != "xmpp-server":
            raise Fail("ALPN not negotiated: %r" % c.sock.selected_alpn_protocol())
        c.send(header("a.example", "x.sub.b.example"))
        read_header(c)
        feats = read_features(c)
        if "starttls" in feats or NS_DB_FEATURE not in feats:
            raise Fail("direct TLS features should be dialback without STARTTLS: %r" % feats)

    # 16: the CA never issues for a domain without a route
    def case_direct_tls_unrouted(self):
        host, port = self.relay
        c = self.conn()
        c.sock.close()
        c.sock = socket.create_connection((host, port + 1), timeout=3.0)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.args.ca)
        ctx.check_hostname = True
        try:
            c.sock = ctx.wrap_socket(c.sock, server_hostname="nowhere.example")
        except ssl.SSLCertVerificationError:
            return  # the default certificate, not one for nowhere.example
        raise Fail("the relay presented a certificate valid for an unrouted domain")

    # 17: STARTTLS without SNI: the certificate is chosen by the stream 'to'
    def case_starttls_cert_by_to(self):
        c = self.conn()
        c.send(header("a.example", "y.b.example"))
        read_header(c)
        read_features(c)
        c.send(STARTTLS)
        c.read_until(PROCEED, what="<proceed/>")
        c.starttls(None, ca=self.args.ca, server_hostname="y.b.example")
        c.send(header("a.example", "y.b.example"))
        read_header(c)
        read_features(c)

    def hup(self, marker):
        """SIGHUP the relay; wait for a log line containing marker."""
        before = open(self.args.log).read().count(marker)
        os.kill(self.args.relay_pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            log = open(self.args.log).read()
            if log.count(marker) > before:
                return log
            time.sleep(0.05)
        raise Fail("no %r in the relay log after SIGHUP" % marker)

    # 18: a bad file on reload keeps the old configuration and says why
    def case_reload_bad_config(self):
        good = open(self.args.conf).read()
        try:
            with open(self.args.conf, "w") as f:
                f.write(good.replace("limits = {", "limits = {\n\tidle_timout = 5;", 1))
            log = self.hup("event=reload-failed")
            line = [l for l in log.splitlines() if "event=reload-failed" in l][-1]
            if "relay.conf:" not in line or "idle_timout" not in line:
                raise Fail("reload error does not name file:line and key: %r" % line)
        finally:
            with open(self.args.conf, "w") as f:
                f.write(good)
        self.case_header_wildcard_route()  # still serving with the old table

    # 19: a route added on reload is used; an established stream survives
    def case_reload_route_added(self):
        c = self.stream("a.example", "sub.b.example")
        key = unique_key()
        c.send("<db:result from='a.example' to='sub.b.example'>%s</db:result>" % key)
        _, el = c.read_until(DBRES_RE, what="db:result answer")
        if "valid" not in el:
            raise Fail("dialback not valid: %s" % el)
        x = self.conn()
        x.send(header("a.example", "d.example"))
        read_header(x)
        expect_stream_error(x, "host-unknown")
        good = open(self.args.conf).read()
        try:
            with open(self.args.conf, "w") as f:
                f.write(good.replace("routes = (",
                                     "routes = (\n\t{ domain = \"d.example\"; peer = \"leaf-b\"; },",
                                     1))
            self.hup("event=reloaded")
        finally:
            with open(self.args.conf, "w") as f:
                f.write(good)
        y = self.conn()
        y.send(header("a.example", "d.example"))
        read_header(y)
        feats = read_features(y)
        if "starttls" not in feats:
            raise Fail("d.example not accepted after reload: %r" % feats)
        # the stream from before the reload still forwards
        msg = ("<message from='alice@a.example/r' to='bob@sub.b.example' id='r19'>"
               "<body>after reload</body></message>")
        c.send(msg)
        if self.arrived_at(self.b, msg) is None:
            raise Fail("the pre-reload stream no longer forwards")
        self.hup("event=reloaded")  # back to the original table

    def cert_stream(self):
        return self.stream("a.example", "sub.b.example",
                           client_cert=(self.args.cert, self.args.key))

    # 20: XEP-0178: EXTERNAL offered when the certificate verifies; success,
    # restart, stanzas flow
    def case_sasl_external(self):
        c = self.cert_stream()
        if "<mechanism>EXTERNAL</mechanism>" not in c.features:
            raise Fail("EXTERNAL not offered to a verified certificate: %r" % c.features)
        c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>%s</auth>"
               % base64.b64encode(b"a.example").decode())
        c.read_until("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>", what="<success/>")
        c.send(header("a.example", "sub.b.example"))
        read_header(c)
        feats = read_features(c)
        if "EXTERNAL" in feats:
            raise Fail("EXTERNAL offered again after success: %r" % feats)
        msg = ("<message from='alice@a.example/r' to='bob@sub.b.example' id='s20'>"
               "<body>by certificate</body></message>")
        c.send(msg)
        if self.arrived_at(self.b, msg) is None:
            raise Fail("message after SASL EXTERNAL did not reach leaf-b")

    # 21: XEP-0178: a wrong authzid fails, the stream stays usable for dialback
    def case_sasl_wrong_authzid(self):
        c = self.cert_stream()
        c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>%s</auth>"
               % base64.b64encode(b"b.example").decode())
        c.read_until("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><invalid-authzid/>",
                     what="<failure><invalid-authzid/>")
        c.expect_open(0.3)

    # 22: no EXTERNAL without a client certificate
    def case_sasl_not_offered(self):
        c = self.stream("a.example", "sub.b.example")
        if "EXTERNAL" in c.features:
            raise Fail("EXTERNAL offered without a client certificate: %r" % c.features)

    # 23: XEP-0344: a db:result for the domain the certificate covers is
    # valid at once, with no db:verify sent to the authoritative server
    def case_dialback_without_dialing_back(self):
        c = self.cert_stream()
        key = unique_key()
        el = dialback(c, "a.example", "sub.b.example", key)
        want = "<db:result type='valid' from='sub.b.example' to='a.example'/>"
        if not same_el(el, want):
            raise Fail("expected %s, got %s" % (want, el))
        time.sleep(0.3)
        if [x for x in self.a.verifies if x[1] == key]:
            raise Fail("a db:verify was sent although the certificate vouched for a.example")

    # 24: outbound XEP-0368 direct TLS: SNI = the target domain, ALPN
    def case_outbound_direct_tls(self):
        c = self.stream("a.example", "x.d2.example")
        el = dialback(c, "a.example", "x.d2.example", unique_key())
        if "valid" not in el or "invalid" in el:
            raise Fail("dialback for x.d2.example: %s" % el)
        msg = ("<message from='alice@a.example/r' to='dan@x.d2.example' id='d24'>"
               "<body>direct</body></message>")
        c.send(msg)
        mc = self.arrived_at(self.d, msg)
        if mc is None:
            raise Fail("message did not reach the direct-TLS leaf; it got %r"
                       % short(self.d.all_raw()))
        if "x.d2.example" not in self.d.sni:
            raise Fail("SNI %r, expected x.d2.example" % self.d.sni)
        if getattr(mc, "alpn", None) != "xmpp-server":
            raise Fail("ALPN %r, expected xmpp-server" % getattr(mc, "alpn", None))

    # drain (run alone, on a fresh relay): SIGTERM while a stanza waits for
    # its next hop to authenticate; the relay delivers it, then exits
    def case_drain(self):
        self.b.result_delay = 1.5
        c = self.stream("a.example", "z.b.example")
        el = dialback(c, "a.example", "z.b.example", unique_key())
        if "valid" not in el or "invalid" in el:
            raise Fail("dialback for z.b.example: %s" % el)
        msg = ("<message from='alice@a.example/r' to='bob@z.b.example' id='drain1'>"
               "<body>in flight at SIGTERM</body></message>")
        c.send(msg)
        time.sleep(0.3)  # queued, the next hop is answering slowly
        os.kill(self.args.relay_pid, signal.SIGTERM)
        if self.arrived_at(self.b, msg, timeout=6 * SLOW) is None:
            raise Fail("the queued message was not delivered during the drain")
        deadline = time.monotonic() + 6 * SLOW
        while time.monotonic() < deadline:
            try:
                os.kill(self.args.relay_pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise Fail("the relay did not exit after draining")

    # 25: at most limits.connections_per_address (40 here) from one address
    def case_connections_per_address(self):
        held = []
        for _ in range(40):
            c = self.conn()
            c.send(header("a.example", "sub.b.example"))
            read_header(c)  # accepted and counted
            held.append(c)
        extra = self.conn()
        read_header(extra)
        expect_stream_error(extra, "policy-violation")
        for c in held:
            c.close()
        time.sleep(0.3)
        again = self.conn()
        again.send(header("a.example", "sub.b.example"))
        read_header(again)
        feats = read_features(again)
        if "starttls" not in feats:
            raise Fail("a connection after the others closed was not served: %r" % feats)

    # 26: a next hop that accepts TCP and never speaks: after
    # handshake_timeout (5 s here) the stanza comes back as
    # remote-server-timeout, and the relay serves others meanwhile
    def case_next_hop_stalls(self):
        stall = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        stall.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        stall.bind(("127.0.0.25", 5269))
        stall.listen(4)
        try:
            c = self.stream("a.example", "x.stall.example")
            dialback_valid(c, "a.example", "x.stall.example")
            c.send("<iq from='alice@a.example/r' to='x.stall.example' id='st1' type='get'>"
                   "<query xmlns='jabber:iq:version'/></iq>")
            self.case_header_wildcard_route()  # not blocked by the stalled hop
            pat = re.compile(r"<iq\b[^>]*\bid='st1'[^>]*>.*?</iq>", re.S)

            def find():
                for mc in self.a.conns:
                    m = pat.search(mc.raw)
                    if m:
                        return m.group(0)
                return None
            bounce = self.a.wait_for(find, 9 * SLOW)
            if not bounce:
                raise Fail("no bounce for a stalled next hop reached leaf-a")
            if ("<remote-server-timeout xmlns='%s'/>" % NS_STANZAS not in bounce
                    or "type='error'" not in bounce or "<query" in bounce):
                raise Fail("wrong bounce: %r" % short(bounce))
        finally:
            stall.close()

    def relay_rss_kb(self):
        with open("/proc/%d/status" % self.args.relay_pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def bounces_at_a(self, prefix):
        """{id: stanza} of the error stanzas for ids starting with prefix at leaf-a."""
        pat = re.compile(r"<message\b[^>]*\bid='(%s\d+)'[^>]*>.*?</message>" % prefix, re.S)
        return {m.group(1): m.group(0) for m in pat.finditer(self.a.all_raw())}

    # A next hop that completes dialback and then reads nothing: the relay
    # writes until the kernel buffers and queue_max_bytes (1 MiB here) are
    # full, then bounces resource-constraint; its memory stays bounded, the
    # inbound stream stays up and other routes keep flowing.
    # The sender is paused first (limits.backpressure_timeout, 5 s), then
    # the excess bounces: memory stays bounded either way.
    def case_next_hop_reads_nothing(self):
        deaf = MockLeaf("deaf.example", ("127.0.0.26", 5269), self.args.cert, self.args.key,
                        deaf=True)
        try:
            c = self.stream("a.example", "x.deaf.example")
            dialback_valid(c, "a.example", "x.deaf.example")
            body = "z" * 16000
            rss0 = self.relay_rss_kb()
            n = self.args.deaf_count  # 4000: 64 MB, far beyond the kernel's and the queue's room
            t0 = time.monotonic()
            c.sock.settimeout(20)
            for i in range(n):
                c.send("<message from='alice@a.example/r' to='bob@x.deaf.example' id='deaf%d'>"
                       "<body>%s</body></message>" % (i, body))
            if not deaf.wait_for(lambda: any(mc.closed is False and mc.headers
                                             for mc in deaf.conns), 1):
                raise Fail("the relay never reached the deaf next hop")

            # The relay's socket buffer toward the deaf hop (up to 4 MiB on
            # Linux), the hop's 32 KiB and queue_max_bytes (1 MiB) absorb
            # some; allow 9 MiB, every stanza beyond must come back.
            want = max(1, n - 9 * 1024 * 1024 // 16000)

            def enough():
                got = self.bounces_at_a("deaf")
                return len(got) >= want and got
            got = self.a.wait_for(enough, 20 * SLOW) or self.bounces_at_a("deaf")
            rss1 = self.relay_rss_kb()
            print("# reads-nothing: sent %d x 16 KB in %.1f s, bounced %d, relay RSS %d -> %d KiB"
                  % (n, time.monotonic() - t0, len(got), rss0, rss1), flush=True)
            if len(got) < want:
                raise Fail("only %d of %d stanzas bounced toward a next hop that reads nothing"
                           " (want %d)" % (len(got), n, want))
            bad = [b for b in got.values()
                   if "<resource-constraint xmlns='%s'/>" % NS_STANZAS not in b
                   or "type='error'" not in b or "zzzz" in b]
            if bad:
                raise Fail("wrong bounce: %r" % short(bad[0]))
            if self.args.rss_growth_mb and rss1 - rss0 > self.args.rss_growth_mb * 1024:
                raise Fail("relay RSS grew by %d KiB (limit %d MiB)"
                           % (rss1 - rss0, self.args.rss_growth_mb))
            if "stream:error" in c.buf:
                raise Fail("the inbound stream got a stream error: %r" % short(c.buf))
            # First the relay stopped reading the sender (backpressure);
            # after limits.backpressure_timeout it read again and bounced.
            log = open(self.args.log).read()
            for ev in ("event=paused", "event=pause-timeout"):
                if ev not in log:
                    raise Fail("no %s in the relay log" % ev)
            self.case_dialback_valid_then_forward()  # other routes still flow
        finally:
            deaf.close()

    # A peer with two addresses: the preferred one (127.0.0.27) refuses, the
    # stanza moves to the second (127.0.0.28) and arrives; nothing bounced.
    def case_address_failover(self):
        second = MockLeaf("multi.example", ("127.0.0.28", 5269), self.args.cert, self.args.key)
        try:
            c = self.stream("a.example", "x.multi.example")
            dialback_valid(c, "a.example", "x.multi.example")
            msg = ("<message from='alice@a.example/r' to='bob@x.multi.example' id='fo1'>"
                   "<body>via the second address</body></message>")
            t0 = time.monotonic()
            c.send(msg)
            if self.arrived_at(second, msg) is None:
                raise Fail("not delivered through the second address; relay said %r; a got %r"
                           % (short(c.buf), short(self.a.all_raw()[-300:])))
            print("# address-failover: delivered via the second address in %d ms"
                  % ((time.monotonic() - t0) * 1000), flush=True)
            if "id='fo1'" in self.a.all_raw():
                raise Fail("the stanza was bounced although the second address worked")
        finally:
            second.close()

    # Look-alike and invisible forms of an authenticated domain in 'from'
    # (RFC 7622: the relay compares IDNA2008 A-labels; invisible characters
    # that UTS #46 would delete are refused rather than mapped).
    def case_idn_spoofing(self):
        forms = [("cyrillic", "mallory@\u0430.example", "invalid-from"),
                 ("punycode", "mallory@xn--80a.example", "invalid-from"),
                 ("inner-cyrillic", "mallory@a.ex\u0430mple", "invalid-from"),
                 ("zero-width-space", "mallory@a\u200b.example", "improper-addressing"),
                 ("soft-hyphen", "mallory@a\u00ad.example", "improper-addressing"),
                 ("rtl-override", "mallory@a\u202e.example", "improper-addressing")]
        for name, frm, cond in forms:
            c = self.stream("a.example", "sub.b.example")
            dialback_valid(c, "a.example", "sub.b.example")
            mid = "idn-" + name
            c.send("<message from='%s' to='bob@sub.b.example' id='%s'><body>x</body></message>"
                   % (frm, mid))
            try:
                expect_stream_error(c, cond)
            except Fail as e:
                raise Fail("%s: %s" % (name, e))
            if self.arrived_at(self.b, "id='%s'" % mid, timeout=0.3):
                raise Fail("%s: the spoofed message reached leaf-b" % name)
        # the width-mapped spelling is the same domain (RFC 7622 3.2): forwarded
        c = self.stream("a.example", "sub.b.example")
        dialback_valid(c, "a.example", "sub.b.example")
        msg = ("<message from='alice@\uff41.example' to='bob@sub.b.example' id='idn-fullwidth'>"
               "<body>x</body></message>")
        c.send(msg)
        if self.arrived_at(self.b, "id='idn-fullwidth'") is None:
            raise Fail("fullwidth a.example not forwarded; relay said %r" % short(c.buf))

    # 27: limits enforced as bytes arrive: attributes, depth, size; names and
    # attribute values when the tag is complete
    def case_limits(self):
        attrs65 = "".join(" a%d='x'" % i for i in range(65))
        for name, stanza in [
                ("attributes", "<message%s/>" % attrs65),
                ("depth", "<message>" + "<x>" * 70 + "</x>" * 70 + "</message>"),
                ("size", "<message><body>%s</body></message>" % ("y" * 300000)),
                ("name-length", "<message><%s/></message>" % ("n" * 257)),
                ("attribute-length", "<message id='%s'/>" % ("v" * 8193))]:
            c = self.stream("a.example", "sub.b.example")
            c.send(stanza)
            try:
                expect_stream_error(c, "policy-violation")
            except Fail as e:
                raise Fail("%s: %s" % (name, e))

    # 14
    def case_relay_survives(self):
        c = self.conn()
        c.send(header("a.example", "sub.b.example"))
        h = read_header(c)
        if not h.get("id"):
            raise Fail("header without id: %r" % h)
        read_features(c)
        c.send("</stream:stream>")
        c.expect_closed()

    CASES = [
        ("header-host-unknown", case_header_host_unknown),
        ("header-wildcard-route", case_header_wildcard_route),
        ("header-no-version", case_header_no_version),
        ("header-bad-namespace", case_header_bad_namespace),
        ("tls-required", case_tls_required),
        ("starttls-injection", case_starttls_injection),
        ("dialback-valid-then-forward", case_dialback_valid_then_forward),
        ("dialback-invalid", case_dialback_invalid),
        ("invalid-from", case_invalid_from),
        ("improper-addressing", case_improper_addressing),
        ("unsolicited-dialback-answer", case_unsolicited_dialback_answer),
        ("db-verify-answered", case_db_verify_answered),
        ("next-hop-down-bounce", case_next_hop_down_bounce),
        ("direct-tls-sni", case_direct_tls_sni),
        ("direct-tls-unrouted", case_direct_tls_unrouted),
        ("starttls-cert-by-to", case_starttls_cert_by_to),
        ("reload-bad-config", case_reload_bad_config),
        ("reload-route-added", case_reload_route_added),
        ("sasl-external", case_sasl_external),
        ("sasl-wrong-authzid", case_sasl_wrong_authzid),
        ("sasl-not-offered", case_sasl_not_offered),
        ("dialback-without-dialing-back", case_dialback_without_dialing_back),
        ("outbound-direct-tls", case_outbound_direct_tls),
        ("connections-per-address", case_connections_per_address),
        ("next-hop-stalls", case_next_hop_stalls),
        ("next-hop-reads-nothing", case_next_hop_reads_nothing),
        ("idn-spoofing", case_idn_spoofing),
        ("address-failover", case_address_failover),
        ("limits", case_limits),
        ("relay-survives", case_relay_survives),
    ]

    def run(self, only=None):
        failed = 0
        cases = self.CASES
        if only and "drain" in only:
            cases = [("drain", Suite.case_drain)]
        for name, fn in cases:
            if only and name not in only:
                continue
            t0 = time.monotonic()
            try:
                fn(self)
                print("ok %s (%d ms)" % (name, (time.monotonic() - t0) * 1000), flush=True)
            except Exception as e:
                failed += 1
                why = str(e) if isinstance(e, Fail) else "%s: %s" % (type(e).__name__, e)
                print("FAIL %s: %s" % (name, short(why, 900)), flush=True)
            finally:
                for c in self.conns:
                    c.close()
                self.conns = []
        return failed

    def close(self):
        self.a.close()
        self.b.close()
        self.d.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--relay", default="127.0.0.20:5269")
    p.add_argument("--leaf-a", default="127.0.0.21")
    p.add_argument("--leaf-b", default="127.0.0.22")
    p.add_argument("--secret", required=True)
    p.add_argument("--cert", required=True, help="PEM certificate for the mock leaves")
    p.add_argument("--key", required=True)
    p.add_argument("--ca", required=True, help="the enclave CA the relay issues from")
    p.add_argument("--relay-pid", type=int, required=True, help="for SIGHUP")
    p.add_argument("--conf", required=True, help="the relay's config file (rewritten)")
    p.add_argument("--log", required=True, help="the relay's log")
    p.add_argument("--rss-growth-mb", type=int, default=40,
                   help="how much the relay's RSS may grow in next-hop-reads-nothing (0: no check)")
    p.add_argument("--deaf-count", type=int, default=4000,
                   help="16 KB stanzas sent toward the next hop that reads nothing")
    p.add_argument("cases", nargs="*", help="run only these cases")
    args = p.parse_args()
    suite = Suite(args)
    try:
        failed = suite.run(set(args.cases))
    finally:
        suite.close()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
