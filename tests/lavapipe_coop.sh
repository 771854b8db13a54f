#!/usr/bin/env bash
# Runs a command (a cargo test) on a lavapipe that has cooperative matrices:
#   tests/lavapipe_coop.sh cargo test --release --test kernels cooperative
# The system's lavapipe (Debian 12, Mesa 22) has none; Mesa 26's lists 8x8x8 products with f16
# operands and f32 accumulators, so the cooperative-matrix kernels (the 8x8 variants) run here against
# their references. Mesa 26 and the libraries it needs come from Debian 13 (trixie and its backports),
# unpacked into target/lavapipe-coop without installing anything: it needs a newer C library than
# the system's, so cargo runs the test binaries through that library's dynamic loader
# (CARGO_TARGET_..._RUNNER), and VK_ICD_FILENAMES points the Vulkan loader at that lavapipe.
# The packages are fetched once (about 60 MB), from the mirror the system's apt sources name.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$PWD/target/lavapipe-coop
lib=$dir/root/usr/lib/x86_64-linux-gnu
if [ ! -f "$dir/lvp_icd.json" ]; then
  echo "== fetching Mesa's lavapipe with cooperative matrices (Debian trixie-backports) into $dir" >&2
  # The first Debian mirror of the apt sources, deb822 or one-line style.
  mirror=$({ cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true; } |
    sed -n -e 's/^URIs: *\([^ ]*debian\/*\)$/\1/p' -e 's/^deb  *\(http[^ ]*debian\/*\) .*/\1/p' | head -n 1)
  [ -n "$mirror" ] || { echo "no Debian mirror in the apt sources (/etc/apt)" >&2; exit 1; }
  rm -rf "$dir"
  mkdir -p "$dir/lists/partial" "$dir/debs/partial" "$dir/cache" "$dir/root"
  printf 'deb %s trixie main\ndeb %s trixie-backports main\n' "$mirror" "$mirror" >"$dir/sources.list"
  : >"$dir/status"
  # An empty package status, so apt fetches every dependency; nothing is installed.
  # (Debian 13's signing keys come with Debian 12's debian-archive-keyring from 2023.3+deb12u1 on.)
  apt=(-o "Dir::Etc::sourcelist=$dir/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$dir/lists"
    -o "Dir::State::status=$dir/status" -o "Dir::Cache=$dir/cache" -o "Dir::Cache::Archives=$dir/debs"
    -o APT::Default-Release=trixie -o APT::Sandbox::User=root)
  apt-get "${apt[@]}" update -qq
  apt-get "${apt[@]}" install -qq -y --download-only --no-install-recommends \
    mesa-vulkan-drivers/trixie-backports libvulkan1 >/dev/null
  for deb in "$dir"/debs/*.deb; do dpkg -x "$deb" "$dir/root"; done
  sed "s#\"library_path\": *\"[^\"]*\"#\"library_path\": \"$lib/libvulkan_lvp.so\"#" \
    "$dir/root/usr/share/vulkan/icd.d/lvp_icd.json" >"$dir/lvp_icd.json"
fi
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$lib/ld-linux-x86-64.so.2 --library-path $lib"
export VK_ICD_FILENAMES=$dir/lvp_icd.json
exec "$@"
