#!/usr/bin/env bash
# scripts/browser.sh installs the headless Chromium that the dashboard's
# browser tests (tests/browser/) drive with chromedp:
#
#	bash scripts/browser.sh            # installs Debian's chromium if missing
#	go test ./tests/browser/
#
# It installs Debian's `chromium` package (and the fonts it renders with)
# with apt-get when /usr/bin/chromium is missing (root or password-less sudo
# needed for that step only), non-interactively, so it works in CI
# (CI=true). When Chromium is already there it only checks that it starts,
# which takes well under a second. Nothing else is downloaded: chromedp talks
# to this Chromium over the DevTools protocol, and the tests launch it with a
# fresh profile, headless, without background networking.
#
# Set CONVEYOR_CHROMIUM to use another binary; the tests read the same
# variable. Progress and errors go to stderr; the binary's path is printed on
# stdout; any failure exits non-zero.
set -euo pipefail

bin=${CONVEYOR_CHROMIUM:-/usr/bin/chromium}

log() { echo "browser.sh: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# as_root runs a command as root, through sudo when needed.
as_root() {
	if [[ $EUID -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo -n "$@"
	else
		die "installing Chromium needs root: run 'apt-get install -y chromium' as root, then run this again"
	fi
}

# install installs Debian's chromium package unless the binary is there.
install() {
	[[ -x $bin ]] && return
	[[ -n ${CONVEYOR_CHROMIUM:-} ]] && die "CONVEYOR_CHROMIUM=$bin is not an executable"
	command -v apt-get >/dev/null || die "Chromium is not installed and apt-get is missing: install it by hand or set CONVEYOR_CHROMIUM"
	log "installing Chromium from Debian's packages..."
	export DEBIAN_FRONTEND=noninteractive
	# The package lists may be missing (fresh machine) or stale (a mirror
	# moved on): update once, then install; retry after a second update when
	# the first install fails on a vanished package version.
	if ! as_root apt-get -o Dpkg::Use-Pty=0 -qq install -y --no-install-recommends chromium fonts-liberation >/dev/null 2>&1; then
		as_root apt-get -o Dpkg::Use-Pty=0 -qq update >&2
		as_root apt-get -o Dpkg::Use-Pty=0 -qq install -y --no-install-recommends chromium fonts-liberation >&2
	fi
	[[ -x $bin ]] || die "apt-get installed chromium but $bin is missing"
}

# check runs the browser once to catch a broken install (a missing shared
# library) here rather than as a test timeout. Debian's launcher script may
# print shell noise before the version; only the last line is shown.
check() {
	local out
	if ! out=$("$bin" --version 2>&1); then
		die "$bin does not start: $out"
	fi
	log "${out##*$'\n'}"
}

install
check
echo "$bin"
