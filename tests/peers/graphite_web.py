#!/usr/bin/env python3
"""graphite-web 1.1.10 in-process, for the differential tests.

Usage: graphite_web.py WHISPER_DIR [CARBONLINK_HOST...]

Runs graphite-web through Django's test client with a local_settings.py
pointing at WHISPER_DIR (and at CARBONLINK_HOST, host:port:instance, for
cached points). Reads one request per line on stdin, as JSON:
  {"method": "GET" or "POST", "path": "/render", "params": [[key, value], ...]}
(or {"path": ..., "json": "<text>"}: a POST of that JSON body)
and writes one answer per line on stdout:
  {"status": 200, "content_type": "...", "body": "<base64>"}
A line {"functions": true} is answered {"json": {name: {"group", "params"}}},
graphite-web's function list (its /functions fails on Python 3.11).
A line {"unpickle": "<base64>"} is answered {"json": ...}: the pickle as
Python reads it, for comparing pickled answers.

Two settings come from the environment: GRAPHITE_CLUSTER_SERVERS (comma
separated host:port) adds graphite-web's RemoteFinder over those servers
(its CLUSTER_SERVERS); GRAPHITE_SERVE=PORT serves graphite-web over HTTP
on 127.0.0.1:PORT (wsgiref, a real server a cluster can ask) instead of
reading stdin, after printing {"ready": true}.
"""
import base64
import json
import os
import sys
import tempfile
from urllib.parse import urlencode


def main():
    whisper_dir = os.path.abspath(sys.argv[1])
    carbonlink = sys.argv[2:]
    cluster = [s for s in os.environ.get("GRAPHITE_CLUSTER_SERVERS", "").split(",") if s]
    finders = ["graphite.finders.standard.StandardFinder"]
    if cluster:
        finders.append("graphite.finders.remote.RemoteFinder")
    work = tempfile.mkdtemp(prefix="graphite-web-")
    os.makedirs(os.path.join(work, "log"), exist_ok=True)
    with open(os.path.join(work, "local_settings.py"), "w") as f:
        f.write(
            "SECRET_KEY = 'carbyne-differential-tests'\n"
            "STORAGE_DIR = %r\n"
            "WHISPER_DIR = %r\n"
            "STANDARD_DIRS = [%r]\n"
            "LOG_DIR = %r\n"
            "INDEX_FILE = %r\n"
            "CARBONLINK_HOSTS = %r\n"
            "CARBONLINK_TIMEOUT = 5.0\n"
            "USE_WORKER_POOL = False\n"
            "STORAGE_FINDERS = %r\n"
            "CLUSTER_SERVERS = %r\n"
            "DEFAULT_CACHE_DURATION = 0\n"
            "TIME_ZONE = 'UTC'\n"
            "DATABASES = {'default': {'NAME': %r, 'ENGINE': 'django.db.backends.sqlite3'}}\n"
            % (
                work,
                whisper_dir + "/",
                whisper_dir + "/",
                os.path.join(work, "log"),
                os.path.join(work, "index"),
                carbonlink,
                tuple(finders),
                cluster,
                os.path.join(work, "graphite.db"),
            )
        )
    sys.path.insert(0, work)
    os.environ["GRAPHITE_SETTINGS_MODULE"] = "local_settings"
    os.environ["DJANGO_SETTINGS_MODULE"] = "graphite.settings"
    import warnings

    warnings.simplefilter("ignore")
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0, interactive=False)
    serve = os.environ.get("GRAPHITE_SERVE")
    if serve:
        from wsgiref.simple_server import make_server, WSGIRequestHandler
        from django.core.wsgi import get_wsgi_application

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        httpd = make_server("127.0.0.1", int(serve), get_wsgi_application(), handler_class=Quiet)
        print(json.dumps({"ready": True}), flush=True)
        httpd.serve_forever()
        return
    client = Client()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        if "functions" in req:
            # graphite-web's /functions calls inspect.getargspec, gone in
            # Python 3.11: its function list is read here, as /functions
            # would give it (group and parameters of each).
            from graphite.functions import SeriesFunctions

            out = {}
            for name, f in SeriesFunctions().items():
                out[name] = {
                    "group": getattr(f, "group", "Ungrouped"),
                    "params": [p.toJSON() for p in (getattr(f, "params", None) or [])],
                }
            # An infinite default (keepLastValue's limit) as the text "Infinity".
            text = json.dumps({"json": out}, default=str).replace("Infinity", '"Infinity"')
            print(text, flush=True)
            continue
        if "unpickle" in req:
            # A pickle from the other server, read back as Python reads it.
            import pickle

            data = pickle.loads(base64.b64decode(req["unpickle"]))
            print(json.dumps({"json": data}), flush=True)
            continue
        query = urlencode([tuple(p) for p in req.get("params", [])])
        try:
            if "json" in req:
                r = client.post(req["path"], req["json"], content_type="application/json")
            elif req.get("method", "GET") == "POST":
                r = client.post(req["path"], query, content_type="application/x-www-form-urlencoded")
            else:
                r = client.get(req["path"] + ("?" + query if query else ""))
            answer = {
                "status": r.status_code,
                "content_type": r.get("Content-Type", ""),
                "body": base64.b64encode(r.content).decode(),
            }
        except Exception as e:  # an uncaught error is graphite-web's 500
            answer = {"status": 500, "content_type": "text/plain", "body": base64.b64encode(repr(e).encode()).decode()}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
