#!/usr/bin/python3
"""xclient — the xtrunk lab's XMPP test client (slixmpp).

Run with /usr/bin/python3 (Debian's python3-slixmpp). Every subcommand has a
hard timeout, prints one result line starting with "ok " or "FAIL " on
stdout, and exits 0 (ok) or 1 (fail).

  message    --from A --to B       A sends one message with a unique body to
                                   B's bare JID; B must receive that body.
  roundtrip  --from A --to B       message as above, then an IQ (XEP-0199 ping)
                                   from A to B's FULL JID that must come back
                                   type=result, then a directed presence from
                                   A to B's full JID that B must see.
  expect-error --from A --to C     A sends a message to C; a message of
                                   type=error must come back from C's domain
                                   with condition remote-server-not-found or
                                   remote-server-timeout.
  label-send --from A --to B --label OID:CLASS[:MARKING]
                                   A sends a message carrying an XEP-0258
                                   security label (ESS form) to B, which must
                                   receive it; prints "LABEL <securitylabel/>"
                                   as B received it. --expect-label OID:CLASS
                                   and --expect-marking TEXT check B's label.
  flood      --from A --to B --count N [--cpu NAME=PID ...]
                                   A sends N messages as fast as it can, B
                                   must receive all; prints the rate (first
                                   send to last arrival). With --cpu, also
                                   the CPU time (utime + stime from
                                   /proc/PID/stat) each named process and
                                   this client spent in that window, and
                                   the rest of the machine's busy time
                                   ("other"), in us per message.
  expect-reject --from A --to B [--label ...] [--mtype TYPE]
                                   A sends a message (type TYPE, default
                                   chat); an error with --condition (default
                                   policy-violation) must come back from B's
                                   domain carrying nothing of the message (no
                                   body, no label, not its text), and B must
                                   not receive it.

Common options: --pw PASSWORD (both accounts, or --from-pw/--to-pw),
--from-host/--to-host ADDR (c2s address of each account's own server),
--port, --ca FILE (verify the servers' certificates against this CA; without
it certificates are not verified), --timeout SECONDS, --show (print the
stanzas, for the demo), --debug (slixmpp debug log on stderr).
"""

import argparse
import asyncio
import base64
import logging
import os
import signal
import ssl
import sys
import time
import uuid
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

ACCEPTED_ERRORS = ("remote-server-not-found", "remote-server-timeout")


class Fail(Exception):
    pass


def ms(seconds):
    return "%.0f ms" % (seconds * 1000) if seconds >= 0.01 else "%.1f ms" % (seconds * 1000)


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, ca, loop):
        resource = "lab-" + uuid.uuid4().hex[:8]
        super().__init__("%s/%s" % (jid, resource), password)
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199")
        if ca:
            self.ca_certs = ca
        else:
            self.ssl_context.check_hostname = False
            self.ssl_context.verify_mode = ssl.CERT_NONE
        self.ready = loop.create_future()
        self.messages = asyncio.Queue()   # messages with a body
        self.errors = asyncio.Queue()     # messages of type=error
        self.presences = asyncio.Queue()
        self.add_event_handler("session_start", self._on_session)
        self.add_event_handler("failed_all_auth", lambda _e: self._fail("authentication failed"))
        self.add_event_handler("connection_failed", lambda e: self._fail("connection failed: %s" % e))
        self.add_event_handler("stream_error", lambda e: self._fail("stream error: %s" % e["condition"]))
        self.add_event_handler("ssl_invalid_chain",
                               lambda e: self._fail("server certificate rejected (--ca): %s" % e))
        self.add_event_handler("disconnected", lambda _e: self._fail("disconnected"))
        self.add_event_handler("message", self._on_message)
        self.add_event_handler("message_error", self.errors.put_nowait)
        self.add_event_handler("presence_available", self.presences.put_nowait)

    def _on_message(self, msg):
        # An error bounce that still carries the body fires both "message"
        # and "message_error"; it belongs to the errors queue only.
        if msg["type"] != "error":
            self.messages.put_nowait(msg)

    def _fail(self, why):
        if not self.ready.done():
            self.ready.set_exception(Fail("%s: %s" % (self.boundjid.bare, why)))

    async def _on_session(self, _event):
        try:
            self.send_presence()
            # Barrier: our initial presence is processed by our server before
            # anyone starts sending to us (mod_offline would swallow it).
            await self.plugin["xep_0199"].send_ping(self.boundjid.domain, timeout=10)
        except (IqError, IqTimeout) as e:  # answered is enough
            if isinstance(e, IqTimeout):
                self._fail("no answer from own server")
                return
        if not self.ready.done():
            self.ready.set_result(True)

    def start(self, host, port):
        self.connect(address=(host, port), force_starttls=True)


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        left = self.end - time.monotonic()
        if left <= 0:
            raise Fail("timeout")
        return left


async def wait_queue(queue, match, deadline, what):
    """Wait for an item of queue for which match(item) is true."""
    while True:
        try:
            item = await asyncio.wait_for(queue.get(), deadline.left())
        except (asyncio.TimeoutError, Fail):
            raise Fail("timeout waiting for %s" % what)
        if match(item):
            return item


async def login(args, loop, deadline, need_to=True):
    a = Client(args.from_jid, args.from_pw or args.pw, args.ca, loop)
    clients = [a]
    a.start(args.from_host, args.port)
    b = None
    if need_to:
        b = Client(args.to, args.to_pw or args.pw, args.ca, loop)
        clients.append(b)
        b.start(args.to_host, args.port)
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(asyncio.gather(*(c.ready for c in clients)), deadline.left())
    except asyncio.TimeoutError:
        raise Fail("timeout logging in (%s)" % ", ".join(
            c.boundjid.bare for c in clients if not c.ready.done()))
    return a, b, time.monotonic() - t0


async def logout(clients):
    for c in clients:
        if c is None:
            continue
        if c.ready.done() and not c.ready.cancelled():
            c.ready.exception()  # retrieved: no "never retrieved" warning
        else:
            c.ready.cancel()
        try:
            fut = c.disconnect(wait=0.5)
            if fut is not None:
                await asyncio.wait_for(asyncio.shield(fut), 2)
        except BaseException:
            pass


def show(args, text):
    if args.show:
        print(text, flush=True)


async def step_message(args, a, b, deadline):
    body = "xtrunk lab message %s" % uuid.uuid4()
    show(args, "SENT      %s -> %s\n          body: %s" % (a.boundjid.full, b.boundjid.bare, body))
    t0 = time.monotonic()
    a.send_message(mto=b.boundjid.bare, mbody=body, mtype="chat")
    got = await wait_queue_two(b.messages, lambda m: m["body"] == body,
                               a.errors, deadline, "the message at %s" % b.boundjid.bare)
    dt = time.monotonic() - t0
    if got["from"].bare != a.boundjid.bare:
        raise Fail("message came from %s, expected %s" % (got["from"], a.boundjid.bare))
    show(args, "RECEIVED  %s <- %s (%s)\n          body: %s\n          stanza: %s" % (
        b.boundjid.full, got["from"], ms(dt), got["body"], got))
    return dt


async def wait_queue_two(queue, match, errq, deadline, what):
    """Like wait_queue, but an error message arriving on errq (the sender's
    error queue) first ends the wait with a failure naming its condition."""
    while True:
        try:
            left = deadline.left()
        except Fail:
            raise Fail("timeout waiting for %s" % what)
        g1 = asyncio.ensure_future(queue.get())
        g2 = asyncio.ensure_future(errq.get())
        try:
            done, _ = await asyncio.wait([g1, g2], timeout=left,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for g in (g1, g2):
                if not g.done():
                    g.cancel()
        if not done:
            raise Fail("timeout waiting for %s" % what)
        if g2 in done:
            m = g2.result()
            raise Fail("sender got error %s%s from %s while waiting for %s" % (
                m["error"]["condition"],
                (" (%s)" % m["error"]["text"]) if m["error"]["text"] else "",
                m["from"], what))
        if g1 in done and match(g1.result()):
            return g1.result()


async def step_iq(args, a, b, deadline):
    t0 = time.monotonic()
    try:
        res = await a.plugin["xep_0199"].send_ping(b.boundjid.full, timeout=deadline.left())
    except IqError as e:
        raise Fail("iq to %s: error %s%s" % (b.boundjid.full, e.iq["error"]["condition"],
                                           (" (%s)" % e.iq["error"]["text"]) if e.iq["error"]["text"] else ""))
    except IqTimeout:
        raise Fail("iq to %s: timeout" % b.boundjid.full)
    dt = time.monotonic() - t0
    if res["type"] != "result":
        raise Fail("iq answer type=%s" % res["type"])
    if res["from"] != b.boundjid:
        raise Fail("iq answer from %s, expected %s" % (res["from"], b.boundjid.full))
    show(args, "IQ        %s -> %s ping: result in %s" % (a.boundjid.full, b.boundjid.full, ms(dt)))
    return dt


async def step_presence(args, a, b, deadline):
    status = "xtrunk lab presence %s" % uuid.uuid4().hex[:12]
    t0 = time.monotonic()
    a.send_presence(pto=b.boundjid.full, pstatus=status)
    got = await wait_queue_two(
        b.presences,
        lambda p: p["from"] == a.boundjid and p["status"] == status,
        a.errors, deadline, "the directed presence at %s" % b.boundjid.full)
    dt = time.monotonic() - t0
    show(args, "PRESENCE  %s saw %s available (%s)" % (b.boundjid.full, got["from"], ms(dt)))
    return dt


async def cmd_message(args, loop, deadline, full=False):
    a = b = None
    try:
        a, b, t_login = await login(args, loop, deadline)
        parts = ["login %s" % ms(t_login)]
        parts.append("message %s" % ms(await step_message(args, a, b, deadline)))
        if full:
            parts.append("iq %s" % ms(await step_iq(args, a, b, deadline)))
            parts.append("presence %s" % ms(await step_presence(args, a, b, deadline)))
        return ", ".join(parts)
    finally:
        await logout([a, b])


def cpu_sample(specs):
    """{name: CPU seconds (user + system)} for each NAME=PID of specs and
    for this client itself ("client")."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for spec in specs:
        name, _, pid = spec.partition("=")
        with open("/proc/%s/stat" % pid) as f:
            # the command name (field 2) may hold spaces: split after ')'
            fields = f.read().rsplit(")", 1)[1].split()
        out[name] = (int(fields[11]) + int(fields[12])) / tick
    t = os.times()
    out["client"] = t.user + t.system
    # everything else the machine ran meanwhile (other processes, the
    # kernel's interrupts): the busy time of /proc/stat minus the above
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = (sum(v[:8]) - v[3] - v[4]) / tick  # all but idle and iowait
    out["other"] = busy - sum(out.values())
    return out


async def cmd_flood(args, loop, deadline):
    """A sends --count messages as fast as it can, B counts them: the rate
    from the first send to the last arrival (after one warm-up message, so
    the s2s streams are up)."""
    a = b = None
    try:
        a, b, _ = await login(args, loop, deadline)
        await step_message(args, a, b, deadline)
        tag = "flood-" + uuid.uuid4().hex[:8]
        n, got = args.count, 0
        t0 = time.monotonic()

        async def receive():
            nonlocal got
            while got < n:
                m = await asyncio.wait_for(b.messages.get(), deadline.left())
                if m["body"].startswith(tag):
                    got += 1
        cpu0 = cpu_sample(args.cpu)
        rx = asyncio.ensure_future(receive())
        for i in range(n):
            a.send_message(mto=b.boundjid.bare, mbody="%s %d" % (tag, i), mtype="chat")
            if i % 100 == 99:
                await asyncio.sleep(0)
        try:
            await rx
        except (asyncio.TimeoutError, Fail):
            raise Fail("only %d of %d messages arrived" % (got, n))
        dt = time.monotonic() - t0
        cpu1 = cpu_sample(args.cpu)
        cpu = "".join(" %s=%.1f" % (k, (cpu1[k] - cpu0[k]) * 1e6 / n) for k in cpu0)
        return "%d messages in %.2f s%s: %.0f msg/s" % (
            n, dt, (" (cpu us/msg:%s)" % cpu) if args.cpu else "", n / dt)
    finally:
        await logout([a, b])


async def cmd_expect_error(args, loop, deadline):
    a = None
    try:
        a, _, t_login = await login(args, loop, deadline, need_to=False)
        body = "xtrunk lab to nowhere %s" % uuid.uuid4()
        target = slixmpp.JID(args.to)
        t0 = time.monotonic()
        a.send_message(mto=args.to, mbody=body, mtype="chat")
        m = await wait_queue(a.errors, lambda m: m["from"].domain == target.domain,
                             deadline, "an error from %s" % target.domain)
        dt = time.monotonic() - t0
        cond = m["error"]["condition"]
        text = m["error"]["text"]
        desc = "error %s%s from %s after %s (login %s)" % (
            cond, (" (%s)" % text) if text else "", m["from"], ms(dt), ms(t_login))
        show(args, "BOUNCE    %s" % m)
        if cond not in ACCEPTED_ERRORS:
            raise Fail("unexpected " + desc)
        return desc
    finally:
        await logout([a])


# ---- XEP-0258 labels, built and read here independently of the relay:
# the ESS SecurityLabel DER (RFC 2634) is small enough to write by hand.
NS_SL = "urn:xmpp:sec-label:0"
NS_ESS = "urn:xmpp:sec-label:ess:0"


def der_len(n):
    if n < 128:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def der_oid(dotted):
    arcs = [int(x) for x in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for a in arcs[2:]:
        chunk = [a & 0x7F]
        a >>= 7
        while a:
            chunk.insert(0, 0x80 | (a & 0x7F))
            a >>= 7
        body += bytes(chunk)
    return b"\x06" + der_len(len(body)) + bytes(body)


def ess_label(oid, cls):
    """SET { INTEGER cls, OID } in DER (SET components sorted by tag)."""
    ib = cls.to_bytes(max(1, (cls.bit_length() + 8) // 8), "big")
    body = b"\x02" + der_len(len(ib)) + ib + der_oid(oid)
    return base64.b64encode(b"\x31" + der_len(len(body)) + body).decode()


def ess_read(b64):
    """(OID, class) of an ESS label; raises on anything unexpected."""
    d = base64.b64decode(b64, validate=True)
    if d[0] != 0x31:
        raise Fail("ESS label is not a SET")
    i, oid, cls = 2, None, None
    if d[1] & 0x80:
        i = 2 + (d[1] & 0x7F)
    while i < len(d):
        tag, ln = d[i], d[i + 1]
        v = d[i + 2:i + 2 + ln]
        if tag == 0x02:
            cls = int.from_bytes(v, "big", signed=True)
        elif tag == 0x06:
            arcs, a = [v[0] // 40, v[0] % 40], 0
            for c in v[1:]:
                a = (a << 7) | (c & 0x7F)
                if not c & 0x80:
                    arcs.append(a)
                    a = 0
            oid = ".".join(str(x) for x in arcs)
        i += 2 + ln
    return oid, cls


def label_xml(spec):
    """OID:CLASS[:MARKING] -> <securitylabel/> element."""
    parts = spec.split(":", 2)
    el = ET.Element("{%s}securitylabel" % NS_SL)
    if len(parts) > 2:
        dm = ET.SubElement(el, "{%s}displaymarking" % NS_SL, fgcolor="black", bgcolor="red")
        dm.text = parts[2]
    lab = ET.SubElement(el, "{%s}label" % NS_SL)
    ess = ET.SubElement(lab, "{%s}esssecuritylabel" % NS_ESS)
    ess.text = ess_label(parts[0], int(parts[1]))
    return el


async def cmd_label_send(args, loop, deadline):
    a = b = None
    try:
        a, b, t_login = await login(args, loop, deadline)
        body = "xtrunk lab labelled %s" % uuid.uuid4()
        m = a.make_message(mto=b.boundjid.bare, mbody=body, mtype=args.mtype)
        m.append(label_xml(args.label))
        t0 = time.monotonic()
        m.send()
        got = await wait_queue_two(b.messages, lambda x: x["body"] == body, a.errors, deadline,
                                   "the labelled message at %s" % b.boundjid.bare)
        dt = time.monotonic() - t0
        sl = got.xml.find("{%s}securitylabel" % NS_SL)
        if sl is None:
            raise Fail("the message arrived without a security label")
        print("LABEL %s" % ET.tostring(sl, encoding="unicode"), flush=True)
        ess = sl.find("{%s}label/{%s}esssecuritylabel" % (NS_SL, NS_ESS))
        if ess is None:
            raise Fail("the label has no ESS label")
        oid, cls = ess_read(ess.text.strip())
        desc = "label %s:%s" % (oid, cls)
        if args.expect_label and args.expect_label != "%s:%s" % (oid, cls):
            raise Fail("received %s, expected %s" % (desc, args.expect_label))
        dm = sl.find("{%s}displaymarking" % NS_SL)
        mark = dm.text if dm is not None else None
        if args.expect_marking and args.expect_marking != mark:
            raise Fail("display marking %r, expected %r" % (mark, args.expect_marking))
        if len(sl.findall("{%s}securitylabel" % NS_SL)) or \
                len(got.xml.findall("{%s}securitylabel" % NS_SL)) != 1:
            raise Fail("not exactly one security label")
        return "%s, marking %r, in %s (login %s)" % (desc, mark, ms(dt), ms(t_login))
    finally:
        await logout([a, b])


def stanza_condition(stanza):
    """The error condition, read from the XML: slixmpp knows only the
    conditions of XEP-0086 and reports RFC 6120's policy-violation as ''."""
    err = stanza.xml.find("{jabber:client}error")
    if err is None:
        return ""
    for c in err:
        if c.tag.startswith("{urn:ietf:params:xml:ns:xmpp-stanzas}") and not c.tag.endswith("}text"):
            return c.tag.split("}", 1)[1]
    return ""


async def cmd_expect_reject(args, loop, deadline):
    a = b = None
    try:
        a, b, t_login = await login(args, loop, deadline)
        secret = "xtrunk-lab-secret-%s" % uuid.uuid4().hex
        m = a.make_message(mto=b.boundjid.bare, mbody=secret, mtype=args.mtype)
        m["id"] = "rej-" + uuid.uuid4().hex[:8]
        if args.label:
            m.append(label_xml(args.label))
        target = slixmpp.JID(args.to)
        t0 = time.monotonic()
        m.send()
        e = await wait_queue(a.errors, lambda x: x["from"].domain == target.domain,
                             deadline, "an error from %s" % target.domain)
        dt = time.monotonic() - t0
        cond, etype = stanza_condition(e), e["error"]["type"]
        raw = str(e)
        show(args, "BOUNCE    %s" % raw)
        if cond != args.condition:
            raise Fail("error %s (type %s), expected %s" % (cond, etype, args.condition))
        if e["id"] != m["id"]:
            raise Fail("error id %r, expected %r" % (e["id"], m["id"]))
        if secret in raw or e.xml.find("{jabber:client}body") is not None or \
                "securitylabel" in raw or "esssecuritylabel" in raw:
            raise Fail("the error carries content of the message: %s" % raw)
        if args.errtype and etype != args.errtype:
            raise Fail("error type %s, expected %s" % (etype, args.errtype))
        # and the message was not delivered (give it a moment to show up)
        try:
            await asyncio.wait_for(
                wait_queue(b.messages, lambda x: x["body"] == secret, Deadline(1.5), "x"), 1.6)
            raise Fail("the refused message was delivered to %s" % b.boundjid.bare)
        except (Fail, asyncio.TimeoutError) as x:
            if isinstance(x, Fail) and "delivered" in str(x):
                raise
        print("ERROR %s" % raw, flush=True)
        return "error %s type %s from %s after %s, no content, not delivered (login %s)" % (
            cond, etype, e["from"], ms(dt), ms(t_login))
    finally:
        await logout([a, b])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("command", choices=["message", "roundtrip", "expect-error", "label-send",
                                        "expect-reject", "flood"])
    p.add_argument("--count", type=int, default=1000, help="flood: messages to send")
    p.add_argument("--cpu", action="append", default=[], metavar="NAME=PID",
                   help="flood: report this process's CPU per message")
    p.add_argument("--label", default="")
    p.add_argument("--expect-label", default="")
    p.add_argument("--expect-marking", default="")
    p.add_argument("--mtype", default="chat")
    p.add_argument("--condition", default="policy-violation")
    p.add_argument("--errtype", default="")
    p.add_argument("--from", dest="from_jid", required=True)
    p.add_argument("--to", required=True)
    p.add_argument("--pw", default="")
    p.add_argument("--from-pw", default="")
    p.add_argument("--to-pw", default="")
    p.add_argument("--from-host", default="")
    p.add_argument("--to-host", default="")
    p.add_argument("--port", type=int, default=5222)
    p.add_argument("--ca", default="")
    p.add_argument("--timeout", type=float, default=20)
    p.add_argument("--show", action="store_true")
    p.add_argument("--debug", action="store_true")
    args = p.parse_args()
    args.from_host = args.from_host or slixmpp.JID(args.from_jid).domain
    args.to_host = args.to_host or slixmpp.JID(args.to).domain
    label = "%s %s -> %s" % (args.command, args.from_jid, args.to)

    logging.basicConfig(level=logging.DEBUG if args.debug else logging.CRITICAL,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")

    def hard_timeout(_sig, _frm):
        print("FAIL %s: hard timeout (%ss)" % (label, args.timeout), flush=True)
        os._exit(1)

    signal.signal(signal.SIGALRM, hard_timeout)
    signal.alarm(int(args.timeout) + 5)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    deadline = Deadline(args.timeout)
    if args.command == "expect-error":
        coro = cmd_expect_error(args, loop, deadline)
    elif args.command == "label-send":
        coro = cmd_label_send(args, loop, deadline)
    elif args.command == "expect-reject":
        coro = cmd_expect_reject(args, loop, deadline)
    elif args.command == "flood":
        coro = cmd_flood(args, loop, deadline)
    else:
        coro = cmd_message(args, loop, deadline, full=(args.command == "roundtrip"))
    try:
        result = loop.run_until_complete(asyncio.wait_for(coro, args.timeout + 2))
    except Fail as e:
        print("FAIL %s: %s" % (label, e), flush=True)
        os._exit(1)
    except asyncio.TimeoutError:
        print("FAIL %s: timeout (%ss)" % (label, args.timeout), flush=True)
        os._exit(1)
    except Exception as e:  # noqa: BLE001 — any other failure is a FAIL line too
        print("FAIL %s: %s: %s" % (label, type(e).__name__, e), flush=True)
        os._exit(1)
    print("ok %s: %s" % (label, result), flush=True)
    # os._exit: do not wait for slixmpp's background tasks.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
