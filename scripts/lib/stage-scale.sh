# Stages the images of docker-compose.scale.yml (sourced by scripts/compose-up --scale, with
# `bin` the static cryptoutil and `secrets` the secrets directory):
# - compose/build/postgres/rootfs: Debian's PostgreSQL 15 server and pg_isready with the
#   libraries they link, the share directory and time zones, a passwd entry for uid 10001,
#   and a cluster made here by initdb (as the `postgres` user: it refuses root) holding the
#   role `cryptoutil` (scram-sha-256, password in $secrets/pg-password), TLS 1.3 only with a
#   leaf for `postgres` from a CA of its own ($secrets/pg/), and pg_hba admitting that role
#   over TLS from the suite's network only;
# - compose/build/haproxy/rootfs: Debian's HAProxy with its libraries, one configuration per
#   balanced service (compose/haproxy-<service>.cfg) and cryptoutil for the health check.
# The cluster is made once per staging; the named volume postgres-data keeps the data from
# its first `up` on (docker-compose down -v removes it).
need_packages postgresql haproxy
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pgver=$(basename "$(dirname "$pgbin")")
[ "$pgver" = 15 ] || { echo "docker-compose.scale.yml names PostgreSQL 15; Debian gave $pgver" >&2; exit 1; }

copy_with_libs() { # rootfs file...
  local root=$1; shift
  local f lib
  for f in "$@"; do
    install -D -m 0755 "$f" "$root$f"
    for lib in $(ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
      [ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
    done
  done
}

echo "== stage PostgreSQL and HAProxy (docker-compose.scale.yml)"
pgroot=compose/build/postgres/rootfs
mkdir -p "$pgroot/etc" compose/build/haproxy/rootfs/etc/haproxy
copy_with_libs "$pgroot" "$pgbin/postgres" "$pgbin/pg_isready"
# The server's own modules (PL/pgSQL, dictionaries), and what they link.
pglib="$(dirname "$pgbin")/lib"
mkdir -p "$pgroot$pglib"
cp -a "$pglib/." "$pgroot$pglib/"
for so in "$pgroot$pglib"/*.so; do
  for lib in $(ldd "$so" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
    [ -e "$pgroot$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$pgroot$lib"
  done
done
mkdir -p "$pgroot/usr/share/postgresql" "$pgroot/usr/share/zoneinfo"
cp -a "/usr/share/postgresql/$pgver" "$pgroot/usr/share/postgresql/"
cp -a /usr/share/zoneinfo/. "$pgroot/usr/share/zoneinfo/"
printf 'root:x:0:0::/:/nonexistent\npostgres:x:10001:10001::/pgdata:/nonexistent\n' >"$pgroot/etc/passwd"
printf 'root:x:0:\npostgres:x:10001:\n' >"$pgroot/etc/group"

if [ ! -f "$secrets/pg/postgres.pem" ]; then
  "$bin" --data-dir "$secrets/.unused" pki issue --out "$secrets/pg" --names postgres >/dev/null
  rm -rf "$secrets/.unused"
fi
if [ ! -f "$secrets/pg-password" ]; then
  (umask 077; head -c 24 /dev/urandom | base64 -w0 | tr '+/' '-_' >"$secrets/pg-password")
fi
(umask 077; printf 'postgresql://cryptoutil:%s@postgres:5432/postgres' "$(cat "$secrets/pg-password")" >"$secrets/pg-url")
init=$(mktemp -d)
chmod 755 "$init"
cp "$secrets/pg-password" "$init/pw"
chown -R postgres:postgres "$init"
runuser -u postgres -- "$pgbin/initdb" -D "$init/pgdata" -U cryptoutil --pwfile "$init/pw" \
  --auth-host=scram-sha-256 --auth-local=reject -E UTF8 --locale=C --no-sync >/dev/null
install -m 0644 "$secrets/pg/postgres.pem" "$init/pgdata/server.crt"
install -m 0600 "$secrets/pg/postgres.key" "$init/pgdata/server.key"
cat >>"$init/pgdata/postgresql.conf" <<CONF
listen_addresses = '*'
port = 5432
unix_socket_directories = ''
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_min_protocol_version = 'TLSv1.3'
password_encryption = 'scram-sha-256'
max_connections = 200
shared_buffers = 64MB
log_destination = 'stderr'
logging_collector = off
CONF
printf 'hostssl all cryptoutil 172.30.0.0/24 scram-sha-256\nhostssl all cryptoutil 127.0.0.1/32 scram-sha-256\n' >"$init/pgdata/pg_hba.conf"
# Beside the root file system: the Dockerfile copies it owned by 10001, the mode kept (0700).
rm -rf compose/build/postgres/data
mkdir -p compose/build/postgres/data
mv "$init/pgdata" compose/build/postgres/data/pgdata
rm -rf "$init"
chown -R 10001:10001 compose/build/postgres/data/pgdata
chmod 0700 compose/build/postgres/data/pgdata

hproot=compose/build/haproxy/rootfs
copy_with_libs "$hproot" /usr/sbin/haproxy
for cfg in compose/haproxy-*.cfg; do
  install -D -m 0644 "$cfg" "$hproot/etc/haproxy/$(basename "$cfg" | sed 's/^haproxy-//')"
done
install -D -m 0755 "$bin" "$hproot/cryptoutil"
