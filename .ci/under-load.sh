#!/usr/bin/env bash
# The suite under load, as issue 13 asks of it: a clean clone of this repository's HEAD (with
# ../shared beside it), two CPU hogs beside it, the test order shuffled. Run from the
# repository root; stops the hogs however it ends.
#
#     .ci/under-load.sh            # make test (the whole suite, servers required)
#     .ci/under-load.sh ci         # .ci/run's steps: the lowest-versions lanes, then make test
#     DIR=/tmp/load2 .ci/under-load.sh
#     HOGS=0 .ci/under-load.sh     # no hogs of its own (runs started together beside shared hogs)
#
# The lowest lanes' venvs have no shuffling plugin: there, only the main suite is shuffled.
set -u
mode=${1:-test}
repo=$(git rev-parse --show-toplevel)
shared=$(cd "$repo/../shared" && pwd)
dir=${DIR:-$(mktemp -d /tmp/batchscore-load.XXXXXX)}
rm -rf "$dir" && mkdir -p "$dir" && git clone -q "$repo" "$dir/main" && ln -s "$shared" "$dir/shared"
cd "$dir/main" || exit 2
echo "under-load: $(git rev-parse --short HEAD) in $dir, mode $mode, start $(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg)"
hogs=()
for _ in $(seq 1 "${HOGS:-2}"); do python3 -c "while 1: pass" & hogs+=($!); done
trap 'kill "${hogs[@]}" 2>/dev/null' EXIT
start=$(date +%s)
shuffle="-p random_order --random-order"
if [ "$mode" = ci ]; then
  export CI=true
  bash .ci/install-system-deps.sh && make install-dev && bash .ci/lowest.sh &&
    BATCHSCORE_REQUIRE_SERVICES=1 PYTEST_ADDOPTS="$shuffle" make test
  rc=$?
else
  make install-dev >/dev/null && BATCHSCORE_REQUIRE_SERVICES=1 PYTEST_ADDOPTS="$shuffle" make test
  rc=$?
fi
echo "under-load: rc $rc, end $(date -u +%T), $(( $(date +%s) - start )) s, load $(cut -d' ' -f1-3 /proc/loadavg)"
exit $rc
