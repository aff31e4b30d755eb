#!/usr/bin/env bash
# Validates the deployment files with their tools' own checks, where the tools are here:
#   - deploy/docker-compose.yml   `docker compose config` (or docker-compose v1): no daemon needed
#   - deploy/systemd/*.service    `systemd-analyze verify` (+ the offline security score)
#   - deploy/nginx/sportello.conf `nginx -t` inside a throwaway prefix with a self-signed cert
#   - deploy/compose/dovecot      `doveconf -n`
#   - deploy/Dockerfile           its stages and instructions (no daemon: nothing is built)
# A tool that is missing is reported and skipped, unless --strict (then it fails); --install
# installs the missing ones from Debian's packages first (docker-compose, nginx, systemd,
# dovecot-core, openssl). Exits non-zero when a present tool rejects a file.
set -euo pipefail
cd "$(dirname "$0")/../.."

strict=0 install=0
for a in "$@"; do
  case "$a" in
    --strict) strict=1 ;;
    --install) install=1 ;;
    *) echo "usage: $0 [--strict] [--install]" >&2; exit 2 ;;
  esac
done

have() { command -v "$1" >/dev/null 2>&1; }
failed=0 skipped=0 passed=0
pass() { echo "ok      $1"; passed=$((passed + 1)); }
fail() { echo "FAILED  $1" >&2; failed=$((failed + 1)); }
skip() {
  echo "skipped $1" >&2
  skipped=$((skipped + 1))
  if [ "$strict" = 1 ]; then failed=$((failed + 1)); fi
}

if [ "$install" = 1 ]; then
  pkgs=()
  have docker-compose || (have docker && docker compose version >/dev/null 2>&1) || pkgs+=(docker-compose)
  have nginx || pkgs+=(nginx)
  have systemd-analyze || pkgs+=(systemd)
  have doveconf || pkgs+=(dovecot-core)
  have openssl || pkgs+=(openssl)
  if [ "${#pkgs[@]}" -gt 0 ]; then
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo_cmd apt-get update -qq >&2
    # policy-rc.d: install the packages without starting their daemons (one already there is
    # left as it is).
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      $sudo_cmd sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
      made_policy=1
    fi
    $sudo_cmd apt-get install -y -qq "${pkgs[@]}" >&2 || true
    if [ "$made_policy" = 1 ]; then $sudo_cmd rm -f /usr/sbin/policy-rc.d; fi
  fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- docker compose ------------------------------------------------------------------------
compose=""
if have docker && docker compose version >/dev/null 2>&1; then
  compose="docker compose"
elif have docker-compose; then
  compose="docker-compose"
fi
if [ -n "$compose" ]; then
  if (cd deploy && $compose -f docker-compose.yml config -q) >"$work/compose.log" 2>&1; then
    pass "docker-compose.yml ($compose config)"
  else
    cat "$work/compose.log" >&2
    fail "docker-compose.yml ($compose config)"
  fi
else
  skip "docker-compose.yml: neither 'docker compose' nor docker-compose is installed"
fi

# --- systemd -------------------------------------------------------------------------------
if have systemd-analyze; then
  for unit in deploy/systemd/*.service; do
    # verify checks that ExecStart's binary exists: point it at a stand-in.
    printf '#!/bin/sh\nexit 0\n' >"$work/sportello"
    chmod +x "$work/sportello"
    name=$(basename "$unit")
    sed "s#/usr/local/bin/sportello#$work/sportello#g" "$unit" >"$work/$name"
    if systemd-analyze verify --man=no "$work/$name" >"$work/systemd.log" 2>&1; then
      score=$(systemd-analyze security --offline=yes "$work/$name" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
      pass "$unit (systemd-analyze verify; exposure ${score:-?})"
    else
      cat "$work/systemd.log" >&2
      fail "$unit (systemd-analyze verify)"
    fi
  done
else
  skip "deploy/systemd: systemd-analyze is not installed"
fi

# --- nginx ---------------------------------------------------------------------------------
if have nginx && have openssl; then
  mkdir -p "$work/nginx/ssl" "$work/nginx/logs"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
    -keyout "$work/nginx/ssl/privkey.pem" -out "$work/nginx/ssl/fullchain.pem" >/dev/null 2>&1
  sed "s#/etc/ssl/sportello#$work/nginx/ssl#g" deploy/nginx/sportello.conf >"$work/nginx/sportello.conf"
  cat >"$work/nginx/nginx.conf" <<CONF
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log;
events {}
http {
  access_log off;
  include $work/nginx/sportello.conf;
}
CONF
  if nginx -t -q -c "$work/nginx/nginx.conf" -p "$work/nginx" >"$work/nginx.log" 2>&1; then
    pass "deploy/nginx/sportello.conf (nginx -t)"
  else
    cat "$work/nginx.log" >&2
    fail "deploy/nginx/sportello.conf (nginx -t)"
  fi
else
  skip "deploy/nginx: nginx or openssl is not installed"
fi

# --- dovecot (the compose stack's IMAP server) ---------------------------------------------
if have doveconf; then
  sed "s#/etc/dovecot/users#$work/users#" deploy/compose/dovecot/dovecot.conf >"$work/dovecot.conf"
  if doveconf -n -c "$work/dovecot.conf" >"$work/dovecot.log" 2>&1; then
    pass "deploy/compose/dovecot/dovecot.conf (doveconf -n)"
  else
    cat "$work/dovecot.log" >&2
    fail "deploy/compose/dovecot/dovecot.conf (doveconf -n)"
  fi
else
  skip "deploy/compose/dovecot: doveconf is not installed"
fi

# --- Dockerfile (static: building needs a daemon) ------------------------------------------
df=deploy/Dockerfile
problems=""
[ "$(grep -c '^FROM ' "$df")" -ge 2 ] || problems+=" not multi-stage;"
grep -q '^USER [a-z]' "$df" || problems+=" no non-root USER;"
grep -A2 '^HEALTHCHECK ' "$df" | grep -q '/readyz' || problems+=" no HEALTHCHECK on /readyz;"
grep -q '^VOLUME ' "$df" || problems+=" no data VOLUME;"
grep -q 'cargo build --release' "$df" || problems+=" no release build;"
for f in $(sed -n 's/^COPY \(--from=[^ ]* \)\{0,1\}\([^ ]*\) .*/\2/p' "$df" | grep -v '^/' | grep -v '^\.$'); do
  [ -e "$f" ] || problems+=" COPY source $f missing;"
done
if [ -z "$problems" ]; then
  pass "$df (stages, user, health check, volume)"
else
  fail "$df:$problems"
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
