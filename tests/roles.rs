//! The role × operation matrix, derived from the schema: every root field is either listed
//! here with the lowest role that may call it, or listed as public on purpose. A new root
//! field that is in neither list fails `every_root_field_is_guarded_or_public`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::fixture::FixtureOrg;
use common::ws::{WsEvent, GRAPHQL_TRANSPORT_WS};
use common::TestApp;
use omnivox::auth::Role;
use serde_json::{json, Value};

/// Root fields that answer without credentials, on purpose: they are how credentials are
/// obtained or given up.
const PUBLIC: &[&str] = &[
    "Mutation.login",
    "Mutation.refreshSession",
    "Mutation.logout",
    "Mutation.acceptInvitation",
    "Mutation.requestPasswordReset",
    "Mutation.resetPassword",
];

/// The one exception to "a higher role holds every permission of the lower ones": reports are
/// read by VIEWER (BI accounts, shared reports) and SUPERVISOR and above, never by AGENT.
const NOT_FOR_AGENTS: &[&str] = &[
    "Query.reports",
    "Query.report",
    "Query.reportTemplates",
    "Query.reportRun",
    "Query.reportRuns",
    "Mutation.runReport",
    "Mutation.cancelReportRun",
    "Mutation.createReportDownloadLink",
    "Subscription.reportRunUpdated",
];

fn passes(op: &Operation, role: Role) -> bool {
    role >= op.lowest_role && !(role == Role::Agent && NOT_FOR_AGENTS.contains(&op.field))
}

struct Operation {
    field: &'static str,
    lowest_role: Role,
    query: &'static str,
    variables: fn(&FixtureOrg, Role) -> Value,
}

fn no_vars(_: &FixtureOrg, _: Role) -> Value {
    json!({})
}

fn kpi_filter(_: &FixtureOrg, _: Role) -> Value {
    json!({ "f": { "from": "2026-01-05T00:00:00Z", "to": "2026-01-06T00:00:00Z" } })
}

fn operations() -> Vec<Operation> {
    vec![
        Operation {
            field: "Query.me",
            lowest_role: Role::Viewer,
            query: "{ me { id } }",
            variables: no_vars,
        },
        Operation {
            field: "Query.organization",
            lowest_role: Role::Viewer,
            query: "{ organization { id businessSettings { version } } }",
            variables: no_vars,
        },
        Operation {
            field: "Query.users",
            lowest_role: Role::Admin,
            query: "{ users(first: 5) { totalCount edges { node { id } } } }",
            variables: no_vars,
        },
        Operation {
            field: "Mutation.logoutEverywhere",
            lowest_role: Role::Viewer,
            query: "mutation { logoutEverywhere }",
            variables: no_vars,
        },
        Operation {
            field: "Mutation.createUser",
            lowest_role: Role::Admin,
            query: "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }",
            variables: |org, caller| {
                json!({ "i": {
                    "email": format!("new-by-{}@{}.test", caller.as_str().to_lowercase(), org.slug),
                    "displayName": "New Person", "role": "VIEWER", "password": "a-long-enough-password" } })
            },
        },
        Operation {
            field: "Mutation.updateUserRole",
            lowest_role: Role::Admin,
            query: "mutation($u: ID!) { updateUserRole(userId: $u, role: VIEWER) { id } }",
            variables: |org, _| json!({ "u": org.user(Role::Viewer).id }),
        },
        Operation {
            field: "Mutation.deactivateUser",
            lowest_role: Role::Admin,
            // An unknown id: callers that pass the guard get NOT_FOUND, nothing is changed.
            query: "mutation($u: ID!) { deactivateUser(userId: $u) { id } }",
            variables: |_, _| json!({ "u": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.inviteUser",
            lowest_role: Role::Admin,
            query: "mutation($i: InviteUserInput!) { inviteUser(input: $i) { user { id } } }",
            variables: |org, caller| {
                json!({ "i": {
                    "email": format!("invited-by-{}@{}.test", caller.as_str().to_lowercase(), org.slug),
                    "displayName": "Invited Person", "role": "VIEWER" } })
            },
        },
        Operation {
            field: "Mutation.resendInvitation",
            lowest_role: Role::Admin,
            // An unknown id: callers that pass the guard get NOT_FOUND, nothing is changed.
            query: "mutation($u: ID!) { resendInvitation(userId: $u) { emailed } }",
            variables: |_, _| json!({ "u": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.changePassword",
            lowest_role: Role::Viewer,
            // A wrong current password: callers that pass the guard get BAD_USER_INPUT.
            query: "mutation { changePassword(currentPassword: \"not-the-password\", newPassword: \"a-long-enough-password\") { accessToken } }",
            variables: no_vars,
        },
        Operation {
            field: "Query.coachingSessions",
            lowest_role: Role::Agent,
            query: "{ coachingSessions(first: 5) { totalCount edges { node { id interactions { id } } } } }",
            variables: no_vars,
        },
        Operation {
            field: "Query.coachingSession",
            lowest_role: Role::Agent,
            query: "query($id: ID!) { coachingSession(id: $id) { id } }",
            variables: |_, _| json!({ "id": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.createCoachingSession",
            lowest_role: Role::Supervisor,
            // An unknown agent: callers that pass the guard get NOT_FOUND, nothing is stored.
            query: "mutation($a: ID!) { createCoachingSession(input: { agentId: $a, scheduledAt: \"2026-01-05T10:00:00Z\", topic: \"T\" }) { id } }",
            variables: |_, _| json!({ "a": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.updateCoachingSession",
            lowest_role: Role::Supervisor,
            query: "mutation($id: ID!) { updateCoachingSession(id: $id, input: { topic: \"T\" }) { id } }",
            variables: |_, _| json!({ "id": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.completeCoachingSession",
            lowest_role: Role::Supervisor,
            query: "mutation($id: ID!) { completeCoachingSession(id: $id, outcome: \"Done\") { id } }",
            variables: |_, _| json!({ "id": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.acknowledgeCoachingSession",
            lowest_role: Role::Agent,
            query: "mutation($id: ID!) { acknowledgeCoachingSession(id: $id) { id } }",
            variables: |_, _| json!({ "id": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Query.organizations",
            lowest_role: Role::SuperAdmin,
            query: "{ organizations(first: 5) { totalCount edges { node { id slug } } } }",
            variables: no_vars,
        },
        Operation {
            field: "Mutation.createOrganization",
            lowest_role: Role::SuperAdmin,
            query: "mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) { organization { id } } }",
            variables: |org, caller| {
                let tag = caller.as_str().to_lowercase().replace('_', "-");
                json!({ "i": {
                    "name": "Matrix Tenant", "slug": format!("{}-{tag}", org.slug), "timezone": "UTC",
                    "firstAdmin": { "email": format!("first-{tag}@{}.test", org.slug), "displayName": "First Admin" } } })
            },
        },
        Operation {
            field: "Mutation.suspendOrganization",
            lowest_role: Role::SuperAdmin,
            // An unknown organization: callers that pass the guard get NOT_FOUND.
            query: "mutation($o: ID!) { suspendOrganization(orgId: $o) { id } }",
            variables: |_, _| json!({ "o": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.resumeOrganization",
            lowest_role: Role::SuperAdmin,
            query: "mutation($o: ID!) { resumeOrganization(orgId: $o) { id } }",
            variables: |_, _| json!({ "o": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.updateBusinessSettings",
            lowest_role: Role::Admin,
            // A stale version: callers that pass the guard get CONFLICT, nothing is changed.
            query: "mutation { updateBusinessSettings(input: {}, expectedVersion: 999) { version } }",
            variables: no_vars,
        },
        Operation {
            field: "Query.agentPerformance",
            lowest_role: Role::Agent,
            // An AGENT passes the guard and sees only their own row (none without a profile).
            query: "query($f: KpiFilter!) { agentPerformance(filter: $f, first: 5) { totalCount edges { node { agentId } } } }",
            variables: kpi_filter,
        },
        Operation {
            field: "Query.campaignPerformance",
            lowest_role: Role::Supervisor,
            query: "query($f: KpiFilter!) { campaignPerformance(filter: $f) { campaignId } }",
            variables: kpi_filter,
        },
        Operation {
            field: "Query.dispositionBreakdown",
            lowest_role: Role::Supervisor,
            query: "query($f: KpiFilter!) { dispositionBreakdown(filter: $f) { dispositionedCalls } }",
            variables: kpi_filter,
        },
        Operation {
            field: "Query.analytics",
            lowest_role: Role::Supervisor,
            query: "query($f: KpiFilter!) { analytics(query: { metrics: [HANDLED], groupBy: [AGENT], filter: $f }) { totalRows } }",
            variables: kpi_filter,
        },
        Operation {
            field: "Query.complianceStatus",
            lowest_role: Role::Supervisor,
            query: "{ complianceStatus { campaignId status } }",
            variables: no_vars,
        },
        Operation {
            field: "Query.kpiSummary",
            lowest_role: Role::Viewer,
            query: "{ kpiSummary(filter: { from: \"2026-01-01T00:00:00Z\", to: \"2026-01-02T00:00:00Z\" }) { offered } }",
            variables: no_vars,
        },
        Operation {
            field: "Query.kpiSeries",
            lowest_role: Role::Viewer,
            query: "{ kpiSeries(filter: { from: \"2026-01-01T00:00:00Z\", to: \"2026-01-02T00:00:00Z\" }, granularity: DAY) { timezone } }",
            variables: no_vars,
        },
        Operation {
            field: "Query.interactions",
            lowest_role: Role::Agent,
            // An AGENT passes the guard and sees only their own calls.
            query: "{ interactions(first: 5) { totalCount edges { node { id customerNumber } } } }",
            variables: no_vars,
        },
        Operation {
            field: "Query.interaction",
            lowest_role: Role::Agent,
            // An unknown id: callers that pass the guard get NOT_FOUND.
            query: "query($i: ID!) { interaction(id: $i) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Query.interactionByExternalId",
            lowest_role: Role::Agent,
            query: "{ interactionByExternalId(externalId: \"CA-unknown\") { id } }",
            variables: no_vars,
        },
        Operation {
            field: "Query.telephonySettings",
            lowest_role: Role::Admin,
            query: "{ telephonySettings { twilioAccountSid authTokenSet } }",
            variables: no_vars,
        },
        Operation {
            field: "Mutation.recordCallEvents",
            lowest_role: Role::Admin,
            // No events: callers that pass the guard store nothing.
            query: "mutation { recordCallEvents(events: []) { accepted } }",
            variables: no_vars,
        },
        Operation {
            field: "Mutation.setDisposition",
            lowest_role: Role::Agent,
            // An unknown call: callers that pass the guard get NOT_FOUND, nothing is changed.
            query: "mutation($i: ID!) { setDisposition(interactionId: $i, dispositionCode: \"SALE\") { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.updateTelephonySettings",
            lowest_role: Role::Admin,
            // An empty input: callers that pass the guard get BAD_USER_INPUT, nothing is changed.
            query: "mutation { updateTelephonySettings(input: {}) { authTokenSet } }",
            variables: no_vars,
        },
        Operation {
            field: "Query.presenceReasonCodes",
            lowest_role: Role::Viewer,
            query: "{ presenceReasonCodes { code } }",
            variables: no_vars,
        },
        Operation {
            field: "Mutation.setAgentPresence",
            lowest_role: Role::Agent,
            // The matrix's users have no agent profile: callers that pass the guard get NOT_FOUND.
            query: "mutation { setAgentPresence(presence: AVAILABLE) { id } }",
            variables: no_vars,
        },
        Operation {
            field: "Mutation.upsertPresenceReasonCode",
            lowest_role: Role::Admin,
            query: "mutation { upsertPresenceReasonCode(input: { code: \"COFFEE\", presence: BREAK, label: \"Coffee\" }) { code } }",
            variables: no_vars,
        },
        Operation {
            field: "Query.auditLog",
            lowest_role: Role::Admin,
            query: "{ auditLog(first: 5) { edges { node { id sequence action } } } }",
            variables: no_vars,
        },
        Operation {
            field: "Query.verifyAuditChain",
            lowest_role: Role::Admin,
            query: "{ verifyAuditChain { intact } }",
            variables: no_vars,
        },
        Operation {
            field: "Query.campaigns",
            lowest_role: Role::Viewer,
            query: "{ campaigns(includeArchived: true) { id name status serviceLevelThresholdSeconds } }",
            variables: no_vars,
        },
        Operation {
            field: "Query.dispositions",
            lowest_role: Role::Viewer,
            query: "{ dispositions(includeInactive: true) { id code contact success } }",
            variables: no_vars,
        },
        // Campaign and disposition management: invalid input or unknown ids, so callers that
        // pass the guard get BAD_USER_INPUT or NOT_FOUND and nothing is stored.
        Operation {
            field: "Mutation.createCampaign",
            lowest_role: Role::Admin,
            query: "mutation { createCampaign(input: { name: \"\", direction: INBOUND }) { id } }",
            variables: no_vars,
        },
        Operation {
            field: "Mutation.updateCampaign",
            lowest_role: Role::Admin,
            query: "mutation($i: ID!) { updateCampaign(id: $i, input: { serviceLevelThresholdSeconds: 20 }) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.archiveCampaign",
            lowest_role: Role::Admin,
            query: "mutation($i: ID!) { archiveCampaign(id: $i) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.createDisposition",
            lowest_role: Role::Admin,
            query: "mutation { createDisposition(input: { code: \"SALE\", label: \"Sale\", success: true }) { id } }",
            variables: no_vars,
        },
        Operation {
            field: "Mutation.updateDisposition",
            lowest_role: Role::Admin,
            query: "mutation($i: ID!) { updateDisposition(id: $i, input: { contact: false }) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Query.apiKeys",
            lowest_role: Role::Supervisor,
            query: "{ apiKeys { id scopes } }",
            variables: no_vars,
        },
        Operation {
            field: "Mutation.createApiKey",
            lowest_role: Role::Supervisor,
            // A scope every caller that passes the guard may grant.
            query: "mutation { createApiKey(name: \"Matrix\", scopes: [\"kpi:read\"]) { apiKey { id } } }",
            variables: no_vars,
        },
        Operation {
            field: "Mutation.revokeApiKey",
            lowest_role: Role::Supervisor,
            // An unknown key: callers that pass the guard get NOT_FOUND, nothing is changed.
            query: "mutation($k: ID!) { revokeApiKey(id: $k) { id } }",
            variables: |_, _| json!({ "k": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Query.reports",
            lowest_role: Role::Viewer,
            query: "{ reports { id } }",
            variables: no_vars,
        },
        Operation {
            field: "Query.report",
            lowest_role: Role::Viewer,
            // An unknown report: callers that pass the guard get NOT_FOUND.
            query: "query($i: ID!) { report(id: $i) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Query.reportTemplates",
            lowest_role: Role::Viewer,
            query: "{ reportTemplates { key } }",
            variables: no_vars,
        },
        Operation {
            field: "Mutation.createReport",
            lowest_role: Role::Supervisor,
            query: "mutation { createReport(input: { title: \"Matrix\", query: { metrics: [HANDLED] }, range: { relative: YESTERDAY } }) { id } }",
            variables: no_vars,
        },
        Operation {
            field: "Mutation.createReportFromTemplate",
            lowest_role: Role::Supervisor,
            query: "mutation { createReportFromTemplate(templateKey: \"campaign-summary\") { id } }",
            variables: no_vars,
        },
        Operation {
            field: "Mutation.updateReport",
            lowest_role: Role::Supervisor,
            // An unknown report: callers that pass the guard get NOT_FOUND, nothing is changed.
            query: "mutation($i: ID!) { updateReport(id: $i, expectedVersion: 1, input: { title: \"M\", query: { metrics: [HANDLED] }, range: { relative: TODAY } }) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.duplicateReport",
            lowest_role: Role::Supervisor,
            query: "mutation($i: ID!) { duplicateReport(id: $i) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.deleteReport",
            lowest_role: Role::Supervisor,
            query: "mutation($i: ID!) { deleteReport(id: $i) }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        // Report runs: unknown reports and runs, so callers that pass the guard get NOT_FOUND.
        Operation {
            field: "Query.reportRun",
            lowest_role: Role::Viewer,
            query: "query($i: ID!) { reportRun(id: $i) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Query.reportRuns",
            lowest_role: Role::Viewer,
            query: "{ reportRuns { id } }",
            variables: no_vars,
        },
        Operation {
            field: "Mutation.runReport",
            lowest_role: Role::Viewer,
            query: "mutation($i: ID!) { runReport(id: $i, format: CSV) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.cancelReportRun",
            lowest_role: Role::Viewer,
            query: "mutation($i: ID!) { cancelReportRun(id: $i) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.createReportDownloadLink",
            lowest_role: Role::Viewer,
            query: "mutation($i: ID!) { createReportDownloadLink(runId: $i) { url } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        // Report schedules: an unknown report or schedule, so callers that pass the guard get
        // NOT_FOUND and nothing is stored. VIEWER reads reports but schedules none.
        Operation {
            field: "Query.reportSchedules",
            lowest_role: Role::Supervisor,
            query: "query($i: ID!) { reportSchedules(reportId: $i) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Query.reportSchedule",
            lowest_role: Role::Supervisor,
            query: "query($i: ID!) { reportSchedule(id: $i) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.createReportSchedule",
            lowest_role: Role::Supervisor,
            query: "mutation($i: ID!) { createReportSchedule(reportId: $i, input: { cron: \"0 6 * * *\", timezone: \"UTC\", format: \"CSV\", recipients: [\"m@example.com\"] }) { webhookSecret } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.updateReportSchedule",
            lowest_role: Role::Supervisor,
            query: "mutation($i: ID!) { updateReportSchedule(id: $i, expectedVersion: 1, input: { cron: \"0 6 * * *\", timezone: \"UTC\", format: \"CSV\", recipients: [\"m@example.com\"] }) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.pauseReportSchedule",
            lowest_role: Role::Supervisor,
            query: "mutation($i: ID!) { pauseReportSchedule(id: $i) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.resumeReportSchedule",
            lowest_role: Role::Supervisor,
            query: "mutation($i: ID!) { resumeReportSchedule(id: $i) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.rotateReportScheduleSecret",
            lowest_role: Role::Supervisor,
            query: "mutation($i: ID!) { rotateReportScheduleSecret(id: $i) { webhookSecret } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.deleteReportSchedule",
            lowest_role: Role::Supervisor,
            query: "mutation($i: ID!) { deleteReportSchedule(id: $i) }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        // Agents, teams and skills: unknown ids or an empty name, so callers that pass the guard
        // get NOT_FOUND or BAD_USER_INPUT and nothing is stored. The matrix's organization has
        // no teams: a SUPERVISOR passes the guards and supervises nothing.
        Operation {
            field: "Query.agents",
            lowest_role: Role::Viewer,
            query: "{ agents(first: 5) { totalCount edges { node { id displayName presence } } } }",
            variables: no_vars,
        },
        Operation {
            field: "Query.agent",
            lowest_role: Role::Viewer,
            query: "query($i: ID!) { agent(id: $i) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Query.teams",
            lowest_role: Role::Supervisor,
            query: "{ teams { id name } }",
            variables: no_vars,
        },
        Operation {
            field: "Query.team",
            lowest_role: Role::Supervisor,
            query: "query($i: ID!) { team(id: $i) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Query.skills",
            lowest_role: Role::Supervisor,
            query: "{ skills { id name } }",
            variables: no_vars,
        },
        Operation {
            field: "Mutation.createAgent",
            lowest_role: Role::Supervisor,
            query: "mutation($t: ID!) { createAgent(input: { displayName: \"Matrix\", teamId: $t }) { id } }",
            variables: |_, _| json!({ "t": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.updateAgent",
            lowest_role: Role::Supervisor,
            query: "mutation($i: ID!) { updateAgent(id: $i, input: { displayName: \"Matrix\" }) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.deactivateAgent",
            lowest_role: Role::Supervisor,
            query: "mutation($i: ID!) { deactivateAgent(id: $i) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.createTeam",
            lowest_role: Role::Admin,
            query: "mutation { createTeam(name: \" \") { id } }",
            variables: no_vars,
        },
        Operation {
            field: "Mutation.renameTeam",
            lowest_role: Role::Admin,
            query: "mutation($i: ID!) { renameTeam(id: $i, name: \"Matrix\") { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.deleteTeam",
            lowest_role: Role::Admin,
            query: "mutation($i: ID!) { deleteTeam(id: $i) }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.setTeamSupervisors",
            lowest_role: Role::Admin,
            query: "mutation($i: ID!) { setTeamSupervisors(teamId: $i, userIds: []) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.addTeamMembers",
            lowest_role: Role::Supervisor,
            query: "mutation($i: ID!) { addTeamMembers(teamId: $i, agentIds: []) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.removeTeamMembers",
            lowest_role: Role::Supervisor,
            query: "mutation($i: ID!) { removeTeamMembers(teamId: $i, agentIds: []) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.createSkill",
            lowest_role: Role::Supervisor,
            query: "mutation { createSkill(name: \"\") { id } }",
            variables: no_vars,
        },
        Operation {
            field: "Mutation.renameSkill",
            lowest_role: Role::Supervisor,
            query: "mutation($i: ID!) { renameSkill(id: $i, name: \"Matrix\") { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.deleteSkill",
            lowest_role: Role::Admin,
            query: "mutation($i: ID!) { deleteSkill(id: $i) }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.assignSkills",
            lowest_role: Role::Supervisor,
            query: "mutation($a: ID!, $s: ID!) { assignSkills(assignments: [{ agentId: $a, skillId: $s, proficiency: 3 }]) { agentIds } }",
            variables: |_, _| json!({ "a": uuid::Uuid::new_v4(), "s": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.unassignSkills",
            lowest_role: Role::Supervisor,
            query: "mutation($a: ID!, $s: ID!) { unassignSkills(assignments: [{ agentId: $a, skillId: $s }]) { agentIds } }",
            variables: |_, _| json!({ "a": uuid::Uuid::new_v4(), "s": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Query.dashboards",
            lowest_role: Role::Viewer,
            query: "{ dashboards { id } }",
            variables: no_vars,
        },
        Operation {
            field: "Query.dashboard",
            lowest_role: Role::Viewer,
            // An unknown id: callers that pass the guard get NOT_FOUND.
            query: "query($i: ID) { dashboard(id: $i) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Query.defaultDashboard",
            lowest_role: Role::Viewer,
            query: "{ defaultDashboard { id } }",
            variables: no_vars,
        },
        Operation {
            field: "Mutation.createDashboard",
            lowest_role: Role::Agent,
            query: "mutation { createDashboard(input: { title: \"Mine\", visibility: PRIVATE }) { id } }",
            variables: no_vars,
        },
        Operation {
            field: "Mutation.updateDashboard",
            lowest_role: Role::Agent,
            query: "mutation($i: ID!) { updateDashboard(id: $i, expectedVersion: 1, input: { title: \"X\", visibility: PRIVATE }) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.duplicateDashboard",
            lowest_role: Role::Agent,
            query: "mutation($i: ID!) { duplicateDashboard(id: $i) { id } }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.deleteDashboard",
            lowest_role: Role::Agent,
            query: "mutation($i: ID!) { deleteDashboard(id: $i) }",
            variables: |_, _| json!({ "i": uuid::Uuid::new_v4() }),
        },
        Operation {
            field: "Mutation.setDefaultDashboard",
            lowest_role: Role::Admin,
            query: "mutation { setDefaultDashboard(role: VIEWER, id: null) { id } }",
            variables: no_vars,
        },
        Operation {
            field: "Subscription.dashboardUpdated",
            lowest_role: Role::Viewer,
            query: "",
            variables: no_vars,
        },
        // Subscriptions: their guards are checked over WebSocket in tests/realtime.rs
        // (`subscription_guards_follow_the_roles`); `reportRunUpdated`'s in
        // tests/report_runs.rs.
        Operation {
            field: "Subscription.reportRunUpdated",
            lowest_role: Role::Viewer,
            query: "",
            variables: no_vars,
        },
        Operation {
            field: "Subscription.agentStates",
            lowest_role: Role::Viewer,
            query: "",
            variables: no_vars,
        },
        Operation {
            field: "Subscription.liveKpis",
            lowest_role: Role::Viewer,
            query: "",
            variables: no_vars,
        },
        Operation {
            field: "Subscription.interactionEvents",
            lowest_role: Role::Supervisor,
            query: "",
            variables: no_vars,
        },
        Operation {
            field: "Subscription.complianceAlerts",
            lowest_role: Role::Supervisor,
            query: "",
            variables: no_vars,
        },
        Operation {
            field: "Subscription.businessSettingsChanged",
            lowest_role: Role::Viewer,
            query: "",
            variables: no_vars,
        },
    ]
}

/// Root fields of the exported SDL, as `Type.field`.
fn root_fields(sdl: &str) -> BTreeSet<String> {
    let mut fields = BTreeSet::new();
    let mut current: Option<&str> = None;
    let mut in_description = false;
    for line in sdl.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("\"\"\"") {
            let single_line = trimmed.len() > 3 && trimmed.ends_with("\"\"\"");
            if !single_line {
                in_description = !in_description;
            }
            continue;
        }
        if in_description {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("type ") {
            let name = rest.split_whitespace().next().unwrap_or("");
            current = ["Query", "Mutation", "Subscription"]
                .into_iter()
                .find(|root| *root == name);
            continue;
        }
        if trimmed == "}" {
            current = None;
            continue;
        }
        if let Some(root) = current {
            let name: String = trimmed
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                fields.insert(format!("{root}.{name}"));
            }
        }
    }
    fields
}

#[test]
fn every_root_field_is_guarded_or_public() {
    let in_schema = root_fields(&omnivox::graphql::sdl());
    let mut listed: BTreeSet<String> = operations().iter().map(|o| o.field.to_owned()).collect();
    listed.extend(PUBLIC.iter().map(|s| (*s).to_owned()));
    assert!(in_schema.len() >= 10, "parsed too few root fields: {in_schema:?}");
    assert_eq!(in_schema, listed, "root fields and the role matrix disagree");
}

#[tokio::test(flavor = "multi_thread")]
async fn role_matrix_of_queries_and_mutations() {
    let app = TestApp::spawn().await;
    let org = app.create_org("matrix").await;
    // A second admin keeps "last admin" rules out of the way of the matrix.
    for op in operations().iter().filter(|o| !o.field.starts_with("Subscription.")) {
        let anonymous = app.gql(None, op.query, (op.variables)(&org, Role::Viewer)).await;
        assert_eq!(
            anonymous.error_code(),
            Some("UNAUTHENTICATED"),
            "{} without a token",
            op.field
        );
        for role in Role::ALL {
            // Fresh token per call: `logoutEverywhere` revokes the caller's tokens.
            let token = org.token_for(&app.state, role, Duration::from_secs(600)).await;
            let response = app.gql(Some(&token), op.query, (op.variables)(&org, role)).await;
            let code = response.error_code();
            if passes(op, role) {
                assert!(
                    !matches!(code, Some("FORBIDDEN" | "UNAUTHENTICATED")),
                    "{} as {role} should pass its guard, got {}",
                    op.field,
                    response.body
                );
            } else {
                assert_eq!(code, Some("FORBIDDEN"), "{} as {role}: {}", op.field, response.body);
            }
        }
    }
}

/// The root fields each API key scope reaches, written out independently of the code's table:
/// every other root field is FORBIDDEN to a key, whatever its scopes.
fn scopes_reaching(field: &str) -> &'static [&'static str] {
    match field {
        "Query.organization" | "Query.presenceReasonCodes" | "Query.campaigns" | "Query.dispositions" => {
            &["kpi:read", "reports:read", "realtime:read"]
        }
        "Query.kpiSummary"
        | "Query.kpiSeries"
        | "Query.agentPerformance"
        | "Query.campaignPerformance"
        | "Query.dispositionBreakdown"
        | "Query.complianceStatus"
        | "Query.agents"
        | "Query.agent"
        | "Query.teams"
        | "Query.team"
        | "Query.skills"
        | "Query.dashboards"
        | "Query.dashboard"
        | "Query.defaultDashboard" => &["kpi:read"],
        "Query.analytics"
        | "Query.interactions"
        | "Query.interaction"
        | "Query.interactionByExternalId"
        | "Query.reports"
        | "Query.report"
        | "Query.reportTemplates"
        | "Query.reportRun"
        | "Query.reportRuns"
        | "Mutation.runReport"
        | "Mutation.createReportDownloadLink"
        | "Subscription.reportRunUpdated" => &["reports:read"],
        "Mutation.recordCallEvents" => &["ingest:write"],
        f if f.starts_with("Subscription.") => &["realtime:read"],
        _ => &[],
    }
}

/// Every query and mutation of the matrix, called with an API key of each single scope
/// (created by an ADMIN, so the fields' role guards pass): only the fields of that scope
/// answer; the rest — user, key and settings management, agent actions, `me` — are FORBIDDEN.
/// Subscriptions are covered over WebSocket in tests/api_keys.rs.
#[tokio::test(flavor = "multi_thread")]
async fn api_key_scope_matrix_of_queries_and_mutations() {
    let app = TestApp::spawn().await;
    let org = app.create_org("keymatrix").await;
    let admin = org.token(&app.state, Role::Admin).await;
    for scope in ["kpi:read", "reports:read", "realtime:read", "ingest:write"] {
        let created = app
            .gql(
                Some(&admin),
                "mutation($s: [String!]!) { createApiKey(name: \"matrix\", scopes: $s) { secret } }",
                json!({ "s": [scope] }),
            )
            .await;
        let key = created.ok()["createApiKey"]["secret"].as_str().unwrap().to_owned();
        for op in operations().iter().filter(|o| !o.field.starts_with("Subscription.")) {
            let response = app.gql(Some(&key), op.query, (op.variables)(&org, Role::Admin)).await;
            let code = response.error_code();
            if scopes_reaching(op.field).contains(&scope) {
                assert!(
                    !matches!(code, Some("FORBIDDEN" | "UNAUTHENTICATED")),
                    "{} with a {scope} key should pass, got {}",
                    op.field,
                    response.body
                );
            } else {
                assert_eq!(
                    code,
                    Some("FORBIDDEN"),
                    "{} with a {scope} key: {}",
                    op.field,
                    response.body
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn subscription_guard_refuses_without_credentials() {
    // The WebSocket refuses a connection_init without a valid token before any subscription.
    let app = TestApp::spawn().await;
    let mut ws = app.ws(GRAPHQL_TRANSPORT_WS).await;
    ws.send_init("forged").await;
    match ws.next(Duration::from_secs(5)).await {
        WsEvent::Closed(_) => {}
        WsEvent::Json(message) => assert_ne!(message["type"], "connection_ack", "forged token acknowledged"),
        WsEvent::Timeout => panic!("no answer to a forged connection_init"),
    }
}
