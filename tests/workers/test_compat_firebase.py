"""firebase-admin's internals that workers/compat_firebase.py uses are all still there, in the shape
it uses them, on the installed firebase-admin; and that version is inside the range the module was
checked against and pyproject.toml pins. Each failure names what changed and where to look."""

from __future__ import annotations

import inspect
import tomllib
import uuid
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests.workers.fake_fcm import PROJECT, FakeFcm
from workers import compat_firebase

INSTALLED = version("firebase-admin")
WHERE = (
    f"firebase-admin {INSTALLED} (workers/compat_firebase.py was checked against"
    f" {compat_firebase.FIREBASE_ADMIN_VERSIONS})"
)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    """A firebase App of its own, from a throwaway service account (nothing is sent)."""
    import firebase_admin
    from firebase_admin import credentials

    cred = credentials.Certificate(FakeFcm().credentials_file(tmp_path))
    app = firebase_admin.initialize_app(cred, name=f"gigwire-compat-{uuid.uuid4().hex}")
    try:
        yield app
    finally:
        firebase_admin.delete_app(app)


def test_the_installed_firebase_admin_is_in_the_checked_range_and_pyproject_pins_that_range() -> None:
    checked = SpecifierSet(compat_firebase.FIREBASE_ADMIN_VERSIONS)
    if INSTALLED not in checked:
        pytest.fail(
            f"firebase-admin {INSTALLED} is installed, but workers/compat_firebase.py was checked against"
            f" {checked} only: check its private attributes on this version, then widen the range there"
            " and in pyproject.toml"
        )
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    pins = [
        Requirement(d).specifier
        for d in pyproject["project"]["dependencies"]
        if Requirement(d).name == "firebase-admin"
    ]
    assert pins == [checked], (
        f"pyproject.toml pins firebase-admin {pins}, compat_firebase.FIREBASE_ADMIN_VERSIONS is {checked}:"
        " they must be the same range"
    )


def test_every_private_module_attribute_is_there() -> None:
    missing = compat_firebase.missing_module_attributes()
    if missing:
        pytest.fail(f"{WHERE} no longer has {', '.join(missing)}, which workers/compat_firebase.py uses")


def test_the_private_classes_take_the_arguments_given_to_them() -> None:
    from firebase_admin import _http_client, _retry

    for call, needs in (
        (_http_client.HttpxAsyncClient, {"credential", "retry_config", "timeout", "http2"}),
        (_retry.HttpxRetry, {"max_retries"}),
    ):
        params = set(inspect.signature(call).parameters)
        if not needs <= params:
            pytest.fail(
                f"{WHERE}: {call.__module__}.{call.__qualname__} no longer takes"
                f" {', '.join(sorted(needs - params))}"
            )
    if not isinstance(inspect.getattr_static(_http_client.HttpxAsyncClient, "async_client", None), property):
        pytest.fail(f"{WHERE}: HttpxAsyncClient no longer has the async_client property (its httpx client)")


def test_the_messaging_service_has_every_private_attribute_used(app: Any) -> None:
    service = compat_firebase.messaging_service(app)
    missing = [name for name in compat_firebase.SERVICE_ATTRIBUTES if not hasattr(service, name)]
    if missing:
        pytest.fail(f"{WHERE}: the messaging service has no {', '.join(missing)} any more")
    # The rewritten URL keeps the SDK's own path: only the scheme and host change.
    expected = "https://fcm.googleapis.com" + compat_firebase.FCM_PATH.format(project=PROJECT)
    assert service._fcm_url == expected, (
        f"{WHERE}: the SDK's send URL is now {service._fcm_url!r}, not {expected!r}; update FCM_PATH"
    )


async def test_tune_service_points_the_sdk_elsewhere_with_a_client_that_does_not_retry(app: Any) -> None:
    from firebase_admin import _http_client

    service = compat_firebase.messaging_service(app)
    http = compat_firebase.tune_service(service, app.project_id, "http://127.0.0.1:9")
    assert service._fcm_url == f"http://127.0.0.1:9/v1/projects/{PROJECT}/messages:send"
    assert isinstance(service._async_client, _http_client.HttpxAsyncClient)
    assert service._async_client.async_client is http
    assert type(http.auth) is httpx.Auth  # no per-request auth flow: the sender sets the header
    await compat_firebase.close_service(service)


def test_a_service_missing_an_attribute_fails_at_start_naming_it() -> None:
    class Changed:
        _fcm_url = "https://fcm.googleapis.com/v1/projects/p/messages:send"
        _credential = object()

    with pytest.raises(RuntimeError, match="no _async_client"):
        compat_firebase.tune_service(Changed(), "p", None)
