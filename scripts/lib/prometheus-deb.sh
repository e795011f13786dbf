# Debian's prometheus package (.deb), downloaded once into the cache and never installed:
# scripts/compose-up takes prometheus from it for the Compose image, scripts/check-alerts
# takes promtool. Prints the .deb's path.
prometheus_deb() {
  local cache="${XDG_CACHE_HOME:-$HOME/.cache}/cryptoutil/debs" deb
  mkdir -p "$cache"
  deb=$(ls "$cache"/prometheus_*.deb 2>/dev/null | head -n 1 || true)
  if [ -z "$deb" ]; then
    command -v apt-get >/dev/null || { echo "Debian's prometheus package is needed (apt-get)" >&2; return 1; }
    (cd "$cache" && { apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus; }; })
    deb=$(ls "$cache"/prometheus_*.deb | head -n 1)
  fi
  echo "$deb"
}
