#!/usr/bin/env bash
# The .deb, proven for real: build it, inspect it (dpkg-deb -c/-I), lint it
# (lintian: no errors), check the units (systemd-analyze verify), install it
# into this machine, run the installed binary as the carbyne user, upgrade
# over an edited conffile, purge it, and check that nothing is left behind.
# Needs root and dpkg; installs lintian from Debian when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dpkg >/dev/null; then
    echo "test-deb: no dpkg here, the package is not tested"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "test-deb: installing the package needs root" >&2
    exit 1
fi
if dpkg -s carbyne >/dev/null 2>&1; then
    echo "test-deb: carbyne is already installed on this machine; not touching it" >&2
    exit 1
fi
fail() { echo "test-deb: FAILED: $*" >&2; exit 1; }
step() { echo "test-deb: $*"; }
# A gzipped file holds a line matching a pattern. Not `zcat | grep -q`: under
# pipefail, grep -q quitting at the first match kills zcat with SIGPIPE when the
# file is longer than a pipe buffer, and the check fails at random.
zhas() { local text; text=$(zcat "$1") && grep -q -- "$2" <<<"$text"; }

if ! command -v lintian >/dev/null; then
    step "installing lintian"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lintian >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lintian >/dev/null; }
fi

step "building"
# What is proven here is the package (its files, scripts, pages, service and
# users), not the optimiser: the test packages the dev build the tests have
# just built and run (minutes of a release build saved on two cores). The
# package for use is built by packaging/build-deb.sh with the release profile.
export CARBYNE_DEB_PROFILE=${CARBYNE_DEB_PROFILE:-dev}
deb=$(bash packaging/build-deb.sh)
[ -f "$deb" ] || fail "no package built"

step "contents (dpkg-deb -c)"
contents=$(dpkg-deb -c "$deb" | awk '{print $1, $2, $NF}')
for path in ./usr/bin/carbyne ./usr/share/man/man1/carbyne.1.gz ./usr/share/man/man1/carbyne-agent.1.gz \
    ./usr/share/bash-completion/completions/carbyne ./usr/share/zsh/vendor-completions/_carbyne \
    ./usr/share/fish/vendor_completions.d/carbyne.fish ./etc/carbyne/carbyne.toml \
    ./etc/carbyne/conf.d/00-graphite.toml ./etc/carbyne/conf.d/00-cpu.toml ./etc/cron.d/carbyne \
    ./lib/systemd/system/carbyne-agent.service ./lib/systemd/system/carbyne-server.service \
    ./usr/share/doc/carbyne/copyright ./usr/share/doc/carbyne/changelog.gz; do
    grep -q " $path\$" <<<"$contents" || fail "$path is not in the package"
done
grep -q "^-rwxr-xr-x root/root ./usr/bin/carbyne$" <<<"$contents" || fail "/usr/bin/carbyne: owner or mode"
if grep -v " root/root " <<<"$contents" | grep -q .; then fail "files not owned by root"; fi
[ "$(dpkg-deb -c "$deb" | grep -c ' ./etc/carbyne/conf.d/.*\.toml$')" = "$(ls conf.d/*.toml | wc -l)" ] \
    || fail "not every conf.d example is shipped"

step "control (dpkg-deb -I)"
info=$(dpkg-deb -I "$deb")
for field in "Package: carbyne" "Version: $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)" \
    "Depends: adduser, libc6" "Section: admin"; do
    grep -q "^ $field" <<<"$info" || fail "control lacks '$field'"
done
for script in postinst prerm postrm conffiles md5sums; do
    grep -q " $script\$\| $script " <<<"$info" || fail "no $script in the control archive"
done
[ "$(dpkg-deb -f "$deb" Architecture)" = "$(dpkg --print-architecture)" ] || fail "architecture"
conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)
grep -qx /etc/carbyne/carbyne.toml <<<"$conffiles" || fail "carbyne.toml is not a conffile"
grep -qx /etc/cron.d/carbyne <<<"$conffiles" || fail "the cron file is not a conffile"
tmp=$(mktemp -d)
installed=0
saved=0
# A failed run does not leave the package on the machine; state of an agent
# run by hand before (README's `carbyne agent --once`) is put back.
cleanup() {
    if [ "$installed" = 1 ]; then dpkg --purge carbyne >/dev/null 2>&1 || true; fi
    if [ "$saved" = 1 ]; then rm -rf /var/lib/carbyne && mv "$tmp/var-lib-carbyne" /var/lib/carbyne; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
if [ -e /var/lib/carbyne ]; then
    mv /var/lib/carbyne "$tmp/var-lib-carbyne"
    saved=1
fi
dpkg-deb -x "$deb" "$tmp/x"
if grep -q '\.symtab' <<<"$(readelf -S "$tmp/x/usr/bin/carbyne")"; then fail "/usr/bin/carbyne is not stripped"; fi

step "lintian (errors fail, warnings listed and explained in packaging/README.md)"
lintian --fail-on error --tag-display-limit 0 "$deb" | tee "$tmp/lintian.txt" || fail "lintian found errors"
while read -r tag; do
    grep -q -- "$tag" packaging/README.md || fail "lintian tag $tag is not explained in packaging/README.md"
done < <(sed -n 's/^W: carbyne[^:]*: \([a-z0-9-]*\).*/\1/p' "$tmp/lintian.txt" | sort -u)

# What the machine holds before, to find anything left behind after purge.
snapshot() {
    find /etc /usr /lib /var/lib /opt -xdev \
        -path /var/lib/dpkg -prune -o -path /var/lib/apt -prune -o -path /var/lib/ucf -prune -o \
        -path /etc/ld.so.cache -prune -o -print 2>/dev/null | sort
    getent passwd carbyne || true
    getent group carbyne || true
    getent group adm
}
snapshot > "$tmp/before"

step "installing (dpkg -i)"
installed=1
dpkg -i "$deb" >/dev/null
[ "$(dpkg-query -W -f='${Status}' carbyne)" = "install ok installed" ] || fail "not installed"
getent passwd carbyne >/dev/null || fail "no carbyne user"
id -nG carbyne | grep -qw adm || fail "carbyne is not in adm"
[ "$(stat -c %U:%G:%a /var/lib/carbyne)" = carbyne:carbyne:751 ] || fail "/var/lib/carbyne ownership or mode"
[ "$(stat -c %U:%G:%a /var/lib/carbyne/whisper)" = carbyne:carbyne:2750 ] \
    || fail "/var/lib/carbyne/whisper is not group-readable (setgid 2750)"
[ -L /etc/systemd/system/multi-user.target.wants/carbyne-agent.service ] || fail "the agent unit is not enabled"
[ ! -e /etc/systemd/system/multi-user.target.wants/carbyne-server.service ] || fail "the server unit is enabled"
man -l /usr/share/man/man1/carbyne.1.gz >/dev/null 2>&1 || zhas /usr/share/man/man1/carbyne.1.gz '^\.TH' \
    || fail "the man page does not read"
zhas /usr/share/man/man1/carbyne-server.1.gz '^\.SH SIGNALS' || fail "carbyne-server(1) has no SIGNALS"
zhas /usr/share/man/man1/carbyne-agent.1.gz '^\.SH EXIT STATUS' || fail "carbyne-agent(1) has no EXIT STATUS"
zhas /usr/share/man/man5/carbyne.toml.5.gz 'max_cache_bytes' || fail "carbyne.toml(5) does not list every key"

if command -v systemd-analyze >/dev/null; then
    step "systemd-analyze verify"
    for unit in carbyne-agent.service carbyne-server.service; do
        # Unknown keys are only warned about: any word from verify about
        # carbyne's units fails. What it says about other packages' units
        # (graphite-carbon's "Standard output type syslog is obsolete", on
        # many of our users' machines) is theirs to mend, not a failure here.
        out=$(systemd-analyze verify "/lib/systemd/system/$unit" 2>&1) || true
        ours=$(printf '%s\n' "$out" | grep -i 'carbyne' || true)
        [ -z "$ours" ] || fail "$unit: $ours"
        [ -z "$out" ] || printf 'test-deb: verify %s faulted other units only:\n%s\n' "$unit" "$out" >&2
        grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "/lib/systemd/system/$unit" || fail "$unit: no ExecReload"
        grep -q '^RestartPreventExitStatus=2$' "/lib/systemd/system/$unit" || fail "$unit: restarts on a bad configuration"
    done
fi

step "the installed binary, as the carbyne user"
runuser -u carbyne -- carbyne config check >"$tmp/effective.toml" || fail "config check"
grep -q 'port = 2003' "$tmp/effective.toml" || fail "the default config does not ship to Graphite on 2003"
runuser -u carbyne -- carbyne agent --once --dry-run >"$tmp/dry-run.txt" 2>"$tmp/dry-run.err" \
    || fail "agent --once --dry-run: $(cat "$tmp/dry-run.err")"
grep -q '^servers\.[^ ]*\.loadavg\.01 [0-9.]* [0-9]*$' "$tmp/dry-run.txt" || fail "no loadavg sample in the dry run"
[ -z "$(find /var/lib/carbyne ! -user carbyne)" ] || fail "state written with another owner"

step "upgrade over an edited conffile"
echo '# edited by the admin' >>/etc/carbyne/carbyne.toml
dpkg -i "$deb" >/dev/null
grep -q '^# edited by the admin$' /etc/carbyne/carbyne.toml || fail "the admin's edit did not survive"

step "an admin's drop-in overrides the shipped ones"
[ -f /etc/carbyne/conf.d/00-graphite.toml ] || fail "the shipped drop-ins are not named 00-*.toml"
head -3 /etc/carbyne/conf.d/00-cpu.toml | grep -q 'such as 50-cpu.toml' || fail "the shipped files do not say the rule"
printf '[handlers.graphite]\nport = 57957\n' >/etc/carbyne/conf.d/50-graphite.toml
printf '[collectors.sockstat]\nenabled = false\n' >/etc/carbyne/conf.d/50-sockstat.toml
runuser -u carbyne -- carbyne config check >"$tmp/effective.toml" || fail "config check with drop-ins"
grep -q 'port = 57957' "$tmp/effective.toml" || fail "50-graphite.toml did not override the shipped port"
runuser -u carbyne -- carbyne agent --once --dry-run >"$tmp/dry-run.txt" 2>/dev/null || fail "dry run with drop-ins"
! grep -q '\.sockets\.' "$tmp/dry-run.txt" || fail "50-sockstat.toml did not turn sockstat off"

step "cron's --once through a Graphite outage: the shipped disk buffer keeps the samples"
# Port 57957 has no listener: the run keeps what it could not send.
runuser -u carbyne -- carbyne agent --once >/dev/null 2>"$tmp/once.err" \
    || fail "--once with Graphite down did not exit 0: $(cat "$tmp/once.err")"
grep -q 'kept in the disk buffer' "$tmp/once.err" || fail "--once did not say it kept the samples: $(cat "$tmp/once.err")"
runuser -u carbyne -- carbyne buffer status graphite >"$tmp/status.txt" || fail "buffer status"
held=$(awk 'NR == 2 { print $2 }' "$tmp/status.txt")
[ "${held:-0}" -gt 0 ] || fail "nothing in the buffer: $(cat "$tmp/status.txt")"
grep -q '/var/lib/carbyne/buffers/graphite' "$tmp/status.txt" || fail "the buffer is not in state_dir: $(cat "$tmp/status.txt")"
# Graphite is back: a drain delivers every record.
python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 57957)); s.listen(8); s.settimeout(30)
c, _ = s.accept(); c.settimeout(10); n = 0
while True:
    b = c.recv(65536)
    if not b: break
    n += b.count(b"\n")
print(n)
' >"$tmp/got.txt" &
sink=$!
sleep 1
runuser -u carbyne -- carbyne buffer drain graphite >/dev/null 2>"$tmp/drain.err" || fail "buffer drain: $(cat "$tmp/drain.err")"
wait "$sink" || fail "the sink got nothing"
[ "$(cat "$tmp/got.txt")" -ge "$held" ] || fail "drain delivered $(cat "$tmp/got.txt") of $held"
rm /etc/carbyne/conf.d/50-graphite.toml /etc/carbyne/conf.d/50-sockstat.toml

step "a carbon setup migrated into /etc/carbyne, as the README says"
# Debian's graphite-carbon (tests/run.sh installs it) leaves /etc/carbon.
if [ -f /etc/carbon/carbon.conf ]; then
    carbyne migrate --output /etc/carbyne carbon /etc/carbon/carbon.conf >/dev/null 2>"$tmp/migrate.err" \
        || fail "migrate carbon: $(cat "$tmp/migrate.err")"
    grep -q 'not carried over: USER = _graphite' "$tmp/migrate.err" || fail "migrate did not list USER: $(cat "$tmp/migrate.err")"
    runuser -u carbyne -- carbyne config check >"$tmp/effective.toml" || fail "config check after migrate"
    grep -q 'storage_dir = "/var/lib/graphite/whisper/"' "$tmp/effective.toml" \
        || fail "the migrated receiver does not write into carbon's whisper tree"
    rm /etc/carbyne/conf.d/50-server-carbon.toml
fi

step "given the whisper folder's group, a graphite-web user reads the metrics, not the state"
useradd --system --no-create-home --user-group carbyne-web-test
chgrp -R carbyne-web-test /var/lib/carbyne/whisper
runuser -u carbyne -- sh -c 'umask 022; mkdir -p /var/lib/carbyne/whisper/a && echo pts >/var/lib/carbyne/whisper/a/b.wsp'
file_group=$(stat -c %G /var/lib/carbyne/whisper/a/b.wsp)
web_read=$(runuser -u carbyne-web-test -- cat /var/lib/carbyne/whisper/a/b.wsp 2>&1 || true)
state_read=$(runuser -u carbyne-web-test -- ls /var/lib/carbyne 2>&1 || true)
chgrp -R carbyne /var/lib/carbyne/whisper
userdel carbyne-web-test
getent group carbyne-web-test >/dev/null && groupdel carbyne-web-test
[ "$file_group" = carbyne-web-test ] || fail "a new whisper file did not keep the folder's group: $file_group"
[ "$web_read" = pts ] || fail "the folder's group cannot read the metrics: $web_read"
grep -q 'Permission denied' <<<"$state_read" || fail "others can list carbyne's state: $state_read"
rm -rf /var/lib/carbyne/whisper/a

step "purge (the metrics are kept)"
mkdir -p /var/lib/carbyne/whisper/servers
echo whisper >/var/lib/carbyne/whisper/servers/load.wsp
echo state >/var/lib/carbyne/agent-counters.json
dpkg --purge carbyne >/dev/null 2>"$tmp/purge.err"
installed=0
dpkg -s carbyne >/dev/null 2>&1 && fail "still installed"
[ "$(cat /var/lib/carbyne/whisper/servers/load.wsp)" = whisper ] || fail "the purge deleted the metrics"
[ ! -e /var/lib/carbyne/agent-counters.json ] || fail "the purge kept carbyne's own state"
grep -q 'kept in /var/lib/carbyne/whisper' "$tmp/purge.err" || fail "the purge did not say where the metrics are"
getent passwd carbyne >/dev/null || fail "the purge removed the user owning the kept metrics"
rm -rf /var/lib/carbyne
deluser --quiet --system carbyne >/dev/null 2>&1 || true
getent group carbyne >/dev/null && delgroup --quiet --system carbyne >/dev/null 2>&1
true
snapshot > "$tmp/after"
if ! diff "$tmp/before" "$tmp/after" >"$tmp/left"; then
    cat "$tmp/left" >&2
    fail "the purge left something behind (or took something away)"
fi
step "ok: $deb"
