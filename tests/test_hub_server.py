"""The local Hub server against the real, unmodified `huggingface_hub` and `datasets` clients."""
from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import (
    CommitOperationAdd,
    HfApi,
    HfFileSystem,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
from PIL import Image

from tests.hub_fixture import HubServer

MB = 1024 * 1024


@pytest.fixture
def api(hub_server: HubServer) -> HfApi:
    """A client with the server's write token."""
    return HfApi(token=hub_server.token)


def raw_request(server: HubServer, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """Send a request with the path exactly as given (no client-side normalisation of `..`)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_upload_folder_download_list_delete(api: HfApi, hub_repo_id: str, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "plots").mkdir(parents=True)
    big = np.random.default_rng(0).bytes(11 * MB)  # over the 10 MB regular-file limit: goes through LFS
    (folder / "weights.bin").write_bytes(big)
    (folder / "config.json").write_text('{"threshold": 0.5}')
    (folder / "plots" / "roc.txt").write_text("roc")

    api.create_repo(hub_repo_id)
    api.upload_folder(folder_path=folder, repo_id=hub_repo_id, commit_message="Upload model")

    assert sorted(api.list_repo_files(hub_repo_id)) == [".gitattributes", "config.json", "plots/roc.txt", "weights.bin"]
    siblings = {s.rfilename: s for s in api.model_info(hub_repo_id, files_metadata=True).siblings}
    assert siblings["weights.bin"].lfs.sha256 == hashlib.sha256(big).hexdigest()
    assert siblings["weights.bin"].size == len(big)
    assert siblings["config.json"].lfs is None

    downloaded = hf_hub_download(hub_repo_id, "weights.bin")
    assert Path(downloaded).read_bytes() == big
    snapshot = Path(snapshot_download(hub_repo_id))
    assert (snapshot / "plots" / "roc.txt").read_text() == "roc"
    assert (snapshot / "config.json").read_text() == '{"threshold": 0.5}'

    api.delete_file("plots/roc.txt", hub_repo_id)
    assert "plots/roc.txt" not in api.list_repo_files(hub_repo_id)
    titles = [c.title for c in api.list_repo_commits(hub_repo_id)]
    assert titles == ["Delete plots/roc.txt with huggingface_hub", "Upload model", "initial commit"]


def test_unchanged_files_are_skipped(api: HfApi, hub_repo_id: str) -> None:
    api.create_repo(hub_repo_id)
    first = api.upload_file(path_or_fileobj=b"\x00binary" * 100, path_in_repo="a.bin", repo_id=hub_repo_id)
    again = api.upload_file(path_or_fileobj=b"\x00binary" * 100, path_in_repo="a.bin", repo_id=hub_repo_id)
    assert again.oid == first.oid  # preupload's oid matched: no empty commit


def test_create_repo_twice(api: HfApi, hub_repo_id: str, hub_server: HubServer) -> None:
    url = api.create_repo(hub_repo_id)
    assert url == f"{hub_server.endpoint}/{hub_repo_id}"
    assert api.create_repo(hub_repo_id, exist_ok=True) == url
    with pytest.raises(HfHubHTTPError) as error:
        api.create_repo(hub_repo_id)
    assert error.value.response.status_code == 409
    assert error.value.response.json()["url"] == url
    dataset_url = api.create_repo(hub_repo_id, repo_type="dataset")  # same name, other type: another repo
    assert dataset_url == f"{hub_server.endpoint}/datasets/{hub_repo_id}"


def test_space_repo_create_upload_download_info_delete(api: HfApi, hub_repo_id: str, hub_server: HubServer,
                                                      tmp_path: Path) -> None:
    url = api.create_repo(hub_repo_id, repo_type="space", space_sdk="gradio", private=True)
    assert url == f"{hub_server.endpoint}/spaces/{hub_repo_id}"
    assert api.create_repo(hub_repo_id, repo_type="space", space_sdk="gradio", exist_ok=True) == url
    info = api.space_info(hub_repo_id)
    assert (info.sdk, info.private) == ("gradio", True)  # the SDK asked for, kept in the README's metadata
    assert sorted(api.list_repo_files(hub_repo_id, repo_type="space")) == [".gitattributes", "README.md"]
    with pytest.raises(RepositoryNotFoundError):  # a Space is not the model repo of the same name
        api.model_info(hub_repo_id)
    with pytest.raises(RepositoryNotFoundError):  # private: invisible without a token
        HfApi(token=False).space_info(hub_repo_id)

    folder = tmp_path / "space"
    (folder / "app").mkdir(parents=True)
    (folder / "app" / "main.py").write_text("print('hi')\n")
    (folder / "logo.png").write_bytes(b"\x89PNG" + bytes(range(256)) * 8)  # *.png goes through LFS
    (folder / "README.md").write_text("---\nsdk: docker\napp_port: 7860\nhf_oauth: true\n---\n# Space\n")
    api.upload_folder(folder_path=folder, repo_id=hub_repo_id, repo_type="space", commit_message="Deploy")
    assert sorted(api.list_repo_files(hub_repo_id, repo_type="space")) == [
        ".gitattributes", "README.md", "app/main.py", "logo.png"]
    info = api.space_info(hub_repo_id)
    assert info.sdk == "docker" and info.card_data.app_port == 7860 and info.card_data.hf_oauth is True
    assert info.siblings and {s.rfilename for s in info.siblings} >= {"app/main.py", "logo.png"}

    main_py = hf_hub_download(hub_repo_id, "app/main.py", repo_type="space", token=hub_server.token)
    assert Path(main_py).read_text() == "print('hi')\n"
    snapshot = Path(snapshot_download(hub_repo_id, repo_type="space", local_dir=tmp_path / "down",
                                      token=hub_server.token))
    assert (snapshot / "logo.png").read_bytes() == (folder / "logo.png").read_bytes()
    status, _, body = raw_request(hub_server, "GET", f"/spaces/{hub_repo_id}/resolve/main/app/main.py",
                                  headers={"Authorization": f"Bearer {hub_server.token}"})
    assert (status, body) == (200, b"print('hi')\n")

    api.delete_repo(hub_repo_id, repo_type="space")
    assert not api.repo_exists(hub_repo_id, repo_type="space")


@pytest.mark.parametrize("sdk", [None, "flask"])
def test_space_needs_a_known_sdk(hub_server: HubServer, hub_repo_id: str, sdk: str | None) -> None:
    organization, name = hub_repo_id.split("/")
    body = json.dumps({"type": "space", "organization": organization, "name": name, "sdk": sdk}).encode()
    headers = {"Authorization": f"Bearer {hub_server.token}", "Content-Type": "application/json"}
    status, _, reply = raw_request(hub_server, "POST", "/api/repos/create", body, headers)
    assert status == 400 and b"sdk" in reply
    assert not HfApi(token=hub_server.token).repo_exists(hub_repo_id, repo_type="space")


def face_images(count: int, seed: int) -> list[Image.Image]:
    """Small random RGB PNG-able images."""
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)) for _ in range(count)]


def test_dataset_push_to_hub_and_load_dataset(hub_server: HubServer, hub_repo_id: str) -> None:
    from datasets import ClassLabel, Dataset, Features, load_dataset
    from datasets import Image as ImageFeature

    features = Features({"image": ImageFeature(), "label": ClassLabel(names=["anchor", "positive", "negative"])})
    first = Dataset.from_dict({"image": face_images(6, 0), "label": [0, 1, 2, 0, 1, 2]}, features=features)
    first.push_to_hub(hub_repo_id, token=hub_server.token, private=True)

    loaded = load_dataset(hub_repo_id, split="train", token=hub_server.token)
    assert loaded.features["label"].names == ["anchor", "positive", "negative"]
    assert loaded["label"] == [0, 1, 2, 0, 1, 2]
    assert np.array_equal(np.asarray(loaded[3]["image"]), np.asarray(first[3]["image"]))

    second = Dataset.from_dict({"image": face_images(3, 1), "label": [2, 2, 1]}, features=features)
    second.push_to_hub(hub_repo_id, token=hub_server.token)
    reloaded = load_dataset(hub_repo_id, split="train", token=hub_server.token)
    assert reloaded["label"] == [2, 2, 1]
    assert np.array_equal(np.asarray(reloaded[0]["image"]), np.asarray(second[0]["image"]))
    assert len(HfApi(token=hub_server.token).list_repo_commits(hub_repo_id, repo_type="dataset")) == 3
    with pytest.raises(RepositoryNotFoundError):  # private: invisible without a token
        HfApi(token=False).dataset_info(hub_repo_id)


def test_auth_failures(hub_server: HubServer, hub_repo_id: str) -> None:
    with pytest.raises(HfHubHTTPError) as no_token:
        HfApi(token=False).create_repo(hub_repo_id)
    assert no_token.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as wrong_token:
        HfApi(token="hf_wrong").create_repo(hub_repo_id)
    assert wrong_token.value.response.status_code == 403

    writer = HfApi(token=hub_server.token)
    writer.create_repo(hub_repo_id, private=True)
    writer.upload_file(path_or_fileobj=b"secret", path_in_repo="s.txt", repo_id=hub_repo_id)
    assert writer.repo_info(hub_repo_id).private
    for reader in (HfApi(token=False), HfApi(token="hf_wrong")):
        with pytest.raises(RepositoryNotFoundError) as hidden:
            reader.repo_info(hub_repo_id)
        assert hidden.value.response.status_code == 404
        assert hidden.value.response.headers["X-Error-Code"] == "RepoNotFound"
    status, headers, _ = raw_request(hub_server, "GET", f"/{hub_repo_id}/resolve/main/s.txt")
    assert (status, headers["x-error-code"]) == (404, "RepoNotFound")

    assert writer.whoami()["name"] == "user"
    with pytest.raises(HfHubHTTPError, match="Invalid user token"):
        HfApi(token="hf_wrong").whoami()


def test_stale_parent_commit_is_refused(api: HfApi, hub_repo_id: str) -> None:
    api.create_repo(hub_repo_id)
    older = api.upload_file(path_or_fileobj=b"one", path_in_repo="a.txt", repo_id=hub_repo_id).oid
    newer = api.upload_file(path_or_fileobj=b"two", path_in_repo="a.txt", repo_id=hub_repo_id).oid
    with pytest.raises(HfHubHTTPError) as stale:
        api.create_commit(hub_repo_id, [CommitOperationAdd("b.txt", b"three")], commit_message="late",
                          parent_commit=older)
    assert stale.value.response.status_code == 412
    current = api.create_commit(hub_repo_id, [CommitOperationAdd("b.txt", b"three")], commit_message="on time",
                                parent_commit=newer)
    assert api.model_info(hub_repo_id).sha == current.oid


def test_revisions_branches_and_pull_request_refs(api: HfApi, hub_repo_id: str) -> None:
    api.create_repo(hub_repo_id)
    api.create_branch(hub_repo_id, branch="dev")
    api.create_branch(hub_repo_id, branch="dev", exist_ok=True)
    api.upload_file(path_or_fileobj=b"dev", path_in_repo="x.txt", repo_id=hub_repo_id, revision="dev")
    pr = api.upload_file(path_or_fileobj=b"pr", path_in_repo="x.txt", repo_id=hub_repo_id, create_pr=True)
    assert pr.pr_revision == "refs/pr/1"
    api.create_tag(hub_repo_id, tag="v1", revision="dev")

    assert Path(hf_hub_download(hub_repo_id, "x.txt", revision="dev")).read_text() == "dev"
    assert Path(hf_hub_download(hub_repo_id, "x.txt", revision="refs/pr/1")).read_text() == "pr"
    assert Path(hf_hub_download(hub_repo_id, "x.txt", revision="v1")).read_text() == "dev"
    refs = api.list_repo_refs(hub_repo_id, include_pull_requests=True)
    assert sorted(b.name for b in refs.branches) == ["dev", "main"]
    assert [t.name for t in refs.tags] == ["v1"]
    assert [p.ref for p in refs.pull_requests] == ["refs/pr/1"]
    assert not api.file_exists(hub_repo_id, "x.txt")  # main untouched
    with pytest.raises(RevisionNotFoundError):
        api.model_info(hub_repo_id, revision="nope")
    api.delete_branch(hub_repo_id, branch="dev")
    api.delete_repo(hub_repo_id)
    assert not api.repo_exists(hub_repo_id)


def test_tree_is_paginated_with_link_headers(api: HfApi, hub_repo_id: str, hub_server: HubServer) -> None:
    api.create_repo(hub_repo_id)
    api.create_commit(hub_repo_id, [CommitOperationAdd(f"d/f{i}.txt", b"x") for i in range(5)], commit_message="5")
    path = f"/api/models/{hub_repo_id}/tree/main/d?recursive=true&limit=2"
    seen = []
    while path:
        status, headers, body = raw_request(hub_server, "GET", path)
        assert status == 200
        seen += [item["path"] for item in json.loads(body)]
        link = headers.get("link")
        path = link[link.index(hub_server.endpoint) + len(hub_server.endpoint) : link.index(">")] if link else None
    assert seen == [f"d/f{i}.txt" for i in range(5)]
    listed = list(api.list_repo_tree(hub_repo_id, "d", expand=True))
    assert all(f.last_commit.title == "5" for f in listed)


def test_range_requests(api: HfApi, hub_repo_id: str, hub_server: HubServer) -> None:
    data = bytes(range(256)) * 64
    api.create_repo(hub_repo_id, repo_type="dataset")
    api.upload_file(path_or_fileobj=data, path_in_repo="blob.bin", repo_id=hub_repo_id, repo_type="dataset")
    url = f"/datasets/{hub_repo_id}/resolve/main/blob.bin"

    status, headers, body = raw_request(hub_server, "GET", url, headers={"Range": "bytes=100-199"})
    assert (status, body) == (206, data[100:200])
    assert headers["content-range"] == f"bytes 100-199/{len(data)}"
    status, headers, body = raw_request(hub_server, "HEAD", url)
    assert status == 200 and headers["x-linked-size"] == str(len(data)) and body == b""
    assert headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"' and headers["x-repo-commit"]
    status, _, _ = raw_request(hub_server, "GET", url, headers={"Range": f"bytes={len(data)}-"})
    assert status == 416

    with HfFileSystem().open(f"datasets/{hub_repo_id}/blob.bin", "rb") as remote:  # the client's own Range reads
        remote.seek(5000)
        assert remote.read(300) == data[5000:5300]


@pytest.mark.parametrize("path", [
    "/facereg/x/resolve/main/../../../etc/passwd",
    "/facereg/x/resolve/main/%2E%2E/%2E%2E/etc/passwd",
    "/facereg/x/resolve/main//etc/passwd",
    "/api/models/facereg/x/tree/main/a%2F..%2F..%2Fb",
])
def test_paths_leaving_the_repo_are_refused(hub_server: HubServer, path: str) -> None:
    status, _, _ = raw_request(hub_server, "GET", path)
    assert status == 400


@pytest.mark.parametrize("bad_path", ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt"])
def test_commits_leaving_the_repo_are_refused(api: HfApi, hub_server: HubServer, hub_repo_id: str,
                                              bad_path: str) -> None:
    api.create_repo(hub_repo_id)
    lines = [{"key": "header", "value": {"summary": "evil"}},
             {"key": "file", "value": {"path": bad_path, "content": "eA==", "encoding": "base64"}}]
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    headers = {"Authorization": f"Bearer {hub_server.token}", "Content-Type": "application/x-ndjson"}
    status, _, reply = raw_request(hub_server, "POST", f"/api/models/{hub_repo_id}/commit/main", body, headers)
    assert status == 400, reply
    assert api.list_repo_files(hub_repo_id) == [".gitattributes"]


def test_restart_keeps_everything(api: HfApi, hub_repo_id: str, hub_server: HubServer) -> None:
    api.create_repo(hub_repo_id, private=True)
    api.upload_file(path_or_fileobj=b"kept", path_in_repo="k.txt", repo_id=hub_repo_id)
    before = api.list_repo_commits(hub_repo_id)
    hub_server.restart()
    assert api.list_repo_commits(hub_repo_id) == before
    assert api.repo_info(hub_repo_id).private
    kept = hf_hub_download(hub_repo_id, "k.txt", force_download=True, token=hub_server.token)
    assert Path(kept).read_text() == "kept"


UPLOADER = textwrap.dedent("""
    import sys
    from huggingface_hub import HfApi
    HfApi(token=sys.argv[1]).upload_file(path_or_fileobj=sys.argv[3], path_in_repo="huge.bin", repo_id=sys.argv[2])
""")


def test_sigkill_during_upload_keeps_the_last_commit(api: HfApi, hub_repo_id: str, hub_server: HubServer,
                                                     tmp_path: Path) -> None:
    api.create_repo(hub_repo_id)
    last = api.upload_file(path_or_fileobj=b"before", path_in_repo="before.txt", repo_id=hub_repo_id).oid
    huge = tmp_path / "huge.bin"
    with huge.open("wb") as out:
        for i in range(300):
            out.write(hashlib.sha512(str(i).encode()).digest() * (MB // 64))
    huge_sha256 = hashlib.sha256(huge.read_bytes()).hexdigest()

    uploader = subprocess.Popen([sys.executable, "-c", UPLOADER, hub_server.token, hub_repo_id, str(huge)],
                                env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tmp_dir = hub_server.data_dir / "blobs" / "tmp"
    try:
        partial = 0
        deadline = time.monotonic() + 60
        while partial < 20 * MB and time.monotonic() < deadline and uploader.poll() is None:
            partial = max((f.stat().st_size for f in tmp_dir.glob("upload-*")), default=0)
            time.sleep(0.002)
        assert 0 < partial < huge.stat().st_size, "the upload was not caught in flight"
        hub_server.kill()
    finally:
        uploader.kill()
        uploader.wait()
        hub_server.start()

    assert api.model_info(hub_repo_id).sha == last
    assert sorted(api.list_repo_files(hub_repo_id)) == [".gitattributes", "before.txt"]
    assert not list(tmp_dir.iterdir())
    assert not (hub_server.data_dir / "blobs" / "sha256" / huge_sha256[:2] / huge_sha256[2:4] / huge_sha256).exists()
    assert Path(hf_hub_download(hub_repo_id, "before.txt", force_download=True)).read_bytes() == b"before"
    api.upload_file(path_or_fileobj=io.BytesIO(b"after"), path_in_repo="after.txt", repo_id=hub_repo_id)
    assert "after.txt" in api.list_repo_files(hub_repo_id)
