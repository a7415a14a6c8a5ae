"""Token expiry, page parsing and metadata models."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from migration_pipeline.dynamics.models import (
    AccessToken,
    AttributeDefinition,
    ChoiceAttribute,
    EntityDefinition,
    Page,
    TokenResponse,
    is_deleted,
)


def token(expires_in: int | str) -> TokenResponse:
    return TokenResponse.model_validate({"access_token": "abc", "expires_in": expires_in, "token_type": "Bearer"})


def test_a_token_is_renewed_five_minutes_before_it_expires() -> None:
    access = AccessToken.issued(token(3599), now=1000.0, renew_before=300)
    assert access.is_fresh(1000.0 + 3599 - 301)
    assert not access.is_fresh(1000.0 + 3599 - 300)


def test_a_short_lived_token_is_used_for_half_its_life() -> None:
    access = AccessToken.issued(token(60), now=0.0, renew_before=300)
    assert access.is_fresh(29.9)
    assert not access.is_fresh(30.0)


def test_the_legacy_string_lifetime_is_accepted() -> None:
    assert token("3600").expires_in == 3600


def test_tokens_never_show_in_reprs() -> None:
    access = AccessToken.issued(token(3600), now=0.0, renew_before=300)
    assert "abc" not in repr(access) and "abc" not in str(access)
    assert access.value == SecretStr("abc")


def test_a_page_carries_rows_and_links() -> None:
    page = Page.from_json(
        {
            "@odata.context": "https://x/api/data/v9.2/$metadata#accounts(name)",
            "value": [{"accountid": "1"}],
            "@odata.nextLink": "https://x/api/data/v9.2/accounts?$select=name&$skiptoken=abc",
        }
    )
    assert page.rows == [{"accountid": "1"}]
    assert page.next_link == "https://x/api/data/v9.2/accounts?$select=name&$skiptoken=abc"
    assert page.delta_link is None


def test_the_last_page_has_no_next_link() -> None:
    page = Page.from_json({"value": [], "@odata.deltaLink": "https://x/api/data/v9.2/accounts?$deltatoken=9!1"})
    assert page.next_link is None
    assert page.delta_link == "https://x/api/data/v9.2/accounts?$deltatoken=9!1"


def test_deleted_rows_are_recognised_in_a_delta_page() -> None:
    deleted = {"@odata.context": "https://x/api/data/v9.2/$metadata#accounts/$deletedEntity", "id": "g1", "reason": "deleted"}
    changed = {"@odata.etag": 'W/"1"', "accountid": "g2", "name": "Changed"}
    page = Page.from_json({"value": [changed, deleted]})
    assert is_deleted(deleted) and not is_deleted(changed)
    assert page.deleted_ids == ["g1"]
    assert page.changed_rows == [changed]


def test_entity_definitions_select_exactly_what_the_model_reads() -> None:
    select = EntityDefinition.select().split(",")
    assert {"LogicalName", "EntitySetName", "PrimaryIdAttribute", "ChangeTrackingEnabled"} <= set(select)
    assert all(name[0].isupper() for name in select)


def test_metadata_is_read_from_pascal_case_with_labels() -> None:
    entity = EntityDefinition.model_validate(
        {
            "LogicalName": "account",
            "EntitySetName": "accounts",
            "PrimaryIdAttribute": "accountid",
            "PrimaryNameAttribute": "name",
            "ChangeTrackingEnabled": True,
            "DisplayName": {"LocalizedLabels": [{"Label": "Account", "LanguageCode": 1033}], "UserLocalizedLabel": None},
            "MetadataId": "ignored",
        }
    )
    assert entity.entity_set_name == "accounts" and entity.change_tracking_enabled
    assert entity.display_name is not None and entity.display_name.text == "Account"

    attribute = AttributeDefinition.model_validate(
        {"LogicalName": "owneridname", "AttributeOf": "ownerid", "RequiredLevel": {"Value": "None", "CanBeChanged": False}}
    )
    assert attribute.attribute_of == "ownerid" and attribute.required_level is not None
    assert attribute.required_level.value == "None"


def test_status_options_keep_their_state() -> None:
    choice = ChoiceAttribute.model_validate(
        {
            "LogicalName": "statuscode",
            "OptionSet": {
                "Options": [
                    {"Value": 3, "State": 1, "Label": {"UserLocalizedLabel": {"Label": "Won", "LanguageCode": 1033}}},
                ]
            },
        }
    )
    assert choice.option_set is not None
    [option] = choice.option_set.options
    assert (option.value, option.state, option.text) == (3, 1, "Won")


@pytest.mark.parametrize("body", [{"access_token": "x"}, {"expires_in": 3600}])
def test_a_token_answer_without_token_or_lifetime_is_rejected(body: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TokenResponse.model_validate(body)
