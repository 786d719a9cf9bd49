#!/bin/sh
# The valkey container's health check: healthy only when the agentic module is loaded. A Valkey
# without it (a stock image, a command override) answers PING but fails here, so every service
# that waits for a healthy valkey stays down instead of running against a server that refuses
# AGENT.* commands. Optional argument: the port (default 6379).
valkey-cli -p "${1:-6379}" MODULE LIST | grep -qx agentic
