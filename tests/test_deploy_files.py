"""The deploy files (``deploy/``), checked without a cluster or a Docker engine.

The Kubernetes manifests are rendered with ``kubectl kustomize`` (the base and the example
overlay) and validated against the Kubernetes schemas bundled in ``kubernetes_validate``; the
compose file against the Compose spec schema vendored in ``check_jsonschema``. On top of the
schemas, the rules a production deploy must keep: pinned images, no inline secrets, resources
and a restricted security context on every container, probes, disruption budgets, the
migration before the API and the worker, and an image without the development tools.

Each rule is a function returning the problems it finds: the real files must have none, and
a broken example of each must have some (the ``*_catches_*`` tests), so no rule passes vacuously.
"""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from tests.deploy_rules import (
    COMPOSE,
    DEPLOY,
    DEV_ONLY,
    DOCKERFILE,
    KUSTOMIZATIONS,
    NAMESPACE_SCRIPT,
    ROOT,
    Doc,
    all_containers,
    compose_image_problems,
    compose_order_problems,
    compose_schema_problems,
    compose_secret_problems,
    container_problems,
    deployment,
    disruption_budget_problems,
    dockerfile_images,
    dockerfile_problems,
    dockerfile_secret_problems,
    expected_attributes,
    image_problem,
    installed_names,
    kustomize,
    manifest_image_problems,
    manifest_secret_problems,
    metrics_problems,
    migration_problems,
    pod_templates,
    probe_problems,
    registered_attributes,
    schema_problems,
    secret_reference_problems,
    service_problems,
)


@pytest.fixture(scope="module", params=sorted(KUSTOMIZATIONS))
def manifests(request: pytest.FixtureRequest) -> list[Doc]:
    """The rendered documents of the base, then of the example overlay."""
    return kustomize(KUSTOMIZATIONS[request.param])


@pytest.fixture(scope="module")
def compose() -> Doc:
    document: Doc = yaml.safe_load(COMPOSE.read_text())
    return document


def test_manifests_fit_the_kubernetes_schemas(manifests: list[Doc]) -> None:
    kinds = {doc["kind"] for doc in manifests}
    assert {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap"} <= kinds
    assert schema_problems(manifests) == []


def test_images_are_pinned(manifests: list[Doc], compose: Doc) -> None:
    assert manifest_image_problems(manifests) == []
    assert compose_image_problems(compose) == []
    base_images = dockerfile_images(DOCKERFILE.read_text())
    assert base_images
    assert [image_problem(image) for image in base_images if image_problem(image)] == []


def test_no_secret_is_written_in_a_file(manifests: list[Doc], compose: Doc) -> None:
    assert manifest_secret_problems(manifests) == []
    assert compose_secret_problems(compose) == []
    assert dockerfile_secret_problems(DOCKERFILE.read_text()) == []
    assert secret_reference_problems(manifests) == []


def test_every_container_is_bounded_and_restricted(manifests: list[Doc]) -> None:
    assert container_problems(manifests) == []


def test_api_and_worker_have_probes_and_metrics(manifests: list[Doc]) -> None:
    assert probe_problems(manifests) == []
    assert metrics_problems(manifests) == []
    assert service_problems(manifests) == []


def test_each_deployment_has_a_disruption_budget(manifests: list[Doc]) -> None:
    assert disruption_budget_problems(manifests) == []


def test_pods_migrate_the_database_before_they_start(manifests: list[Doc]) -> None:
    assert migration_problems(manifests) == []


def test_example_overlay_pins_its_image_and_namespace() -> None:
    docs = kustomize(KUSTOMIZATIONS["example-overlay"])
    images = {
        container["image"] for _, pod in pod_templates(docs) for container in all_containers(pod)
    }
    assert images == {"registry.example.com/openlines:0.1.0"}
    assert {doc["metadata"].get("namespace") for doc in docs if doc["kind"] != "Namespace"} == {
        "openlines"
    }


def test_compose_file_fits_the_compose_spec(compose: Doc) -> None:
    assert compose_schema_problems(compose) == []
    assert compose_order_problems(compose) == []


def test_setup_registers_the_workflows_search_attributes() -> None:
    expected = expected_attributes()
    assert registered_attributes(NAMESPACE_SCRIPT.read_text()) == expected
    assert registered_attributes((DEPLOY / "README.md").read_text()) == expected


def test_dockerfile_builds_a_production_image() -> None:
    assert dockerfile_problems(DOCKERFILE.read_text()) == []


def test_production_install_has_no_dev_tools(tmp_path: Path) -> None:
    """`pip install .` (what the image runs) resolves without any dev-only package."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        re.split(r"[\s\[<>=!~;]", item, maxsplit=1)[0].lower() for item in project["dependencies"]
    }
    assert declared & DEV_ONLY == set()

    report_file = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--disable-pip-version-check",
            "--report",
            str(report_file),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    installed = installed_names(json.loads(report_file.read_text()))
    assert installed & DEV_ONLY == set()
    assert {"openlines", "temporalio", "fastapi"} <= installed


# --- each rule catches what it is for ---------------------------------------------------------


def broken_deployment(name: str, container: str) -> Doc:
    """A Deployment that breaks every rule: latest image, no resources, root, no probes, an
    inline secret, no migration."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {
                    "containers": [
                        {
                            "name": container,
                            "image": "openlines:latest",
                            "env": [
                                {"name": "OPENLINES_DATABASE_URL", "value": "postgresql://u:p@h/d"}
                            ],
                        }
                    ]
                },
            },
        },
    }


def test_rules_catch_a_broken_deployment() -> None:
    docs = [
        broken_deployment("openlines-api", "api"),
        broken_deployment("openlines-worker", "worker"),
    ]
    assert manifest_image_problems(docs)[0] == (
        "Deployment/openlines-api api: openlines:latest: tagged latest"
    )
    assert len(manifest_secret_problems(docs)) == 2
    assert len(container_problems(docs)) == 2 * 11
    assert len(disruption_budget_problems(docs)) == 2
    assert len(migration_problems(docs)) == 2
    assert len(secret_reference_problems(docs)) == 6 + 5  # the worker needs no admin key
    assert probe_problems(docs)
    assert metrics_problems(docs)
    inline = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "b"}}
    assert manifest_secret_problems([inline])
    unknown_field = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "date": {}}
    assert schema_problems([unknown_field])


def test_rules_catch_missing_probes_and_metrics(manifests: list[Doc]) -> None:
    docs = json.loads(json.dumps(manifests))  # a copy to break
    worker = deployment(docs, "openlines-worker")["spec"]["template"]["spec"]["containers"][0]
    worker.pop("readinessProbe")
    worker["ports"] = [{"name": "http", "containerPort": 8080}]
    problems = probe_problems(docs) + metrics_problems(docs) + service_problems(docs)
    assert any("readinessProbe" in problem for problem in problems)
    assert any("named metrics" in problem for problem in problems)
    assert any("targetPort" in problem for problem in problems)


def test_image_rule_catches_unpinned_references() -> None:
    assert image_problem("postgres") is not None
    assert image_problem("postgres:latest") is not None
    assert image_problem("registry:5000/team/app") is not None
    assert image_problem("app:${TAG}") is not None
    assert image_problem("registry:5000/team/app:1.2.3") is None
    assert image_problem("app@sha256:" + "0" * 64) is None
    assert dockerfile_images("FROM python AS build\nFROM build\n") == ["python"]


def test_compose_rules_catch_inline_secrets_and_loose_order(compose: Doc) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["api"]["environment"]["OPENLINES_SECRET_KEY"] = "written-here"
    broken["services"]["worker"]["environment"]["OPENLINES_SMTP_URL"] = "${SMTP:-smtp://u:p@h}"
    broken["services"]["worker"]["depends_on"].pop("migrate")
    broken["services"]["temporal"].pop("healthcheck")
    broken["services"]["postgres"]["image"] = "postgres"
    broken["services"]["api"]["colour"] = "blue"
    assert len(compose_secret_problems(broken)) == 2
    assert len(compose_order_problems(broken)) >= 2
    assert compose_image_problems(broken) == ["service postgres: postgres: untagged (means latest)"]
    assert compose_schema_problems(broken)


def test_dockerfile_rules_catch_a_dev_install_as_root() -> None:
    text = "FROM python:3.11\nRUN pip install '.[dev]'\nENV API_TOKEN=abc\nUSER root\n"
    problems = dockerfile_problems(text)
    assert any("multi-stage" in problem for problem in problems)
    assert any("USER" in problem for problem in problems)
    assert any("extra" in problem for problem in problems)
    assert any("core is not copied" in problem for problem in problems)
    assert dockerfile_secret_problems(text)


def test_search_attribute_rule_catches_a_missing_attribute() -> None:
    text = NAMESPACE_SCRIPT.read_text().replace("attribute DialogStalled Bool\n", "")
    assert registered_attributes(text) != expected_attributes()
