#!/usr/bin/python3
"""topology.py — XMPP clients for test/integration/topology.sh (slixmpp,
reusing test/lab/xclient.py's Client).

  mesh  --name N --barrier DIR --parties K --tag T --login JID=HOST... --all JID...
        Logs in the local accounts (--login: JID and the c2s address of its
        server), then waits until K processes (one per network namespace)
        have written DIR/ready.* (so nobody sends to an account not yet
        online). Every local account then sends one message to every JID of
        --all but itself, and waits for one from every other JID of --all.
        Prints, for each message a local account should have received:
          ok pair SRC -> DST (N ms)   |   FAIL pair SRC -> DST: why
        and for each error a local sender got back:
          FAIL error SRC -> DST: CONDITION
        then writes DIR/done.N and waits (bounded) for the others' done
        files before logging out. Exit 0 only if every message arrived and
        no error came back. The processes of one mesh share --tag (message
        bodies carry it, so messages of another run never count).
  loop  --login JID=HOST --to JID --window SECONDS
        Sends one message to --to and counts the errors that come back in
        the window (a routing loop must give exactly one, not a storm):
          loop errors=N conditions=C1,C2 first_ms=T
        Exit 0 when the client ran (the count is for the caller to judge).

Common: --pw, --ca, --timeout (whole run; hard limit timeout + 10 s).
"""

import argparse
import asyncio
import os
import signal
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lab"))
import xclient  # noqa: E402


def parse_login(spec):
    jid, _, host = spec.partition("=")
    if not host:
        raise SystemExit("--login wants JID=HOST, not %r" % spec)
    return jid, host


async def login_all(args, loop, logins, deadline):
    clients = {}
    for jid, host in logins:
        c = xclient.Client(jid, args.pw, args.ca, loop)
        c.start(host, 5222)
        clients[jid] = c
    try:
        await asyncio.wait_for(asyncio.gather(*(c.ready for c in clients.values())),
                               max(0.1, deadline - time.monotonic()))
    except asyncio.TimeoutError:
        raise xclient.Fail("timeout logging in (%s)" % ", ".join(
            j for j, c in clients.items() if not c.ready.done()))
    return clients


async def barrier(path, prefix, parties, deadline):
    while True:
        n = len([f for f in os.listdir(path) if f.startswith(prefix)])
        if n >= parties:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)


def touch(path):
    with open(path, "w") as f:
        f.write("%d\n" % os.getpid())


async def cmd_mesh(args, loop):
    deadline = time.monotonic() + args.timeout
    logins = [parse_login(s) for s in args.login]
    local = [j for j, _ in logins]
    # the same tag in every process of one mesh: it names the run
    tag = args.tag or uuid.uuid4().hex[:10]
    clients = {}
    lines, bad = [], 0
    try:
        clients = await login_all(args, loop, logins, deadline)
        touch(os.path.join(args.barrier, "ready." + args.name))
        if not await barrier(args.barrier, "ready.", args.parties, deadline):
            raise xclient.Fail("the other client processes did not log in in time")
        t0 = time.monotonic()
        for src in local:
            for dst in args.all:
                if dst != src:
                    clients[src].send_message(mto=dst, mtype="chat",
                                              mbody="topology %s %s -> %s" % (tag, src, dst))
        expected = {(src, dst) for dst in local for src in args.all if src != dst}
        got, errors = {}, []
        while len(got) < len(expected) and time.monotonic() < deadline:
            for dst in local:
                c = clients[dst]
                while not c.messages.empty():
                    m = c.messages.get_nowait()
                    body = m["body"]
                    parts = body.split(" ")
                    if len(parts) == 5 and parts[0] == "topology" and parts[1] == tag:
                        pair = (parts[2], parts[4])
                        if pair in expected and pair not in got:
                            got[pair] = time.monotonic() - t0
                c = clients[dst]
                while not c.errors.empty():
                    e = c.errors.get_nowait()
                    errors.append((dst, e["from"].bare, e["error"]["condition"]))
            await asyncio.sleep(0.02)
        for pair in sorted(expected):
            if pair in got:
                lines.append("ok pair %s -> %s (%s)" % (pair[0], pair[1], xclient.ms(got[pair])))
            else:
                bad += 1
                lines.append("FAIL pair %s -> %s: not received in %ss" % (
                    pair[0], pair[1], args.timeout))
        for src, dst, cond in errors:
            bad += 1
            lines.append("FAIL error %s -> %s: %s" % (src, dst, cond))
    finally:
        touch(os.path.join(args.barrier, "done." + args.name))
        # the others may still be sending to our accounts: stay online
        await barrier(args.barrier, "done.", args.parties, deadline + 5)
        await xclient.logout(list(clients.values()))
    for line in lines:
        print(line, flush=True)
    return bad == 0


async def cmd_loop(args, loop):
    deadline = time.monotonic() + args.timeout
    jid, host = parse_login(args.login[0])
    clients = {}
    try:
        clients = await login_all(args, loop, [(jid, host)], deadline)
        c = clients[jid]
        t0 = time.monotonic()
        c.send_message(mto=args.to, mtype="chat", mbody="topology loop %s" % uuid.uuid4().hex)
        end = min(deadline, t0 + args.window)
        errors, first = [], None
        while time.monotonic() < end:
            while not c.errors.empty():
                e = c.errors.get_nowait()
                if first is None:
                    first = time.monotonic() - t0
                errors.append(e["error"]["condition"] or "?")
            await asyncio.sleep(0.02)
    finally:
        await xclient.logout(list(clients.values()))
    print("loop errors=%d conditions=%s first_ms=%s" % (
        len(errors), ",".join(errors) or "-",
        "%.0f" % (first * 1000) if first is not None else "-"), flush=True)
    return True


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("command", choices=["mesh", "loop"])
    p.add_argument("--name", default="main")
    p.add_argument("--barrier", default="")
    p.add_argument("--parties", type=int, default=1)
    p.add_argument("--login", action="append", default=[])
    p.add_argument("--all", action="append", default=[])
    p.add_argument("--tag", default="")
    p.add_argument("--to", default="")
    p.add_argument("--window", type=float, default=8)
    p.add_argument("--pw", default="")
    p.add_argument("--ca", default="")
    p.add_argument("--timeout", type=float, default=30)
    args = p.parse_args()
    if not args.login:
        p.error("--login JID=HOST is required")
    if args.command == "mesh" and not args.barrier:
        p.error("mesh needs --barrier DIR")

    def hard_timeout(_sig, _frm):
        print("FAIL %s: hard timeout (%ss)" % (args.command, args.timeout + 10), flush=True)
        os._exit(1)

    signal.signal(signal.SIGALRM, hard_timeout)
    signal.alarm(int(args.timeout) + 10)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    coro = cmd_mesh(args, loop) if args.command == "mesh" else cmd_loop(args, loop)
    try:
        ok = loop.run_until_complete(coro)
    except xclient.Fail as e:
        print("FAIL %s %s: %s" % (args.command, args.name, e), flush=True)
        os._exit(1)
    except Exception as e:  # noqa: BLE001 — reported as a FAIL line
        print("FAIL %s %s: %s: %s" % (args.command, args.name, type(e).__name__, e), flush=True)
        os._exit(1)
    sys.stdout.flush()
    os._exit(0 if ok else 1)


if __name__ == "__main__":
    main()
