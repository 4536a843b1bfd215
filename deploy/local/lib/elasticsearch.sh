# shellcheck shell=bash
# Elasticsearch 8.19 from Maven Central's "integ-test-zip": the real server with a reduced module
# set (no analysis-common, no painless, no reindex...). Production runs the full distribution.

ES_VERSION=8.19.21 # newest 8.19 patch on Maven Central when this was written
ES_ARTIFACT="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip"
ES_ZIP="$M2_REPO/org/elasticsearch/distribution/integ-test-zip/elasticsearch/$ES_VERSION/elasticsearch-$ES_VERSION.zip"
# Unpacked under the services folder, not the cache: the cache sits under $HOME, which for root
# is mode 0700 and unreadable to the 'mercato-es' user the server runs as.
ES_HOME="$DIST_DIR/elasticsearch-$ES_VERSION"
ES_DIR="$MERCATO_SERVICES_DIR/elasticsearch" # owned by mercato-es: config, data, pid file
ES_CONF="$ES_DIR/config"
ES_PID_FILE="$ES_DIR/elasticsearch.pid"
ES_LOGS="$LOG_DIR/elasticsearch" # the server's own logs (mercato.log, JSON logs, GC logs)
ES_USER=mercato-es

elasticsearch_ports() { printf '%s\n' "$MERCATO_ES_PORT"; }
elasticsearch_log() { printf '%s\n' "$LOG_DIR/elasticsearch.log"; }
elasticsearch_timeout() { printf '%s\n' 120; }
elasticsearch_pid() { live_pid_from "$ES_PID_FILE" "org.elasticsearch.bootstrap.Elasticsearch"; }

# GET / needs the rest-root module, absent from this distribution: ask for cluster health instead.
elasticsearch_probe() {
  curl -fsS -m 5 -o /dev/null \
    "http://127.0.0.1:$MERCATO_ES_PORT/_cluster/health?wait_for_status=yellow&timeout=3s" 2>/dev/null
}

elasticsearch_fetch() {
  [[ -f $ES_HOME/.complete ]] && return 0
  if [[ ! -f $ES_ZIP ]]; then
    say "elasticsearch: downloading $ES_VERSION (first run only, ~100 MB)…"
    mvn_quiet org.apache.maven.plugins:maven-dependency-plugin:3.6.1:get \
      -Dartifact="$ES_ARTIFACT" -Dtransitive=false
  fi
  say "elasticsearch: unpacking into $ES_HOME…"
  rm -rf "$ES_HOME.partial"
  mkdir -p "$ES_HOME.partial"
  unzip -q "$ES_ZIP" -d "$ES_HOME.partial"
  # The zip holds one top folder, elasticsearch-<version>/; keep its contents only.
  mv "$ES_HOME.partial/elasticsearch-$ES_VERSION" "$ES_HOME"
  rmdir "$ES_HOME.partial"
  touch "$ES_HOME/.complete"
}

elasticsearch_user() {
  id -u "$ES_USER" >/dev/null 2>&1 && return 0
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin "$ES_USER"
}

has_es_module() { [[ -d $ES_HOME/modules/$1 ]]; }

# For 8.19.21, 'ls modules/' shows only: apm, transport-netty4, x-pack-core, x-pack-security.
# Security is on by default in 8.x (TLS + passwords) and a local dev node wants plain HTTP, so turn
# it off; the setting is written only when the module exists, in case a build ships without it.
elasticsearch_write_config() {
  {
    echo "# Written by deploy/local/services.sh on every start."
    echo "cluster.name: mercato"
    echo "node.name: mercato-local"
    echo "discovery.type: single-node"
    echo "network.host: 127.0.0.1"
    echo "http.port: $MERCATO_ES_PORT"
    echo "path.data: $ES_DIR/data"
    echo "path.logs: $ES_LOGS"
    echo "cluster.routing.allocation.disk.threshold_enabled: false"
    if has_es_module x-pack-security; then echo "xpack.security.enabled: false"; fi
  } >"$ES_CONF/elasticsearch.yml"
}

elasticsearch_prepare() {
  elasticsearch_user
  require_reachable_by "$ES_USER" "$MERCATO_SERVICES_DIR"
  elasticsearch_fetch
  install -d -o "$ES_USER" -g "$ES_USER" "$ES_DIR" "$ES_DIR/data" "$ES_DIR/tmp" "$ES_LOGS"
  if [[ ! -d $ES_CONF ]]; then
    cp -r "$ES_HOME/config" "$ES_CONF"
    chown -R "$ES_USER:$ES_USER" "$ES_CONF"
  fi
  elasticsearch_write_config
  touch "$(elasticsearch_log)"
  chown "$ES_USER:$ES_USER" "$(elasticsearch_log)" "$ES_CONF/elasticsearch.yml"
}

elasticsearch_start() {
  # It refuses to run as root. With -d the launcher returns once the node has started (or
  # failed), and the server writes its own pid into the -p file. setsid: the server must not
  # belong to the process group of whoever ran 'up' (a killed test run would take it along).
  runuser -u "$ES_USER" -- setsid env ES_JAVA_HOME="$(java_home)" ES_PATH_CONF="$ES_CONF" \
    ES_JAVA_OPTS="-Xms512m -Xmx512m" ES_TMPDIR="$ES_DIR/tmp" \
    "$ES_HOME/bin/elasticsearch" -d -p "$ES_PID_FILE" >>"$(elasticsearch_log)" 2>&1 </dev/null ||
    {
      show_log_tail "$(elasticsearch_log)"
      die "elasticsearch: failed to start, see $(elasticsearch_log) and $ES_LOGS/"
    }
}

elasticsearch_stop() {
  stop_pid elasticsearch "$1" 60
}
