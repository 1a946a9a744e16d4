#!/usr/bin/env bash
# callpark's Debian package, built with dpkg-deb alone (no packaging tool to install):
#
#   contrib/package.sh [--binary PATH] [--out DIR] [--version VERSION]
#
#   --binary PATH      the callpark executable to package; without it, `cargo build --release`
#                      and target/release/callpark
#   --out DIR          where callpark_<version>_<arch>.deb goes (default: target/debian)
#   --version VERSION  the package's version (default: the workspace's, from Cargo.toml)
#
# The package installs:
#   /usr/bin/callpark                            the binary (debug info stripped)
#   /etc/callpark/callpark.toml                  conffile: contrib/callpark.example.toml with
#                                                data_dir = "/var/lib/callpark" and its
#                                                [[policy]] commented out (park off)
#   /etc/default/callpark                        conffile: the secrets (contrib/deb/default),
#                                                root:callpark 0640 (a dpkg statoverride)
#   /usr/lib/systemd/system/callpark.service     contrib/callpark.service as it is
# and its postinst makes the `callpark` system user and /var/lib/callpark (callpark:callpark
# 0750), which only a purge removes (contrib/deb/postinst, prerm, postrm).
#
# The last line printed is the package's path.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
# cargo (run from the repository below) reads a relative CARGO_TARGET_DIR from there.
case "$TARGET" in /*) ;; *) TARGET=$REPO/$TARGET ;; esac

say() { echo "package: $*" >&2; }
die() {
    echo "package: error: $*" >&2
    exit 1
}

binary=
out=$TARGET/debian
version=
while [ $# -gt 0 ]; do
    case "$1" in
    --binary) binary=${2:?--binary needs a path} && shift 2 ;;
    --out) out=${2:?--out needs a directory} && shift 2 ;;
    --version) version=${2:?--version needs a version} && shift 2 ;;
    *)
        sed -n '2,9s/^# \{0,1\}//p' "$0" >&2
        exit 2
        ;;
    esac
done

for tool in dpkg-deb readelf strip; do
    command -v "$tool" >/dev/null ||
        die "$tool is missing (dpkg-deb: apt-get install dpkg; readelf, strip: apt-get install binutils)"
done

# The workspace's version: `version = "..."` under [workspace.package].
cargo_version=$(awk '
    /^\[/ { section = $0 }
    section == "[workspace.package]" && /^version *=/ { gsub(/.*= *"|".*/, ""); print; exit }
' "$REPO/Cargo.toml")
[ -n "$cargo_version" ] || die "no version under [workspace.package] in $REPO/Cargo.toml"
# A Cargo pre-release (0.2.0-rc.1) sorts before its release in Debian only with a tilde.
version=${version:-${cargo_version/-/\~}}

if [ -z "$binary" ]; then
    say "cargo build --release --locked --bin callpark"
    (cd "$REPO" && cargo build --release --locked --bin callpark) >&2
    binary=$TARGET/release/callpark
fi
[ -x "$binary" ] || die "$binary is not an executable file"
# A binary left from another checkout would be packaged under the wrong version.
built=$("$binary" --version) || die "$binary --version failed"
[ "$built" = "callpark $cargo_version" ] ||
    die "$binary says '$built', but Cargo.toml is at $cargo_version: build it again"

case "$(readelf -h "$binary" | sed -n 's/^ *Machine: *//p')" in
"Advanced Micro Devices X86-64") arch=amd64 ;;
AArch64) arch=arm64 ;;
*) die "$binary is for a machine package.sh has no Debian architecture for: $(readelf -h "$binary" | grep Machine)" ;;
esac

# Depends: the package of every library the binary loads, libc6 at least at the newest symbol
# version the binary asks of it (a binary built on a newer Debian than the target fails here,
# at install time, instead of at start).
libc_min=$(readelf -W --version-info "$binary" | grep -o 'GLIBC_[0-9][0-9.]*' |
    sed 's/GLIBC_//' | sort -V | tail -n 1)
[ -n "$libc_min" ] || die "$binary asks no GLIBC_ symbol version: not a dynamically linked glibc binary"
depends=("libc6 (>= $libc_min)")
for lib in $(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    case "$lib" in
    libc.so.6 | libm.so.6 | libpthread.so.0 | libdl.so.2 | librt.so.1 | ld-linux-*.so.*) ;;
    libgcc_s.so.1) depends+=(libgcc-s1) ;;
    *) die "$binary links $lib, whose Debian package package.sh does not know: add it to Depends" ;;
    esac
done
depends+=(adduser)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"

install -d -m 0755 "$stage/DEBIAN" "$stage/usr/bin" "$stage/etc/callpark" "$stage/etc/default" \
    "$stage/usr/lib/systemd/system"
install -m 0755 "$binary" "$stage/usr/bin/callpark"
# Debug info is most of a binary's size; the symbol table stays, so a panic's backtrace in the
# journal still names its functions.
strip --strip-debug "$stage/usr/bin/callpark"
install -m 0644 "$REPO/contrib/callpark.service" "$stage/usr/lib/systemd/system/callpark.service"
install -m 0640 "$REPO/contrib/deb/default" "$stage/etc/default/callpark"

# The example configuration, made the installed one: the store in the state directory, and
# park off until the administrator writes (or uncomments) a [[policy]] for their phones.
awk '
    /^data_dir *= *"data"/ { sub(/"data" */, "\"/var/lib/callpark\" "); data++ }
    /^\[\[policy\]\]$/ {
        policy++
        inpolicy = 1
        print "# (Installed commented out: uncomment it, or write one for your phones, to let them park.)"
    }
    inpolicy && /^$/ { inpolicy = 0 }
    inpolicy { $0 = "# " $0 }
    { print }
    END { if (data != 1 || policy != 1) exit 1 }
' "$REPO/contrib/callpark.example.toml" >"$stage/etc/callpark/callpark.toml" ||
    die "contrib/callpark.example.toml should have one 'data_dir = \"data\"' line and one [[policy]]: update the awk in package.sh"
chmod 0644 "$stage/etc/callpark/callpark.toml"

for script in postinst prerm postrm; do
    install -m 0755 "$REPO/contrib/deb/$script" "$stage/DEBIAN/$script"
done
printf '%s\n' /etc/callpark/callpark.toml /etc/default/callpark >"$stage/DEBIAN/conffiles"
chmod 0644 "$stage/DEBIAN/conffiles"

description=$(awk -F'"' '/^description *=/ { print $2; exit }' "$REPO/Cargo.toml")
installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
{
    echo "Package: callpark"
    echo "Version: $version"
    echo "Architecture: $arch"
    echo "Maintainer: ${DEBFULLNAME:-callpark builder} <${DEBEMAIL:-$(id -un)@$(uname -n)}>"
    echo "Installed-Size: $installed_size"
    echo "Depends: $(IFS=,; echo "${depends[*]}" | sed 's/,/, /g')"
    echo "Section: net"
    echo "Priority: optional"
    echo "Description: $description"
    echo " callpark attaches to a running Asterisk (ARI) or FreeSWITCH (event socket) and takes"
    echo " over parking, orbit allocation, ringback timers and the fallback destination. Parked"
    echo " calls and their deadlines are kept in SQLite (/var/lib/callpark) across restarts."
    echo " ."
    echo " Configure /etc/callpark/callpark.toml and /etc/default/callpark, then"
    echo " systemctl enable --now callpark."
} >"$stage/DEBIAN/control"
chmod 0644 "$stage/DEBIAN/control"

mkdir -p "$out"
deb=$(cd "$out" && pwd)/callpark_${version}_${arch}.deb
# --root-owner-group: every file root:root whoever builds; the one other owner is the
# statoverride the postinst adds.
dpkg-deb --root-owner-group --build "$stage" "$deb" >&2
say "built $deb"
echo "$deb"
