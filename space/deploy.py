"""`python -m space deploy USER/SPACE`: publish this repository's app as a Hugging Face Space, in one commit.

A Space runs its `app_file` (`space/app.py`) as a script from the root of the Space repo, after installing its
`requirements.txt`. The app imports the `trainer` and `hub_tools` packages, so the Space repo holds exactly:
`trainer/`, `hub_tools/`, `space/`, `requirements.txt`, and `space/README.md` as its `README.md` (the front matter
that makes it a Gradio Space with "Sign in with Hugging Face"). Nothing else goes up: no tests, benchmarks, data,
runs, caches or type stubs; files that an earlier deploy uploaded and that are gone here are deleted.

    from space.deploy import deploy_space
    url = deploy_space("me/facereg")          # token: token=, else HF_TOKEN, else the stored `hf auth login`
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hub_tools.errors import HubError  # (importing `space` first applied FACEREG_HUB_ENDPOINT)

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("facereg", "trainer", "hub_tools", "space")
TOP_FILES = ("requirements.txt", "pyproject.toml")  # pyproject: `pip install "git+<the Space's URL>"` works too
CARD = "space/README.md"  # uploaded as the Space's README.md
SPACE_SDK = "gradio"
# Inside the packages: what the running app does not use.
LEFT_OUT_FILES = frozenset({"space/testing.py", CARD})  # testing.py: a helper for tests and benchmarks
LEFT_OUT_SUFFIXES = (".pyc", ".pyo", ".pyi")  # bytecode, and the stubs Gradio writes next to components
KEPT_FILES = frozenset({".gitattributes"})  # written by the Hub; never deleted by a deploy


class SpaceFilesError(HubError):
    """The local files cannot make a working Space (a package or requirements.txt missing, bad README metadata)."""


def space_files(root: str | Path = REPO_ROOT) -> dict[str, Path]:
    """What the Space repo must hold: its path in the repo -> the local file, sorted by path."""
    root = Path(root)
    files: dict[str, Path] = {}
    for name in (*PACKAGES, *TOP_FILES):
        if not (root / name).exists():
            raise SpaceFilesError(f"cannot deploy from {root}: {name} is missing (deploy from a FaceReg checkout)")
    for package in PACKAGES:
        for path in (root / package).rglob("*"):
            parts = path.relative_to(root).parts
            relative = "/".join(parts)
            hidden = any(part.startswith(".") or part == "__pycache__" for part in parts)
            left_out = relative in LEFT_OUT_FILES or relative.endswith(LEFT_OUT_SUFFIXES)
            if path.is_file() and not hidden and not left_out:
                files[relative] = path
    for name in TOP_FILES:
        files[name] = root / name
    files["README.md"] = root / CARD
    check_card(root / CARD, files)
    return dict(sorted(files.items()))


def check_card(card: Path, files: dict[str, Path]) -> dict:
    """The README metadata of the Space, checked: a Gradio Space whose app_file is uploaded, with OAuth on."""
    import yaml
    from huggingface_hub import metadata_load

    if not card.is_file():
        raise SpaceFilesError(f"{card} is missing: it is the Space's README.md, with its settings")
    try:
        meta = metadata_load(card) or {}
    except yaml.YAMLError as exc:
        raise SpaceFilesError(f"{card}: its front matter is not valid YAML ({type(exc).__name__})") from None
    if meta.get("sdk") != SPACE_SDK:
        raise SpaceFilesError(f"{card}: the front matter must say 'sdk: {SPACE_SDK}', found {meta.get('sdk')!r}")
    if meta.get("app_file") not in files:
        raise SpaceFilesError(f"{card}: app_file {meta.get('app_file')!r} is not among the files deployed")
    if meta.get("hf_oauth") is not True:
        raise SpaceFilesError(f"{card}: the front matter must say 'hf_oauth: true' (visitors sign in for Hub actions)")
    return meta


def deploy_space(
    repo_id: str, private: bool = False, token: str | None = None, *, root: str | Path = REPO_ROOT
) -> str:
    """Create the Space (Gradio SDK, if absent) and make its files exactly the app's, in one commit; return its URL.

    `private` applies when the Space is created; an existing Space keeps its visibility.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    from hub_tools.auth import resolve_token
    from hub_tools.errors import hub_errors

    files = space_files(root)
    token = resolve_token(token, required=True, action="deploying a Space")
    with hub_errors(repo_id, token=token, repo_type="space"):
        api = HfApi(token=token)
        url = api.create_repo(repo_id, repo_type="space", space_sdk=SPACE_SDK, private=private, exist_ok=True)
        present = api.list_repo_files(url.repo_id, repo_type="space")
        operations = [CommitOperationAdd(path, str(local)) for path, local in files.items()]
        operations += [CommitOperationDelete(path) for path in present if path not in files and path not in KEPT_FILES]
        api.create_commit(url.repo_id, operations, repo_type="space", commit_message="Deploy FaceReg")
    return str(url)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of `python -m space deploy`."""
    parser = argparse.ArgumentParser(prog="python -m space deploy", description=__doc__.splitlines()[0])
    parser.add_argument("repo", metavar="USER/SPACE", help="the Space's repo id, e.g. me/facereg")
    parser.add_argument("--private", action="store_true",
                        help="create the Space private (an existing Space keeps its visibility)")
    parser.add_argument("--token", help="Hub token allowed to write there (default: HF_TOKEN, then `hf auth login`)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Deploy and print the Space's URL; return the exit status (1 with a one-line error on stderr)."""
    from hub_tools.cli import run_command

    def deploy(args: argparse.Namespace) -> None:
        print(deploy_space(args.repo, private=args.private, token=args.token))

    return run_command(deploy, build_parser().parse_args(argv))

if __name__ == "__main__":
    sys.exit(main())
