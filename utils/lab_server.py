"""JupyterLab on the course: the notebooks a learner reads are never written, and reading them costs one kernel.

``make lab``, Binder and the browser test run Jupyter Server with this configuration (installed as
``etc/jupyter/jupyter_server_config.json`` in the environment, from ``binder/jupyter-server-course.json``):

* :class:`CourseContentsManager`: files under ``reference/`` and ``solutions/`` are served as read-only
  (``writable: false``, so JupyterLab shows them read-only and never autosaves them), and saving, renaming or deleting
  them is refused with a message that says to copy the notebook into ``work/``. Opening a shipped notebook therefore
  leaves ``git status`` clean: JupyterLab's own metadata updates (language version, dropped empty fields) are never
  written back.
* :class:`CourseSessionManager`: every notebook opened under those folders shares **one** kernel (the first one's),
  instead of starting a kernel per notebook opened to read; on Binder's 2 GB each extra kernel that loads the model
  costs about 1 GB. The learner's own notebooks in ``work/`` get their own kernels as usual.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from jupyter_server.services.sessions.sessionmanager import SessionManager
from tornado import web

READ_ONLY_DIRS = ("reference", "solutions")


def is_read_only(path: str | None) -> bool:
    """Is ``path`` (relative to the server root, ``/``-separated) inside one of :data:`READ_ONLY_DIRS`?"""
    if not path:
        return False
    parts = PurePosixPath(path.strip("/")).parts
    return len(parts) > 1 and parts[0] in READ_ONLY_DIRS


def _refuse(path: str, action: str) -> web.HTTPError:
    return web.HTTPError(403, f"{path} is part of the course and opens read-only, so it cannot be {action}. To edit "
                              f"or run your own version, copy it into work/ (File Browser: right-click, Copy, then "
                              f"Paste in work/).")


class CourseContentsManager(AsyncLargeFileManager):
    """The default contents manager, with :data:`READ_ONLY_DIRS` read-only (see the module docstring)."""

    async def get(self, path: str, content: bool = True, type: str | None = None, format: str | None = None,
                  require_hash: bool = False) -> dict[str, Any]:
        model = await super().get(path, content=content, type=type, format=format, require_hash=require_hash)
        if is_read_only(path):
            model["writable"] = False
        return model

    async def save(self, model: dict[str, Any], path: str = "") -> dict[str, Any]:
        if is_read_only(path):
            raise _refuse(path, "saved")
        return await super().save(model, path)

    async def rename_file(self, old_path: str, new_path: str) -> None:
        if is_read_only(old_path) or is_read_only(new_path):
            raise _refuse(old_path if is_read_only(old_path) else new_path, "renamed")
        return await super().rename_file(old_path, new_path)

    async def delete_file(self, path: str) -> None:
        if is_read_only(path):
            raise _refuse(path, "deleted")
        return await super().delete_file(path)


class CourseSessionManager(SessionManager):
    """Sessions whose notebook is under :data:`READ_ONLY_DIRS` share one kernel (see the module docstring)."""

    async def create_session(self, path: str | None = None, name: Any = None, type: str | None = None,
                             kernel_name: Any = None, kernel_id: str | None = None) -> dict[str, Any]:
        if kernel_id is None and is_read_only(path):
            for session in await self.list_sessions():
                kernel = session.get("kernel") or {}
                if is_read_only(session.get("path")) and kernel.get("id"):
                    kernel_id = kernel["id"]
                    break
        return await super().create_session(path=path, name=name, type=type, kernel_name=kernel_name,
                                            kernel_id=kernel_id)
