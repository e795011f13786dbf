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
