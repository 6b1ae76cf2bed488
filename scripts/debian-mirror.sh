#!/usr/bin/env bash
# Prints "SUITE MIRROR": the host's Debian/Ubuntu suite and the first apt
# mirror that serves it, for debootstrap. On CI machines only the mirror
# the host's apt uses is reachable, so builds must use that one.
set -euo pipefail

# shellcheck source=/dev/null
. /etc/os-release
suite=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}
# The first entry that serves the plain suite (not -updates/-security).
mirror=$(
  {
    # deb822 .sources: one stanza per paragraph (and per file).
    awk -v s="$suite" '
      function flush() { if (deb && ok && uri) print uri; deb = ok = 0; uri = "" }
      FNR == 1 || /^[ \t]*$/ { flush() }
      tolower($1) == "types:" && / deb( |$)/ { deb = 1 }
      tolower($1) == "uris:" { uri = $2 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == s) ok = 1 }
      END { flush() }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true
    # One-line format: deb [options] URI SUITE COMPONENTS...
    awk -v s="$suite" '{ sub(/\[[^]]*\]/, ""); if ($1 == "deb" && $3 == s) print $2 }' \
      /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true
  } | head -n 1
)
[ -n "$mirror" ] || { echo "$0: no apt source for suite $suite found" >&2; exit 1; }
echo "$suite $mirror"
