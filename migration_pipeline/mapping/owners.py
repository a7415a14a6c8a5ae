"""The owner map: every Dynamics owner (system user or team) -> a Pipedrive user.

Owners match by email, trimmed and case-insensitive, against active Pipedrive users. The
rest fall to the fallback user (`PIPEDRIVE_FALLBACK_OWNER_EMAIL`), and those still active in
Dynamics are listed as "needs a Pipedrive account", so the team can invite them before the
load instead. Team-owned records always go to the fallback user: Pipedrive has no team
owners. Without a usable fallback user, any unmatched owner blocks the load.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict

from migration_pipeline.mapping.spec import load_model, write_model


OwnerStatus = Literal["matched", "needs_pipedrive_account", "fallback", "unresolved"]


class OwnerEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dynamics_id: str
    kind: Literal["systemuser", "team"]
    name: str | None = None
    email: str | None = None
    disabled: bool = False
    records: int = 0
    status: OwnerStatus
    pipedrive_user_id: int | None = None
    reason: str = ""


class OwnerMap(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fallback_email: str | None = None
    fallback_user_id: int | None = None
    owners: list[OwnerEntry]

    def lookup(self) -> dict[str, int]:
        """Dynamics owner id (lower case) -> Pipedrive user id, for every resolved owner."""
        return {o.dynamics_id.lower(): o.pipedrive_user_id for o in self.owners if o.pipedrive_user_id is not None}

    @property
    def blocking(self) -> list[OwnerEntry]:
        """Owners with records and no Pipedrive user to receive them."""
        return [o for o in self.owners if o.status == "unresolved" and o.records > 0]


def normalize_email(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip().casefold() or None


def propose_owner_map(
    systemusers: pd.DataFrame,
    teams: pd.DataFrame,
    pipedrive_users: Sequence[Mapping[str, Any]],
    fallback_email: str | None,
    record_counts: Mapping[str, int],
) -> OwnerMap:
    """Match every system user and team; `record_counts` is records owned per Dynamics owner id."""
    active = {
        normalize_email(user.get("email")): int(user["id"])
        for user in pipedrive_users
        if user.get("active_flag", True) and not user.get("is_deleted", False) and normalize_email(user.get("email"))
    }
    fallback_id = active.get(normalize_email(fallback_email)) if fallback_email else None
    counts = {key.lower(): value for key, value in record_counts.items()}

    def unmatched(reason: str) -> tuple[OwnerStatus, int | None, str]:
        if fallback_id is None:
            why = "no fallback user is set" if not fallback_email else f"the fallback user {fallback_email} is not an active Pipedrive user"
            return "unresolved", None, f"{reason}; {why}"
        return "fallback", fallback_id, f"{reason}; goes to the fallback user"

    entries: list[OwnerEntry] = []
    for user in systemusers.to_dict("records"):
        email = normalize_email(user.get("internalemailaddress"))
        disabled = bool(user.get("isdisabled")) if pd.notna(user.get("isdisabled")) else False
        owner_id = str(user["systemuserid"]).lower()
        if email and email in active:
            status, target, reason = "matched", active[email], "same email in Pipedrive"
        elif disabled:
            status, target, reason = unmatched("disabled in Dynamics")
        else:
            status, target, reason = unmatched("active in Dynamics, no Pipedrive user with this email")
            if status == "fallback":
                status = "needs_pipedrive_account"
        entries.append(
            OwnerEntry(
                dynamics_id=owner_id, kind="systemuser", name=user.get("fullname"), email=user.get("internalemailaddress"),
                disabled=disabled, records=counts.get(owner_id, 0), status=status, pipedrive_user_id=target, reason=reason,
            )
        )
    for team in teams.to_dict("records"):
        team_id = str(team["teamid"]).lower()
        status, target, reason = unmatched("owned by a team (Pipedrive has no team owners)")
        entries.append(
            OwnerEntry(dynamics_id=team_id, kind="team", name=team.get("name"), records=counts.get(team_id, 0),
                       status=status, pipedrive_user_id=target, reason=reason)
        )
    entries.sort(key=lambda entry: (entry.kind, entry.status, (entry.name or "").casefold(), entry.dynamics_id))
    return OwnerMap(fallback_email=fallback_email, fallback_user_id=fallback_id, owners=entries)


def write_owner_map(owner_map: OwnerMap, path: Path) -> None:
    header = (
        "# Dynamics owners -> Pipedrive users, proposed by `migrate plan`.\n"
        "# status: matched (same email) | needs_pipedrive_account (active in Dynamics; goes to the fallback user\n"
        "# unless you invite them to Pipedrive and plan again) | fallback | unresolved (blocks the load).\n"
    )
    write_model(owner_map, path, header)


def read_owner_map(path: Path) -> OwnerMap:
    return load_model(path, OwnerMap)
