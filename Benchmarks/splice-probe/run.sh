#!/usr/bin/env bash
# Measures poll-splice (io_uring readiness + splice(2)) against ring-splice
# (IORING_OP_SPLICE hard-linked pair) with the splice-probe proxy.
# Alternates methods A B A B, ROUNDS rounds each; every load lasts SECS seconds.
# usage: run.sh   (env: ROUNDS=3 SECS=3 CONNS=32 PIPE_SIZE=1048576 BASE_PORT=25200)
set -euo pipefail
cd "$(dirname "$0")"

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-3}
CONNS=${CONNS:-32}
PIPE_SIZE=${PIPE_SIZE:-1048576}
BASE_PORT=${BASE_PORT:-25200}
IPERF_PORT=$((BASE_PORT + 1))
ECHO_PORT=$((BASE_PORT + 2))
PROXY_PORT=$((BASE_PORT + 3))
METHODS=(poll-splice ring-splice)

gcc -O2 -Wall -o probe probe.c /usr/lib/x86_64-linux-gnu/liburing.a
command -v iperf3 >/dev/null || apt-get install -y iperf3 >/dev/null

PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # port
	for _ in $(seq 50); do
		# look, don't connect: a stray connection would reach the iperf3 server
		[ -n "$(ss -Hltn "sport = :$1")" ] && return 0
		sleep 0.1
	done
	echo "port $1 never opened" >&2
	return 1
}
cpu_s() { # pid -> utime+stime of the whole process (io-wq threads included), seconds
	python3 -c 'import os,sys; f=open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")",1)[1].split(); print((int(f[11])+int(f[12]))/os.sysconf("SC_CLK_TCK"))' "$1"
}
PROBE_PID=
start_probe() { # method backend_port
	./probe --method "$1" --pipe-size "$PIPE_SIZE" "$PROXY_PORT" "$2" 2>>probe.log &
	PROBE_PID=$!
	PIDS+=("$PROBE_PID")
	wait_port "$PROXY_PORT"
}
stop_probe() {
	kill "$PROBE_PID"
	wait "$PROBE_PID" || true
}

: >probe.log
iperf3 -s -p "$IPERF_PORT" >/dev/null 2>&1 &
PIDS+=($!)
python3 echo.py "$ECHO_PORT" &
PIDS+=($!)
wait_port "$IPERF_PORT"
wait_port "$ECHO_PORT"

RAW=results.tsv
printf 'round\tmethod\tgbit_s\tcpu_s_per_gb\texch_s\tcpu_us_per_exch\n' >"$RAW"
for round in $(seq "$ROUNDS"); do
	for m in "${METHODS[@]}"; do
		# (1) one bulk iperf3 stream
		start_probe "$m" "$IPERF_PORT"
		c0=$(cpu_s "$PROBE_PID")
		timeout $((SECS + 5)) iperf3 -c 127.0.0.1 -p "$PROXY_PORT" -t "$SECS" -J >iperf.json
		c1=$(cpu_s "$PROBE_PID")
		stop_probe
		read -r gbit bytes < <(python3 -c 'import json; e=json.load(open("iperf.json"))["end"]["sum_received"]; print(e["bits_per_second"]/1e9, e["bytes"])')
		cpu_gb=$(python3 -c "print(($c1-$c0)/($bytes/1e9))")

		# (2) 64-byte ping-pong against the echo backend
		start_probe "$m" "$ECHO_PORT"
		read -r exch secs pcpu < <(timeout $((SECS + 5)) python3 pingpong.py "$PROXY_PORT" "$CONNS" "$SECS" "$PROBE_PID")
		stop_probe
		read -r eps us < <(python3 -c "print($exch/$secs, $pcpu*1e6/$exch)")

		printf '%s\t%s\t%.2f\t%.3f\t%.0f\t%.1f\n' "$round" "$m" "$gbit" "$cpu_gb" "$eps" "$us" | tee -a "$RAW"
	done
done

python3 - "$RAW" "$CONNS" "$PIPE_SIZE" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
cols = [("gbit_s", "iperf3 Gbit/s"), ("cpu_s_per_gb", "iperf3 proxy CPU-s per GB"),
        ("exch_s", f"ping-pong exchanges/s ({sys.argv[2]} conns, 64 B)"),
        ("cpu_us_per_exch", "ping-pong proxy CPU µs per exchange")]
print(f"\nMedians of {len(rows)//2} rounds per method, pipe {int(sys.argv[3])//1024} KiB:\n")
print("| method | " + " | ".join(c[1] for c in cols) + " |")
print("|---|" + "---:|" * len(cols))
for m in ("poll-splice", "ring-splice"):
    r = [x for x in rows if x["method"] == m]
    print(f"| {m} | " + " | ".join(f"{statistics.median(float(x[k]) for x in r):g}" for k, _ in cols) + " |")
PY
echo
echo "probe counters (per run):"
cat probe.log | grep conns
