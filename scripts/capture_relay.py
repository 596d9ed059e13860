#!/usr/bin/env python3
"""Record one TCP connection's traffic, each direction to its own file, for testdata captures.

    python3 scripts/capture_relay.py LISTEN_PORT UPSTREAM_PORT OUT_PREFIX [SKIP]

Accepts connections on 127.0.0.1:LISTEN_PORT and relays them to 127.0.0.1:UPSTREAM_PORT. The
first SKIP connections are relayed without recording (pgbench opens a setup connection first);
the next one is written to OUT_PREFIX.client.bin and OUT_PREFIX.server.bin, then it exits.
testdata/pg/ was made this way against PostgreSQL 15 (initdb -A trust, sslmode=disable):
psql running a short script, and `pgbench -S -M extended -t 3` with SKIP=1.
Captures hold only synthetic values; testdata/ is listed in .sluiceignore.
"""
import socket
import sys
import threading


def pipe(a, b, path=None):
    out = open(path, "wb") if path else None
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            if out:
                out.write(data)
            b.sendall(data)
    finally:
        if out:
            out.close()
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def main():
    listen, upstream, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    skip = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen))
    srv.listen(4)
    for n in range(skip + 1):
        client, _ = srv.accept()
        server = socket.create_connection(("127.0.0.1", upstream))
        record = n == skip
        threads = [
            threading.Thread(target=pipe, args=(client, server, prefix + ".client.bin" if record else None), daemon=not record),
            threading.Thread(target=pipe, args=(server, client, prefix + ".server.bin" if record else None), daemon=not record),
        ]
        for t in threads:
            t.start()
        if record:
            for t in threads:
                t.join()


if __name__ == "__main__":
    main()
