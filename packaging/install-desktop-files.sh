#!/usr/bin/env bash
# Install Berth's desktop integration under a prefix: the .desktop launcher, the
# AppStream metainfo and the icon theme (hicolor PNGs 16-512 and the SVG).
#
#   packaging/install-desktop-files.sh ROOT [PREFIX]
#
# ROOT is where files go (a DESTDIR, or / to install for real), PREFIX the
# installed prefix (default /usr/local). The launcher runs `berth` from PATH; pass
# BERTH_EXEC=/opt/berth/berth to point it at a bundle instead.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="${1:?usage: install-desktop-files.sh ROOT [PREFIX]}"
prefix="${2-/usr/local}"
id=io.berth.Berth
share="$root$prefix/share"

install -Dm644 "$here/resources/$id.metainfo.xml" "$share/metainfo/$id.metainfo.xml"
install -d "$share/applications"
sed "s|^Exec=berth\$|Exec=${BERTH_EXEC:-berth}|" "$here/resources/$id.desktop" \
    >"$share/applications/$id.desktop"
chmod 644 "$share/applications/$id.desktop"
(cd "$here/app/ui/resources/icons" && find hicolor -type f -name "$id.*") |
    while read -r icon; do
        install -Dm644 "$here/app/ui/resources/icons/$icon" "$share/icons/$icon"
    done

# Refresh the caches when installing for real (both tools are optional).
if [ -z "${root%/}" ]; then
    command -v update-desktop-database >/dev/null && update-desktop-database -q "$share/applications" || true
    command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -qtf "$share/icons/hicolor" || true
fi
