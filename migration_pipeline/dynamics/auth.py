"""OAuth2 client credentials against Microsoft Entra ID, as a plain form POST.

MSAL refuses an authority that is not https, and the sandbox's token endpoint is plain http
on loopback, so the token is fetched with httpx directly: `POST {authority}/{tenant}/oauth2/v2.0/token`
with `grant_type=client_credentials` and `scope={DYNAMICS_URL}/.default`. The client-credentials
grant issues no refresh token, so the token is cached and fetched anew a few minutes before it
expires, or at once when Dataverse answers 401.
"""

from __future__ import annotations

import threading
import time

import httpx
from pydantic import SecretStr, ValidationError

from migration_pipeline.dynamics.errors import AUTHORITY_URL, SETTING_HINTS, exhausted, token_error
from migration_pipeline.dynamics.models import AccessToken, TokenResponse
from migration_pipeline.dynamics.retry import RETRYABLE, RetryPolicy, raise_if_transient
from migration_pipeline.dynamics.throttle import Clock
from migration_pipeline.errors import AuthenticationError

RENEW_BEFORE_SECONDS = 300.0


class ClientCredentials:
    """Hands out a valid bearer token for one app registration, fetching it only when needed.

    Thread-safe: threads sharing one client wait for a single token request instead of
    each sending their own.
    """

    def __init__(
        self,
        *,
        authority_url: str,
        tenant_id: str,
        client_id: str,
        client_secret: SecretStr,
        scope: str,
        renew_before: float = RENEW_BEFORE_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        self.authority_url = authority_url.rstrip("/")
        self.token_url = f"{self.authority_url}/{tenant_id}/oauth2/v2.0/token"
        self.client_id = client_id
        self.scope = scope
        self._client_secret = client_secret
        self._renew_before = renew_before
        self._clock = clock
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self.token_requests = 0

    def __repr__(self) -> str:
        return f"ClientCredentials(token_url={self.token_url!r}, client_id={self.client_id!r}, scope={self.scope!r})"

    def bearer(self, http: httpx.Client, policy: RetryPolicy) -> SecretStr:
        """The cached token while it is fresh; otherwise a new one from the token endpoint."""
        with self._lock:
            if self._token is None or not self._token.is_fresh(self._clock()):
                self._token = self._fetch(http, policy)
            return self._token.value

    def invalidate(self, rejected: SecretStr) -> None:
        """Drop the token Dataverse just rejected, unless another thread has already replaced it."""
        with self._lock:
            if self._token is not None and self._token.value == rejected:
                self._token = None

    def _fetch(self, http: httpx.Client, policy: RetryPolicy) -> AccessToken:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret.get_secret_value(),
            "scope": self.scope,
        }
        self.token_requests += 1  # under self._lock, held by `bearer`
        try:
            for attempt in policy.retrying():
                with attempt:
                    sent_at = self._clock()
                    response = raise_if_transient(http.post(self.token_url, data=form, headers={"Accept": "application/json"}))
        except RETRYABLE as error:
            raise exhausted(error, setting=AUTHORITY_URL, url=self.authority_url, attempts=policy.attempts_for(error)) from error
        if response.status_code != 200:
            raise token_error(response, self._client_secret)
        try:
            issued = TokenResponse.model_validate_json(response.content)
        except ValidationError:
            raise AuthenticationError(
                f"The token endpoint {self.token_url} answered 200 without an access token and its lifetime.",
                hint=SETTING_HINTS[AUTHORITY_URL],
            ) from None
        return AccessToken.issued(issued, now=sent_at, renew_before=self._renew_before)
