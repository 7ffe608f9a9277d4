#!/usr/bin/env bash
# `make stack`: the distributed mode on this machine, on loopback only (imgserver/stack.py):
# Redis, a private RabbitMQ node, an S3 endpoint, then the Procfile's roles under a supervisor.
# Ctrl-C stops everything. Ports and state: README.md, "Operate".
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" -m imgserver stack "$@"
