# shellcheck shell=bash
# Apache Kafka 3.9.2 in KRaft mode (one process is both broker and controller), from the jars
# on Maven Central. 3.9 rather than 4.x: Kafka 4 dropped protocol versions aiokafka relies on.

KAFKA_VERSION=3.9.2
KAFKA_HOME="$MERCATO_CACHE_DIR/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_DIR="$MERCATO_SERVICES_DIR/kafka"
KAFKA_PID_FILE="$RUN_DIR/kafka.pid"
KAFKA_PROBE="$(dirname "${BASH_SOURCE[0]}")/kafka_probe.py"
# The project's venv has aiokafka; the probe falls back to the Java tools without it.
: "${MERCATO_PYTHON:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/.venv/bin/python}"

kafka_ports() { printf '%s %s\n' "$MERCATO_KAFKA_PORT" "$MERCATO_KAFKA_CONTROLLER_PORT"; }
kafka_log() { printf '%s\n' "$LOG_DIR/kafka.log"; }
kafka_timeout() { printf '%s\n' 90; }
kafka_pid() { live_pid_from "$KAFKA_PID_FILE" "kafka.Kafka"; }

kafka_java() {
  "$(java_home)/bin/java" -cp "$KAFKA_LIBS/*" \
    -Dlog4j.configuration="file:$KAFKA_DIR/log4j.properties" "$@"
}

# Health: the broker answers a metadata request (not merely an open port).
kafka_probe() {
  local bootstrap="127.0.0.1:$MERCATO_KAFKA_PORT"
  if [[ -x $MERCATO_PYTHON ]] && "$MERCATO_PYTHON" -c 'import aiokafka' 2>/dev/null; then
    "$MERCATO_PYTHON" "$KAFKA_PROBE" "$bootstrap" 5 2>/dev/null
  else
    # Slower (a JVM start) but needs only the broker's jars. Not TopicCommand: since 3.5 it lives
    # in kafka-tools, which the broker does not depend on. This one lists the brokers from a
    # metadata response, then asks each for its API versions.
    port_open "$MERCATO_KAFKA_PORT" &&
      timeout 30 "$(java_home)/bin/java" -cp "$KAFKA_LIBS/*" \
        -Dlog4j.configuration="file:$KAFKA_DIR/log4j-tools.properties" \
        kafka.admin.BrokerApiVersionsCommand --bootstrap-server "$bootstrap" >/dev/null 2>&1
  fi
}

# A throwaway pom whose only job is to make maven resolve the broker's runtime classpath.
kafka_write_pom() {
  cat >"$KAFKA_HOME/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by deploy/local/services.sh: resolves the Kafka broker's runtime jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.mercato</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>1.7.36</version>
    </dependency>
  </dependencies>
  <build>
    <pluginManagement>
      <plugins>
        <!-- Pinned: left alone, maven picked dependency-plugin 2.8 here. -->
        <plugin>
          <groupId>org.apache.maven.plugins</groupId>
          <artifactId>maven-dependency-plugin</artifactId>
          <version>3.6.1</version>
        </plugin>
      </plugins>
    </pluginManagement>
  </build>
</project>
EOF
}

# Jars are fetched into a scratch folder and renamed at the end, so an interrupted download
# never looks complete.
kafka_fetch_jars() {
  [[ -f $KAFKA_LIBS/.complete ]] && return 0
  say "kafka: downloading jars (first run only)…"
  mkdir -p "$KAFKA_HOME"
  kafka_write_pom
  rm -rf "$KAFKA_LIBS.partial"
  mvn_quiet -f "$KAFKA_HOME/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$KAFKA_LIBS.partial" -DincludeScope=runtime
  touch "$KAFKA_LIBS.partial/.complete"
  rm -rf "$KAFKA_LIBS"
  mv "$KAFKA_LIBS.partial" "$KAFKA_LIBS"
}

kafka_write_config() {
  cat >"$KAFKA_DIR/server.properties" <<EOF
# Written by deploy/local/services.sh on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$MERCATO_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$MERCATO_KAFKA_PORT,CONTROLLER://127.0.0.1:$MERCATO_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$MERCATO_KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=1
auto.create.topics.enable=true
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  # Broker log: one rolling file. Tools (format, probe fallback) log warnings to stderr.
  cat >"$KAFKA_DIR/log4j.properties" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$(kafka_log)
log4j.appender.file.MaxFileSize=50MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
EOF
  cat >"$KAFKA_DIR/log4j-tools.properties" <<'EOF'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

# KRaft needs its log folder formatted with a cluster id; the id is generated once and kept.
kafka_format_storage() {
  local id_file="$KAFKA_DIR/cluster.id" cluster_id
  [[ -f $KAFKA_DIR/data/meta.properties ]] && return 0
  if [[ ! -s $id_file ]]; then
    kafka_java kafka.tools.StorageTool random-uuid >"$id_file.tmp"
    mv "$id_file.tmp" "$id_file"
  fi
  cluster_id=$(<"$id_file")
  kafka_java kafka.tools.StorageTool format -t "$cluster_id" \
    -c "$KAFKA_DIR/server.properties" --ignore-formatted >>"$(kafka_log)" 2>&1 ||
    die "kafka: formatting the storage failed, see $(kafka_log)"
}

# Each partition keeps its segment files open, so past about a quarter of the open-file limit
# (20,000 on these machines, and not raisable) the broker dies with "Too many open files".
kafka_partition_budget() {
  local limit
  limit=$(ulimit -n)
  [[ $limit =~ ^[0-9]+$ ]] || limit=1048576
  printf '%s\n' $((limit / 4))
}

# Test runs delete their topics when they finish; a run that was killed cannot. When leftovers
# would stop the broker from starting at all, start from an empty one: the events live in
# Postgres, and `mercato projections replay` refills read models from there.
kafka_drop_overfull_data() {
  local data="$KAFKA_DIR/data" count budget
  [[ -d $data ]] || return 0
  count=$(find "$data" -mindepth 1 -maxdepth 1 -type d -name '*-[0-9]*' | wc -l)
  budget=$(kafka_partition_budget)
  ((count > budget)) || return 0
  say "kafka: $data holds $count partitions, more than the open-file limit allows ($budget);"
  say "kafka: they are topics of earlier test runs — starting from an empty broker"
  rm -rf "$data"
}

kafka_prepare() {
  [[ -x $(java_home)/bin/java ]] || die "kafka: no java at $(java_home)/bin/java (need Java 17)"
  kafka_fetch_jars
  kafka_drop_overfull_data
  mkdir -p "$KAFKA_DIR/data"
  kafka_write_config
  kafka_format_storage
}

kafka_start() {
  local pid
  # setsid: the broker must not die with the terminal or process group that ran 'up'.
  # (No job control in a script, so setsid execs in place and $! is the JVM's pid.)
  nohup setsid "$(java_home)/bin/java" -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$KAFKA_DIR/log4j.properties" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_DIR/server.properties" \
    >>"$LOG_DIR/kafka.stdout.log" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "$pid" >"$KAFKA_PID_FILE"
  sleep 1
  pid_matches "$pid" kafka.Kafka || {
    show_log_tail "$LOG_DIR/kafka.stdout.log"
    die "kafka: the broker exited at once"
  }
}

kafka_stop() {
  # SIGTERM triggers a controlled shutdown; give it time to flush and close the logs.
  stop_pid kafka "$1" 60
  rm -f "$KAFKA_PID_FILE"
}
