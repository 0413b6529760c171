"""`memplace.api.__all__` names exactly the public members, each importable."""

from __future__ import annotations

import importlib

import memplace.api

PRIVATE_MODULES = (
    "_base",
    "_modeldeployment",
    "_nodememoryreport",
    "_performanceprofile",
    "_placementpool",
    "_resource",
    "_status",
)


def test_all_has_no_duplicates() -> None:
    assert len(set(memplace.api.__all__)) == len(memplace.api.__all__)


def test_every_exported_name_is_importable() -> None:
    for name in memplace.api.__all__:
        assert getattr(memplace.api, name) is not None, name


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(memplace.api).items()
        if not name.startswith("_") and not isinstance(value, type(memplace.api))
    }
    assert public == set(memplace.api.__all__)


def test_every_private_module_exports_through_the_package() -> None:
    for module_name in PRIVATE_MODULES:
        module = importlib.import_module(f"memplace.api.{module_name}")
        for name in module.__all__:
            assert name in memplace.api.__all__, f"{module_name}.{name} is not re-exported"
            assert getattr(memplace.api, name) is getattr(module, name)
