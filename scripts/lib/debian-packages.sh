# Sourced by the scripts that need Debian packages: `need_packages PKG...` installs the missing
# ones with apt-get (as root, or through sudo when it needs no password), or stops at once naming
# what to install. A newcomer's machine then needs nothing installed by hand first.
need_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  local as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      as_root=(sudo -n)
    else
      echo "missing Debian packages: ${missing[*]}" >&2
      echo "install them first: sudo apt-get install ${missing[*]}" >&2
      exit 1
    fi
  fi
  if ! command -v apt-get >/dev/null; then
    echo "missing packages (named as Debian's): ${missing[*]}; this machine has no apt-get" >&2
    exit 1
  fi
  echo "== installing missing Debian packages: ${missing[*]}"
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# `need_host NAME`: NAME resolves to 127.0.0.1 through the hosts file (the ACME test proves
# control of a multi-label name over http-01 on loopback; pkilint refuses the single-label
# `localhost` in a certificate). Added as root like a package, or named as what to add.
need_host() {
  getent hosts "$1" | grep -q '^127\.0\.0\.1' && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "== naming $1 in /etc/hosts (127.0.0.1)"
    echo "127.0.0.1 $1" >> /etc/hosts
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    echo "127.0.0.1 $1" | sudo -n tee -a /etc/hosts >/dev/null
  else
    echo "$1 must resolve to 127.0.0.1: add '127.0.0.1 $1' to /etc/hosts" >&2
    exit 1
  fi
}
