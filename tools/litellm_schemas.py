#!/usr/bin/env python3
"""Extracts the field sets of LiteLLM's management response models from LiteLLM's OpenAPI
document into crates/bursar/tests/fixtures/litellm_schemas.json, which the wire-shape test
(crates/bursar/tests/litellm_shapes.rs) compares real Bursar responses with.

    python3 tools/litellm_schemas.py openapi.json [version]

Get the document from a LiteLLM proxy (`GET /openapi.json`) or, without running one, from
`litellm.proxy.proxy_server.app.openapi()` in a venv with `litellm[proxy]` installed."""

import json
import pathlib
import sys

MODELS = [
    "GenerateKeyResponse", "NewUserResponse", "LiteLLM_VerificationToken", "UserInfoResponse",
    "LiteLLM_UserTable", "LiteLLM_UserTableWithKeyCount", "UserListResponse", "LiteLLM_TeamTable",
    "TeamAddMemberResponse", "LiteLLM_TeamMembership", "TeamListResponse",
    "LiteLLM_OrganizationTableWithMembers", "LiteLLM_OrganizationMembershipTable",
    "OrganizationAddMemberResponse", "KeyListResponseObject", "TeamMemberUpdateResponse",
    "GetTeamMemberPermissionsResponse", "BulkTeamMemberAddResponse", "TeamMemberAddResult",
    "LiteLLM_BudgetTableFull", "CustomerResponse", "DeleteCustomersResponse",
    "PaginatedAuditLogResponse", "AuditLogResponse", "Member", "UserInfoV2Response",
    "TeamMemberInfoResponse",
]


def main() -> None:
    document = json.load(open(sys.argv[1]))
    version = sys.argv[2] if len(sys.argv) > 2 else document["info"]["version"]
    schemas = document["components"]["schemas"]
    out = {"litellm_version": version, "schemas": {}}
    for name in MODELS:
        schema = schemas[name]
        out["schemas"][name] = {
            "properties": sorted(schema.get("properties", {})),
            "required": sorted(schema.get("required", [])),
        }
    target = pathlib.Path(__file__).resolve().parent.parent / "crates/bursar/tests/fixtures/litellm_schemas.json"
    target.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {target} ({len(MODELS)} models, LiteLLM {version})")


if __name__ == "__main__":
    main()
