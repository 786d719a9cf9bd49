#!/usr/bin/env bash
# Primary + replica on loopback: 10,000 users, 300 warm-up fan-outs, then 700 timed fan-outs of
# ~1.1 KB articles sent by valkey-cli. Prints how long the replica took to catch up and the CPU
# each server spent, then compares DEBUG DIGEST. Usage: bench/replica_lag.sh [libagentic.so]
set -euo pipefail
M=$(realpath "${1:-target/release/libagentic.so}")
P1=${P1:-7851}; P2=${P2:-7852}
D1=$(mktemp -d); D2=$(mktemp -d)
cleanup() { valkey-cli -p "$P2" shutdown nosave >/dev/null 2>&1 || true; valkey-cli -p "$P1" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$D1" "$D2"; }
trap cleanup EXIT
valkey-server --port "$P1" --bind 127.0.0.1 --dir "$D1" --save "" --daemonize yes --logfile "$D1/log" --repl-diskless-sync-delay 0 --enable-debug-command yes --loadmodule "$M"
valkey-server --port "$P2" --bind 127.0.0.1 --dir "$D2" --save "" --daemonize yes --logfile "$D2/log" --replicaof 127.0.0.1 "$P1" --enable-debug-command yes --loadmodule "$M"
until valkey-cli -p "$P2" INFO replication | grep -q "master_link_status:up"; do sleep 0.1; done
python3 - <<'PY' | valkey-cli -p "$P1" --pipe >/dev/null
import random, sys
random.seed(1)
T = ['politics','business','technology','sports','health','climate','science','education','entertainment','finance']
out = []
for u in range(10000):
    args = ['AGENT.SUBSCRIBE', 'user:{%d}' % u] + random.sample(T, random.randint(2, 4))
    out.append('*%d\r\n' % len(args) + ''.join('$%d\r\n%s\r\n' % (len(a), a) for a in args))
sys.stdout.write(''.join(out))
PY
P=$(python3 -c "print('x'*1100)"); T=(politics business technology sports health climate science education entertainment finance)
fan() { for i in $(seq "$1" "$2"); do echo "AGENT.FANOUT ${T[$((i%10))]} doc:{$i} $P STREAM topic:${T[$((i%10))]}"; done | valkey-cli -p "$P1" >/dev/null; }
cpu() { valkey-cli -p "$1" INFO cpu | awk -F: '/used_cpu_user:|used_cpu_sys:/ {s+=$2} END {print s}'; }
offset() { valkey-cli -p "$1" INFO replication | awk -F: '/master_repl_offset/ {gsub("\r",""); print $2}'; }
fan 1 300; sleep 2
c1=$(cpu "$P1"); c2=$(cpu "$P2"); start=$(date +%s.%N)
fan 301 1000; sent=$(date +%s.%N)
until [ "$(offset "$P1")" = "$(offset "$P2")" ]; do sleep 0.02; done; caught=$(date +%s.%N)
echo "primary sent in $(echo "$sent - $start" | bc) s; replica caught up $(echo "$caught - $sent" | bc) s later"
echo "server CPU: primary $(echo "$(cpu "$P1") - $c1" | bc) s, replica $(echo "$(cpu "$P2") - $c2" | bc) s"
d1=$(valkey-cli -p "$P1" DEBUG DIGEST); d2=$(valkey-cli -p "$P2" DEBUG DIGEST)
echo "DEBUG DIGEST primary $d1 replica $d2 $([ "$d1" = "$d2" ] && echo equal || echo DIFFERENT)"
