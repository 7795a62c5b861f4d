#!/usr/bin/env bash
# Builds target/debian/carbyne_<version>_<arch>.deb from a release build:
# the stripped binary, its man pages and shell completions (generated from
# the command-line definitions), the example configuration as conffiles,
# the systemd units, the cron example and the maintainer scripts in debian/.
# Prints the path of the package. Needs dpkg-deb and dpkg-shlibdeps (dpkg-dev).
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
arch=$(dpkg --print-architecture)
changelog_version=$(sed -n '1s/^carbyne (\([^)]*\)).*/\1/p' packaging/debian/changelog)
if [ "$version" != "$changelog_version" ]; then
    echo "packaging/debian/changelog is at $changelog_version, Cargo.toml at $version" >&2
    exit 1
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

# CARBYNE_DEB_PROFILE: the Cargo profile the binary is built with (release
# unless said; the package test uses the tests' dev build, see test-deb.sh).
profile=${CARBYNE_DEB_PROFILE:-release}
# Cargo's output folder: CARGO_TARGET_DIR when set, as Cargo reads it.
target=${CARGO_TARGET_DIR:-target}
case "$profile" in
    dev) bindir=$target/debug ;;
    *) bindir=$target/$profile ;;
esac
cargo build --profile "$profile" --locked --quiet
if [ "$profile" = release ]; then
    bash packaging/order-functions.sh --relink "$profile"
fi
out=target/debian
root=$out/root
rm -rf "$root"
mkdir -p "$root/DEBIAN"

install -D -m 0755 "$bindir/carbyne" "$root/usr/bin/carbyne"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/carbyne"

mkdir -p "$root/usr/share/man/man1" "$root/usr/share/man/man5"
"$root/usr/bin/carbyne" manpages "$root/usr/share/man/man1"
mv "$root/usr/share/man/man1/carbyne.toml.5" "$root/usr/share/man/man5/"
gzip -9n "$root"/usr/share/man/man1/*.1 "$root"/usr/share/man/man5/*.5

"$root/usr/bin/carbyne" completions bash | install -D -m 0644 /dev/stdin "$root/usr/share/bash-completion/completions/carbyne"
"$root/usr/bin/carbyne" completions zsh | install -D -m 0644 /dev/stdin "$root/usr/share/zsh/vendor-completions/_carbyne"
"$root/usr/bin/carbyne" completions fish | install -D -m 0644 /dev/stdin "$root/usr/share/fish/vendor_completions.d/carbyne.fish"

install -D -m 0644 packaging/carbyne.toml "$root/etc/carbyne/carbyne.toml"
# Shipped drop-ins are named 00-*.toml so that an admin's drop-in (50-cpu.toml,
# or any name that sorts later) overrides them: later files win.
for f in conf.d/*.toml; do
    install -D -m 0644 "$f" "$root/etc/carbyne/conf.d/00-$(basename "$f")"
done
install -D -m 0644 packaging/debian/cron.d "$root/etc/cron.d/carbyne"
install -D -m 0644 packaging/debian/lintian-overrides "$root/usr/share/lintian/overrides/carbyne"
for unit in carbyne-agent.service carbyne-server.service; do
    install -D -m 0644 "packaging/debian/$unit" "$root/lib/systemd/system/$unit"
done

doc=$root/usr/share/doc/carbyne
install -D -m 0644 packaging/debian/copyright "$doc/copyright"
gzip -9n -c packaging/debian/changelog > "$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"

# Up to 0.1.0 the drop-ins were shipped unprefixed: dpkg-maintscript-helper
# moves each (with the admin's edits) to its 00- name on upgrade.
moved=""
for n in cpu diskspace diskusage graphite http loadavg log4j memory mountstats postfix \
    regex sockstat squid statsd stdout syslog vmstat zeromq; do
    moved="$moved    dpkg-maintscript-helper mv_conffile /etc/carbyne/conf.d/$n.toml /etc/carbyne/conf.d/00-$n.toml 0.2.0~ carbyne -- \"\$@\"\n"
done
for script in preinst postinst prerm postrm; do
    sed "s|^#MV_CONFFILES#\$|$moved|" "packaging/debian/$script" > "$root/DEBIAN/$script"
    chmod 0755 "$root/DEBIAN/$script"
done
(cd "$root" && find etc -type f | sort | sed 's|^|/|') > "$root/DEBIAN/conffiles"

# Shared-library dependencies as dpkg-shlibdeps reads them off the binary.
shlib_dir=$(mktemp -d)
trap 'rm -rf "$shlib_dir"' EXIT
mkdir -p "$shlib_dir/debian"
printf 'Source: carbyne\n\nPackage: carbyne\nArchitecture: any\n' > "$shlib_dir/debian/control"
bin=$(realpath "$root/usr/bin/carbyne")
shlibs=$(cd "$shlib_dir" && dpkg-shlibdeps -O "$bin" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@SHLIBS@/$shlibs/" \
    packaging/debian/control > "$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | sort | xargs md5sum) > "$root/DEBIAN/md5sums"

deb=$out/carbyne_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
