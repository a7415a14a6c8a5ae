"""The smallest useful company account: for tests and for trying the simulator by hand.

The synthetic generator builds realistic seeds; this one is tiny and fixed so a test can
name its ids: users 1 (admin, token `admin-token`), 2 (token `second-token`) and 3
(deactivated); currencies EUR and USD; the usual activity types; one pipeline (id 1) with
stages 1-3.
"""

from __future__ import annotations

from migration_pipeline.sandbox.dataset import PipedrivePlan, PipedriveSeed

ADMIN_TOKEN = "admin-token"
SECOND_TOKEN = "second-token"
_STAMP = "2026-01-01T00:00:00Z"


def _user(user_id: int, name: str, email: str, active: bool = True, admin: bool = False) -> dict:
    return {"id": user_id, "name": name, "email": email, "default_currency": "EUR", "locale": "en_US", "lang": 1,
            "phone": None, "activated": active, "last_login": "2026-01-01 00:00:00", "created": "2025-01-01 00:00:00",
            "modified": None, "has_created_company": admin,
            "access": [{"app": "sales", "admin": admin, "permission_set_id": "1"}], "active_flag": active,
            "timezone_name": "Europe/Oslo", "timezone_offset": "+01:00", "role_id": 1, "icon_url": None,
            "is_you": False, "is_deleted": False}


def minimal_seed(plan: PipedrivePlan | None = None) -> PipedriveSeed:
    activity_types = [
        {"id": index + 1, "name": name, "icon_key": key, "color": None, "order_nr": index + 1, "key_string": key,
         "active_flag": True, "is_custom_flag": False, "add_time": _STAMP, "update_time": _STAMP}
        for index, (key, name) in enumerate([("call", "Call"), ("meeting", "Meeting"), ("task", "Task"),
                                             ("deadline", "Deadline"), ("email", "Email"), ("lunch", "Lunch")])
    ]
    return PipedriveSeed(
        company_domain="sandbox",
        users=[_user(1, "Ada Admin", "ada@example.com", admin=True), _user(2, "Bob Seller", "bob@example.com"),
               _user(3, "Cy Gone", "cy@example.com", active=False)],
        api_tokens={ADMIN_TOKEN: 1, SECOND_TOKEN: 2},
        currencies=[{"id": 1, "code": "EUR", "name": "Euro", "decimal_points": 2, "symbol": "€", "active_flag": True,
                     "is_custom_flag": False},
                    {"id": 2, "code": "USD", "name": "US Dollar", "decimal_points": 2, "symbol": "$",
                     "active_flag": True, "is_custom_flag": False}],
        activity_types=activity_types,
        pipelines=[{"id": 1, "name": "Sales", "order_nr": 1, "is_deleted": False, "is_deal_probability_enabled": False,
                    "add_time": _STAMP, "update_time": _STAMP}],
        stages=[{"id": index + 1, "order_nr": index + 1, "name": name, "is_deleted": False, "deal_probability": prob,
                 "pipeline_id": 1, "is_deal_rot_enabled": False, "days_to_rotten": None, "add_time": _STAMP,
                 "update_time": _STAMP}
                for index, (name, prob) in enumerate([("Qualified", 20), ("Proposal", 60), ("Negotiation", 80)])],
        plan=plan or PipedrivePlan(),
    )
