"""reference/ and solutions/ open read-only in JupyterLab and share one kernel (issue 25, item 1): the contents
manager and session manager of ``utils.lab_server``, called directly (no server), and the configuration that
``make lab`` and Binder install. The browser test (tests/test_lab_browser.py) opens them in a real JupyterLab."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from tornado import web

from utils.lab_server import CourseContentsManager, CourseSessionManager, is_read_only

ROOT = Path(__file__).resolve().parent.parent


def test_which_paths_are_read_only() -> None:
    assert is_read_only("reference/03_steering.ipynb") and is_read_only("/solutions/00_setup_and_tour.py")
    assert not is_read_only("work/03_steering.ipynb") and not is_read_only("reference") and not is_read_only("")
    assert not is_read_only("chapters/00_setup_and_tour.ipynb") and not is_read_only("referenced/x.ipynb")


@pytest.fixture()
def contents(tmp_path: Path) -> CourseContentsManager:
    for folder in ("reference", "solutions", "work"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.ipynb").write_bytes((ROOT / "chapters" / "00_setup_and_tour.ipynb").read_bytes())
    return CourseContentsManager(root_dir=str(tmp_path))


def test_shipped_notebooks_are_served_read_only_and_never_written(contents: CourseContentsManager,
                                                                    tmp_path: Path) -> None:
    async def play() -> None:
        before = (tmp_path / "reference" / "a.ipynb").read_bytes()
        model = await contents.get("reference/a.ipynb")
        assert model["writable"] is False
        assert (await contents.get("work/a.ipynb"))["writable"] is True
        model["content"]["metadata"]["language_info"] = {"version": "3.11.99"}  # what JupyterLab would save
        for action in (contents.save(dict(model, type="notebook"), "reference/a.ipynb"),
                       contents.rename_file("solutions/a.ipynb", "solutions/b.ipynb"),
                       contents.rename_file("work/a.ipynb", "reference/b.ipynb"),
                       contents.delete_file("reference/a.ipynb")):
            with pytest.raises(web.HTTPError) as refused:
                await action
            assert refused.value.status_code == 403 and "copy it into work/" in refused.value.log_message
        assert (tmp_path / "reference" / "a.ipynb").read_bytes() == before
        assert sorted(p.name for p in (tmp_path / "solutions").iterdir()) == ["a.ipynb"]
        work = await contents.get("work/a.ipynb")
        await contents.save(dict(work, type="notebook"), "work/a.ipynb")  # the learner's copies save as usual

    asyncio.run(play())


def test_read_only_notebooks_share_one_kernel_and_work_notebooks_get_their_own(tmp_path: Path) -> None:
    started: list[str] = []

    from jupyter_server.services.kernels.kernelmanager import MappingKernelManager

    class FakeKernels(MappingKernelManager):  # records starts; starts nothing
        def __contains__(self, kernel_id: object) -> bool:
            return kernel_id in {f"k{i + 1}" for i in range(len(started))}

    class Sessions(CourseSessionManager):
        async def start_kernel_for_session(self, session_id, path, name, type, kernel_name, kernel_id=None):
            started.append(path)
            return f"k{len(started)}"

        async def row_to_model(self, row, tolerate_culled=False):  # no real kernel to describe
            return {"id": row["session_id"], "path": row["path"], "kernel": {"id": row["kernel_id"]}}

    async def play() -> list[dict]:
        sessions = Sessions(kernel_manager=FakeKernels(), contents_manager=CourseContentsManager(root_dir=str(tmp_path)))
        for path in ("reference/03_steering.ipynb", "solutions/00_setup_and_tour.ipynb", "work/00_setup_and_tour.ipynb",
                     "reference/00_setup_and_tour.ipynb", "work/03_steering.ipynb"):
            await sessions.create_session(path=path, name=path, type="notebook", kernel_name="python3")
        return await sessions.list_sessions()

    made = {s["path"]: s["kernel"]["id"] for s in asyncio.run(play())}
    assert len(started) == 3, started  # one for all read-only notebooks, one per work/ notebook
    shared = {made[p] for p in made if is_read_only(p)}
    assert len(shared) == 1 and not shared & {made["work/00_setup_and_tour.ipynb"], made["work/03_steering.ipynb"]}


def test_make_lab_and_binder_install_the_server_configuration() -> None:
    config = json.loads((ROOT / "binder" / "jupyter-server-course.json").read_text())["ServerApp"]
    assert config == {"contents_manager_class": "utils.lab_server.CourseContentsManager",
                      "session_manager_class": "utils.lab_server.CourseSessionManager"}
    target = "etc/jupyter/jupyter_server_config.json"
    assert f"cp binder/jupyter-server-course.json $(VENV)/{target}" in (ROOT / "Makefile").read_text()
    assert f'"${{prefix}}/{target}"' in (ROOT / "binder" / "postBuild").read_text()
