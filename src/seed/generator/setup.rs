//! The generator's organization: found or created, with its campaigns and dispositions (found
//! by name and code, created when missing) and this run's teams and agents (always new, so the
//! agent state logs of two runs never overlap), in one transaction before the first call.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use super::plan::{campaign_direction, day_quotas, Plan};
use super::{GeneratorSettings, DEFAULT_TIMEZONE};
use crate::auth::Tenant;
use crate::db::contact_centre::{self as cc, NewAgent, NewCampaign};
use crate::db::orgs;
use crate::domain::{CampaignStatus, DialMode, Direction, Presence, RoutingState};
use crate::error::{AppError, AppResult};
use crate::seed::sim::DispositionIds;

const TEAM_SIZE: usize = 15;

/// Organization, run number, campaigns, dispositions, teams and agents, in one transaction.
pub(super) async fn setup(
    conn: &mut AsyncPgConnection,
    settings: &GeneratorSettings,
    now: DateTime<Utc>,
) -> AppResult<(Plan, Uuid, bool)> {
    let settings = settings.clone();
    conn.transaction(async move |conn| -> AppResult<(Plan, Uuid, bool)> {
        let (org, created) = match orgs::find_by_slug(conn, &settings.org_slug).await? {
            Some(org) => (org, false),
            None => {
                let name = format!("Generated: {}", settings.org_slug);
                (
                    orgs::create(conn, &settings.org_slug, &name, DEFAULT_TIMEZONE, "en-GB").await?,
                    true,
                )
            }
        };
        let tenant = Tenant::for_system(org.id);
        let tz: Tz = org.timezone.parse().map_err(|_| {
            AppError::internal(format!("organization time zone {:?} is not an IANA zone", org.timezone))
        })?;
        let run = next_run(conn, &tenant).await?;
        let campaign_ids = ensure_campaigns(conn, &tenant, settings.campaigns).await?;
        let dispositions = ensure_dispositions(conn, &tenant).await?;
        // Agents get their ids from the database, but the pool split and the rota only depend on
        // their number and order: plan with placeholders, then insert and fill the ids in.
        let placeholders = vec![Uuid::nil(); settings.agents as usize];
        let mut plan = Plan::new(tz, now, &settings, run, &placeholders, &campaign_ids, dispositions);
        if day_quotas(&plan).iter().sum::<u64>() != plan.calls {
            return Err(AppError::bad_input(
                "no day to put the calls on: with --days 1, run after 08:30 local time",
            ));
        }
        let mut team_ids = Vec::new();
        for direction in [Direction::Inbound, Direction::Outbound] {
            let members = plan.agents.iter().filter(|(_, d)| *d == direction).count();
            let label = match direction {
                Direction::Inbound => "Inbound",
                Direction::Outbound => "Outbound",
            };
            let mut ids = Vec::new();
            for k in 0..members.div_ceil(TEAM_SIZE) {
                ids.push(cc::insert_team(conn, &tenant, &format!("Run {run} {label} {:02}", k + 1)).await?);
            }
            team_ids.push(ids);
        }
        let mut seen = [0_usize; 2];
        // Index into `team_ids`: inbound teams first.
        let pools: Vec<usize> = plan
            .agents
            .iter()
            .map(|(_, direction)| usize::from(*direction == Direction::Outbound))
            .collect();
        for (i, pool) in pools.into_iter().enumerate() {
            let team_id = team_ids
                .get(pool)
                .and_then(|ids| ids.get(seen[pool] / TEAM_SIZE))
                .copied();
            seen[pool] += 1;
            let on_shift = plan.on_shift_now(i);
            let name = format!("Agent {run}-{:05}", i + 1);
            let extension = format!("{run}-{:05}", i + 1);
            let id = cc::insert_agent(
                conn,
                &tenant,
                &NewAgent {
                    user_id: None,
                    display_name: &name,
                    extension: Some(&extension),
                    team_id,
                    presence: if on_shift {
                        Presence::Available
                    } else {
                        Presence::Offline
                    },
                    presence_reason: None,
                    routing_state: RoutingState::Idle,
                    state_since: now,
                },
            )
            .await?;
            if let Some(agent) = plan.agents.get_mut(i) {
                agent.0 = id;
            }
        }
        Ok((plan, org.id, created))
    })
    .await
}

/// 1 + the highest run whose teams ("Run N …") the organization has.
async fn next_run(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<u32> {
    let names = cc::team_names_starting_with(conn, tenant, "Run ").await?;
    let last = names
        .iter()
        .filter_map(|name| name.split(' ').nth(1).and_then(|n| n.parse::<u32>().ok()))
        .max()
        .unwrap_or(0);
    Ok(last + 1)
}

/// Campaign `n` (1-based) is "Inbound 01", "Outbound 02", "Inbound 03"…; found by name or created.
async fn ensure_campaigns(conn: &mut AsyncPgConnection, tenant: &Tenant, count: u32) -> AppResult<Vec<Uuid>> {
    let mut ids = Vec::with_capacity(count as usize);
    for n in 1..=count {
        let direction = campaign_direction(n);
        let name = match direction {
            Direction::Inbound => format!("Inbound {n:02}"),
            Direction::Outbound => format!("Outbound {n:02}"),
        };
        if let Some((id, existing_direction)) = cc::campaign_by_name(conn, tenant, &name).await? {
            if existing_direction != direction.as_str() {
                return Err(AppError::bad_input(format!(
                    "campaign {name:?} exists with direction {existing_direction}; the generator needs {}",
                    direction.as_str()
                )));
            }
            ids.push(id);
            continue;
        }
        let outbound_number = n / 2;
        let campaign = match direction {
            Direction::Inbound => NewCampaign {
                name: &name,
                direction,
                dial_mode: None,
                status: CampaignStatus::Active,
                service_level_threshold_seconds: (n % 6 == 5).then_some(30),
                service_level_target_percent: None,
                max_abandon_rate_percent: None,
            },
            Direction::Outbound => NewCampaign {
                name: &name,
                direction,
                dial_mode: Some(match outbound_number % 3 {
                    1 => DialMode::Predictive,
                    2 => DialMode::Progressive,
                    _ => DialMode::Preview,
                }),
                status: CampaignStatus::Active,
                service_level_threshold_seconds: None,
                service_level_target_percent: None,
                max_abandon_rate_percent: Some(3.0),
            },
        };
        ids.push(cc::insert_campaign(conn, tenant, &campaign).await?);
    }
    Ok(ids)
}

/// The dispositions the simulation uses, found by code or created with the demo's flags.
async fn ensure_dispositions(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<DispositionIds> {
    let specs = crate::seed::dispositions();
    let mut ids = Vec::with_capacity(specs.len());
    for spec in &specs {
        ids.push(match cc::disposition_by_code(conn, tenant, spec.code).await? {
            Some(id) => id,
            None => cc::insert_disposition(conn, tenant, spec).await?,
        });
    }
    let ids: [Uuid; 9] = ids
        .try_into()
        .map_err(|_| AppError::internal("generator dispositions: wrong count"))?;
    Ok(DispositionIds::from_ids(ids))
}
