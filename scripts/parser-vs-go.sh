#!/usr/bin/env bash
# healthscore's exposition parser beside Prometheus' own Go parser (expfmt.TextParser, Debian's
# golang-github-prometheus-common-dev, built offline) on the same 5,000-series Micrometer
# exposition as benches/inputs.rs, A B A B in one run: each prints its best round's nanoseconds
# per series. Target (issue 29): healthscore's is the faster.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d /usr/share/gocode/src/github.com/prometheus/common/expfmt ] || ! command -v go >/dev/null; then
  apt-get install -y -qq golang-go golang-github-prometheus-common-dev >/dev/null
fi
rounds=${ROUNDS:-300}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet --example bench_client
GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE="$work/go-cache" go build -o "$work/expfmt" benches/go/expfmt.go
target/release/examples/bench_client exposition "$work/exposition.txt"
echo "$(wc -l <"$work/exposition.txt") series, best of $rounds rounds each"
ours=() theirs=()
for run in A B A B; do
  ours+=("$(target/release/examples/bench_client parse "$work/exposition.txt" "$rounds" | cut -d' ' -f1)")
  theirs+=("$("$work/expfmt" "$work/exposition.txt" "$rounds" | cut -d' ' -f1)")
  echo "run $run: healthscore ${ours[-1]} ns/series, expfmt ${theirs[-1]} ns/series"
done
python3 -c '
import sys
ours = min(map(int, sys.argv[1].split()))
theirs = min(map(int, sys.argv[2].split()))
print(f"healthscore {ours} ns/series, expfmt.TextParser {theirs} ns/series: {theirs / ours:.2f}x faster (target > 1)")
sys.exit(0 if ours < theirs else 1)
' "${ours[*]}" "${theirs[*]}"
