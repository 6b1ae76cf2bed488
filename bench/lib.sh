# shellcheck shell=bash
# Shared by the bench/*.sh scripts (sourced, not run): the Debian packages a
# benchmark needs, and the unprivileged user it runs Vessel as.

user=${VESSEL_TEST_USER:-vtest}

# Installs the Debian packages named that are missing.
need_packages() {
  local need=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${need[@]}" >/dev/null
  fi
}

ensure_user() {
  id "$user" >/dev/null 2>&1 || useradd -m -s /bin/bash "$user"
}

# as_user_in HOME TMPDIR [VAR=VALUE…] COMMAND…: COMMAND as the user, with a
# clean environment.
as_user_in() {
  local home=$1 tmp=$2
  shift 2
  setpriv --reuid="$user" --regid="$user" --init-groups \
    env -i HOME="$home" USER="$user" PATH=/usr/sbin:/usr/bin:/sbin:/bin TMPDIR="$tmp" "$@"
}
