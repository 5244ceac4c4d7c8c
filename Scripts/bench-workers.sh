#!/bin/sh
# How `mimic run --pcap --workers N` scales: the XDP firewall example over a generated capture of
# many flows (Scripts/gen-flows.py; nothing big is committed), one worker and N workers taken in
# turn, round after round, release build. Prints each round's packets/s and the ratio of N workers
# to one within the round, then the median of those ratios and the ratio of the best rates: on a
# shared host whose load changes by the minute, only figures taken in the same minutes compare,
# and a busy minute slows either side of a round (Docs/Performance.md, issue 17).
# Usage: Scripts/bench-workers.sh [ROUNDS] [PACKETS]   (defaults 10 and 1,000,000)
# WORKERS=N (default 2), FLOWS=F (default 4,096), SCRATCH=DIR (the build directory),
# REALTIME=1 runs each timing at real-time priority (`chrt -f 50`, root only).
set -eu
cd "$(dirname "$0")/.."
rounds="${1:-10}"
packets="${2:-1000000}"
workers="${WORKERS:-2}"
scratch="${SCRATCH:-.build}"
case "$rounds,$workers" in
    *[!0-9,]* | ,* | *, | 0,* | *,0)
        echo "usage: Scripts/bench-workers.sh [ROUNDS] [PACKETS]; ROUNDS and WORKERS are whole numbers from 1" >&2
        exit 2
        ;;
esac
swift build -c release --scratch-path "$scratch" --product mimic >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 Scripts/gen-flows.py "$work/flows.pcap" "$packets" "${FLOWS:-4096}"
priority=""
[ -n "${REALTIME:-}" ] && priority="chrt -f 50"

# Packets/s of one run with $1 workers, from its `time:` line.
rate() {
    $priority "$scratch/release/mimic" run Examples/xdp_firewall.o --pcap "$work/flows.pcap" \
        --map blocklist=Examples/blocklist.json --workers "$1" |
        sed -n 's/^time: .*(\([0-9]*\) packets\/s.*/\1/p'
}

round=1
while [ "$round" -le "$rounds" ]; do
    one="$(rate 1)"
    many="$(rate "$workers")"
    if [ -z "$one" ] || [ -z "$many" ]; then
        echo "round $round: no time: line from mimic run" >&2
        exit 1
    fi
    ratio="$(awk -v one="$one" -v many="$many" 'BEGIN { printf "%.3f", many / one }')"
    awk -v r="$round" -v one="$one" -v many="$many" -v w="$workers" -v ratio="$ratio" \
        'BEGIN { printf "round %2d: 1 worker %6.2f M/s, %d workers %6.2f M/s, %.2fx\n", r, one / 1e6, w, many / 1e6, ratio }'
    echo "$ratio" >>"$work/ratios"
    echo "$one $many" >>"$work/rates"
    round=$((round + 1))
done
sort -n "$work/ratios" | awk '
    { ratio[NR] = $1 }
    END {
        median = NR % 2 ? ratio[(NR + 1) / 2] : (ratio[NR / 2] + ratio[NR / 2 + 1]) / 2
        printf "median of the rounds'"'"' ratios: %.2fx\n", median
    }'
# The best rate of each over all rounds: what each reaches in the quietest minutes.
awk -v w="$workers" '
    { if ($1 > one) one = $1; if ($2 > many) many = $2 }
    END { printf "best %d workers / best 1 worker: %.2f / %.2f M/s = %.2fx\n", w, many / 1e6, one / 1e6, many / one }
' "$work/rates"
