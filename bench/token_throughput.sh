#!/usr/bin/env bash
# Prints requests/s for the token endpoint (client credentials: each request authenticates
# the client and durably stores a new token) and for /oauth2/validate, measured with wrk
# over loopback against the release binary. Usage:
#   bench/token_throughput.sh [SECONDS] [CONNECTIONS]
# Env: GATEHOUSE_DATABASE_URL to bench PostgreSQL instead of a fresh SQLite file.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
CONNS="${2:-64}"
command -v wrk >/dev/null || { echo "needs wrk: apt-get install wrk" >&2; exit 2; }

cargo build --release -q
BIN="$PWD/target/release/gatehouse"
WORK="$(mktemp -d)"
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
cd "$WORK"
export GATEHOUSE_DATABASE_URL="${GATEHOUSE_DATABASE_URL:-sqlite://$WORK/bench.db}"
PORT=$((20000 + RANDOM % 20000))

# The default token budget (3000 a minute per client) would stop one client long before
# the server does: lift it so the figure is the server's, rate limiter included.
cat > gatehouse.toml <<TOML
[rate_limits]
token = 1000000000
api = 1000000000
TOML

echo 'bench-password-1' | "$BIN" user add --login bench --email bench@example.com --password-stdin >/dev/null
CREDS=$("$BIN" client create --name "bench-$RANDOM" --owner bench --redirect-uri http://localhost:3000/cb --json)
ID=$(echo "$CREDS" | sed 's/.*"client_id":"\([^"]*\)".*/\1/')
SECRET=$(echo "$CREDS" | sed 's/.*"client_secret":"\([^"]*\)".*/\1/')

RUST_LOG=warn "$BIN" serve --listen "127.0.0.1:$PORT" &
SERVER=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

cat > token.lua <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&client_id=$ID&client_secret=$SECRET"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
LUA
TOKEN=$(curl -s -X POST "http://127.0.0.1:$PORT/oauth2/token" -d "grant_type=client_credentials&client_id=$ID&client_secret=$SECRET" | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
cat > validate.lua <<LUA
wrk.headers["Authorization"] = "OAuth $TOKEN"
LUA

echo "database: ${GATEHOUSE_DATABASE_URL%%:*}, ${DURATION}s, $CONNS connections, $(nproc) cores (wrk shares them)"
for case in token validate; do
    path=/oauth2/token; [ $case = validate ] && path=/oauth2/validate
    out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s $case.lua "http://127.0.0.1:$PORT$path")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    echo "$case: ${rps} req/s  p50 ${p50}  p99 ${p99}  non-2xx ${non2xx:-0}"
done
if [[ "$GATEHOUSE_DATABASE_URL" == sqlite* ]]; then
    echo "tokens stored: $(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from access_tokens').fetchone()[0])" "$WORK/bench.db")"
fi
