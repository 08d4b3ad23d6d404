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

Common options: --pw PASSWORD (both accounts, or --from-pw/--to-pw),
--from-host/--to-host ADDR (c2s address of each account's own server),
--port, --ca FILE (verify the servers' certificates against this CA; without
it certificates are not verified), --timeout SECONDS, --show (print the
stanzas, for the demo), --debug (slixmpp debug log on stderr).
"""

import argparse
import asyncio
import logging
import os
import signal
import ssl
import sys
import time
import uuid

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


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("command", choices=["message", "roundtrip", "expect-error"])
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
