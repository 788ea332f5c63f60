"""A scratch PostgreSQL database per test, on the local server (127.0.0.1:5432, user postgres,
trust auth), created and dropped around the test."""

import subprocess
import uuid

import pytest

PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-X", "-q", "-v", "ON_ERROR_STOP=1"]


class Database:
    def __init__(self, name):
        self.name = name

    def run(self, sql, check=True):
        """Runs `sql` in one psql session; returns the CompletedProcess (unaligned, tuples only)."""
        return subprocess.run([*PSQL, "-A", "-t", "-d", self.name], input=sql, text=True,
                              capture_output=True, timeout=60, check=check)

    def run_file(self, path):
        return subprocess.run([*PSQL, "-d", self.name, "-f", str(path)], text=True,
                              capture_output=True, timeout=60, check=True)

    def value(self, sql):
        return self.run(sql).stdout.strip()


@pytest.fixture
def scratch_database():
    name = f"deploy_test_{uuid.uuid4().hex[:12]}"
    subprocess.run([*PSQL, "-d", "postgres", "-c", f'CREATE DATABASE "{name}"'], check=True,
                   capture_output=True, timeout=60)
    try:
        yield Database(name)
    finally:
        subprocess.run([*PSQL, "-d", "postgres", "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
                       check=False, capture_output=True, timeout=60)
