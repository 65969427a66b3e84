"""The worker-versioning settings (stanch/settings.py, stanch/deployments.py), without a server: versioning
is on exactly when a build id is set, incidents are pinned by default, and a bad name stops the process
in one line naming the variable. The versions themselves are tested on a dev server
(tests/workers/test_worker_versions.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion

from stanch.deployments import deployment_config, deployment_version
from stanch.settings import Settings, get_settings, load_settings_or_exit
from workflows.registry import WORKFLOWS


def test_unversioned_without_a_build_id_and_blank_means_unset() -> None:
    assert deployment_version(Settings()) is None
    assert deployment_version(Settings(build_id="")) is None  # compose's `STANCH_BUILD_ID=` from a blank .env


def test_a_build_id_makes_the_worker_a_pinned_by_default_version() -> None:
    version = deployment_version(Settings(build_id="1.4.2+g3f9c2d1"))
    assert version == WorkerDeploymentVersion(deployment_name="stanch", build_id="1.4.2+g3f9c2d1")
    config = deployment_config(version)
    assert config.use_worker_versioning
    assert config.default_versioning_behavior == VersioningBehavior.PINNED


@pytest.mark.parametrize(
    ("field", "value"),
    [("build_id", "has space"), ("build_id", "x" * 256), ("deployment_name", "a.b"), ("deployment_name", "")],
)
def test_bad_names_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        Settings.model_validate({field: value})


def test_a_bad_build_id_stops_the_process_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STANCH_BUILD_ID", "v 2")
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit):
            load_settings_or_exit()
    finally:
        get_settings.cache_clear()
    assert capsys.readouterr().err.startswith("stanch: invalid setting STANCH_BUILD_ID:")


def test_no_workflow_names_a_behaviour_so_unversioned_workers_keep_working() -> None:
    """The dev server refuses a task completed by an unversioned worker for a workflow whose
    `@workflow.defn` names a versioning behaviour ("versioning behavior cannot be specified without
    deployment options being set with versioned mode"): make dev and the tests run unversioned, so every
    workflow takes its behaviour from the versioned worker's default (PINNED) instead."""
    # The SDK has no public reader of a workflow's definition (tests/recording.py uses the same one).
    behaviours = {defn.versioning_behavior for defn in map(workflow._Definition.must_from_class, WORKFLOWS)}
    assert behaviours == {VersioningBehavior.UNSPECIFIED}
