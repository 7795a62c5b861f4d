#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need,
# then checks formatting and lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is needed: install Rust (https://rustup.rs) first" >&2
    exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# The real upstream programs the differential tests run against.
peers=target/peers
mkdir -p "$peers"
if [ ! -f "$peers/node_modules/statsd/stats.js" ]; then
    command -v npm >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
    npm install --prefix "$peers" --no-audit --no-fund --silent statsd@0.9.0
fi

if ! command -v rsyslogd >/dev/null 2>&1 && [ ! -x /usr/sbin/rsyslogd ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsyslog
fi

# lsof, which filestat's per-user counts are compared with (tests/lsof.rs).
if ! command -v lsof >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lsof
fi

# promtool (Debian's Prometheus 2.42) judges the exposition format (tests/prometheus.rs).
if ! command -v promtool >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
fi

# node_exporter 1.5, whose families carbyne's exposition is compared with (tests/node_exporter.rs).
if ! command -v prometheus-node-exporter >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-node-exporter
fi

# openssl and curl make and use a certificate for remote_write over TLS (tests/remote_write.rs).
command -v openssl >/dev/null 2>&1 && command -v curl >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl curl; }

# VictoriaMetrics, a remote_write receiver (tests/remote_write.rs; Prometheus is the other).
if ! command -v victoria-metrics >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends victoria-metrics
fi

# lintian checks the .deb (packaging/test-deb.sh).
if command -v dpkg >/dev/null 2>&1 && ! command -v lintian >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lintian
fi

python3 -c "import zmq" 2>/dev/null || python3 -m pip install --quiet pyzmq
python3 -m pip show whisper 2>/dev/null | grep -qx "Version: 1.1.10" \
    || python3 -m pip install --quiet whisper==1.1.10
# carbon-cache itself; without GRAPHITE_NO_PREFIX its setup installs under /opt/graphite.
python3 -m pip show carbon 2>/dev/null | grep -qx "Version: 1.1.10" \
    || GRAPHITE_NO_PREFIX=True python3 -m pip install --quiet carbon==1.1.10
# graphite-web, run in-process through Django's test client by tests/web.rs.
# GRAPHITE_NO_PREFIX makes its setup install as a normal package (not under
# /opt/graphite); --no-cache-dir keeps pip from reusing a wheel built without it.
python3 -m pip show graphite-web 2>/dev/null | grep -qx "Version: 1.1.10" && python3 -c "import graphite" 2>/dev/null \
    || GRAPHITE_NO_PREFIX=True python3 -m pip install --quiet --no-cache-dir graphite-web==1.1.10 \
        'Django>=2.2,<3.1' django-tagging==0.4.3 cairocffi pyparsing pytz six urllib3
# Its PNG renderer (cairocffi) needs cairo at import.
python3 -c "import cairocffi" 2>/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libcairo2; }

# The configuration files the real packages ship, which `carbyne migrate`
# is tested on (tests/migrate.rs): carbon 1.1.10's sdist (conf/*.example),
# Diamond 4.0.515's wheel (etc/diamond/diamond.conf.example) and Debian's
# graphite-carbon (/etc/carbon; its service is not started).
if [ ! -f "$peers/carbon-1.1.10/conf/carbon.conf.example" ]; then
    python3 -m pip download --quiet --no-deps --no-binary :all: carbon==1.1.10 -d "$peers/dl"
    tar -xzf "$peers/dl/carbon-1.1.10.tar.gz" -C "$peers"
fi
if [ ! -f "$peers/diamond-4.0.515/etc/diamond/diamond.conf.example" ]; then
    python3 -m pip download --quiet --no-deps diamond==4.0.515 -d "$peers/dl"
    python3 -m zipfile -e "$peers/dl/diamond-4.0.515-py2.py3-none-any.whl" "$peers/diamond-4.0.515"
fi
[ -f /etc/carbon/carbon.conf ] \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends graphite-carbon; }

# The built-in page is tested in a real browser: Debian's Chromium, driven
# by Playwright for Python (pointed at it; its own browser downloads are
# not used).
command -v chromium >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
python3 -c "import playwright" 2>/dev/null || python3 -m pip install --quiet playwright

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets

# The Debian package, built, linted, installed, run and purged for real.
if command -v dpkg >/dev/null 2>&1; then
    bash packaging/test-deb.sh
fi
