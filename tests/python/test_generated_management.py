"""The generated client (see test_generated_client.py) over the key, team and organization
routes: every answer must parse into the typed model the document names, which is only
possible when the served document is the wire format."""

import pytest
from bursar_client import AuthenticatedClient
from bursar_client.api.key_management import (
    delete_key_fn_key_delete_post as delete_key,
    generate_key_fn_key_generate_post as generate_key,
    info_key_fn_key_info_get as key_info,
    list_keys_key_list_get as list_keys,
    regenerate_key_fn_key_regenerate_post as regenerate_key,
    update_key_fn_key_update_post as update_key,
)
from bursar_client.api.organization_management import (
    delete_organization_organization_delete_delete as delete_organization,
    info_organization_organization_info_get as organization_info,
    list_organization_organization_list_get as list_organizations,
    new_organization_organization_new_post as new_organization,
    organization_member_add_organization_member_add_post as organization_member_add,
    update_organization_organization_update_patch as update_organization,
)
from bursar_client.api.team_management import (
    delete_team_team_delete_post as delete_team,
    new_team_team_new_post as new_team,
    team_info_team_info_get as team_info,
    team_member_add_team_member_add_post as team_member_add,
    team_member_delete_team_member_delete_post as team_member_delete,
    team_member_update_team_member_update_post as team_member_update,
    update_team_team_update_post as update_team,
)
from bursar_client.api.internal_user_management import new_user_user_new_post as new_user
from bursar_client import models as m


@pytest.fixture(scope="module")
def client(base_url, master_key) -> AuthenticatedClient:
    with AuthenticatedClient(base_url=base_url, token=master_key) as c:
        yield c


def parsed(response, model):
    """The typed body of a 200, or a failure naming what came back."""
    assert response.status_code == 200, response.content
    assert isinstance(response.parsed, model), (type(response.parsed), response.content)
    return response.parsed


def test_keys_read_into_typed_models(client, unique):
    body = m.GenerateKeyRequest.from_dict(
        {"key_alias": f"k-{unique}", "models": ["gpt-4o-mini"], "max_budget": 5.0, "rpm_limit": 10}
    )
    created = parsed(generate_key.sync_detailed(client=client, body=body), m.GenerateKeyResponse)
    assert created.key.startswith("sk-") and created.token_id
    info = parsed(key_info.sync_detailed(client=client, key=created.key), m.KeyInfoResponse)
    assert info.info.key_alias == f"k-{unique}" and info.info.max_budget == 5.0
    body = m.UpdateKeyRequest.from_dict({"key": created.key, "max_budget": None, "rpm_limit": 20})
    updated = parsed(update_key.sync_detailed(client=client, body=body), m.UpdateKeyResponse)
    assert updated.rpm_limit == 20 and updated.max_budget is None
    listed = parsed(
        list_keys.sync_detailed(client=client, key_alias=f"k-{unique}", return_full_object=True),
        m.KeyListResponseObject,
    )
    assert listed.total_count == 1
    rotated = parsed(
        regenerate_key.sync_detailed(
            client=client, body=m.RegenerateKeyRequest.from_dict({"key": created.key})
        ),
        m.GenerateKeyResponse,
    )
    assert rotated.key != created.key
    deleted = parsed(
        delete_key.sync_detailed(client=client, body=m.KeyRequest(keys=[rotated.key])),
        m.DeleteKeyResponse,
    )
    assert deleted.deleted_keys == [rotated.key]


def test_teams_read_into_typed_models(client, unique):
    team = parsed(
        new_team.sync_detailed(
            client=client,
            body=m.NewTeamRequest.from_dict({"team_alias": f"t-{unique}", "max_budget": 9.0}),
        ),
        m.LiteLLMTeamTable,
    )
    parsed(
        new_user.sync_detailed(
            client=client,
            body=m.NewUserRequest(user_id=f"member-{unique}", auto_create_key=False),
        ),
        m.NewUserResponse,
    )
    added = parsed(
        team_member_add.sync_detailed(
            client=client,
            body=m.TeamMemberAddRequest.from_dict(
                {"team_id": team.team_id, "member": {"user_id": f"member-{unique}", "role": "user"}}
            ),
        ),
        m.TeamAddMemberResponse,
    )
    assert [u.user_id for u in added.updated_users] == [f"member-{unique}"]
    member = parsed(
        team_member_update.sync_detailed(
            client=client,
            body=m.TeamMemberUpdateRequest.from_dict(
                {"team_id": team.team_id, "user_id": f"member-{unique}", "max_budget_in_team": 2.0}
            ),
        ),
        m.TeamMemberUpdateResponse,
    )
    assert member.max_budget_in_team == 2.0
    updated = parsed(
        update_team.sync_detailed(
            client=client,
            body=m.UpdateTeamRequest.from_dict({"team_id": team.team_id, "max_budget": None}),
        ),
        m.UpdateTeamResponse,
    )
    assert updated.data.max_budget is None
    info = parsed(team_info.sync_detailed(client=client, team_id=team.team_id), m.TeamInfoResponse)
    assert [x.user_id for x in info.team_memberships] == [f"member-{unique}"]
    parsed(
        team_member_delete.sync_detailed(
            client=client,
            body=m.TeamMemberDeleteRequest.from_dict(
                {"team_id": team.team_id, "user_id": f"member-{unique}"}
            ),
        ),
        m.LiteLLMTeamTable,
    )
    parsed(
        delete_team.sync_detailed(client=client, body=m.DeleteTeamRequest(team_ids=[team.team_id])),
        m.DeleteTeamResponse,
    )


def test_organizations_read_into_typed_models(client, unique):
    org = parsed(
        new_organization.sync_detailed(
            client=client,
            body=m.NewOrganizationRequest.from_dict({"organization_alias": f"o-{unique}"}),
        ),
        m.LiteLLMOrganizationTableWithMembers,
    )
    added = parsed(
        organization_member_add.sync_detailed(
            client=client,
            body=m.OrganizationMemberAddRequest.from_dict(
                {
                    "organization_id": org.organization_id,
                    "member": {"user_id": f"org-member-{unique}", "role": "internal_user"},
                }
            ),
        ),
        m.OrganizationAddMemberResponse,
    )
    assert [x.user_id for x in added.updated_organization_memberships] == [f"org-member-{unique}"]
    updated = parsed(
        update_organization.sync_detailed(
            client=client,
            body=m.UpdateOrganizationRequest.from_dict(
                {"organization_id": org.organization_id, "max_budget": 3.0}
            ),
        ),
        m.LiteLLMOrganizationTableWithMembers,
    )
    assert updated.litellm_budget_table.max_budget == 3.0
    info = parsed(
        organization_info.sync_detailed(client=client, organization_id=org.organization_id),
        m.LiteLLMOrganizationTableWithMembers,
    )
    assert [x.user_id for x in info.members] == [f"org-member-{unique}"]
    listed = list_organizations.sync_detailed(client=client, org_alias=f"o-{unique}")
    assert listed.status_code == 200 and len(listed.parsed) == 1
    assert isinstance(listed.parsed[0], m.LiteLLMOrganizationTableWithMembers)
    deleted = delete_organization.sync_detailed(
        client=client,
        body=m.DeleteOrganizationRequest(organization_ids=[org.organization_id]),
    )
    assert deleted.status_code == 200 and isinstance(
        deleted.parsed[0], m.LiteLLMOrganizationTableWithMembers
    )
