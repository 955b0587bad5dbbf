#!/usr/bin/env python3
"""Times the authorization code flow against a running Gatehouse, over real HTTP.

Signs in once (Argon2id password check), then repeats N times: authorize (consent page,
force_verify=true) -> allow -> redirect with code -> token exchange. Prints the sign-in
time and per-flow latency percentiles. Standard library only.

  bench/code_flow.py BASE_URL CLIENT_ID CLIENT_SECRET LOGIN PASSWORD [N]
The client must have http://localhost:3000/callback registered.
"""
import html
import re
import sys
import time
import urllib.parse
from http.client import HTTPConnection

base, client_id, secret, login, password = sys.argv[1:6]
n = int(sys.argv[6]) if len(sys.argv) > 6 else 200
u = urllib.parse.urlparse(base)
conn = HTTPConnection(u.hostname, u.port)
cookie = {}


def request(method, path, form=None):
    headers = {}
    if cookie:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookie.items())
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read().decode()
    for h, v in r.getheaders():
        if h.lower() == "set-cookie":
            k, val = v.split(";")[0].split("=", 1)
            cookie[k] = val
    return r.status, r.getheader("Location"), data


def hidden(page, start_marker=None):
    if start_marker:
        page = page[page.index(start_marker):]
        page = page[: page.index("</form>")]
    return [(html.unescape(a), html.unescape(b)) for a, b in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', page)]


t0 = time.perf_counter()
_, _, page = request("GET", "/login")
csrf = dict(hidden(page))["csrf"]
status, _, _ = request("POST", "/login", {"login": login, "password": password, "csrf": csrf, "next": "/"})
assert status == 303, f"sign-in failed: {status}"
signin_ms = (time.perf_counter() - t0) * 1000

query = urllib.parse.urlencode({
    "response_type": "code", "client_id": client_id, "redirect_uri": "http://localhost:3000/callback",
    "scope": "user_read channel_read", "state": "bench", "force_verify": "true",
})
times = []
for _ in range(n):
    t = time.perf_counter()
    status, _, page = request("GET", f"/oauth2/authorize?{query}")
    assert status == 200, status
    fields = hidden(page, 'action="/oauth2/authorize"') + [("decision", "allow")]
    status, loc, _ = request("POST", "/oauth2/authorize", fields)
    assert status == 303 and "code=" in loc, (status, loc)
    code = urllib.parse.parse_qs(urllib.parse.urlparse(loc).query)["code"][0]
    status, _, body = request("POST", "/oauth2/token", {
        "grant_type": "authorization_code", "code": code, "client_id": client_id,
        "client_secret": secret, "redirect_uri": "http://localhost:3000/callback",
    })
    assert status == 200, body
    times.append((time.perf_counter() - t) * 1000)

times.sort()
pct = lambda p: times[min(len(times) - 1, int(p * len(times)))]
print(f"sign-in (Argon2id): {signin_ms:.1f} ms")
print(f"code flow, {n} runs (consent page + allow + token exchange, 3 requests): "
      f"mean {sum(times)/n:.2f} ms  p50 {pct(0.5):.2f} ms  p99 {pct(0.99):.2f} ms")
