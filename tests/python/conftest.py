"""Shared fixtures: the gateway under test is given by BURSAR_URL and BURSAR_MASTER_KEY
(crates/bursar/tests/python_clients.rs starts it and runs this suite through run.sh)."""

import os
import uuid

import httpx
import pytest


@pytest.fixture(scope="session")
def base_url() -> str:
    return os.environ["BURSAR_URL"].rstrip("/")


@pytest.fixture(scope="session")
def master_key() -> str:
    return os.environ["BURSAR_MASTER_KEY"]


@pytest.fixture(scope="session")
def admin(base_url, master_key) -> httpx.Client:
    """A plain HTTP client with the master key, for setting things up."""
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {master_key}"}) as c:
        yield c


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


def generate_key(admin: httpx.Client, **fields) -> str:
    response = admin.post("/key/generate", json=fields)
    assert response.status_code == 200, response.text
    return response.json()["key"]
