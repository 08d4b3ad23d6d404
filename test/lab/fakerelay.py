#!/usr/bin/python3
"""fakerelay — a stand-in for xtrunkd, to test the LAB, not the relay.

    fakerelay.py -d -v -f relay.conf

Same command line and config file as xtrunkd. It reads the listen address,
the peers and the routes from relay.conf (only the simple one-line forms the
lab writes), accepts s2s connections, reads the opening stream header up to
its `to` attribute, looks the domain up in the routes and then splices the
TCP connection, bytes unchanged, to that route's peer. TLS, dialback and
SASL therefore happen end to end between the two Prosody servers: this
proves that the lab's DNS sends each leaf to 127.0.0.10 and that stream
routing by `to` reaches the right leaf, nothing about the relay.

It logs one line per connection to stderr:
    event=splice to=b.example peer=leaf-b addr=127.0.0.3:5269
    event=splice-failed to=c.example peer=down error=...
and never `event=forward`, which only the real relay can log.
"""

import argparse
import asyncio
import re
import signal
import sys
import time

HEADER_RE = re.compile(rb"<(?:[A-Za-z0-9_.-]+:)?stream\b[^>]*?\bto=(['\"])([^'\"]+)\1[^>]*>", re.S)


def log(msg):
    sys.stderr.write("%s fakerelay %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def parse_conf(text):
    listen = re.search(r'listen\s*=.*?address\s*=\s*"([^"]+)"\s*;\s*port\s*=\s*(\d+)', text, re.S)
    peers = {m.group(1): (m.group(2), int(m.group(3))) for m in re.finditer(
        r'\{\s*name\s*=\s*"([^"]+)"\s*;\s*host\s*=\s*"([^"]+)"\s*;\s*port\s*=\s*(\d+)', text)}
    routes = {m.group(1).lower(): m.group(2) for m in re.finditer(
        r'\{\s*domain\s*=\s*"([^"]+)"\s*;\s*peer\s*=\s*"([^"]+)"', text)}
    ct = re.search(r'connect_timeout\s*=\s*(\d+)', text)
    if not listen:
        raise SystemExit("fakerelay: no listen address in config")
    return listen.group(1), int(listen.group(2)), peers, routes, int(ct.group(1)) if ct else 3


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except Exception:  # noqa: BLE001
            pass


def make_handler(peers, routes, connect_timeout):
    async def handle(reader, writer):
        src = writer.get_extra_info("peername")
        buf = b""
        try:
            while True:
                m = HEADER_RE.search(buf)
                if m or len(buf) > 8192:
                    break
                chunk = await asyncio.wait_for(reader.read(4096), 10)
                if not chunk:
                    break
                buf += chunk
        except asyncio.TimeoutError:
            m = None
        if not m:
            log("event=drop src=%s:%s reason=no-stream-header" % src[:2])
            writer.close()
            return
        domain = m.group(2).decode("utf-8", "replace").lower().rstrip(".")
        peer = routes.get(domain)
        if peer is None or peer not in peers:
            log("event=drop src=%s:%s to=%s reason=no-route" % (src[0], src[1], domain))
            writer.close()
            return
        host, port = peers[peer]
        try:
            r2, w2 = await asyncio.wait_for(asyncio.open_connection(host, port), connect_timeout)
        except (OSError, asyncio.TimeoutError) as e:
            log("event=splice-failed src=%s:%s to=%s peer=%s addr=%s:%d error=%s" % (
                src[0], src[1], domain, peer, host, port, type(e).__name__))
            writer.close()
            return
        log("event=splice src=%s:%s to=%s peer=%s addr=%s:%d" % (src[0], src[1], domain, peer, host, port))
        w2.write(buf)
        await asyncio.gather(pipe(reader, w2), pipe(r2, writer))
    return handle


def main():
    p = argparse.ArgumentParser()
    p.add_argument("-d", action="store_true")
    p.add_argument("-v", action="store_true")
    p.add_argument("-f", required=True)
    args = p.parse_args()
    with open(args.f) as f:
        addr, port, peers, routes, ct = parse_conf(f.read())
    if not addr.startswith("127."):
        raise SystemExit("fakerelay: refusing non-loopback listen address %s" % addr)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(asyncio.start_server(make_handler(peers, routes, ct), addr, port))
    log("event=listen addr=%s:%d routes=%d peers=%d" % (addr, port, len(routes), len(peers)))
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, loop.stop)
    loop.run_forever()
    server.close()
    log("event=stop")


if __name__ == "__main__":
    main()
