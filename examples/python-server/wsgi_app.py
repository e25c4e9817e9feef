"""The slow service as a WSGI application, for gunicorn (see gunicorn.conf.py)."""

import time
from urllib.parse import parse_qs

import tcp_keepalive

MAX_SECONDS = 3600


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/slow":
        try:
            seconds = float(parse_qs(environ.get("QUERY_STRING", "")).get("seconds", ["1"])[0])
        except ValueError:
            return answer(start_response, "400 Bad Request", "seconds must be a number\n")
        seconds = min(max(seconds, 0.0), MAX_SECONDS)
        time.sleep(seconds)
        return answer(start_response, "200 OK", f"done after {seconds:g} s\n")
    if path == "/keepalive" and "gunicorn.socket" in environ:
        # gunicorn hands the accepted socket to the app: read what it inherited.
        return answer(start_response, "200 OK", f"{tcp_keepalive.inspect(environ['gunicorn.socket'])!r}\n")
    return answer(start_response, "404 Not Found", "try /slow?seconds=5 or /keepalive\n")


def answer(start_response, status, text):
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]
