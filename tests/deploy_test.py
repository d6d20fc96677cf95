#!/usr/bin/env python3
"""Checks deploy/ against itself and against the binaries it runs.

No Docker engine or Kubernetes cluster runs here, so this checks what can
be checked without one:

- the Compose files pass `docker-compose config` (no daemon needed) and
  reserve one distinct GPU per worker, keep the store on a named volume,
  give every worker the same data set volume (read-only, before the
  image's built-in sets),
  run TLS and tokens everywhere, mount the secrets they name, and
  health-check every service with lrtune-health over TLS;
- the Kubernetes manifests parse, build with `kubectl kustomize` when
  kubectl is there, and agree with each other (images, TLS, exec probes
  through lrtune-health, GPU limits, secrets, ports, NetworkPolicy labels);
- every --flag that compose, Kubernetes and the Dockerfiles pass to
  lrtune-server, lrtune-worker or lrtune-health appears in that binary's
  --help, so a flag renamed in the code and not in deploy/ fails here;
- the Dockerfiles pin every base image, build no probe in a Go stage, run
  as a non-root user, install no build tools in their final stage, and
  ship lrtune-health where a health check runs it;
- scripts/local-cluster.sh starts the same topology on loopback with TLS
  from a CA made on the fly, lrtune-health finds it SERVING through that
  CA, a range test runs on it (with LRTUNE_CLI_BIN, once the CLI dials
  TLS), and it stops.

    LRTUNE_SERVER_BIN=build/server/lrtune-server \
    LRTUNE_WORKER_BIN=build/worker/lrtune-worker \
    LRTUNE_HEALTH_BIN=build/server/lrtune-health \
    LRTUNE_CLI_BIN=build/client/lrtune python3 tests/deploy_test.py

The binaries may also be given as arguments: server worker health [cli].
Without them the flag and local-cluster checks are skipped (ctest always
passes them).
"""
import contextlib
import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPLOY = os.path.join(REPO, "deploy")
COMPOSE_DIR = os.path.join(DEPLOY, "compose")
K8S_DIR = os.path.join(DEPLOY, "k8s")
DOCKER_DIR = os.path.join(DEPLOY, "docker")

BINS = {
    "server": os.environ.get("LRTUNE_SERVER_BIN", ""),
    "worker": os.environ.get("LRTUNE_WORKER_BIN", ""),
    "health": os.environ.get("LRTUNE_HEALTH_BIN", ""),
    "cli": os.environ.get("LRTUNE_CLI_BIN", ""),
}
if __name__ == "__main__":  # before the skip decorators read BINS
    for _key, _value in zip(("server", "worker", "health", "cli"),
                            sys.argv[1:5]):
        BINS[_key] = _value

# The health client every health check and exec probe runs (no Go binary).
HEALTH = "lrtune-health"

# What an image may not install in its final stage.
BUILD_TOOLS = re.compile(
    r"(^|\s)(gcc(-\d+)?|g\+\+(-\d+)?|cpp|clang(-\d+)?|cmake|make|ninja-build|"
    r"build-essential|golang(-go)?|cuda-toolkit\S*|cuda-nvcc\S*|\S+-dev)(\s|$)")


def flags_of(args):
    """The --flags in a command line (list of strings); --x=y gives --x."""
    return {a.split("=", 1)[0] for a in args
            if isinstance(a, str) and re.match(r"^--[a-z][a-z0-9-]*", a)}


def arg_value(args, flag):
    """The value after `flag` (or in `flag=value`); None when absent."""
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def help_flags(binary):
    out = subprocess.run([binary, "--help"], capture_output=True, text=True,
                         timeout=60)
    return set(re.findall(r"--[a-z][a-z0-9-]*", out.stdout + out.stderr))


@functools.lru_cache(maxsize=None)
def compose_config(*files):
    """`docker-compose config` of the files, parsed; fails on an error."""
    exe = shutil.which("docker-compose")
    if exe is None:
        raise AssertionError("docker-compose not found: install Debian's "
                             "docker-compose package (scripts/setup.sh)")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LRTUNE_", "COMPOSE_", "DOCKER_"))}
    cmd = [exe]
    for f in files:
        cmd += ["-f", os.path.join(COMPOSE_DIR, f)]
    out = subprocess.run(cmd + ["config"], capture_output=True, text=True,
                         cwd=COMPOSE_DIR, env=env, timeout=120)
    if out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} config failed:\n{out.stderr}")
    return yaml.safe_load(out.stdout)


def is_worker(name):
    return name.startswith("worker-")


def gpu_reservations(service):
    devices = (((service.get("deploy") or {}).get("resources") or {})
               .get("reservations") or {}).get("devices") or []
    return [d for d in devices if "gpu" in (d.get("capabilities") or [])]


def active_services(config):
    """Services `docker-compose up` starts (no profile given)."""
    return {n: s for n, s in config["services"].items()
            if not s.get("profiles")}


def health_args(command):
    """The arguments of the lrtune-health call in a health check or probe
    command (["CMD", ...], ["CMD-SHELL", "..."], an exec list or a shell
    string); None when it does not run lrtune-health."""
    if isinstance(command, str):
        words = shlex.split(command)
    elif command and command[0] == "CMD-SHELL":
        words = shlex.split(command[1])
    else:
        words = [w for w in command if w != "CMD"]
    for i, w in enumerate(words):
        if os.path.basename(w) == HEALTH:
            rest = words[i + 1:]
            for j, r in enumerate(rest):  # up to "||", ";" or "&&"
                if r in ("||", "&&", ";"):
                    return rest[:j]
            return rest
    return None


def seconds(duration):
    """Compose durations ("5s", "1m30s", "500ms") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(duration))
    return sum(float(n) * units[u] for n, u in parts)


class ComposeTest(unittest.TestCase):
    VARIANTS = {
        "4 GPUs": ("docker-compose.yml",),
        "8 GPUs": ("docker-compose.yml", "docker-compose.gpus8.yml"),
        "CPU": ("docker-compose.yml", "docker-compose.cpu.yml"),
    }

    @classmethod
    def setUpClass(cls):
        cls.configs = {k: compose_config(*v) for k, v in cls.VARIANTS.items()}

    def test_gpu_workers_hold_one_distinct_gpu_each(self):
        for variant, want in (("4 GPUs", 4), ("8 GPUs", 8)):
            services = active_services(self.configs[variant])
            workers = {n: s for n, s in services.items() if is_worker(n)}
            self.assertEqual(len(workers), want, variant)
            ids = []
            for name, s in workers.items():
                res = gpu_reservations(s)
                self.assertEqual(len(res), 1, f"{variant} {name}")
                self.assertEqual(res[0].get("driver"), "nvidia", name)
                self.assertEqual(len(res[0].get("device_ids") or []), 1,
                                 f"{variant} {name}: one device_id")
                self.assertNotIn("count", res[0], name)
                dev = res[0]["device_ids"][0]
                self.assertEqual(name, f"worker-gpu{dev}",
                                 f"{variant}: the name says which GPU")
                # The container sees its one GPU as cuda:0.
                self.assertEqual(arg_value(s["command"], "--devices"),
                                 "cuda:0", name)
                ids.append(dev)
            self.assertEqual(sorted(ids, key=int),
                             [str(i) for i in range(want)], variant)

    def test_workers_agree_and_reach_the_coordinator(self):
        for variant, config in self.configs.items():
            services = active_services(config)
            coord = services["coordinator"]
            port = port_of(arg_value(coord["command"], "--listen"))
            workers = {n: s for n, s in services.items() if is_worker(n)}
            self.assertTrue(workers, variant)
            ids = set()
            for name, s in workers.items():
                self.assertEqual(arg_value(s["command"], "--server"),
                                 f"coordinator:{port}", f"{variant} {name}")
                self.assertEqual(
                    s["depends_on"]["coordinator"]["condition"],
                    "service_healthy", name)
                ids.add(arg_value(s["command"], "--worker-id"))
                self.assertTrue(s.get("image"), name)
            if variant != "CPU":
                self.assertEqual(len(ids), len(workers),
                                 f"{variant}: distinct --worker-id")
                images = {s["image"] for s in workers.values()}
                self.assertEqual(len(images), 1, f"{variant}: one image")
                flagsets = {tuple(sorted(flags_of(s["command"])))
                            for s in workers.values()}
                self.assertEqual(len(flagsets), 1,
                                 f"{variant}: the same flags on every worker")

    def test_cpu_override_starts_no_gpu_worker(self):
        services = active_services(self.configs["CPU"])
        self.assertIn("worker-cpu", services)
        self.assertEqual(
            arg_value(services["worker-cpu"]["command"], "--devices"), "cpu")
        for name, s in services.items():
            self.assertEqual(gpu_reservations(s), [], name)
        self.assertEqual(services["worker-cpu"]["build"]["dockerfile"],
                         "deploy/docker/Dockerfile.worker-cpu")

    def test_store_on_a_named_volume(self):
        for variant, config in self.configs.items():
            coord = config["services"]["coordinator"]
            db = arg_value(coord["command"], "--db")
            self.assertTrue(db, variant)
            mounts = [v for v in coord.get("volumes", [])
                      if os.path.dirname(db) == _target(v)]
            self.assertEqual(len(mounts), 1, f"{variant}: a volume at {db}")
            source = _source(mounts[0])
            self.assertIn(source, config.get("volumes") or {},
                          f"{variant}: {source} is a named volume")

    def test_workers_share_one_checkpoint_volume(self):
        # A trial resumes from its checkpoint only on a worker that sees the
        # file its dead worker wrote: every worker mounts the same named
        # volume over its --checkpoint-dir.
        for variant, config in self.configs.items():
            workers = {n: s for n, s in active_services(config).items()
                       if n != "coordinator"}
            sources = set()
            for name, s in workers.items():
                ckpt = arg_value(s["command"], "--checkpoint-dir")
                self.assertTrue(ckpt, f"{variant} {name}: --checkpoint-dir")
                mounts = [v for v in s.get("volumes", [])
                          if ckpt == _target(v)
                          or ckpt.startswith(_target(v).rstrip("/") + "/")]
                self.assertEqual(len(mounts), 1,
                                 f"{variant} {name}: a volume over {ckpt}")
                sources.add(_source(mounts[0]))
            self.assertEqual(len(sources), 1,
                             f"{variant}: one volume for all: {sources}")
            self.assertIn(sources.pop(), config.get("volumes") or {},
                          f"{variant}: a named volume")

    def test_workers_read_one_dataset_volume_then_the_image(self):
        # Data sets by reference: every worker sees the same sets, so the
        # first of its --data-dir directories is one volume for all,
        # read-only; the image's built-in sets stay in the list after it.
        for variant, config in self.configs.items():
            workers = {n: s for n, s in active_services(config).items()
                       if n != "coordinator"}
            sources = set()
            for name, s in workers.items():
                dirs = (arg_value(s["command"], "--data-dir") or "").split(":")
                self.assertEqual(dirs[1:],
                                 ["/usr/local/share/lrtune/datasets"],
                                 f"{variant} {name}: --data-dir {dirs}")
                mounts = [v for v in s.get("volumes", [])
                          if _target(v) == dirs[0]]
                self.assertEqual(len(mounts), 1,
                                 f"{variant} {name}: a volume at {dirs[0]}")
                mount = mounts[0]
                read_only = (mount.get("read_only") if isinstance(mount, dict)
                             else mount.endswith(":ro"))
                self.assertTrue(read_only, f"{variant} {name}: read-only")
                sources.add(_source(mount))
            self.assertEqual(len(sources), 1,
                             f"{variant}: one data set volume: {sources}")

    def test_secrets_are_mounted_where_used(self):
        for variant, config in self.configs.items():
            declared = config.get("secrets") or {}
            for name, s in active_services(config).items():
                attached = {x["source"] if isinstance(x, dict) else x
                            for x in s.get("secrets", [])}
                for x in attached:
                    self.assertIn(x, declared, f"{variant} {name}")
                    self.assertIn("file", declared[x], x)
                used = set(re.findall(
                    r"/run/secrets/([^\s,=\"']+)",
                    " ".join(s["command"] + s["healthcheck"]["test"])))
                self.assertTrue(used <= attached,
                                f"{variant} {name}: uses {used - attached} "
                                "without mounting them")
            for name, s in active_services(config).items():
                for flag in ("--tokens-file", "--tls-cert", "--tls-key",
                             "--token-file", "--tls-ca"):
                    path = arg_value(s["command"], flag)
                    if path is not None:
                        self.assertTrue(path.startswith("/run/secrets/"),
                                        f"{variant} {name}: {flag} {path}")
                if name == "coordinator":
                    self.assertTrue(arg_value(s["command"], "--tokens-file"),
                                    f"{variant}: tokens are required")
                else:
                    self.assertTrue(arg_value(s["command"], "--token-file"),
                                    f"{variant} {name}: a worker token")

    def test_tls_and_tokens_everywhere(self):
        for variant, config in self.configs.items():
            services = active_services(config)
            coord = services["coordinator"]["command"]
            self.assertNotIn("--insecure", coord, variant)
            for flag in ("--tokens-file", "--tls-cert", "--tls-key"):
                self.assertTrue(arg_value(coord, flag), f"{variant}: {flag}")
            for name, s in services.items():
                if is_worker(name):
                    for flag in ("--token-file", "--tls-ca"):
                        self.assertTrue(arg_value(s["command"], flag),
                                        f"{variant} {name}: {flag}")

    def test_health_checks_dial_tls_like_their_service(self):
        for variant, config in self.configs.items():
            services = active_services(config)
            coord = services["coordinator"]
            port = port_of(arg_value(coord["command"], "--listen"))
            dialed = set()
            for name, s in services.items():
                probe = health_args(s["healthcheck"]["test"])
                self.assertIsNotNone(probe, f"{variant} {name}: {HEALTH}")
                ca = arg_value(probe, "--tls-ca")
                self.assertTrue(ca and ca.startswith("/run/secrets/"),
                                f"{variant} {name}: TLS health check")
                # The probe answers before compose gives up on it, so its
                # own one-line reason reaches `docker inspect`.
                timeout = float(arg_value(probe, "--timeout") or 5)
                self.assertLess(timeout, seconds(s["healthcheck"]["timeout"]),
                                f"{variant} {name}: --timeout")
                if is_worker(name):
                    # What the worker dials, trusting what the worker trusts.
                    self.assertEqual(arg_value(probe, "--addr"),
                                     arg_value(s["command"], "--server"),
                                     f"{variant} {name}")
                    self.assertEqual(ca, arg_value(s["command"], "--tls-ca"),
                                     f"{variant} {name}")
                    dialed.add(arg_value(s["command"], "--server")
                               .rsplit(":", 1)[0])
            probe = health_args(coord["healthcheck"]["test"])
            self.assertEqual(arg_value(probe, "--addr"), f"127.0.0.1:{port}",
                             variant)
            # The name the certificate must carry for the workers.
            self.assertEqual({arg_value(probe, "--tls-server-name")}, dialed,
                             f"{variant}: --tls-server-name")

    def test_every_service_restarts_and_is_health_checked(self):
        for variant, config in self.configs.items():
            for name, s in active_services(config).items():
                self.assertIn(s.get("restart"), ("unless-stopped", "always"),
                              f"{variant} {name}")
                test = s.get("healthcheck", {}).get("test")
                self.assertTrue(test and test[0] in ("CMD", "CMD-SHELL"),
                                f"{variant} {name}: a healthcheck")
                self.assertIsNotNone(health_args(test), name)
            coord = config["services"]["coordinator"]
            port = port_of(arg_value(coord["command"], "--listen"))
            self.assertIn(port, [int(p["target"]) if isinstance(p, dict)
                                 else port_of(p.split("/")[0])
                                 for p in coord["ports"]])

    def test_metrics_only_on_the_hosts_loopback(self):
        for variant, config in self.configs.items():
            coord = config["services"]["coordinator"]
            metrics = arg_value(coord["command"], "--metrics-listen")
            if metrics is None:
                continue
            mport = port_of(metrics)
            for p in coord["ports"]:
                target = (int(p["target"]) if isinstance(p, dict)
                          else port_of(p.split("/")[0]))
                if target == mport:
                    published = p if isinstance(p, str) else p.get("host_ip")
                    self.assertTrue(str(published).startswith("127.0.0.1"),
                                    f"{variant}: metrics published as {p}")


def _target(volume):
    if isinstance(volume, dict):
        return volume["target"]
    return volume.split(":")[1]


def _source(volume):
    if isinstance(volume, dict):
        return volume["source"]
    return volume.split(":")[0]


def load_k8s():
    docs = []
    for f in sorted(os.listdir(K8S_DIR)):
        if f.endswith(".yaml") and f != "kustomization.yaml":
            with open(os.path.join(K8S_DIR, f)) as fh:
                docs += [(f, d) for d in yaml.safe_load_all(fh) if d]
    return docs


def containers_of(doc):
    return doc["spec"]["template"]["spec"]["containers"]


def matches(selector, labels):
    return all(labels.get(k) == v
               for k, v in (selector.get("matchLabels") or {}).items())


class KubernetesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.docs = load_k8s()
        cls.by_kind = {}
        for f, d in cls.docs:
            cls.by_kind.setdefault(d["kind"], []).append(d)
        with open(os.path.join(K8S_DIR, "kustomization.yaml")) as fh:
            cls.kustomization = yaml.safe_load(fh)
        (cls.sts,) = cls.by_kind["StatefulSet"]
        (cls.workers,) = cls.by_kind["Deployment"]
        cls.coord = containers_of(cls.sts)[0]
        cls.worker = containers_of(cls.workers)[0]
        cls.port = port_of(arg_value(cls.coord["args"], "--listen"))

    def test_kustomization_lists_existing_files(self):
        for r in self.kustomization["resources"]:
            self.assertTrue(os.path.exists(os.path.join(K8S_DIR, r)), r)
        listed = set(self.kustomization["resources"])
        for f, d in self.docs:
            if d["kind"] != "Secret":  # secrets come from secretGenerator
                self.assertIn(f, listed)

    def test_images_are_pinned(self):
        for f, d in self.docs:
            if d["kind"] in ("StatefulSet", "Deployment"):
                for c in containers_of(d):
                    self.assertRegex(c["image"], r":[\w.-]+$|@sha256:", f)
                    self.assertFalse(c["image"].endswith(":latest"), f)
        for i in self.kustomization.get("images", []):
            self.assertNotEqual(i.get("newTag", "latest"), "latest")

    def test_coordinator_statefulset_keeps_its_store(self):
        self.assertEqual(self.sts["spec"]["replicas"], 1)
        claims = {c["metadata"]["name"]
                  for c in self.sts["spec"]["volumeClaimTemplates"]}
        db = arg_value(self.coord["args"], "--db")
        mount = [m for m in self.coord["volumeMounts"]
                 if m["mountPath"] == os.path.dirname(db)]
        self.assertEqual(len(mount), 1, "a mount at the --db directory")
        self.assertIn(mount[0]["name"], claims)
        self.assertGreaterEqual(
            self.sts["spec"]["template"]["spec"]
            ["terminationGracePeriodSeconds"], 10)

    def test_services_match_the_listen_port(self):
        services = {s["metadata"]["name"]: s for s in self.by_kind["Service"]}
        self.assertIn(self.sts["spec"]["serviceName"], services)
        self.assertEqual(
            services[self.sts["spec"]["serviceName"]]["spec"]["clusterIP"],
            "None", "the governing Service is headless")
        ports = {p["name"]: p["containerPort"] for p in self.coord["ports"]}
        self.assertEqual(ports["grpc"], self.port)
        labels = self.sts["spec"]["template"]["metadata"]["labels"]
        server = arg_value(self.worker["args"], "--server")
        host, wport = server.rsplit(":", 1)
        self.assertIn(host, services, "workers dial a Service by name")
        svc = services[host]["spec"]
        self.assertTrue(all(labels.get(k) == v
                            for k, v in svc["selector"].items()))
        self.assertIn(int(wport), [p["port"] for p in svc["ports"]
                                   if p["targetPort"] in ("grpc", self.port)])
        metrics = arg_value(self.coord["args"], "--metrics-listen")
        if metrics:
            self.assertEqual(ports["metrics"], port_of(metrics))

    def test_probes_check_grpc_health_on_the_listen_port(self):
        tls = arg_value(self.coord["args"], "--tls-cert") is not None
        server = arg_value(self.worker["args"], "--server")
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = self.coord.get(kind)
            self.assertIsNotNone(probe, kind)
            if "grpc" in probe:
                # Kubernetes' own gRPC probe cannot dial TLS.
                self.assertFalse(tls, f"{kind}: a grpc probe on a TLS port")
                self.assertEqual(probe["grpc"]["port"], self.port, kind)
                continue
            args = health_args(probe["exec"]["command"])
            self.assertIsNotNone(args, f"{kind} runs {HEALTH}")
            self.assertEqual(arg_value(args, "--addr"),
                             f"127.0.0.1:{self.port}", kind)
            ca = arg_value(args, "--tls-ca")
            self.assertEqual(ca is not None, tls, f"{kind}: TLS as served")
            if ca:
                self.assertTrue(self._mounted(self.sts, self.coord, ca), ca)
                # The name the workers dial, which the certificate carries.
                self.assertEqual(arg_value(args, "--tls-server-name"),
                                 server.rsplit(":", 1)[0], kind)
            timeout = float(arg_value(args, "--timeout") or 5)
            self.assertLess(timeout, probe.get("timeoutSeconds", 1), kind)

    def test_tls_and_tokens_everywhere(self):
        self.assertNotIn("--insecure", self.coord["args"])
        for flag in ("--tokens-file", "--tls-cert", "--tls-key"):
            self.assertTrue(arg_value(self.coord["args"], flag), flag)
        for flag in ("--token-file", "--tls-ca"):
            self.assertTrue(arg_value(self.worker["args"], flag), flag)
        # The workers get the CA, never the server's key.
        key = arg_value(self.coord["args"], "--tls-key")
        volumes = self.workers["spec"]["template"]["spec"]["volumes"]
        key_secret = [v["secret"]["secretName"] for v in
                      self.sts["spec"]["template"]["spec"]["volumes"]
                      for m in self.coord["volumeMounts"]
                      if m["name"] == v["name"] and "secret" in v
                      and m["mountPath"] == os.path.dirname(key)]
        self.assertEqual(len(key_secret), 1)
        self.assertNotIn(key_secret[0],
                         [v.get("secret", {}).get("secretName")
                          for v in volumes])

    @unittest.skipUnless(shutil.which("kubectl"), "kubectl not found")
    def test_kustomize_builds_with_placeholder_secrets(self):
        with tempfile.TemporaryDirectory() as tmp:
            copy = os.path.join(tmp, "k8s")
            shutil.copytree(K8S_DIR, copy)
            for g in self.kustomization["secretGenerator"]:
                for f in g["files"]:
                    with open(os.path.join(copy, f.split("=", 1)[1]),
                              "w") as fh:
                        fh.write("placeholder\n")
            out = subprocess.run(["kubectl", "kustomize", copy],
                                 capture_output=True, text=True, timeout=120)
            self.assertEqual(out.returncode, 0, out.stderr)
            built = [d for d in yaml.safe_load_all(out.stdout) if d]
        kinds = sorted(d["kind"] for d in built)
        self.assertEqual(kinds.count("Secret"),
                         len(self.kustomization["secretGenerator"]))
        for d in built:
            if d["kind"] != "Namespace":
                self.assertEqual(d["metadata"].get("namespace"), "lrtune",
                                 d["metadata"]["name"])
            if d["kind"] in ("StatefulSet", "Deployment"):
                for c in containers_of(d):
                    self.assertTrue(c["image"].startswith(
                        "registry.example.com/"), c["image"])

    def test_workers_read_the_dataset_claim_then_the_image(self):
        dirs = arg_value(self.worker["args"], "--data-dir").split(":")
        self.assertEqual(dirs[1:], ["/usr/local/share/lrtune/datasets"])
        (mount,) = [m for m in self.worker["volumeMounts"]
                    if m["mountPath"] == dirs[0]]
        self.assertTrue(mount.get("readOnly"))
        volumes = {v["name"]: v
                   for v in self.workers["spec"]["template"]["spec"]["volumes"]}
        claim = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
        claims = {d["metadata"]["name"]: d
                  for d in self.by_kind.get("PersistentVolumeClaim", [])}
        self.assertIn(claim, claims)
        # Every worker pod, on any node, mounts it.
        self.assertIn("ReadWriteMany", claims[claim]["spec"]["accessModes"])

    def test_workers_request_one_gpu_each(self):
        res = self.worker["resources"]
        self.assertEqual(str(res["limits"]["nvidia.com/gpu"]), "1")
        self.assertEqual(arg_value(self.worker["args"], "--devices"),
                         "cuda:0")

    def test_every_container_has_requests_and_limits(self):
        for f, d in self.docs:
            if d["kind"] in ("StatefulSet", "Deployment"):
                for c in containers_of(d):
                    for k in ("requests", "limits"):
                        self.assertIn("memory", c["resources"][k], f)
                        self.assertIn("cpu", c["resources"][k], f)
                    self.assertTrue(
                        d["spec"]["template"]["spec"]["securityContext"]
                        ["runAsNonRoot"], f)

    def _mounted(self, workload, container, path):
        """True when `path` is a key of a Secret mounted in the container,
        and that Secret exists (generated and in the example file)."""
        volumes = {v["name"]: v
                   for v in workload["spec"]["template"]["spec"]["volumes"]}
        generated = {g["name"]: g
                     for g in self.kustomization["secretGenerator"]}
        examples = {d["metadata"]["name"]: d
                    for d in self.by_kind.get("Secret", [])}
        for m in container["volumeMounts"]:
            if os.path.dirname(path) != m["mountPath"]:
                continue
            secret = volumes[m["name"]].get("secret")
            if secret is None:
                return False
            name, key = secret["secretName"], os.path.basename(path)
            keys = [f.split("=", 1)[0] for f in generated[name]["files"]]
            return (key in keys and
                    key in examples[name].get("stringData", {}))
        return False

    def test_secret_files_in_args_are_mounted_secrets(self):
        self.assertTrue(arg_value(self.coord["args"], "--tokens-file"))
        self.assertTrue(arg_value(self.worker["args"], "--token-file"))
        for d, c in ((self.sts, self.coord), (self.workers, self.worker)):
            for flag in ("--tokens-file", "--tls-cert", "--tls-key",
                         "--token-file", "--tls-ca", "--tls-client-ca"):
                path = arg_value(c["args"], flag)
                if path:
                    self.assertTrue(self._mounted(d, c, path),
                                    f"{flag} {path} is a mounted Secret key")

    def test_secret_templates_hold_no_real_values(self):
        for s in self.by_kind.get("Secret", []):
            self.assertNotIn("data", s, "stringData placeholders only")
            for key, value in s["stringData"].items():
                for token in re.findall(r"\S{16,}", value):
                    self.assertIn("REPLACE_ME", token, f"{key}: {token}")
        for g in self.kustomization["secretGenerator"]:
            for f in g["files"]:
                self.assertTrue(f.split("=", 1)[1].startswith("secrets/"))
        with open(os.path.join(K8S_DIR, "secrets", ".gitignore")) as fh:
            self.assertIn("*", fh.read().split())

    def test_network_policy_admits_workers_and_clients_only(self):
        (policy,) = self.by_kind["NetworkPolicy"]
        spec = policy["spec"]
        coord_labels = self.sts["spec"]["template"]["metadata"]["labels"]
        worker_labels = self.workers["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(matches(spec["podSelector"], coord_labels))
        self.assertIn("Ingress", spec["policyTypes"])
        grpc_rules = [r for r in spec["ingress"]
                      if self.port in [p["port"] for p in r["ports"]]]
        self.assertEqual(len(grpc_rules), 1)
        peers = grpc_rules[0]["from"]
        self.assertTrue(peers, "an empty from admits everyone")
        for p in peers:
            self.assertTrue(p.get("podSelector", {}).get("matchLabels"),
                            f"{p}: label-selected pods only")
        self.assertTrue(any(matches(p["podSelector"], worker_labels)
                            and "namespaceSelector" not in p for p in peers),
                        "workers are admitted")
        self.assertTrue(any(not matches(p["podSelector"], worker_labels)
                            for p in peers), "clients are admitted")
        for r in spec["ingress"]:
            self.assertTrue(r.get("from"), "no rule open to everyone")


def read_dockerfile(path):
    """(instruction, argument) pairs, continuation lines joined."""
    with open(path) as fh:
        lines = fh.read().splitlines()
    out, buf = [], ""
    for line in lines:
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue
        buf += line.rstrip()
        if buf.endswith("\\"):
            buf = buf[:-1] + " "
            continue
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def stages(instructions):
    """[(image, name, [(instr, arg), ...])] with global ARG defaults
    substituted in the image; the first entry's image is None (globals)."""
    result = [(None, None, [])]
    defaults = {}
    for word, arg in instructions:
        if word == "FROM":
            parts = arg.split()
            image = [p for p in parts if not p.startswith("--")][0]
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)",
                           lambda m: defaults.get(m.group(1) or m.group(2),
                                                  "UNSET"), image)
            name = parts[-1] if len(parts) >= 3 and \
                parts[-2].upper() == "AS" else None
            result.append((image, name, []))
        else:
            if word == "ARG" and len(result) == 1 and "=" in arg:
                k, v = arg.split("=", 1)
                defaults[k] = v
            result[-1][2].append((word, arg))
    return result


DOCKERFILES = ["Dockerfile.server", "Dockerfile.worker-cpu",
               "Dockerfile.worker-cuda"]


def expand_env(text, body):
    """`text` with $VAR and ${VAR} replaced by the stage's ENV values."""
    env = {}
    for w, a in body:
        if w == "ENV" and "=" in a.split()[0]:
            for word in shlex.split(a):
                k, _, v = word.partition("=")
                env[k] = v
    return re.sub(r"\$\{(\w+)\}|\$(\w+)",
                  lambda m: env.get(m.group(1) or m.group(2), m.group(0)),
                  text)


def images_with_health():
    """The Dockerfiles whose final stage puts lrtune-health on the PATH,
    copied from a stage that builds it."""
    result = set()
    for f in DOCKERFILES:
        st = stages(read_dockerfile(os.path.join(DOCKER_DIR, f)))
        builds = {name for _, name, body in st[1:] for w, a in body
                  if w == "RUN" and re.search(r"--target [^&]*\b" + HEALTH,
                                              a)}
        for w, a in st[-1][2]:
            m = re.match(r"--from=(\S+)\s+\S*/" + HEALTH +
                         r"\s+/usr/(local/)?bin/(" + HEALTH + r")?$", a)
            if w == "COPY" and m and m.group(1) in builds:
                result.add(f)
    return result


class DockerfileTest(unittest.TestCase):
    def test_every_from_is_pinned(self):
        for f in DOCKERFILES:
            st = stages(read_dockerfile(os.path.join(DOCKER_DIR, f)))
            names = {n for _, n, _ in st if n}
            for image, _, _ in st[1:]:
                if image in names:
                    continue
                self.assertNotIn("UNSET", image, f"{f}: {image}")
                self.assertRegex(image, r"^[\w./-]+(:[\w.-]+)?(@sha256:[0-9a-f]{64})?$",
                                 f)
                self.assertTrue(":" in image.split("/")[-1] or "@sha256:" in image,
                                f"{f}: {image} has no tag")
                tag = image.split("@")[0].rsplit(":", 1)[-1]
                self.assertNotEqual(tag, "latest", f"{f}: {image}")
                # A moving tag like "bookworm" or "12" is not a pin.
                self.assertRegex(tag, r"\d{8}|\d+\.\d+\.\d+|@sha256",
                                 f"{f}: {image}: a dated or x.y.z tag")

    def test_final_stage_is_non_root_and_has_no_build_tools(self):
        for f in DOCKERFILES:
            st = stages(read_dockerfile(os.path.join(DOCKER_DIR, f)))
            image, name, body = st[-1]
            users = [a for w, a in body if w == "USER"]
            self.assertTrue(users, f"{f}: the final stage sets USER")
            self.assertNotIn(users[-1].split(":")[0], ("root", "0"), f)
            for w, a in body:
                if w == "RUN" and "apt-get install" in a:
                    pkgs = a.split("apt-get install", 1)[1].split("&&")[0]
                    m = BUILD_TOOLS.search(pkgs)
                    self.assertIsNone(m, f"{f}: final stage installs "
                                      f"{m and m.group(2)}")
                if w == "COPY" and "--from=" in a:
                    self.assertNotRegex(a, r"/usr/(bin|lib)/(gcc|g\+\+|cc1)")
            self.assertIn("ENTRYPOINT", [w for w, _ in body], f)

    def test_server_image_checks_grpc_health(self):
        body = stages(read_dockerfile(
            os.path.join(DOCKER_DIR, "Dockerfile.server")))[-1][2]
        checks = [a for w, a in body if w == "HEALTHCHECK"]
        self.assertEqual(len(checks), 1)
        args = health_args(expand_env(checks[0], body))
        self.assertIsNotNone(args, f"the HEALTHCHECK runs {HEALTH}")
        self.assertEqual(port_of(arg_value(args, "--addr")), 50051)
        self.assertIn("Dockerfile.server", images_with_health())
        # The default CMD is honest: TLS and tokens, and the health check
        # dials what the CMD serves.
        cmd = yaml.safe_load([a for w, a in body if w == "CMD"][-1])
        self.assertNotIn("--insecure", cmd)
        for flag in ("--tokens-file", "--tls-cert", "--tls-key"):
            self.assertTrue(arg_value(cmd, flag), flag)
        self.assertEqual(port_of(arg_value(cmd, "--listen")),
                         port_of(arg_value(args, "--addr")))
        self.assertTrue(arg_value(args, "--tls-ca"),
                        "the HEALTHCHECK dials TLS, as the CMD serves")

    def test_worker_images_dial_tls_by_default(self):
        for f in ("Dockerfile.worker-cpu", "Dockerfile.worker-cuda"):
            body = stages(read_dockerfile(os.path.join(DOCKER_DIR, f)))[-1][2]
            cmd = yaml.safe_load([a for w, a in body if w == "CMD"][-1])
            for flag in ("--token-file", "--tls-ca"):
                self.assertTrue(arg_value(cmd, flag), f"{f}: {flag}")

    def test_no_go_stage_and_no_downloaded_probe(self):
        for f in DOCKERFILES:
            path = os.path.join(DOCKER_DIR, f)
            with open(path) as fh:
                text = fh.read()
            for image, _, body in stages(read_dockerfile(path))[1:]:
                self.assertNotRegex(image, r"^(golang|\S+/golang)[:@]", f)
                for w, a in body:
                    if w == "RUN":
                        self.assertNotRegex(a, r"\bgo (install|build|get)\b",
                                            f)
            self.assertNotIn("grpc_health_probe", text, f)
            self.assertNotIn("grpc-health-probe", text, f)
        with open(os.path.join(DOCKER_DIR, "versions.env")) as fh:
            text = fh.read()
        self.assertNotRegex(text, r"(?m)^(GO_|GRPC_HEALTH_PROBE)",
                            "versions.env")

    def test_every_health_check_runs_a_binary_its_image_ships(self):
        """Compose health checks and Kubernetes exec probes run lrtune-health
        from the image; that image's Dockerfile builds and copies it."""
        shipped = images_with_health()
        dockerfile_of = {}  # image (name:tag) -> Dockerfile
        for files in ComposeTest.VARIANTS.values():
            for s in compose_config(*files)["services"].values():
                if "build" in s:
                    dockerfile_of[s["image"]] = \
                        os.path.basename(s["build"]["dockerfile"])
        users = []
        for files in ComposeTest.VARIANTS.values():
            for name, s in active_services(compose_config(*files)).items():
                if health_args(s["healthcheck"]["test"]) is not None:
                    users.append((name, s["image"]))
        for f, d in load_k8s():
            if d["kind"] in ("StatefulSet", "Deployment"):
                for c in containers_of(d):
                    for kind in ("startupProbe", "livenessProbe",
                                 "readinessProbe"):
                        cmd = ((c.get(kind) or {}).get("exec") or {}) \
                            .get("command")
                        if cmd and health_args(cmd) is not None:
                            users.append((f"{f} {kind}", c["image"]))
        self.assertTrue(users)
        for where, image in users:
            self.assertIn(image, dockerfile_of, where)
            self.assertIn(dockerfile_of[image], shipped, f"{where}: {image}")

    def test_cuda_image_verifies_libtorch(self):
        with open(os.path.join(DOCKER_DIR, "Dockerfile.worker-cuda")) as fh:
            text = fh.read()
        self.assertIn("sha256sum -c", text)
        self.assertRegex(text, r"ARG LIBTORCH_VERSION=\d+\.\d+\.\d+")
        self.assertIn("nvidia/cuda:", text)
        self.assertRegex(text, r"-runtime-")

    def test_build_contexts_ignore_build_dirs(self):
        for f in DOCKERFILES:
            with open(os.path.join(DOCKER_DIR, f + ".dockerignore")) as fh:
                self.assertIn("build*/", fh.read().split())

    def test_compose_builds_existing_dockerfiles(self):
        for files in ComposeTest.VARIANTS.values():
            for name, s in compose_config(*files)["services"].items():
                if "build" in s:
                    path = os.path.join(s["build"]["context"],
                                        s["build"]["dockerfile"])
                    self.assertTrue(os.path.exists(path), f"{name}: {path}")


def deploy_commands():
    """{binary: [(where, args)]}: every command deploy/ gives a binary,
    health checks and probes included."""
    cmds = {"server": [], "worker": [], "health": []}
    for variant, files in ComposeTest.VARIANTS.items():
        for name, s in compose_config(*files)["services"].items():
            role = "worker" if is_worker(name) else "server"
            cmds[role].append((f"compose {variant} {name}", s["command"]))
            probe = health_args(s["healthcheck"]["test"])
            if probe is not None:
                cmds["health"].append(
                    (f"compose {variant} {name}-healthcheck", probe))
    for f, d in load_k8s():
        if d["kind"] in ("StatefulSet", "Deployment"):
            for c in containers_of(d):
                role = "server" if "server" in c["image"] else "worker"
                cmds[role].append((f"k8s {f}", c["args"]))
                for kind in ("startupProbe", "livenessProbe",
                             "readinessProbe"):
                    cmd = (c.get(kind) or {}).get("exec", {}).get("command")
                    if cmd and health_args(cmd) is not None:
                        cmds["health"].append((f"k8s {f} {kind}",
                                               health_args(cmd)))
    for f in DOCKERFILES:
        body = stages(read_dockerfile(os.path.join(DOCKER_DIR, f)))[-1][2]
        cmd = [a for w, a in body if w == "CMD"]
        role = "server" if "server" in f else "worker"
        cmds[role].append((f, yaml.safe_load(cmd[-1])))
        for w, a in body:
            if w == "HEALTHCHECK":
                cmds["health"].append((f"{f} HEALTHCHECK",
                                       health_args(expand_env(a, body))))
    return cmds


@unittest.skipUnless(BINS["server"] and BINS["worker"] and BINS["health"],
                     "LRTUNE_SERVER_BIN, LRTUNE_WORKER_BIN and "
                     "LRTUNE_HEALTH_BIN not set")
class FlagsTest(unittest.TestCase):
    def test_every_flag_deploy_uses_exists(self):
        helps = {role: help_flags(BINS[role])
                 for role in ("server", "worker", "health")}
        self.assertIn("--listen", helps["server"])
        self.assertIn("--server", helps["worker"])
        self.assertIn("--tls-ca", helps["health"])
        missing = set()
        for role, commands in deploy_commands().items():
            for where, args in commands:
                self.assertTrue(flags_of(args), where)
                unknown = flags_of(args) - helps[role]
                missing |= {f"{where.split()[0]} {where.split()[-1]}: {flag} "
                            f"is not in lrtune-{role} --help"
                            for flag in unknown}
        self.assertEqual(sorted(missing), [], "\n".join(sorted(missing)))


@unittest.skipUnless(BINS["server"] and BINS["worker"],
                     "LRTUNE_SERVER_BIN and LRTUNE_WORKER_BIN not set")
class LocalClusterTest(unittest.TestCase):
    SCRIPT = os.path.join(REPO, "scripts", "local-cluster.sh")

    @contextlib.contextmanager
    def cluster(self, **extra_env):
        """Starts local-cluster.sh with 2 workers; yields its env file as a
        dict; stops it and checks that every pid is gone."""
        with tempfile.TemporaryDirectory() as tmp:
            state = os.path.join(tmp, "cluster")
            env = dict(os.environ, N="2", LRTUNE_CLUSTER_DIR=state,
                       LRTUNE_SERVER_BIN=BINS["server"],
                       LRTUNE_WORKER_BIN=BINS["worker"],
                       LRTUNE_HEALTH_BIN=BINS["health"] or "/nonexistent",
                       **extra_env)
            start = subprocess.run([self.SCRIPT, "start"], env=env,
                                   timeout=120, capture_output=True, text=True)
            pids = []
            try:
                self.assertEqual(start.returncode, 0, start.stderr)
                cluster = {}
                with open(os.path.join(state, "env")) as fh:
                    for line in fh:
                        k, eq, v = line.strip().partition("=")
                        if eq and not k.startswith("export"):
                            cluster[k] = v
                self.assertEqual(start.stdout.strip(),
                                 cluster["LRTUNE_SERVER"])
                with open(os.path.join(state, "pids")) as fh:
                    pids = [line.split() for line in fh]
                self.assertEqual([r for r, _ in pids],
                                 ["server", "worker-0", "worker-1"])
                yield cluster
            finally:
                stop = subprocess.run([self.SCRIPT, "stop"], env=env,
                                      timeout=60, capture_output=True,
                                      text=True)
            self.assertEqual(stop.returncode, 0, stop.stderr)
            for _, pid in pids:
                self.assertFalse(os.path.exists(f"/proc/{pid}") and
                                 "zombie" not in _proc_state(pid),
                                 f"pid {pid} still running")
            self.assertFalse(os.path.exists(os.path.join(state, "pids")))

    def tls_expected(self):
        return ("--tls-cert" in help_flags(BINS["server"]) and
                "--tls-ca" in help_flags(BINS["worker"]))

    def test_tls_and_tokens_by_default_and_healthy(self):
        with self.cluster() as cluster:
            if "--tokens-file" in help_flags(BINS["server"]):
                self.assertTrue(cluster["LRTUNE_TOKEN_FILE"])
                mode = os.stat(cluster["LRTUNE_TOKENS_FILE"]).st_mode
                self.assertEqual(mode & 0o077, 0, "tokens file is 600")
            if not self.tls_expected():
                return
            ca = cluster["LRTUNE_TLS_CA"]
            self.assertTrue(ca and os.path.exists(ca), "a CA made on the fly")
            if not BINS["health"]:
                return
            probe = [BINS["health"], "--addr", cluster["LRTUNE_SERVER"]]
            ok = subprocess.run(probe + ["--tls-ca", ca], capture_output=True,
                                text=True, timeout=30)
            self.assertEqual(ok.returncode, 0, ok.stderr)
            plain = subprocess.run(probe, capture_output=True, text=True,
                                   timeout=30)
            self.assertEqual(plain.returncode, 3, "plaintext is refused")

    def test_tls_required_fails_without_the_flags(self):
        if self.tls_expected():
            self.skipTest("both binaries have the TLS flags")
        with tempfile.TemporaryDirectory() as tmp:
            run = subprocess.run(
                [self.SCRIPT, "start"], capture_output=True, text=True,
                timeout=60, env=dict(os.environ, TLS="1",
                                     LRTUNE_CLUSTER_DIR=tmp,
                                     LRTUNE_SERVER_BIN=BINS["server"],
                                     LRTUNE_WORKER_BIN=BINS["worker"]))
            self.assertEqual(run.returncode, 1)
            self.assertIn("TLS=1", run.stderr)

    @unittest.skipUnless(BINS["cli"], "LRTUNE_CLI_BIN not set")
    def test_range_test(self):
        cli_help = subprocess.run([BINS["cli"], "range-test", "--help"],
                                  capture_output=True, text=True).stdout
        # Until the CLI dials TLS, the range test runs on a plaintext
        # cluster (tokens still on); TLS itself is checked above.
        extra = {} if "--tls-ca" in cli_help else {"TLS": "0"}
        with self.cluster(**extra) as cluster:
            args = [BINS["cli"], "range-test", "--server",
                    cluster["LRTUNE_SERVER"], "--model", "mlp", "--dataset",
                    "iris", "--steps", "40", "--seeds", "2", "--device",
                    "cpu", "--json"]
            if cluster.get("LRTUNE_TOKEN_FILE"):
                args += ["--token-file", cluster["LRTUNE_TOKEN_FILE"]]
            if cluster.get("LRTUNE_TLS_CA"):
                args += ["--tls-ca", cluster["LRTUNE_TLS_CA"]]
            run = subprocess.run(args, capture_output=True, text=True,
                                 timeout=120, env=dict(os.environ,
                                                       OMP_NUM_THREADS="1"))
            self.assertEqual(run.returncode, 0, run.stderr)
            self.assertIn('"state":"succeeded"', run.stdout.replace(" ", ""))


def _proc_state(pid):
    try:
        with open(f"/proc/{pid}/status") as fh:
            return fh.read()
    except OSError:
        return "zombie"


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
