#!/usr/bin/env bash
# Starts the real services the mail tests talk to: a private Dovecot (IMAP with STARTTLS and
# IMAPS on loopback, one test user, maildir under DIR, certificates from a throwaway CA in
# DIR/tls) and an aiosmtpd sink that writes every received message to DIR/smtp/. Idempotent;
# safe to run as root on a fresh Debian machine (it installs what is missing) and as an
# ordinary user (then Dovecot runs entirely as that user).
#
# Usage: test-services.sh COMMAND DIR
#   start DIR         install what is missing, start both services, print `export` lines
#   stop DIR          stop both services (no error when they are not running)
#   env DIR           print the `export` lines of running services (same as DIR/env)
#   status DIR        say which services are up
#   restart-imap DIR  stop and start Dovecot on the same port (fault tests)
#   stop-smtp DIR     stop the SMTP sink: its port refuses connections (fault tests)
#   start-smtp DIR    start the SMTP sink again on the same port
#
# The sink answers with an SMTP error instead of accepting while DIR/smtp.reject exists; its
# first line is the reply, e.g. `451 4.3.0 Try again later` or `550 5.1.1 No such user`.
#
# Environment: PYTHON (default python3), SPORTELLO_TEST_IMAP_USER / _PASS (default
# sportello / sportello-test), SPORTELLO_TEST_WAIT (seconds to wait for a port, default 30).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
IMAP_USER="${SPORTELLO_TEST_IMAP_USER:-sportello}"
IMAP_PASS="${SPORTELLO_TEST_IMAP_PASS:-sportello-test}"
WAIT_SECS="${SPORTELLO_TEST_WAIT:-30}"

log() { printf 'test-services: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if is_root; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root to run '$*' (install it by hand or run this script as root)"
    fi
}

APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    # Keep the package's own system-wide Dovecot from starting on port 143 during install: we
    # only want the private instance below. policy-rc.d is honoured by invoke-rc.d.
    local policy=/usr/sbin/policy-rc.d placed=0
    if is_root && [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && placed=1
    fi
    local rc=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 || rc=$?
    if [ "$placed" -eq 1 ]; then rm -f "$policy"; fi
    [ "$rc" -eq 0 ] || die "apt-get install $* failed (exit $rc)"
}

find_dovecot() {
    local c
    for c in "$(command -v dovecot 2>/dev/null || true)" /usr/sbin/dovecot /usr/local/sbin/dovecot; do
        if [ -n "$c" ] && [ -x "$c" ]; then printf '%s' "$c"; return 0; fi
    done
    return 1
}

ensure_dovecot() {
    if ! find_dovecot >/dev/null || { [ ! -e /usr/lib/dovecot/imap ] && [ ! -e /usr/libexec/dovecot/imap ]; }; then
        apt_install dovecot-imapd
    fi
    DOVECOT="$(find_dovecot)" || die "dovecot is still missing after installing dovecot-imapd"
}

ensure_aiosmtpd() {
    command -v "$PYTHON" >/dev/null 2>&1 || apt_install python3
    if "$PYTHON" -c 'import aiosmtpd' >/dev/null 2>&1; then return 0; fi
    log "installing aiosmtpd from PyPI"
    if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
        apt_install python3-pip
    fi
    "$PYTHON" -m pip install --quiet --disable-pip-version-check aiosmtpd >&2 \
        || "$PYTHON" -m pip install --quiet --disable-pip-version-check --break-system-packages aiosmtpd >&2 \
        || true
    if ! "$PYTHON" -c 'import aiosmtpd' >/dev/null 2>&1; then
        # A Python that pip cannot write to (PEP 668 and no override): Debian ships it too.
        apt_install python3-aiosmtpd
        "$PYTHON" -c 'import aiosmtpd' >/dev/null 2>&1 || die "aiosmtpd is not importable by $PYTHON"
    fi
}

free_port() {
    "$PYTHON" - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits until something accepts on the port and its greeting starts with the expected text.
wait_port() {
    local port=$1 what=$2 greeting=$3 logfile=$4 deadline=$((SECONDS + WAIT_SECS))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if port_open "$port" && "$PYTHON" - "$port" "$greeting" <<'EOF'
import socket, sys
port, want = int(sys.argv[1]), sys.argv[2].encode()
try:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        data = s.recv(512)
    sys.exit(0 if data.startswith(want) else 1)
except OSError:
    sys.exit(1)
EOF
        then
            return 0
        fi
        sleep 0.2
    done
    log "$what did not accept connections on 127.0.0.1:$port within ${WAIT_SECS}s; last log lines:"
    tail -n 30 "$logfile" >&2 2>/dev/null || true
    return 1
}

wait_port_closed() {
    local port=$1 deadline=$((SECONDS + WAIT_SECS))
    while [ "$SECONDS" -lt "$deadline" ]; do
        port_open "$port" || return 0
        sleep 0.1
    done
    return 1
}

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# Stops the process whose id is in the file (TERM, then KILL after 10 s) and removes the file.
stop_pidfile() {
    local file=$1 pid
    [ -f "$file" ] || return 0
    pid="$(cat "$file" 2>/dev/null || true)"
    if pid_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for i in $(seq 1 100); do
            pid_alive "$pid" || break
            sleep 0.1
        done
        if pid_alive "$pid"; then
            log "process $pid ignored TERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$file"
}

setup_dirs() {
    mkdir -p "$DIR"
    DIR="$(cd "$DIR" && pwd -P)"
    STATE="$DIR/.services"
    mkdir -p "$STATE" "$DIR/smtp"
    # Unix socket paths are limited to 108 bytes, so Dovecot's runtime directory lives under
    # /tmp with a name derived from DIR rather than under DIR itself.
    local hash
    hash="$(printf '%s' "$DIR" | cksum | cut -d' ' -f1)"
    BASE_DIR="/tmp/sportello-dovecot-$hash"
    # As root, Dovecot's mail and auth processes run as nobody/dovecot and must reach the
    # maildir and password file. Under a private parent (/root/...) they cannot, so Dovecot's
    # files then live under /var/tmp instead, with a link from DIR.
    DOVE_ROOT="$DIR"
    if is_root; then
        chmod 755 "$DIR"
        if ! searchable_by_nobody "$DIR"; then
            DOVE_ROOT="/var/tmp/sportello-dovecot-$hash"
            mkdir -p "$DOVE_ROOT"
            chmod 755 "$DOVE_ROOT"
            ln -sfn "$DOVE_ROOT" "$DIR/dovecot-files"
        fi
    fi
}

# Whether user nobody can traverse every directory down to $1.
searchable_by_nobody() {
    if command -v runuser >/dev/null 2>&1; then
        runuser -u nobody -- test -x "$1" 2>/dev/null
    elif command -v setpriv >/dev/null 2>&1; then
        setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$1" 2>/dev/null
    else
        local d="$1"
        while [ "$d" != "/" ] && [ -n "$d" ]; do
            [ "$(( 0$(stat -c '%a' "$d") & 1 ))" -eq 1 ] || return 1
            d="$(dirname "$d")"
        done
    fi
}

load_ports() {
    IMAP_PORT=""
    IMAPS_PORT=""
    SMTP_PORT=""
    if [ -f "$STATE/ports" ]; then
        # shellcheck disable=SC1091
        . "$STATE/ports"
    fi
}

save_ports() {
    printf 'IMAP_PORT=%s\nIMAPS_PORT=%s\nSMTP_PORT=%s\n' "$IMAP_PORT" "$IMAPS_PORT" "$SMTP_PORT" >"$STATE/ports"
}

# Picks a port once per DIR and keeps it, so restarts come back where clients expect them.
choose_ports() {
    load_ports
    if [ -z "$IMAP_PORT" ]; then IMAP_PORT="$(free_port)"; fi
    if [ -z "$IMAPS_PORT" ]; then
        IMAPS_PORT="$(free_port)"
        while [ "$IMAPS_PORT" = "$IMAP_PORT" ]; do IMAPS_PORT="$(free_port)"; done
    fi
    if [ -z "$SMTP_PORT" ]; then
        SMTP_PORT="$(free_port)"
        while [ "$SMTP_PORT" = "$IMAP_PORT" ] || [ "$SMTP_PORT" = "$IMAPS_PORT" ]; do SMTP_PORT="$(free_port)"; done
    fi
    save_ports
}

# A private CA and a server certificate for localhost/127.0.0.1, made once per DIR.
ensure_certificates() {
    local tls="$DIR/tls"
    if [ -s "$tls/ca.pem" ] && [ -s "$tls/server.pem" ] && [ -s "$tls/server.key" ]; then
        return 0
    fi
    command -v openssl >/dev/null 2>&1 || apt_install openssl
    mkdir -p "$tls"
    (
        cd "$tls"
        openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
            -subj "/CN=Sportello test CA" -keyout ca.key -out ca.pem 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
            -keyout server.key -out server.csr 2>/dev/null
        printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 \
            -days 3650 -extfile server.ext -out server.pem 2>/dev/null
    ) || die "could not create test certificates in $tls"
    chmod 644 "$tls/ca.pem" "$tls/server.pem"
    chmod 600 "$tls/ca.key" "$tls/server.key"
}

write_dovecot_config() {
    local conf_dir="$DOVE_ROOT/dovecot" mail_root="$DOVE_ROOT/mail" uid gid login_user internal_user
    local login_extra="" unpriv_extra=""
    mkdir -p "$conf_dir" "$mail_root"
    if is_root; then
        # Mail is owned by nobody: Dovecot refuses to give mail processes uid 0.
        uid="nobody"
        gid="$(id -gn nobody 2>/dev/null || echo nogroup)"
        login_user="dovenull"
        internal_user="dovecot"
        getent passwd dovenull >/dev/null || login_user="nobody"
        getent passwd dovecot >/dev/null || internal_user="nobody"
        chown -R "nobody:$gid" "$mail_root"
        chmod 755 "$DOVE_ROOT" "$conf_dir" "$mail_root"
    else
        uid="$(id -un)"
        gid="$(id -gn)"
        login_user="$uid"
        internal_user="$uid"
        # Unprivileged: no chroot, and every service runs as ourselves.
        login_extra="  chroot =
  user = $login_user"
        unpriv_extra="service auth {
  user = $uid
}
service auth-worker {
  user = $uid
}"
    fi
    printf '%s:{PLAIN}%s::::::\n' "$IMAP_USER" "$IMAP_PASS" >"$conf_dir/passwd"
    chmod 644 "$conf_dir/passwd"
    cat >"$conf_dir/dovecot.conf" <<EOF
# Generated by deploy/scripts/test-services.sh for tests only: plaintext auth, no TLS, loopback.
protocols = imap
listen = 127.0.0.1
base_dir = $BASE_DIR
state_dir = $conf_dir/state
log_path = $conf_dir/dovecot.log
info_log_path = $conf_dir/dovecot.log
# TLS with a throwaway CA (tls/ca.pem) for implicit TLS on the imaps port and STARTTLS on the
# plain one; plaintext login stays allowed so clients without TLS can be tested too.
ssl = yes
ssl_cert = <$DIR/tls/server.pem
ssl_key = <$DIR/tls/server.key
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = $login_user
default_internal_user = $internal_user
first_valid_uid = 1
mail_location = maildir:$mail_root/%u/Maildir
mail_fsync = never
protocol imap {
  mail_max_userip_connections = 200
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $conf_dir/passwd
}
userdb {
  driver = static
  args = uid=$uid gid=$gid home=$mail_root/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $IMAPS_PORT
    ssl = yes
  }
$login_extra
}
$unpriv_extra
service anvil {
  chroot =
}
service stats {
  chroot =
}
EOF
    mkdir -p "$conf_dir/state"
}

dovecot_running() {
    pid_alive "$(cat "$STATE/dovecot.pid" 2>/dev/null || true)"
}

start_imap() {
    if dovecot_running && port_open "$IMAP_PORT"; then
        return 0
    fi
    stop_pidfile "$STATE/dovecot.pid"
    ensure_certificates
    write_dovecot_config
    wait_port_closed "$IMAP_PORT" || die "port $IMAP_PORT is taken by another program"
    "$DOVECOT" -n -c "$DOVE_ROOT/dovecot/dovecot.conf" >/dev/null 2>"$STATE/dovecot-check.log" \
        || { cat "$STATE/dovecot-check.log" >&2; die "Dovecot rejected $DOVE_ROOT/dovecot/dovecot.conf"; }
    setsid "$DOVECOT" -F -c "$DOVE_ROOT/dovecot/dovecot.conf" \
        >>"$DOVE_ROOT/dovecot/stdout.log" 2>&1 </dev/null &
    echo $! >"$STATE/dovecot.pid"
    wait_port "$IMAP_PORT" Dovecot "* OK" "$DOVE_ROOT/dovecot/dovecot.log" \
        || { stop_pidfile "$STATE/dovecot.pid"; die "Dovecot did not start"; }
    log "Dovecot listening on 127.0.0.1:$IMAP_PORT"
}

# Process ids whose parent is $1 (read from /proc: procps may be missing on a fresh machine).
children_of() {
    local parent=$1 f line rest state ppid
    for f in /proc/[0-9]*/stat; do
        line="$(cat "$f" 2>/dev/null)" || continue
        rest="${line##*) }" # after the command name, which may contain spaces
        read -r state ppid _ <<<"$rest" || true
        if [ "$ppid" = "$parent" ]; then
            f="${f#/proc/}"
            printf '%s\n' "${f%/stat}"
        fi
    done
}

stop_imap() {
    # Dovecot leaves running IMAP sessions alive when its master stops (so upgrades do not
    # cut clients off); a fault test needs them gone, so remember and end the children too.
    local master children pid
    master="$(cat "$STATE/dovecot.pid" 2>/dev/null || true)"
    children=""
    if pid_alive "$master"; then children="$(children_of "$master")"; fi
    stop_pidfile "$STATE/dovecot.pid"
    for pid in $children; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in $children; do
        local i
        for i in $(seq 1 50); do pid_alive "$pid" || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ -n "${IMAP_PORT:-}" ]; then
        wait_port_closed "$IMAP_PORT" || log "port $IMAP_PORT still open after stopping Dovecot"
    fi
}

smtp_running() {
    pid_alive "$(cat "$STATE/smtp.pid" 2>/dev/null || true)"
}

start_smtp() {
    if smtp_running && port_open "$SMTP_PORT"; then
        return 0
    fi
    stop_pidfile "$STATE/smtp.pid"
    wait_port_closed "$SMTP_PORT" || die "port $SMTP_PORT is taken by another program"
    setsid "$PYTHON" "$SCRIPT_DIR/smtp_sink.py" --host 127.0.0.1 --port "$SMTP_PORT" \
        --dir "$DIR/smtp" --reject-file "$DIR/smtp.reject" \
        >>"$STATE/smtp.log" 2>&1 </dev/null &
    echo $! >"$STATE/smtp.pid"
    wait_port "$SMTP_PORT" "SMTP sink" "220" "$STATE/smtp.log" \
        || { stop_pidfile "$STATE/smtp.pid"; die "the SMTP sink did not start"; }
    log "SMTP sink listening on 127.0.0.1:$SMTP_PORT, writing to $DIR/smtp"
}

stop_smtp() {
    stop_pidfile "$STATE/smtp.pid"
    if [ -n "${SMTP_PORT:-}" ]; then
        wait_port_closed "$SMTP_PORT" || log "port $SMTP_PORT still open after stopping the sink"
    fi
}

write_env() {
    cat >"$DIR/env" <<EOF
export SPORTELLO_TEST_IMAP_HOST=127.0.0.1
export SPORTELLO_TEST_IMAP_PORT=$IMAP_PORT
export SPORTELLO_TEST_IMAPS_PORT=$IMAPS_PORT
export SPORTELLO_TEST_IMAP_TLS_CA=$DIR/tls/ca.pem
export SPORTELLO_TEST_IMAP_USER=$IMAP_USER
export SPORTELLO_TEST_IMAP_PASS=$IMAP_PASS
export SPORTELLO_TEST_SMTP_HOST=127.0.0.1
export SPORTELLO_TEST_SMTP_PORT=$SMTP_PORT
export SPORTELLO_TEST_SMTP_DIR=$DIR/smtp
export SPORTELLO_TEST_SERVICES_DIR=$DIR
export SPORTELLO_TEST_SERVICES_SCRIPT=$SCRIPT_DIR/test-services.sh
EOF
}

[ $# -eq 2 ] || usage
CMD=$1
DIR=$2
[ -n "$DIR" ] || usage

case "$CMD" in
    start)
        setup_dirs
        ensure_dovecot
        ensure_aiosmtpd
        choose_ports
        start_imap
        start_smtp
        write_env
        cat "$DIR/env"
        ;;
    stop)
        [ -d "$DIR" ] || exit 0
        setup_dirs
        load_ports
        stop_smtp
        stop_imap
        rm -rf "$BASE_DIR"
        rm -f "$DIR/env"
        log "stopped"
        ;;
    env)
        [ -f "$DIR/env" ] || die "no services started in $DIR (run: $0 start $DIR)"
        cat "$DIR/env"
        ;;
    status)
        setup_dirs
        load_ports
        rc=0
        if dovecot_running && [ -n "$IMAP_PORT" ] && port_open "$IMAP_PORT"; then echo "imap: up on 127.0.0.1:$IMAP_PORT"; else echo "imap: down"; rc=1; fi
        if smtp_running && [ -n "$SMTP_PORT" ] && port_open "$SMTP_PORT"; then echo "smtp: up on 127.0.0.1:$SMTP_PORT"; else echo "smtp: down"; rc=1; fi
        exit "$rc"
        ;;
    restart-imap)
        setup_dirs
        load_ports
        [ -n "$IMAP_PORT" ] || die "no services started in $DIR (run: $0 start $DIR)"
        DOVECOT="$(find_dovecot)" || die "dovecot is not installed (run: $0 start $DIR)"
        stop_imap
        start_imap
        ;;
    stop-smtp)
        setup_dirs
        load_ports
        stop_smtp
        log "SMTP sink stopped"
        ;;
    start-smtp)
        setup_dirs
        load_ports
        [ -n "$SMTP_PORT" ] || die "no services started in $DIR (run: $0 start $DIR)"
        start_smtp
        ;;
    *)
        usage
        ;;
esac
