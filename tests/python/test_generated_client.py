"""A client generated from Bursar's /openapi.json by openapi-python-client (run.sh generates it
as the `bursar_client` package), used the way LiteLLM's generated clients are: method names
are LiteLLM's operation ids, models are LiteLLM's schema names."""

import datetime

import pytest
from bursar_client import AuthenticatedClient
from bursar_client.api.budget_spend_tracking import (
    get_user_daily_activity_user_daily_activity_get as user_daily_activity,
)
from bursar_client.api.internal_user_management import (
    delete_user_user_delete_post as delete_user,
    get_users_user_list_get as list_users,
    new_user_user_new_post as new_user,
    user_info_user_info_get as user_info,
    user_update_user_update_post as update_user,
)
from bursar_client.api.organization_management import (
    info_organization_organization_info_get as organization_info,
    new_organization_organization_new_post as new_organization,
)
from bursar_client.api.team_management import (
    list_team_v2_v2_team_list_get as list_teams,
    new_team_team_new_post as new_team,
)
from bursar_client.models import (
    DeleteUserRequest,
    ErrorResponse,
    LiteLLMOrganizationTableWithMembers,
    LiteLLMTeamTable,
    NewOrganizationRequest,
    NewTeamRequest,
    NewUserRequest,
    NewUserResponse,
    SpendAnalyticsPaginatedResponse,
    TeamListResponse,
    UpdateUserRequest,
    UserInfoResponse,
    UserListResponse,
)


@pytest.fixture(scope="module")
def client(base_url, master_key) -> AuthenticatedClient:
    with AuthenticatedClient(base_url=base_url, token=master_key) as c:
        yield c


def test_users_are_created_listed_updated_and_deleted(client, unique):
    created = new_user.sync(
        client=client,
        body=NewUserRequest(
            user_id=f"alice-{unique}",
            user_email=f"alice-{unique}@example.com",
            user_role="internal_user",
            max_budget=10.0,
            models=["gpt-4o-mini"],
        ),
    )
    assert isinstance(created, NewUserResponse), created
    assert created.user_id == f"alice-{unique}"
    assert created.key.startswith("sk-")
    new_user.sync(
        client=client,
        body=NewUserRequest(
            user_id=f"bob-{unique}", user_email=f"bob-{unique}@example.com", auto_create_key=False
        ),
    )

    # Filters: by partial email, by ids, by role; paging.
    listed = list_users.sync(client=client, user_email=f"alice-{unique}")
    assert isinstance(listed, UserListResponse), listed
    assert [u.user_id for u in listed.users] == [f"alice-{unique}"]
    listed = list_users.sync(
        client=client, user_ids=f"alice-{unique},bob-{unique}", page=1, page_size=1
    )
    assert listed.total == 2 and listed.total_pages == 2 and len(listed.users) == 1
    listed = list_users.sync(client=client, user_ids=f"alice-{unique},bob-{unique}", role="proxy_admin")
    assert listed.total == 0

    updated = update_user.sync_detailed(
        client=client, body=UpdateUserRequest(user_id=f"alice-{unique}", user_alias="Alice", max_budget=20.0)
    )
    assert updated.status_code == 200, updated.content
    info = user_info.sync(client=client, user_id=f"alice-{unique}")
    assert isinstance(info, UserInfoResponse), info
    assert info.user_info.user_alias == "Alice"
    assert info.user_info.max_budget == 20.0
    assert len(info.keys) == 1

    deleted = delete_user.sync_detailed(
        client=client, body=DeleteUserRequest(user_ids=[f"alice-{unique}", f"bob-{unique}"])
    )
    assert deleted.status_code == 200, deleted.content
    missing = user_info.sync(client=client, user_id=f"alice-{unique}")
    assert isinstance(missing, ErrorResponse)
    assert missing.error.code == "404"


def test_bad_input_comes_back_as_the_error_model(client):
    # page_size above the documented maximum of 100.
    response = list_users.sync_detailed(client=client, page_size=500)
    assert response.status_code == 400
    assert isinstance(response.parsed, ErrorResponse)
    assert response.parsed.error.param == "page_size"


def test_teams_and_organizations_are_created(client, unique):
    org = new_organization.sync(
        client=client,
        body=NewOrganizationRequest.from_dict(
            {"organization_alias": f"org-{unique}", "models": ["gpt-4o-mini"], "max_budget": 100.0}
        ),
    )
    assert isinstance(org, LiteLLMOrganizationTableWithMembers), org
    team = new_team.sync(
        client=client,
        body=NewTeamRequest.from_dict(
            {
                "team_alias": f"team-{unique}",
                "organization_id": org.organization_id,
                "models": ["gpt-4o-mini"],
                "max_budget": 50.0,
            }
        ),
    )
    assert isinstance(team, LiteLLMTeamTable), team
    assert team.organization_id == org.organization_id
    teams = list_teams.sync(client=client, team_alias=f"team-{unique}")
    assert isinstance(teams, TeamListResponse), teams
    assert teams.total == 1
    info = organization_info.sync(client=client, organization_id=org.organization_id)
    assert isinstance(info, LiteLLMOrganizationTableWithMembers), info
    assert [t.team_id for t in info.teams] == [team.team_id]


def test_daily_activity_is_read(client, base_url, master_key):
    import openai

    # Spend something first, so the day has a row.
    openai.OpenAI(base_url=f"{base_url}/v1", api_key=master_key, max_retries=0).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
    )
    today = datetime.datetime.now(datetime.timezone.utc).date()
    start = (today - datetime.timedelta(days=1)).isoformat()
    end = (today + datetime.timedelta(days=1)).isoformat()
    activity = None
    for _ in range(50):
        activity = user_daily_activity.sync(
            client=client, start_date=start, end_date=end, page=1, page_size=10
        )
        assert isinstance(activity, SpendAnalyticsPaginatedResponse), activity
        if activity.results:
            break
        import time

        time.sleep(0.1)
    assert activity.results, "no daily activity recorded"
    assert "total_spend" in activity.metadata.to_dict()
