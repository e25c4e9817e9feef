"""Benchmark: tcp_keepalive.configure(sock) against the same work written in plain Python.

Run: "$VENV/bin/python" python-binding/benches/bench_configure.py [--quick]

Every variant runs on the same connected loopback socket, in interleaved rounds of one run, and
the report gives the median time per call and ratios side by side. Nothing is asserted: the
numbers are for the reader (the goal is that going through Rust costs nothing extra, <= 1.05x).

Why several baselines: `configure` is all or nothing. It reads the three timings first so it can
write them back if a later write fails: 3 getsockopt + 4 setsockopt. The four plain
`sock.setsockopt` calls do less work (and give no guarantee). The fair comparisons are
configure against the same seven calls in Python, and `KeepAlive.apply_to_new_socket` (no reads,
meant for fresh sockets) against the four plain calls.
"""

import socket
import statistics
import sys
import timeit

import tcp_keepalive

SOL, TCP = socket.SOL_SOCKET, socket.IPPROTO_TCP
KA, IDLE, INTVL, CNT = socket.SO_KEEPALIVE, socket.TCP_KEEPIDLE, socket.TCP_KEEPINTVL, socket.TCP_KEEPCNT


def plain_four(s):
    s.setsockopt(TCP, IDLE, 60)
    s.setsockopt(TCP, INTVL, 10)
    s.setsockopt(TCP, CNT, 6)
    s.setsockopt(SOL, KA, 1)


def plain_all_or_nothing(s):
    # What configure does, in Python: read the old timings, write the new ones, restore on error.
    old = (s.getsockopt(TCP, IDLE), s.getsockopt(TCP, INTVL), s.getsockopt(TCP, CNT))
    try:
        s.setsockopt(TCP, IDLE, 60)
        s.setsockopt(TCP, INTVL, 10)
        s.setsockopt(TCP, CNT, 6)
        s.setsockopt(SOL, KA, 1)
    except OSError:
        for name, value in zip((IDLE, INTVL, CNT), old):
            s.setsockopt(TCP, name, value)
        raise


def main():
    quick = "--quick" in sys.argv
    rounds, number = (5, 2_000) if quick else (21, 20_000)
    listener = socket.create_server(("127.0.0.1", 0))
    sock = socket.create_connection(listener.getsockname())
    peer, _ = listener.accept()
    k = tcp_keepalive.KeepAlive()
    configure = tcp_keepalive.configure
    variants = {
        "plain: 4 x sock.setsockopt": lambda: plain_four(sock),
        "plain: 3 getsockopt + 4 setsockopt (all or nothing)": lambda: plain_all_or_nothing(sock),
        "configure(sock)": lambda: configure(sock),
        "configure(sock, idle=60, interval=10, count=6)": lambda: configure(sock, idle=60, interval=10, count=6),
        "KeepAlive().apply(sock) (prebuilt)": lambda: k.apply(sock),
        "KeepAlive().apply_to_new_socket(sock) (prebuilt)": lambda: k.apply_to_new_socket(sock),
    }
    times = {name: [] for name in variants}
    for _ in range(rounds):  # interleaved, so drift and noisy neighbours hit every variant alike
        for name, fn in variants.items():
            t = timeit.Timer(fn).timeit(number)
            times[name].append(t / number * 1e9)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    note = ", quick smoke run: too short to quote, run without --quick" if quick else ""
    print(f"bench_configure ({rounds} rounds x {number} calls, median ns per call{note}):")
    for name, ns in med.items():
        print(f"  {ns:8.0f} ns  {name}")
    base4 = med["plain: 4 x sock.setsockopt"]
    base7 = med["plain: 3 getsockopt + 4 setsockopt (all or nothing)"]
    print("ratios:")
    print(f"  configure(sock) / plain all-or-nothing (same 7 system calls): {med['configure(sock)'] / base7:.3f}x")
    print(f"  apply_to_new_socket / 4 x setsockopt (same 4 system calls):  {med['KeepAlive().apply_to_new_socket(sock) (prebuilt)'] / base4:.3f}x")
    print(f"  configure(sock) / 4 x setsockopt (7 calls against 4):        {med['configure(sock)'] / base4:.3f}x")
    for s in (sock, peer, listener):
        s.close()


if __name__ == "__main__":
    main()
