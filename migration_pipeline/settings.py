"""Every setting the tool reads, from the environment or a `.env` file.

Nothing else in the package reads `os.environ`: code takes a `Settings` (or the values it
needs) as an argument. Secrets are `SecretStr`, so they print as `**********` in logs,
reprs and exceptions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from migration_pipeline.errors import ConfigurationError

# How staged rows are matched to records the Pipedrive account held before the migration
# (migration_pipeline/steps/existing.py states the rule).
PersonMatch = Literal["email", "none"]
OrganizationMatch = Literal["name", "name_and_domain", "none"]


class Settings(BaseSettings):
    """The settings of DESIGN.md, one field per environment variable (case-insensitive)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    dynamics_url: str | None = Field(default=None, description="Environment URL, e.g. https://contoso.crm.dynamics.com")
    dynamics_tenant_id: str | None = None
    dynamics_client_id: str | None = None
    dynamics_client_secret: SecretStr | None = None
    dynamics_authority_url: str = "https://login.microsoftonline.com"

    pipedrive_url: str | None = Field(default=None, description="Company URL, e.g. https://acme.pipedrive.com")
    # One token, or several separated by commas: the burst limit is per token, so the writer
    # spreads its requests across all of them (the daily budget is shared by the company).
    pipedrive_api_token: SecretStr | None = None
    pipedrive_fallback_owner_email: str | None = None

    migration_home: Path = Path(".migration")
    migration_mappings_dir: Path = Path("mappings")

    # Linking, not duplicating, records that exist in Pipedrive before the migration.
    migration_match_persons: PersonMatch = Field(
        default="email", description="Persons: 'email' (any email, trimmed, case-folded) or 'none'"
    )
    migration_match_organizations: OrganizationMatch = Field(
        default="name", description="Organizations: 'name' (normalised), 'name_and_domain' (and the website's domain) or 'none'"
    )

    @field_validator("dynamics_url", "pipedrive_url", "dynamics_authority_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// for a local sandbox)")
        if value:
            _check_url(value)
        return value or None

    @field_validator("migration_match_persons", "migration_match_organizations", mode="before")
    @classmethod
    def _fold_rule(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def pipedrive_api_tokens(self) -> list[SecretStr]:
        """The configured Pipedrive API tokens, in order (the first is the primary one)."""
        if self.pipedrive_api_token is None:
            return []
        raw = self.pipedrive_api_token.get_secret_value()
        return [SecretStr(part.strip()) for part in raw.split(",") if part.strip()]

    def require(self, *names: str) -> None:
        """Raise a `ConfigurationError` naming every missing setting among `names`."""
        missing = [name.upper() for name in names if getattr(self, name) in (None, "")]
        if missing:
            raise ConfigurationError(
                f"Missing setting{'s' if len(missing) > 1 else ''}: {', '.join(missing)}.",
                hint=f"Set {'them' if len(missing) > 1 else 'it'} in the environment or in a .env file "
                "(`migrate sandbox --env-file .env` writes the ones that point at the local sandbox).",
            )


def _check_url(value: str) -> None:
    """Refuse what no HTTP client can send a request to: spaces, no host, a port that is not a number.

    The messages do not repeat the value: a URL pasted from a browser may carry a token.
    """
    from urllib.parse import urlsplit

    if any(character.isspace() for character in value):
        raise ValueError("is not a URL: it contains a space")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port that is not a number in 0..65535
    except ValueError as error:
        raise ValueError(f"is not a URL ({error})") from None
    if not parts.hostname:
        raise ValueError("is not a URL: it names no host")


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning validation failures into a `ConfigurationError` people can act on."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']).upper()}: {error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        raise ConfigurationError(
            f"Invalid settings: {problems}.",
            hint="Fix the named variables in the environment or in the .env file, then run the command again "
            "(URLs look like https://contoso.crm.dynamics.com and https://acme.pipedrive.com).",
        ) from None
