#!/usr/bin/env python3
"""Fuzzes every JSON endpoint with schemathesis against a live Gatehouse.

Starts the given gatehouse binary on a fresh SQLite file, creates a user, an app and a
user access token with every scope (through the real sign-in and consent pages), then
runs schemathesis on /openapi.json with that token. Checks: no 5xx, every status and
content type documented, every response body matching its schema.

    python3 scripts/schemathesis.py target/debug/gatehouse [EXAMPLES_PER_OPERATION]

Needs `pip install schemathesis`.
"""
import html
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import urllib.parse

import requests

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/debug/gatehouse")
EXAMPLES = sys.argv[2] if len(sys.argv) > 2 else "150"
REDIRECT = "http://localhost:3000/callback"
SCOPES = "openid user_read user_blocks_edit user_blocks_read user_follows_edit user_subscriptions channel_read channel_editor channel_commercial channel_stream channel_subscriptions channel_check_subscription chat_login"


def run(workdir, *args, stdin=None):
    out = subprocess.run([BIN, *args], cwd=workdir, input=stdin, capture_output=True, text=True, check=True)
    return out.stdout


def hidden_inputs(page):
    return [(html.unescape(n), html.unescape(v)) for n, v in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)"', page)]


def main():
    workdir = tempfile.mkdtemp(prefix="gatehouse-schemathesis-")
    with open(os.path.join(workdir, "gatehouse.toml"), "w") as f:
        f.write("[rate_limits]\napi = 1000000000\ntoken = 1000000000\nlogin = 1000000\nlogin_account = 1000000\n")
    password = "schemathesis-password-1"
    run(workdir, "user", "add", "--login", "alice", "--email", "alice@example.com", "--password-stdin", stdin=password + "\n")
    run(workdir, "user", "add", "--login", "bob", "--email", "bob@example.com", "--password-stdin", stdin=password + "\n")
    creds = json.loads(run(workdir, "client", "create", "--name", "schemathesis", "--owner", "alice", "--redirect-uri", REDIRECT, "--json"))

    server = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0"], cwd=workdir, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "RUST_LOG": "info", "GATEHOUSE_MANAGEMENT_LISTEN": "127.0.0.1:0"})
    base = None
    for line in server.stderr:
        m = re.search(r"local=(\S+)", line)
        if m:
            base = "http://" + m.group(1)
            break
    if base is None:
        sys.exit("the server did not start")
    log = []
    threading.Thread(target=lambda: log.extend(server.stderr), daemon=True).start()
    try:
        browser = requests.Session()
        page = browser.get(base + "/login").text
        fields = dict(hidden_inputs(page))
        signed_in = browser.post(base + "/login", data={"login": "alice", "password": password, "csrf": fields["csrf"], "next": "/"}, allow_redirects=False)
        if signed_in.status_code != 303:
            sys.exit(f"sign-in failed: {signed_in.status_code} {signed_in.headers} {browser.cookies}")
        query = urllib.parse.urlencode({"response_type": "code", "client_id": creds["client_id"], "redirect_uri": REDIRECT, "scope": SCOPES, "state": "s"})
        consent = browser.get(base + "/oauth2/authorize?" + query, allow_redirects=False)
        form = next(f for f in consent.text.split("<form") if 'action="/oauth2/authorize"' in f.split(">")[0])
        answer = browser.post(base + "/oauth2/authorize", data=hidden_inputs(form) + [("decision", "allow")], allow_redirects=False)
        if "location" not in answer.headers:
            text = re.sub(r"<[^>]+>", " ", answer.text)
            sys.exit(f"no code: consent {consent.status_code}, answer {answer.status_code}: {text[-600:]}")
        code = urllib.parse.parse_qs(urllib.parse.urlparse(answer.headers["location"]).query)["code"][0]
        tokens = requests.post(base + "/oauth2/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
                               auth=(creds["client_id"], creds["client_secret"])).json()
        access = tokens["access_token"]

        checks = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance"
        common = ["--checks", checks, "--max-examples", EXAMPLES, "--generation-deterministic", "--no-color"]
        # The OAuth endpoints with the app's credentials (HTTP Basic); everything else
        # with the user's token.
        oauth = subprocess.run(["schemathesis", "run", base + "/openapi.json", *common,
                                "--include-tag", "oauth", "--exclude-path", "/oauth2/validate",
                                "--auth", creds["client_id"] + ":" + creds["client_secret"]])
        rest = subprocess.run(["schemathesis", "run", base + "/openapi.json", *common,
                               "--exclude-path-regex", "^/oauth2/(token|revoke|introspect|device)$",
                               "--header", "Authorization: Bearer " + access])
        server_errors = [l for l in log if "status=5" in l]
        if server_errors:
            print("5xx seen in the server log:\n" + "".join(server_errors[:20]))
            sys.exit(1)
        sys.exit(oauth.returncode or rest.returncode)
    finally:
        server.kill()


if __name__ == "__main__":
    main()
