"""gunicorn configuration: TCP keep-alive on every connection of every worker.

    gunicorn -c gunicorn.conf.py wsgi_app:app

gunicorn has no TCP keep-alive option (its `keepalive` setting is HTTP keep-alive). The
`when_ready` hook runs in the master once the listening sockets exist and before any worker
is forked; the workers accept on those same sockets, so every accepted connection inherits
the settings. The settings come from TCP_KEEPALIVE_* and default to 60 s / 10 s / 6.

gunicorn listens before this hook runs: a connection whose handshake ended in that instant (the
kernel accepts it at once) keeps the kernel's defaults. Only a client racing the start-up sees it.
"""

import tcp_keepalive

bind = "127.0.0.1:8080"
workers = 2
# A slow request must not be killed by gunicorn's own worker timeout.
timeout = 3600


def when_ready(server):
    keepalive = tcp_keepalive.from_env(default=tcp_keepalive.KeepAlive())
    if keepalive is None:
        server.log.info("TCP keep-alive: off (TCP_KEEPALIVE=off)")
        return
    for listener in server.LISTENERS:
        keepalive.apply(listener.sock)
        server.log.info("TCP keep-alive on %s: %s", listener, keepalive)
