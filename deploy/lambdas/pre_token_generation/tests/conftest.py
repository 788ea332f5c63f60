"""Loads this Lambda's handler module by path and clears its configuration per test."""

import importlib.util
import pathlib

import pytest

HANDLER_PATH = pathlib.Path(__file__).resolve().parent.parent / "handler.py"
CONFIG_VARS = ("GROUP_ROLE_MAP", "GROUP_PRECEDENCE", "DEFAULT_ROLE", "SESSION_ATTRIBUTES",
               "CLAIMS_NAMESPACE", "CLAIMS_FORMAT", "CLIENT_CREDENTIALS_SCOPE_ROLES",
               "ALLOW_ADMIN_ROLE")


@pytest.fixture(scope="session")
def ptg():
    spec = importlib.util.spec_from_file_location("pre_token_generation_handler", HANDLER_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in CONFIG_VARS:
        monkeypatch.delenv(name, raising=False)
