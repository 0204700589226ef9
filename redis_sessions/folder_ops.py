"""A user's folders of course material, as core operations (see ``folders`` for their analysis)."""

from __future__ import annotations

import uuid

import msgspec

from . import codec, folders
from ._corebase import (
    CoreBase,
)
from .exceptions import (
    InvalidInput,
)
from .keys import check_user_id, check_uuid
from .records import Folder
from .requests import LoadFolder, Op, RunScript
from .scripts import ScriptName


class FolderOps(CoreBase):
    """The core operations on a user's folders."""

    def put_folder(self, user_id: str, folder: Folder) -> Op[Folder]:
        """The core operation behind ``SessionStore.put_folder`` (documented there)."""
        uid = check_user_id(user_id)
        if not isinstance(folder, Folder):
            raise InvalidInput(f"folder must be a Folder, got {type(folder).__name__}")
        fid = check_uuid(folder.id, "folder id")
        if not isinstance(folder.name, str) or not isinstance(folder.knowledge_base, str):
            raise InvalidInput("folder name and knowledge_base must be str")
        now = self.now()
        pairs = folders.folder_fields(msgspec.structs.replace(folder, id=fid), uid, now)
        size = sum(len(v) for _, v in pairs)
        if size > self.config.max_context_bytes // 2:
            raise InvalidInput(
                f"folder is {size} bytes; at most max_context_bytes/2 = "
                f"{self.config.max_context_bytes // 2} (its analysis is copied into contexts)"
            )
        created = yield RunScript(
            ScriptName.PUT_FOLDER, [self.keys.folder(uid, fid)], codec.flatten(pairs)
        )
        return msgspec.structs.replace(
            folder, id=uuid.UUID(fid), created_at=codec.parse_time(created), updated_at=now
        )

    def get_folder_data(self, folder_id: str | uuid.UUID, user_id: str) -> Op[Folder | None]:
        """The core operation behind ``SessionStore.get_folder_data`` (documented there)."""
        fid, uid = check_uuid(folder_id, "folder_id"), check_user_id(user_id)
        if self.folder_source is not None:
            found: Folder | None = yield LoadFolder(fid, uid)
            return found
        key = self.keys.folder(uid, fid)
        fields = yield from self._read_hash("HGETALL", key)
        if not fields:
            return None
        try:
            return folders.folder_from_fields(fields, uid, fid)
        except codec.CorruptRecord as exc:
            self.report_corrupt(key, exc)
            return None

    def delete_folder(
        self, folder_id: str | uuid.UUID, user_id: str, *, request_id: str | None = None
    ) -> Op[bool]:
        """The core operation behind ``SessionStore.delete_folder`` (documented there)."""
        fid, uid = check_uuid(folder_id, "folder_id"), check_user_id(user_id)
        keys = [self.keys.folder(uid, fid), self.request_key(uid, request_id)]
        reply = yield RunScript(ScriptName.DELETE_FOLDER, keys, [fid, self._replay_window_ms])
        return bool(int(reply[0]))
