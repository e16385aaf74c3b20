#!/usr/bin/env bash
# README.md's two set-up commands, run as a new user runs them: on a machine where nothing the
# CI scripts install is visible (.ci/bare.sh), so a green CI cannot hide a step README leaves
# out (#31 item 8).
#
#   .ci/readme.sh test    README's test command (the wgpu, promtool and jq tests skip and say why)
#   .ci/readme.sh serve   README's server command: it builds, serves the bundled default on
#                         :8080, predicts the bundled digit zero, and exits 0 on SIGTERM
#   .ci/readme.sh test|serve --print   only print the command read out of README.md
#
# Each command is read out of README.md, not restated here. Where bare.sh cannot run (not root,
# as on a GitHub-hosted runner), the command runs as it is and this says so.
set -euo pipefail
mode=${1:-}
case "$mode" in test | serve) ;; *) echo "usage: $0 test|serve" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
# shellcheck source-path=SCRIPTDIR
source .ci/lib.sh

# README's set-up block: the line that starts `cargo test` or `cargo run`, its comment dropped.
readme_command() {
  awk -v want="$1" '/^```/ { block = !block; next }
    block && $1 == "cargo" && $2 == want { sub(/[ \t]+#.*/, ""); print; exit }' README.md
}
word=$([ "$mode" = test ] && echo test || echo run)
command=$(readme_command "$word")
[ -n "$command" ] || { echo "README.md has no \`cargo $word\` set-up command" >&2; exit 1; }
read -r -a argv <<<"$command"
if [ "${2:-}" = --print ]; then
  echo "$command"
  exit 0
fi

if can_run_bare; then
  run=(bash .ci/bare.sh "${argv[@]}")
  echo "README.md's command, where nothing CI installed is visible: $command"
else
  run=("${argv[@]}")
  echo "README.md's command (not root: what CI installed stays visible): $command"
fi

if [ "$mode" = test ]; then
  exec "${run[@]}"
fi

# serve: a cold release build comes first, so readiness is waited for as long as CI allows.
"${run[@]}" &
launcher=$!
# Whatever fails, nothing started here outlives this script.
trap 'pkill -TERM -P "$launcher" 2>/dev/null || true; kill -TERM "$launcher" 2>/dev/null || true; wait || true' EXIT
wait_ready http://127.0.0.1:8080 "${SERVE_BUILD_TIMEOUT_S:-2400}" kill -0 "$launcher"
predict_zero http://127.0.0.1:8080
# cargo run execs the server, so it is the launcher's child (bare.sh's) or the launcher itself.
server=$(pgrep -P "$launcher" || echo "$launcher")
kill -TERM "$server"
if wait "$launcher"; then
  echo "the server stopped on SIGTERM with exit status 0"
else
  rc=$?
  echo "the server exited $rc on SIGTERM" >&2
  exit 1
fi
