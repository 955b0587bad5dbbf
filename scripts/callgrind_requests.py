#!/usr/bin/env python3
"""Instructions per request of a gatehouse server under callgrind, for changes on the hot
paths when a timed benchmark cannot be trusted (a shared machine).

    scripts/callgrind_requests.py target/debug/gatehouse after 127.0.0.1:0
    N=2000 scripts/callgrind_requests.py /tmp/old-gatehouse before 127.0.0.1:0

Makes a user and a client in a fresh directory, starts the server under valgrind
(all its threads counted), warms up with 200 requests of each kind, then dumps the
counts before and after N client-credentials token requests and N validations over one
keep-alive connection; prints each phase divided by N. MANAGEMENT_LISTEN is passed as
GATEHOUSE_MANAGEMENT_LISTEN (`off` records no metrics)."""
import http.client, json, os, subprocess, sys, tempfile, time, re, glob, urllib.parse

binary, label, mgmt = sys.argv[1], sys.argv[2], sys.argv[3]
N = int(os.environ.get("N", "1000"))
work = tempfile.mkdtemp(prefix="ops-measure-")
env = {**os.environ, "RUST_LOG": "warn", "GATEHOUSE_MANAGEMENT_LISTEN": mgmt}
with open(os.path.join(work, "gatehouse.toml"), "w") as f:
    f.write("[rate_limits]\napi = 1000000000\ntoken = 1000000000\n")
def cli(*a, stdin=None):
    return subprocess.run([binary, *a], cwd=work, env=env, input=stdin, capture_output=True, text=True, check=True).stdout
cli("user", "add", "--login", "bench", "--email", "b@example.com", "--password-stdin", stdin="correct-horse-battery\n")
app = json.loads(cli("client", "create", "--name", "bench", "--owner", "bench", "--redirect-uri", "http://localhost/cb", "--json"))
out = os.path.join(work, "cg.out")
port = 18500 + (os.getpid() % 400)
proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary, "serve", "--listen", f"127.0.0.1:{port}"],
                        cwd=work, env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
conn = None
for _ in range(600):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60); conn.request("GET", "/healthz"); conn.getresponse().read(); break
    except Exception:
        conn = None; time.sleep(0.5)
assert conn, "no server"
body = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": app["client_id"], "client_secret": app["client_secret"]})
hdr = {"Content-Type": "application/x-www-form-urlencoded"}
def token():
    conn.request("POST", "/oauth2/token", body, hdr); r = conn.getresponse(); d = r.read(); assert r.status == 200, d; return json.loads(d)["access_token"]
tok = None
for _ in range(200):  # warm-up: caches, handles, allocator
    tok = token()
def validate():
    conn.request("GET", "/oauth2/validate", headers={"Authorization": "OAuth " + tok}); r = conn.getresponse(); r.read(); assert r.status == 200
for _ in range(200):
    validate()
def dump():
    subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True); time.sleep(1)
dump()
for _ in range(N): token()
dump()
for _ in range(N): validate()
dump()
proc.terminate(); proc.wait()
files = sorted(glob.glob(out + "*"), key=lambda p: int(p.rsplit(".", 1)[1]) if re.search(r"\.\d+$", p) else 10**9)
totals = []
for p in files:
    with open(p) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                totals.append((p, int(line.split()[1]))); break
# Each dump holds what ran since the one before it.
parts = [t for _, t in totals]
print(label, "dumps", parts)
print(f"{label}: token {parts[1] / N:.0f} instructions/request, validate {parts[2] / N:.0f} instructions/request (N={N})")
