"""Who may use a model: the access rule, written once.

Every developer may use an open model; a restricted one only the groups and users its access
lists name (a user also through any group of theirs). The developers' model list, the chat
turn's check and the admin's "What developers see" all ask `AccessLists.permits`.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass

from llmadmin.models import LLMModel


@dataclass(frozen=True)
class AccessLists:
    """The group ids and user ids each restricted model lists, by model id."""

    groups: dict[int, set[int]]
    users: dict[int, set[int]]

    def permits(
        self, model_id: int, *, restricted: bool, group_ids: Set[int], user_id: int | None
    ) -> bool:
        """Whether a user (user_id, and the ids of their groups) or a group (its id alone,
        user_id None) may use the model."""
        if not restricted:
            return True
        return bool(group_ids & self.groups.get(model_id, set())) or (
            user_id is not None and user_id in self.users.get(model_id, set())
        )


def access_lists(model_ids: Iterable[int] | None = None) -> AccessLists:
    """The access lists of every restricted model (of these models only, when given): two
    queries."""
    groups: dict[int, set[int]] = {}
    users: dict[int, set[int]] = {}
    group_rows = LLMModel.allowed_groups.through.objects.all()
    user_rows = LLMModel.allowed_users.through.objects.all()
    if model_ids is not None:
        model_ids = list(model_ids)
        group_rows = group_rows.filter(llmmodel_id__in=model_ids)
        user_rows = user_rows.filter(llmmodel_id__in=model_ids)
    for model_id, group_id in group_rows.values_list("llmmodel_id", "group_id"):
        groups.setdefault(model_id, set()).add(group_id)
    for model_id, user_id in user_rows.values_list("llmmodel_id", "user_id"):
        users.setdefault(model_id, set()).add(user_id)
    return AccessLists(groups, users)
