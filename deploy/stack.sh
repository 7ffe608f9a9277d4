#!/usr/bin/env bash
# `make stack`: the distributed mode on one machine, on loopback.
# Starts a real redis-server, a private RabbitMQ node and an S3 endpoint (moto's server mode),
# then the Procfile processes (web, urgent, background) with honcho. Ctrl-C stops everything.
# Ports: web $STACK_WEB_PORT (8080), Redis 6390, RabbitMQ 5690, S3 9090 (override below).
set -euo pipefail
cd "$(dirname "$0")/.."
WEB_PORT=${STACK_WEB_PORT:-8080}
REDIS_PORT=${STACK_REDIS_PORT:-6390}
AMQP_PORT=${STACK_AMQP_PORT:-5690}
S3_PORT=${STACK_S3_PORT:-9090}
BUCKET=${STACK_BUCKET:-imgserver}
STATE=$PWD/.stack
BIN=$PWD/.venv/bin
RABBIT=/usr/lib/rabbitmq/bin
mkdir -p "$STATE"

export HOME_FOR_RABBIT=$STATE/rabbit
mkdir -p "$HOME_FOR_RABBIT"
echo "[]." > "$STATE/rabbit/plugins"
rabbit_env() {
    env HOME="$HOME_FOR_RABBIT" RABBITMQ_NODENAME="imgserver-stack@localhost" \
        RABBITMQ_NODE_PORT="$AMQP_PORT" RABBITMQ_DIST_PORT=$((AMQP_PORT + 20000)) \
        RABBITMQ_MNESIA_BASE="$STATE/rabbit/mnesia" RABBITMQ_LOG_BASE="$STATE/rabbit/log" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$STATE/rabbit/plugins" "$@"
}

pids=()
cleanup() {
    echo "stack: stopping" >&2
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rabbit_env "$RABBIT/rabbitmqctl" -n imgserver-stack@localhost stop >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --loglevel warning --daemonize no > "$STATE/redis.log" 2>&1 &
pids+=($!)
"$BIN/moto_server" -H 127.0.0.1 -p "$S3_PORT" > "$STATE/s3.log" 2>&1 &
pids+=($!)
rabbit_env "$RABBIT/rabbitmq-server" -detached
rabbit_env "$RABBIT/rabbitmqctl" -n imgserver-stack@localhost -q await_startup --timeout 60

export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-stack} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-stack}
export AWS_DEFAULT_REGION=us-east-1
for _ in $(seq 1 100); do
    "$BIN/python" - "$S3_PORT" "$BUCKET" <<'PY' && break || sleep 0.1
import sys, boto3
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1")
try:
    s3.head_bucket(Bucket=sys.argv[2])
except Exception:
    s3.create_bucket(Bucket=sys.argv[2])
PY
done

export IMGSERVER_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export IMGSERVER_AMQP_URL="amqp://guest:guest@127.0.0.1:$AMQP_PORT/"
export IMGSERVER_S3_BUCKET="$BUCKET"
export IMGSERVER_S3_ENDPOINT_URL="http://127.0.0.1:$S3_PORT"
export IMGSERVER_S3_PUBLIC_URL="http://127.0.0.1:$S3_PORT/$BUCKET"
export IMGSERVER_S3_ACL=public-read
echo "stack: redis :$REDIS_PORT, rabbitmq :$AMQP_PORT, s3 :$S3_PORT (bucket $BUCKET)," \
     "web http://127.0.0.1:$WEB_PORT" >&2
"$BIN/honcho" start -f Procfile -p "$WEB_PORT" "$@" &
pids=("$!" "${pids[@]}")  # honcho first: it stops web and workers before the services go
wait "${pids[0]}"
