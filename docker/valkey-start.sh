#!/bin/sh
# The valkey image's entrypoint: valkey-server with the agentic module, the model and the in-server
# pipeline (the runtime configuration of scripts/dev.sh), plus redis_exporter's least-privilege
# ACL user "exporter" (rules: ops/prometheus/exporter.acl) when AGENTIC_EXPORTER_PASSWORD is set.
# Arguments are passed on to valkey-server (--appendonly yes, --maxmemory 2gb, ...).
# ops/tests run this script natively, with the paths below pointing into the checkout.
set -eu
# The ACL rules are split into words on purpose; never expand them as file patterns.
set -f

module="${AGENTIC_MODULE:-/usr/local/lib/valkey/libagentic.so}"
model_dir="${AGENTIC_MODEL_DIR:-/opt/agentic/model}"
pipeline="${AGENTIC_PIPELINE:-yes}"

if [ -n "${AGENTIC_EXPORTER_PASSWORD:-}" ]; then
  rules="$(grep -v '^[[:space:]]*#' "${AGENTIC_EXPORTER_ACL:-/etc/valkey/exporter.acl}")"
  set -- --user exporter on ">$AGENTIC_EXPORTER_PASSWORD" $rules "$@"
fi

exec valkey-server --loadmodule "$module" model-dir "$model_dir" pipeline "$pipeline" "$@"
