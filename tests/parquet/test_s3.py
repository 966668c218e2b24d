"""PARQUET_URI=s3://… through pyarrow's own S3 filesystem, against a real S3 API server (moto) on
loopback; the secret key never appears in the crawl log or the manifest."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from localsite.process import LocalSite
from tests.helpers import run_crawl

SECRET = "topsecret-s3-password"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://{endpoint}/", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_crawl_to_s3(s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    fs = pafs.S3FileSystem(access_key="testkey", secret_key=SECRET, endpoint_override=s3_endpoint,
                           scheme="http", allow_bucket_creation=True)
    fs.create_dir("books-bucket")
    uri = (f"s3://testkey:{SECRET}@books-bucket/runs/%(name)s?endpoint_override={s3_endpoint}"
           "&scheme=http")
    with LocalSite(books=40, seed=6) as site:
        result = run_crawl("books", tmp_path / "unused", "-a", f"start_url={site.url}",
                           "-s", f"PARQUET_URI={uri}")
    assert result.returncode == 0, result.log[-3000:]
    assert SECRET not in result.log
    dataset = ds.dataset("books-bucket/runs/books", filesystem=fs, format="parquet")
    assert dataset.count_rows() == 40
    with fs.open_input_stream("books-bucket/runs/books/_manifest.json") as stream:
        manifest = stream.read().decode()
    assert '"complete": true' in manifest and SECRET not in manifest
    assert os.path.basename(dataset.files[0]).startswith("part-")


def aws_settings(endpoint: str) -> list[str]:
    return ["-s", "AWS_ACCESS_KEY_ID=testkey", "-s", f"AWS_SECRET_ACCESS_KEY={SECRET}",
            "-s", f"AWS_ENDPOINT_URL={endpoint}"]


def test_scrapys_aws_settings_are_honoured(s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As Scrapy's feed storage reads them: no credentials or endpoint in the URI."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    fs = pafs.S3FileSystem(access_key="testkey", secret_key=SECRET, endpoint_override=s3_endpoint,
                           scheme="http", allow_bucket_creation=True)
    fs.create_dir("settings-bucket")
    with LocalSite(books=20, seed=6) as site:
        result = run_crawl("books", tmp_path / "unused", "-a", f"start_url={site.url}",
                           "-s", "PARQUET_URI=s3://settings-bucket/runs/%(name)s", *aws_settings(f"http://{s3_endpoint}"))
    assert result.returncode == 0, result.log[-3000:]
    assert SECRET not in result.log
    assert ds.dataset("settings-bucket/runs/books", filesystem=fs, format="parquet").count_rows() == 20


@pytest.mark.parametrize("where", ["an endpoint that refuses", "a bucket that does not exist"])
def test_an_s3_output_that_cannot_be_written_fails_at_start(s3_endpoint: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    endpoint = "http://127.0.0.1:1" if where.startswith("an endpoint") else f"http://{s3_endpoint}"
    with LocalSite(books=20, seed=6) as site:
        result = run_crawl("books", tmp_path / "unused", "-a", f"start_url={site.url}",
                           "-s", "PARQUET_URI=s3://no-such-bucket/runs", *aws_settings(endpoint), timeout=120)
        requests = site.stats()["requests"]
    assert result.returncode == 1, result.log[-3000:]
    assert "Invalid setting PARQUET_URI='s3://no-such-bucket/runs': expected a location this crawl can write" \
        in result.log
    assert requests == 0 and "Traceback" not in result.log and SECRET not in result.log
