#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real (root, Debian 12).
# Idempotent: does nothing when everything is present.
set -euo pipefail
packages=(
  iproute2            # network namespaces and veth for end-to-end tests
  xz-utils            # compressed agent binaries
  qemu-user-static    # runs the arm64 agent under emulation
  libc6-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross
  postgresql-client   # pg_isready
  redis-tools         # redis-cli
  redis-server        # a private server per outage test (the shared Redis is never stopped)
  btrfs-progs         # generations: btrfs on loop devices (mkfs.btrfs, btrfs subvolume/send/receive)
  patch               # GNU patch: the dry-run diff tests apply the agent's diffs with it
  busybox-static      # BusyBox sh: the Merlin hook installer must run under the router's ash;
                      # BusyBox ifup/udhcpd/udhcpc for the network capability tests; the chroots
                      # tests' stand-in Alpine root filesystem
  dosfstools          # chroots: a vfat USB disk (on a loop device) must be refused
  ifupdown-ng         # Alpine's ifup/ifdown/ifquery: the network capability applies with it
  udhcpc              # /sbin/udhcpc + its default script: what ifupdown-ng's dhcp executor runs (as on Alpine)
  iw                  # openwrt: moves Wi-Fi phys into the container (its error path is tested with the real binary)
  podman runc         # openwrt: a real container for the capability test (podman import of a local tarball; runc
                      # because crun refuses a hybrid cgroup layout)
  chromium            # the dashboard tests drive /usr/bin/chromium with playwright-core (no browser download)
  fonts-dejavu-core   # text in the dashboard screenshots
  cpio                # images: GNU cpio -itv lists and unpacks the built initramfs
  openssl             # device identity tests: foreign-CA and expired certificates, CSR checks (openssl req/x509/verify)
  qemu-system-x86     # images: boots the built initramfs (software emulation, no KVM here)
  linux-image-cloud-amd64  # images: the kernel (and its modules) the initramfs is booted with
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing Debian packages: ${missing[*]}; run as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "==> installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
