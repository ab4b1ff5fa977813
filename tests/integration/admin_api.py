"""admin_api.py — a small client for the admin HTTP API, shared by the
admin integration tests (30-34): each call returns (status, body, headers),
the body parsed when it is JSON."""
import base64
import json
import urllib.error
import urllib.parse
import urllib.request

Q = urllib.parse.quote


class Api:
    """A tiny client: (status, parsed JSON or text, headers)."""

    def __init__(self, port, user="guest", password="guest"):
        self.base = f"http://127.0.0.1:{port}"
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def call(self, method, path, body=None, headers=None, raw=None, auth=True):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if auth:
            req.add_header("Authorization", self.auth)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, text, hdrs = r.status, r.read().decode(), r.headers
        except urllib.error.HTTPError as e:
            status, text, hdrs = e.code, e.read().decode(), e.headers
        ctype = hdrs.get("Content-Type", "")
        if text and ctype.startswith("application/json"):
            return status, json.loads(text), hdrs
        return status, text, hdrs

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def put(self, path, body, **kw):
        return self.call("PUT", path, body, **kw)

    def post(self, path, body, **kw):
        return self.call("POST", path, body, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)
