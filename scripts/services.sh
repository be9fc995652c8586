#!/usr/bin/env bash
# Make sure what the test suite talks to is here, installing with apt-get when
# it is missing (needs root, as on CI):
#   scripts/services.sh sqlite     the redis-server binary (each test run starts a
#                                  Redis server of its own, tests/redis_server.py),
#                                  Debian's chromium for the browser tests, and the
#                                  libraries and font WeasyPrint lays PDF invoices
#                                  out with (pango, DejaVu)
#   scripts/services.sh pdf        only those libraries and the font (`make run`)
#   scripts/services.sh postgres   the same, and PostgreSQL running on 127.0.0.1:5432
#                                  (the default)
set -euo pipefail
mode="${1:-postgres}"
case "$mode" in sqlite|postgres|pdf) ;; *) echo "usage: $0 [sqlite|postgres|pdf]" >&2; exit 2 ;; esac

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "services: $* missing and not root; install with: sudo apt-get install -y $*" >&2; exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >/dev/null 2>&1 || {
    apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >/dev/null; }
}

# WeasyPrint (PDF invoices) loads pango through cffi when it lays a page out: not a Python package.
missing_pdf=$(for p in libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"; done)
# shellcheck disable=SC2086 # one package name a word
[ -z "$missing_pdf" ] || apt_install $missing_pdf
[ "$mode" = pdf ] && exit 0

command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || apt_install redis-server
[ -x /usr/bin/chromium ] || apt_install chromium

if [ "$mode" = postgres ]; then
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    ver=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || pg_ctlcluster "$ver" main start
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  # The tests connect as postgres over loopback without a password; a fresh Debian
  # install asks for one, so trust loopback there (a throwaway test server).
  if ! psql -h 127.0.0.1 -U postgres -tAc 'select 1' >/dev/null 2>&1; then
    hba=$(su postgres -c "psql -tAc 'show hba_file'")
    sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    su postgres -c "psql -tAc 'select pg_reload_conf()'" >/dev/null
  fi
  echo "services: postgresql $(pg_isready -h 127.0.0.1 -p 5432 | sed 's/.* - //')"
fi
redis=$(command -v redis-server || echo /usr/bin/redis-server)
echo "services: $("$redis" --version | cut -d' ' -f1-3), $(/usr/bin/chromium --version 2>/dev/null)"
