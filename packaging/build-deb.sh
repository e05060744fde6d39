#!/usr/bin/env bash
# Builds moshwall_<version>_all.deb with dpkg-deb from a built tree (`npm ci && npm run build` first):
#   bash packaging/build-deb.sh [OUTPUT_DIR]        (default: dist/; prints the .deb's path)
# Needs dpkg-deb, gzip, node and (for the changelog's date) git or SOURCE_DATE_EPOCH. Runs as any
# user: files are owned by root in the package (dpkg-deb --root-owner-group). The same tree and
# SOURCE_DATE_EPOCH give the same bytes. Layout and the shim's /usr/local link: debian/README.Debian.
set -euo pipefail
umask 022
export LC_ALL=C

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
out="${1:-$repo/dist}"
bundle="$repo/dist/moshwall.js"
maintainer="${DEB_MAINTAINER:-moshwall maintainers <moshwall@example.org>}"

fail() {
  echo "build-deb.sh: $*" >&2
  exit 1
}

for tool in dpkg-deb gzip node md5sum find sort xargs du; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done
[ -f "$bundle" ] || fail "$bundle is missing: run 'npm ci && npm run build' first"
version="$(node -p 'JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8")).version' "$repo/package.json")"
[[ "$version" =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || fail "package.json version \"$version\" is not a Debian version"
built="$(node "$bundle" --version)"
[ "$built" = "$version" ] || fail "$bundle says version $built, package.json $version: rebuild it"

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH="$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)"
fi
export SOURCE_DATE_EPOCH

stage="$(mktemp -d "${TMPDIR:-/tmp}/moshwall-deb.XXXXXX")"
trap 'rm -rf -- "$stage"' EXIT
root="$stage/root"
doc="$root/usr/share/doc/moshwall"

install -d -m 0755 "$root/DEBIAN" "$root/usr/lib/moshwall" "$root/usr/sbin" "$root/lib/systemd/system" \
  "$doc" "$root/usr/share/man/man8" "$root/etc/moshwall"

# The program, run by Debian's node whatever PATH says (Depends: nodejs), and a package.json that makes
# Node treat it as the ES module it is (Node 18 reads a .js file without one as CommonJS).
{
  printf '#!/usr/bin/node\n'
  tail -n +2 "$bundle"
} >"$root/usr/lib/moshwall/moshwall.js"
chmod 0755 "$root/usr/lib/moshwall/moshwall.js"
printf '{ "type": "module" }\n' >"$root/usr/lib/moshwall/package.json"
chmod 0644 "$root/usr/lib/moshwall/package.json"
# The shim: perl (perl-base is Essential), a few ms per connect where Node takes 50-70 (src/shim/mosh-server.pl).
install -m 0755 "$repo/src/shim/mosh-server.pl" "$root/usr/lib/moshwall/mosh-server"
ln -s ../lib/moshwall/moshwall.js "$root/usr/sbin/moshwall"

install -m 0644 "$repo/deploy/moshwall.service" "$root/lib/systemd/system/moshwall.service"
install -m 0644 "$repo/docs/moshwall.example.toml" "$root/etc/moshwall/moshwall.toml"
install -m 0644 "$repo/README.md" "$doc/README.md"
install -m 0644 "$repo/docs/moshwall.example.toml" "$doc/moshwall.example.toml"
install -m 0644 "$here/debian/copyright" "$doc/copyright"
install -m 0644 "$here/debian/README.Debian" "$doc/README.Debian"
gzip -9n <"$here/moshwall.8" >"$root/usr/share/man/man8/moshwall.8.gz"
{
  printf 'moshwall (%s) unstable; urgency=medium\n\n' "$version"
  printf '  * Built from the moshwall source tree by packaging/build-deb.sh.\n\n'
  printf ' -- %s  %s\n' "$maintainer" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$doc/changelog.gz"
chmod 0644 "$root/usr/share/man/man8/moshwall.8.gz" "$doc/changelog.gz"

for script in postinst prerm postrm; do
  install -m 0755 "$here/debian/$script" "$root/DEBIAN/$script"
done
printf '/etc/moshwall/moshwall.toml\n' >"$root/DEBIAN/conffiles"
# md5sums of every shipped file but the conffiles (dpkg keeps theirs itself), as dh_md5sums writes it.
(
  cd "$root"
  find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum
) >"$root/DEBIAN/md5sums"
installed_size="$(du -s -k --apparent-size --exclude=DEBIAN "$root" | cut -f1)"
cat >"$root/DEBIAN/control" <<EOF
Package: moshwall
Version: $version
Architecture: all
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: nodejs (>= 18)
Recommends: mosh, conntrack, ipset, ufw | nftables | iptables | firewalld
Suggests: sudo
Section: net
Priority: optional
Description: firewall ports for genuine mosh sessions only
 moshwall opens exactly the UDP ports that genuine mosh-server processes
 hold, closes each one when its session ends, and never touches a firewall
 rule it did not make.
 .
 A process counts only if /proc shows that its executable and every
 executable mapping are owned by root and writable by no one else, and that
 it is not traced. Its daemon keeps the firewall in step with the sessions,
 and its mosh-server shim holds MOSH CONNECT back until the session's port
 is open, so a client's first packet is never dropped. UFW is supported.
EOF
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

find "$root" -depth -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out"
deb="$out/moshwall_${version}_all.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
