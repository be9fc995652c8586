#!/usr/bin/env bash
# Make sure PostgreSQL, Redis and Debian's chromium are here and running, for the
# test suite. Installs with apt-get when missing (needs root, as on CI).
set -euo pipefail

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "services: $* missing and not root; install with: sudo apt-get install -y $*" >&2; exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >/dev/null 2>&1 || {
    apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >/dev/null; }
}

command -v pg_ctlcluster >/dev/null || apt_install postgresql
command -v redis-server >/dev/null || apt_install redis-server
[ -x /usr/bin/chromium ] || apt_install chromium

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

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/portal.log
  for _ in $(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
echo "services: postgresql $(pg_isready -h 127.0.0.1 -p 5432 | sed 's/.* - //'), redis $(redis-cli -h 127.0.0.1 ping), $(/usr/bin/chromium --version)"
