#!/usr/bin/env bash
# Run a command as on a fresh machine with only Rust on it (#31 item 8): what the CI scripts
# install is hidden in a private mount namespace, so a check that passes only because CI
# installed something (Mesa's Vulkan driver, the Vulkan loader, promtool, jq, kubectl, docker)
# fails or skips here as it would for a new user. The machine itself is untouched.
#
#   .ci/bare.sh cargo test --workspace --locked --all-features
#
# Hidden: every file of the Debian packages in $ci_apt_packages (.ci/lib.sh), through an
# overlay on /usr whose upper layer holds a whiteout for each, with a dynamic linker cache
# rebuilt without them; everything on PATH but rustup's and the system's own directories (pip's
# tools, pyenv, /usr/local/bin); DOCKER_HOST and the like, and any EMBER_ variable. Kept: the rest of the system, as a
# fresh machine of this image has it (Mesa's OpenGL drivers among it, the GL-only adapter case).
# Needs root and unshare(1); elsewhere it says so and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source-path=SCRIPTDIR
source .ci/lib.sh

if [ "${1:-}" != --inside ]; then
  if ! can_run_bare; then
    echo "bare.sh: needs root and unshare(1) to hide what CI installed" >&2
    exit 2
  fi
  [ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }
  exec unshare --mount --propagation private bash "$0" --inside "$@"
fi
shift

scratch=$(mktemp -d /var/tmp/ember-bare.XXXXXX)
cleanup() {
  umount /etc/ld.so.cache /usr 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT
mkdir -p "$scratch/upper" "$scratch/work"
hidden=0
for pkg in "${ci_apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || continue
  while IFS= read -r path; do
    # Files and links only (directories are shared with other packages); /usr only, where the
    # overlay is. Debian 12 keeps everything a package installs under /usr but /etc.
    case "$path" in /usr/*) ;; *) continue ;; esac
    if [ -L "$path" ] || [ -f "$path" ]; then
      mkdir -p "$scratch/upper$(dirname "${path#/usr}")"
      mknod "$scratch/upper${path#/usr}" c 0 0 # an overlay whiteout: the file is gone
      hidden=$((hidden + 1))
    fi
  done < <(dpkg -L "$pkg")
done
mount -t overlay overlay -o "lowerdir=/usr,upperdir=$scratch/upper,workdir=$scratch/work" /usr
# The linker cache still names the hidden libraries (libvulkan.so.1): rebuild it without them.
ldconfig -C "$scratch/ld.so.cache"
mount --bind "$scratch/ld.so.cache" /etc/ld.so.cache
echo "bare.sh: $hidden files of ${#ci_apt_packages[@]} CI packages hidden; PATH is rustup's and the system's" >&2

cargo_bin=$(dirname "$(command -v cargo)")
# A new user has set none of the server's own variables either.
unset_vars=(DOCKER_HOST DOCKER_CONFIG BUILDX_CONFIG VK_DRIVER_FILES VK_ICD_FILENAMES)
mapfile -t -O ${#unset_vars[@]} unset_vars < <(compgen -e | grep '^EMBER_' || true)
env "${unset_vars[@]/#/--unset=}" PATH="$cargo_bin:/usr/sbin:/usr/bin:/sbin:/bin" "$@"
