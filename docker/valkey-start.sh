#!/bin/sh
# The valkey image's entrypoint: valkey-server with the agentic module, the model and the in-server
# pipeline (the runtime configuration of scripts/dev.sh), plus redis_exporter's least-privilege
# ACL user "exporter" (rules: ops/prometheus/exporter.acl) when AGENTIC_EXPORTER_PASSWORD is set,
# and one user per component (ops/acl/users.acl) for each AGENTIC_<USER>_PASSWORD set.
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

# The other components' least-privilege users (rules: ops/acl/users.acl), each one whose
# AGENTIC_<USER>_PASSWORD is set: AGENTIC_FETCHER_PASSWORD, AGENTIC_GATEWAY_PASSWORD,
# AGENTIC_AGENTS_PASSWORD, AGENTIC_SIDECAR_PASSWORD, AGENTIC_PIPELINE_ADMIN_PASSWORD.
users_acl="${AGENTIC_USERS_ACL:-/etc/valkey/users.acl}"
for name in fetcher gateway agents sidecar pipeline-admin; do
  var="AGENTIC_$(echo "$name" | tr 'a-z-' 'A-Z_')_PASSWORD"
  eval "password=\${$var:-}"
  [ -n "$password" ] || continue
  rules="$(sed -n "s/^user $name on >CHANGE-ME-$name //p" "$users_acl")"
  [ -n "$rules" ] || { echo "valkey-start: no user $name in $users_acl" >&2; exit 1; }
  set -- --user "$name" on ">$password" $rules "$@"
done

exec valkey-server --loadmodule "$module" model-dir "$model_dir" pipeline "$pipeline" "$@"
