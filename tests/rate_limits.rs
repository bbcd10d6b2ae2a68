//! Rate limits end to end: operations are charged their computed cost against the caller's
//! budget (by role), the budget shows in `RateLimit-*` headers and `extensions.rateLimit`,
//! over budget is HTTP 429 with `Retry-After` and RATE_LIMITED; two instances share one
//! budget through Redis; without Redis each instance still limits in memory; `login` has
//! strict buckets per account and per client address (a trusted proxy's `X-Forwarded-For`
//! names the client, anyone else's is ignored); subscriptions are charged when opened and
//! capped per user; telephony webhooks are limited per organization with a 429 the sender
//! retries.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::ws::{WsEvent, GRAPHQL_TRANSPORT_WS};
use common::TestApp;
use omnivox::auth::Role;
use omnivox::config::{Rate, RoleBudgets, Settings};
use serde_json::{json, Value};

const ME: &str = "{ me { id email } }";
const LOGIN: &str = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }";
const LIVE_KPIS: &str = "subscription { liveKpis { today { offered } } }";

/// One answer with its status and headers.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<u64> {
        self.headers.get(name)?.to_str().ok()?.parse().ok()
    }
    fn code(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["code"].as_str()
    }
    fn cost(&self) -> u64 {
        self.body["extensions"]["rateLimit"]["cost"].as_u64().expect("a cost")
    }
}

async fn post(
    app: &TestApp,
    token: Option<&str>,
    query: &str,
    variables: Value,
    forwarded_for: Option<&str>,
) -> Answer {
    let mut request = app
        .http
        .post(app.url("/graphql"))
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(xff) = forwarded_for {
        request = request.header("x-forwarded-for", xff);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer { status, headers, body }
}

async fn login_attempt(app: &TestApp, email: &str, password: &str, forwarded_for: Option<&str>) -> Answer {
    post(app, None, LOGIN, json!({ "e": email, "p": password }), forwarded_for).await
}

fn budgets(viewer: u64) -> RoleBudgets {
    let mut budgets = RoleBudgets::uniform(1_000_000_000);
    budgets.viewer = viewer;
    budgets
}

/// A budget that refills over an hour: within a test it does not refill noticeably.
fn hourly_viewer_budget(viewer: u64) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| {
        s.rate_limits = budgets(viewer);
        s.rate_limit_period = Duration::from_secs(3_600);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn over_budget_is_429_with_retry_after_and_the_budget_shows_on_every_answer() {
    let app = TestApp::spawn_with(hourly_viewer_budget(100)).await;
    let org = app.create_org("acme").await;
    let viewer = app.token(&org, Role::Viewer).await;

    let first = post(&app, Some(&viewer), ME, json!({}), None).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let cost = first.cost();
    assert!(cost >= 1);
    assert_eq!(first.header("ratelimit-limit"), Some(100));
    assert_eq!(first.header("ratelimit-remaining"), Some(100 - cost));
    assert_eq!(first.body["extensions"]["rateLimit"]["limit"], 100);
    assert_eq!(first.body["extensions"]["rateLimit"]["remaining"], 100 - cost);
    assert!(first.header("ratelimit-reset").unwrap() >= 1);
    assert!(first.headers.get("retry-after").is_none());

    let mut remaining = 100 - cost;
    let refused = loop {
        let answer = post(&app, Some(&viewer), ME, json!({}), None).await;
        if answer.status == 429 {
            break answer;
        }
        assert_eq!(answer.status, 200, "{}", answer.body);
        let now = answer.header("ratelimit-remaining").unwrap();
        assert_eq!(now, remaining - cost, "remaining decreases by the cost");
        assert_eq!(answer.body["extensions"]["rateLimit"]["remaining"], now);
        remaining = now;
    };
    assert!(
        remaining < cost,
        "refused only once the budget is spent ({remaining} left, cost {cost})"
    );
    assert_eq!(refused.code(), Some("RATE_LIMITED"), "{}", refused.body);
    let retry_after = refused.header("retry-after").expect("Retry-After");
    // 100 units per hour: one unit comes back every 36 s.
    assert!((1..=36 * cost).contains(&retry_after), "{retry_after}");
    assert_eq!(
        refused.body["errors"][0]["extensions"]["retryAfterSeconds"],
        retry_after
    );
    assert!(refused.body.get("data").is_none(), "nothing executed: {}", refused.body);
    assert_eq!(refused.header("ratelimit-remaining"), Some(remaining));
    // Asked again at once, the same request is refused the same way (answered from the
    // instance's memory of the refusal, without executing or charging anything).
    let again = post(&app, Some(&viewer), ME, json!({}), None).await;
    assert_eq!(again.status, 429);
    assert_eq!(again.code(), Some("RATE_LIMITED"));
    assert!(again.header("retry-after").unwrap() <= retry_after);
    assert!(
        again.body["errors"][0]["extensions"]["retryAfterSeconds"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert_eq!(again.header("ratelimit-limit"), Some(100));

    // The budget is the user's, whatever token they present; a higher role has its own,
    // larger budget.
    let again = app.login(&org.user(Role::Viewer).email).await.0;
    assert_eq!(
        post(&app, Some(&again), ME, json!({}), None).await.status,
        429,
        "same user"
    );
    let admin = app.token(&org, Role::Admin).await;
    let answer = post(&app, Some(&admin), ME, json!({}), None).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("ratelimit-limit"), Some(1_000_000_000));

    // The legacy media type is refused with 429 as well.
    let legacy = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&viewer)
        .json(&json!({ "query": ME }))
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status().as_u16(), 429);
    assert!(legacy.headers().contains_key("retry-after"));
}

/// A client that sends a refused request again before its `Retry-After` is refused again, but
/// only after `--rate-limit-repeat-delay` (or what is left of its wait, if less), with the
/// wait that is then left; a different request (another cost) is decided afresh, at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_ignores_retry_after_is_answered_after_the_repeat_delay() {
    const DELAY: Duration = Duration::from_secs(2);
    let app = TestApp::spawn_with(|s: &mut Settings| {
        hourly_viewer_budget(100)(s);
        s.rate_limit_repeat_delay = DELAY;
    })
    .await;
    let org = app.create_org("hold").await;
    let viewer = app.token(&org, Role::Viewer).await;
    let refused = loop {
        let answer = post(&app, Some(&viewer), ME, json!({}), None).await;
        if answer.status == 429 {
            break answer;
        }
    };
    let retry_after = refused.header("retry-after").unwrap();
    assert!(retry_after > 1, "an hourly budget refills slowly: {retry_after}");
    let started = std::time::Instant::now();
    let again = post(&app, Some(&viewer), ME, json!({}), None).await;
    let held = started.elapsed();
    assert_eq!(again.status, 429);
    assert_eq!(again.code(), Some("RATE_LIMITED"));
    assert!(held >= DELAY, "answered after {held:?}");
    assert!(again.header("retry-after").unwrap() <= retry_after);
    assert_eq!(again.header("ratelimit-limit"), Some(100));
    // Another document is another request: charged (and refused) at once, not held.
    let started = std::time::Instant::now();
    let other = post(&app, Some(&viewer), "{ me { id } }", json!({}), None).await;
    assert_eq!(other.status, 429, "{}", other.body);
    assert!(started.elapsed() < DELAY, "a first refusal is not held");
}

/// A client that keeps sending a request it was refused: its first refusal is audited on its
/// own, the repeats (answered from the limiter's memory) are tallied into one record per
/// caller and flush rather than one row each, and a draining server writes the tally before
/// it is idle. Every refused request is counted in the trail, and the chain stays intact.
#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_loop_is_audited_as_a_tally_not_a_row_per_request() {
    let app = TestApp::spawn_with(|s: &mut Settings| {
        hourly_viewer_budget(100)(s);
        // Answered at once, so that the loop below is quick (the hold has a test of its own).
        s.rate_limit_repeat_delay = Duration::ZERO;
    })
    .await;
    let org = app.create_org("loop").await;
    let viewer = app.token(&org, Role::Viewer).await;
    let refusals = loop {
        let answer = post(&app, Some(&viewer), ME, json!({}), None).await;
        if answer.status == 429 {
            break 1_u64;
        }
        assert_eq!(answer.status, 200, "{}", answer.body);
    };
    const REPEATS: u64 = 300;
    for _ in 0..REPEATS {
        let again = post(&app, Some(&viewer), ME, json!({}), None).await;
        assert_eq!(again.status, 429);
        assert_eq!(again.code(), Some("RATE_LIMITED"));
    }
    // Tallies count as work in flight, like queued records: a drain writes them first.
    tokio::time::timeout(Duration::from_secs(30), app.state.lifecycle.idle())
        .await
        .expect("the audit queue drains");
    let mut conn = app.state.system_db.get().await.unwrap();
    let records: Vec<_> = omnivox::audit::recent(&mut conn, Some(org.id), 1_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.action == "access.rate_limited")
        .collect();
    let (tallies, single): (Vec<_>, Vec<_>) = records.iter().partition(|r| r.details["extra"]["repeated"].is_u64());
    assert_eq!(single.len() as u64, refusals, "the first refusal has its own record");
    assert!(single[0].request_id.is_some());
    let repeated: u64 = tallies
        .iter()
        .map(|r| r.details["extra"]["repeated"].as_u64().unwrap())
        .sum();
    assert_eq!(repeated, REPEATS, "every repeat is counted");
    // One record per flush of the tally (a second each), not one per request.
    assert!(
        (1..=10).contains(&tallies.len()),
        "{} tally records for {REPEATS} repeats",
        tallies.len()
    );
    let tally = tallies[0];
    assert_eq!(tally.actor_user_id, Some(org.user(Role::Viewer).id));
    assert_eq!(tally.details["code"], "RATE_LIMITED");
    assert_eq!(tally.details["extra"]["limit"], "queries");
    assert!(tally.request_id.is_some(), "the first repeat's request id");
    assert!(tally.details["extra"]["lastRequestId"].is_string());
    assert!(tally.client_addr.is_some());
    let report = omnivox::audit::verify_chain(&mut conn, Some(org.id)).await.unwrap();
    assert!(report.intact(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cost_is_the_computed_complexity_so_big_pages_cost_more() {
    let app = TestApp::spawn_with(hourly_viewer_budget(1_000_000)).await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await;
    let small = post(
        &app,
        Some(&admin),
        "{ users(first: 1) { nodes { id } } }",
        json!({}),
        None,
    )
    .await;
    let large = post(
        &app,
        Some(&admin),
        "{ users(first: 100) { nodes { id } } }",
        json!({}),
        None,
    )
    .await;
    assert_eq!(small.status, 200, "{}", small.body);
    assert!(large.cost() > 10 * small.cost(), "{} vs {}", large.cost(), small.cost());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_one_budget_through_redis() {
    const BUDGET: u64 = 400;
    let redis = |s: &mut Settings| s.redis_url = Some(common::REDIS_URL.into());
    let a = TestApp::spawn_with(|s| {
        redis(s);
        hourly_viewer_budget(BUDGET)(s);
    })
    .await;
    let b = a
        .spawn_peer(|s| {
            redis(s);
            hourly_viewer_budget(BUDGET)(s);
        })
        .await;
    let org = a.create_org("acme").await;
    let viewer = a.token(&org, Role::Viewer).await;

    // Alternate between the instances until one refuses; sum what was allowed.
    let mut allowed = 0;
    let mut requests = 0;
    for i in 0.. {
        let app = if i % 2 == 0 { &a } else { &b };
        let answer = post(app, Some(&viewer), ME, json!({}), None).await;
        if answer.status == 429 {
            assert_eq!(answer.code(), Some("RATE_LIMITED"));
            break;
        }
        assert_eq!(answer.status, 200, "{}", answer.body);
        allowed += answer.cost();
        requests += 1;
        assert!(requests < 10_000, "never limited");
    }
    let low = BUDGET * 9 / 10;
    let high = BUDGET * 11 / 10;
    assert!(
        (low..=high).contains(&allowed),
        "two instances allowed {allowed} units of a {BUDGET} budget"
    );
    // And the other instance refuses too.
    assert_eq!(post(&a, Some(&viewer), ME, json!({}), None).await.status, 429);
    assert_eq!(post(&b, Some(&viewer), ME, json!({}), None).await.status, 429);
    let ready: Value = a.http.get(a.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["rateLimits"]["store"], "redis", "{ready}");
}

/// Far from its limit a caller is allowed without waiting for Redis, and each of those charges
/// still reaches Redis (another instance, asking Redis, sees every unit spent); past half the
/// budget every charge is decided by Redis again, and the budget holds to the unit.
#[tokio::test(flavor = "multi_thread")]
async fn far_from_the_limit_charges_are_decided_here_and_still_reach_redis() {
    const BUDGET: u64 = 1_000;
    // Over a day one unit refills every 86 s: nothing refills during the test.
    let daily = |s: &mut Settings| {
        s.redis_url = Some(common::REDIS_URL.into());
        s.rate_limits = budgets(BUDGET);
        s.rate_limit_period = Duration::from_secs(86_400);
    };
    let a = TestApp::spawn_with(daily).await;
    let b = a.spawn_peer(daily).await;
    let org = a.create_org("acme").await;
    let viewer = a.token(&org, Role::Viewer).await;

    // A quarter of the budget, on one instance. (Signing in charged buckets of its own.)
    let before = a.state.limiter.decisions();
    let mut spent = 0;
    while spent < BUDGET / 4 {
        let answer = post(&a, Some(&viewer), ME, json!({}), None).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        spent += answer.cost();
        assert_eq!(
            answer.header("ratelimit-remaining"),
            Some(BUDGET - spent),
            "exact on every answer"
        );
    }
    let decided = a.state.limiter.decisions();
    assert_eq!(
        decided.redis - before.redis,
        1,
        "only the first charge waited for Redis: {before:?} → {decided:?}"
    );
    assert!(decided.local - before.local >= 1, "{decided:?}");
    assert_eq!(decided.memory, 0, "{decided:?}");

    // The other instance knows nothing of this caller, so it asks Redis: every unit is there
    // (the charges sent behind the answers arrive within moments).
    let peer_before = b.state.limiter.decisions();
    let mut seen = None;
    for _ in 0..50 {
        let answer = post(&b, Some(&viewer), ME, json!({}), None).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        spent += answer.cost();
        let remaining = answer.header("ratelimit-remaining").unwrap();
        seen = Some(remaining);
        if remaining == BUDGET - spent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen,
        Some(BUDGET - spent),
        "Redis holds every charge made on the first instance"
    );
    assert_eq!(
        b.state.limiter.decisions().redis - peer_before.redis,
        1,
        "the other instance knew nothing of the caller, so its first charge asked Redis"
    );

    // Spend the rest on the first instance: past half the budget it asks Redis again.
    let redis_before = a.state.limiter.decisions().redis;
    let mut cost = 0;
    loop {
        let answer = post(&a, Some(&viewer), ME, json!({}), None).await;
        if answer.status == 429 {
            assert_eq!(answer.code(), Some("RATE_LIMITED"));
            break;
        }
        assert_eq!(answer.status, 200, "{}", answer.body);
        cost = answer.cost();
        spent += cost;
        assert!(spent <= BUDGET, "allowed {spent} of {BUDGET}");
    }
    assert!(spent + cost > BUDGET, "refused with {} units left", BUDGET - spent);
    let decided = a.state.limiter.decisions();
    assert!(
        decided.redis - redis_before >= 2,
        "near the limit Redis decides: {decided:?}"
    );
    assert_eq!(decided.overdrawn, 0, "{decided:?}");
}

/// The rare case the local decision exists for: this instance still sees the bucket nearly
/// full when another instance has just spent it. The charge is allowed here, but Redis records
/// it anyway (forced, past the budget): it is counted as overdrawn and the caller repays it
/// with a longer wait on every instance.
#[tokio::test(flavor = "multi_thread")]
async fn an_overdraft_allowed_here_is_still_charged_in_redis_and_repaid() {
    use omnivox::limits::gcra;
    use omnivox::limits::store::Store;

    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let client = || redis::Client::open(common::REDIS_URL).unwrap();
    let here = Store::new(Some(client()), &prefix);
    let there = Store::new(Some(client()), &prefix);
    let rate = Rate::new(100, Duration::from_secs(3_600));
    let units = |n| gcra::increment_us(rate, n);

    // This instance charges 1 unit (asking Redis) and so learns the bucket.
    assert!(here.charge("bucket", rate, units(1)).await.allowed);
    // The other instance spends the other 99 at once.
    let spent = there.charge("bucket", rate, units(99)).await;
    assert!(spent.allowed);
    assert_eq!(gcra::remaining(rate, spent.used_us), 0);
    // Within the second, this instance still believes 99 units are free: 10 are allowed here.
    let decision = here.charge("bucket", rate, units(10)).await;
    assert!(decision.allowed);
    assert_eq!(here.decisions().local, 1);
    // Redis finds the budget spent, and charges it anyway.
    for _ in 0..100 {
        if here.decisions().overdrawn == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(here.decisions().overdrawn, 1, "{:?}", here.decisions());
    // Repaid: one more unit waits for the 10 overdrawn units as well as its own (36 s each),
    // where without the forced charge it would wait for one.
    let refused = there.charge("bucket", rate, units(1)).await;
    assert!(!refused.allowed);
    assert!(
        refused.retry_after_us >= units(10),
        "waits {} µs, less than the 10 units overdrawn",
        refused.retry_after_us
    );
}

/// Spends a viewer's hourly budget on one instance; returns the units allowed.
async fn spend(app: &TestApp, token: &str) -> u64 {
    let mut allowed = 0;
    loop {
        let answer = post(app, Some(token), ME, json!({}), None).await;
        if answer.status == 429 {
            assert_eq!(answer.code(), Some("RATE_LIMITED"));
            assert!(answer.headers.contains_key("retry-after"));
            return allowed;
        }
        assert_eq!(answer.status, 200, "{}", answer.body);
        allowed += answer.cost();
        assert!(allowed < 100_000, "never limited");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_redis_each_instance_still_limits_in_memory() {
    // Not configured.
    let app = TestApp::spawn_with(|s| {
        s.redis_url = None;
        hourly_viewer_budget(200)(s);
    })
    .await;
    let org = app.create_org("acme").await;
    let viewer = app.token(&org, Role::Viewer).await;
    let allowed = spend(&app, &viewer).await;
    assert!((180..=200).contains(&allowed), "{allowed}");
    let ready: Value = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ready["rateLimits"],
        json!({ "store": "memory", "reason": "redis_not_configured" })
    );

    // Configured but down: the charges fall back to memory, and still limit.
    let down = TestApp::spawn_with(|s| {
        s.redis_url = Some("redis://127.0.0.1:1".into());
        hourly_viewer_budget(200)(s);
    })
    .await;
    let org = down.create_org("acme").await;
    let viewer = down.token(&org, Role::Viewer).await;
    let started = std::time::Instant::now();
    let allowed = spend(&down, &viewer).await;
    assert!((180..=200).contains(&allowed), "{allowed}");
    let ready: Value = down
        .http
        .get(down.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ready["rateLimits"],
        json!({ "store": "memory", "reason": "redis_down" })
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "an outage must not slow requests"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn login_brute_force_against_one_account_is_slowed() {
    let app = TestApp::spawn_with(|s| {
        s.login_rate_per_account = Rate::new(5, Duration::from_secs(900));
    })
    .await;
    let org = app.create_org("acme").await;
    let target = org.user(Role::Admin).email.clone();
    for attempt in 0..5 {
        let answer = login_attempt(&app, &target, &format!("guess-{attempt}"), None).await;
        assert_eq!(
            answer.code(),
            Some("UNAUTHENTICATED"),
            "attempt {attempt}: {}",
            answer.body
        );
    }
    let refused = login_attempt(&app, &target, "guess-5", None).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.code(), Some("RATE_LIMITED"));
    // Five per 15 minutes: the next attempt in 3 minutes.
    let retry_after = refused.header("retry-after").unwrap();
    assert!((170..=180).contains(&retry_after), "{retry_after}");
    // Even the right password waits now (whether it is right must not leak).
    let right = login_attempt(&app, &target, common::TEST_PASSWORD, None).await;
    assert_eq!(right.code(), Some("RATE_LIMITED"));
    // The account's bucket holds any case of its address.
    let upper = login_attempt(&app, &target.to_uppercase(), "guess", None).await;
    assert_eq!(upper.code(), Some("RATE_LIMITED"));
    // Other accounts sign in from the same address.
    let other = login_attempt(&app, &org.user(Role::Viewer).email, common::TEST_PASSWORD, None).await;
    assert_eq!(other.status, 200, "{}", other.body);
    assert!(other.body["data"]["login"]["accessToken"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_session_has_its_own_bucket_per_account() {
    let app = TestApp::spawn_with(|s| {
        s.refresh_rate_per_account = Rate::new(2, Duration::from_secs(900));
    })
    .await;
    let org = app.create_org("acme").await;
    let (_, mut refresh) = app.login(&org.user(Role::Agent).email).await;
    const REFRESH: &str = "mutation($t: String!) { refreshSession(refreshToken: $t) { refreshToken } }";
    for _ in 0..2 {
        let answer = post(&app, None, REFRESH, json!({ "t": refresh }), None).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        refresh = answer.body["data"]["refreshSession"]["refreshToken"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    let refused = post(&app, None, REFRESH, json!({ "t": refresh }), None).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.code(), Some("RATE_LIMITED"));
    // Logging in is a bucket of its own.
    let (_, _) = app.login(&org.user(Role::Agent).email).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_the_forwarded_address_is_the_client() {
    let strict_per_address = |s: &mut Settings| {
        s.login_rate_per_address = Rate::new(3, Duration::from_secs(900));
    };
    let app = TestApp::spawn_with(|s| {
        strict_per_address(s);
        s.trusted_proxies = omnivox::config::parse_trusted_proxies("127.0.0.1/32").unwrap();
    })
    .await;
    let org = app.create_org("acme").await;
    let emails: Vec<String> = [Role::Viewer, Role::Agent, Role::Supervisor, Role::Admin]
        .iter()
        .map(|role| org.user(*role).email.clone())
        .collect();
    // One client behind the proxy spends its address's attempts (on different accounts)…
    for email in &emails[..3] {
        let answer = login_attempt(&app, email, "wrong", Some("203.0.113.5")).await;
        assert_eq!(answer.code(), Some("UNAUTHENTICATED"), "{}", answer.body);
    }
    // …a client-forged entry left of the proxy's does not help it…
    let refused = login_attempt(&app, &emails[3], "wrong", Some("198.51.100.1, 203.0.113.5")).await;
    assert_eq!(refused.code(), Some("RATE_LIMITED"), "{}", refused.body);
    assert_eq!(refused.status, 429);
    // …while another client behind the same proxy is not affected.
    let other = login_attempt(&app, &emails[3], common::TEST_PASSWORD, Some("203.0.113.6")).await;
    assert_eq!(other.status, 200, "{}", other.body);

    // A server that trusts no proxy ignores the header: every "client" is 127.0.0.1.
    let direct = TestApp::spawn_with(strict_per_address).await;
    let org = direct.create_org("acme").await;
    for (i, role) in [Role::Viewer, Role::Agent, Role::Supervisor].iter().enumerate() {
        let forged = format!("203.0.113.{}", 10 + i);
        let answer = login_attempt(&direct, &org.user(*role).email, "wrong", Some(&forged)).await;
        assert_eq!(answer.code(), Some("UNAUTHENTICATED"), "{}", answer.body);
    }
    let refused = login_attempt(&direct, &org.user(Role::Admin).email, "wrong", Some("203.0.113.99")).await;
    assert_eq!(refused.code(), Some("RATE_LIMITED"), "{}", refused.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_are_capped_per_user_across_sockets() {
    let app = TestApp::spawn_with(|s| s.max_subscriptions_per_user = 2).await;
    let org = app.create_org("acme").await;
    let viewer = app.token(&org, Role::Viewer).await;
    let mut one = app.ws(GRAPHQL_TRANSPORT_WS).await;
    one.init(&viewer).await;
    one.subscribe("a", LIVE_KPIS).await;
    one.expect_data("liveKpis").await;
    let mut two = app.ws(GRAPHQL_TRANSPORT_WS).await;
    two.init(&viewer).await;
    two.subscribe("b", LIVE_KPIS).await;
    two.expect_data("liveKpis").await;
    // The third, on either socket, is refused; the socket stays open.
    two.subscribe("c", LIVE_KPIS).await;
    let refused = two.expect_json().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["id"], "c");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "RATE_LIMITED");
    // Queries do not count.
    two.subscribe("q", ME).await;
    let query = two.expect_json().await;
    assert_eq!(query["type"], "next", "{query}");
    // Another user has a cap of their own.
    let agent = app.token(&org, Role::Agent).await;
    let mut theirs = app.subscribe(&agent, LIVE_KPIS, json!({})).await;
    theirs.expect_data("liveKpis").await;
    // Completing one frees a slot.
    one.complete("a").await;
    let mut freed = false;
    'attempts: for attempt in 0..50 {
        let id = format!("d{attempt}");
        two.subscribe(&id, LIVE_KPIS).await;
        loop {
            match two.next(Duration::from_secs(10)).await {
                // The query's `complete`, or anything else not about this attempt.
                WsEvent::Json(message) if message["id"] != id.as_str() => continue,
                WsEvent::Json(message) if message["type"] == "next" => {
                    freed = true;
                    break 'attempts;
                }
                WsEvent::Json(message) if message["type"] == "error" => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue 'attempts;
                }
                other => panic!("{other:?}"),
            }
        }
    }
    assert!(freed, "the completed subscription's slot was not released");
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_are_charged_when_opened() {
    let app = TestApp::spawn_with(hourly_viewer_budget(30)).await;
    let org = app.create_org("acme").await;
    let viewer = app.token(&org, Role::Viewer).await;
    let mut socket = app.ws(GRAPHQL_TRANSPORT_WS).await;
    socket.init(&viewer).await;
    let mut opened = 0;
    let refused = loop {
        socket.subscribe(&format!("s{opened}"), LIVE_KPIS).await;
        let message = socket.expect_json().await;
        if message["type"] == "error" {
            break message;
        }
        assert_eq!(message["type"], "next", "{message}");
        opened += 1;
        assert!(opened < 100, "never charged");
    };
    assert!(opened >= 1);
    assert_eq!(refused["payload"][0]["extensions"]["code"], "RATE_LIMITED", "{refused}");
    assert!(
        refused["payload"][0]["extensions"]["retryAfterSeconds"]
            .as_u64()
            .unwrap()
            >= 1
    );
    // The open ones keep running; the budget is shared with HTTP.
    assert_eq!(post(&app, Some(&viewer), ME, json!({}), None).await.status, 429);
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_are_limited_per_organization_and_a_refused_event_is_stored_on_retry() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
    const AUTH_TOKEN: &str = "f3b2c1d0e9a8b7c6d5e4f3a2b1c0d9e8";
    let app = TestApp::spawn_with(|s| s.webhook_rate = Rate::new(3, Duration::from_secs(2))).await;
    let acme = app.create_org("acme").await;
    let other = app.create_org("other").await;
    for org in [&acme, &other] {
        let admin = app.token(org, Role::Admin).await;
        app.gql(
            Some(&admin),
            "mutation($i: TelephonySettingsInput!) { updateTelephonySettings(input: $i) { authTokenSet } }",
            json!({ "i": { "twilioAccountSid": ACCOUNT, "twilioAuthToken": AUTH_TOKEN } }),
        )
        .await
        .ok();
    }
    let deliver = |slug: String, call: String| {
        let app = &app;
        async move {
            let path = format!("/webhooks/twilio/{slug}/voice-status");
            let params: Vec<(String, String)> = [
                ("AccountSid", ACCOUNT),
                ("CallSid", call.as_str()),
                ("CallStatus", "ringing"),
                ("Direction", "inbound"),
                ("From", "+447700900123"),
                ("To", "+441632960000"),
                ("SequenceNumber", "0"),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            // RFC 2822 has whole seconds: a minute ahead (within the allowed clock skew) stays
            // after the organization's creation.
            .chain([(
                "Timestamp".to_owned(),
                (chrono::Utc::now() + chrono::TimeDelta::seconds(60)).to_rfc2822(),
            )])
            .collect();
            let url = app.url(&path);
            let signature = omnivox::ingest::twilio::compute_signature(AUTH_TOKEN, &url, &params);
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&params)
                .finish();
            let response = app
                .http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-twilio-signature", signature)
                .body(body)
                .send()
                .await
                .unwrap();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            (response.status().as_u16(), retry_after)
        }
    };
    for i in 0..3 {
        let (status, _) = deliver(acme.slug.clone(), format!("CA{i:032}")).await;
        assert_eq!(status, 204);
    }
    let (status, retry_after) = deliver(acme.slug.clone(), format!("CA{:032}", 3)).await;
    assert_eq!(status, 429, "over the organization's budget");
    let retry_after = retry_after.expect("Retry-After");
    assert!((1..=1).contains(&retry_after), "{retry_after}");
    // Another organization has its own budget (not the caller's role: there is none).
    assert_eq!(deliver(other.slug.clone(), format!("CB{:032}", 0)).await.0, 204);
    // The refused event was not stored; sent again after Retry-After, it is.
    let mut conn = AsyncPgConnection::establish(&app.database.url).await.unwrap();
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    async fn count(conn: &mut AsyncPgConnection, org: uuid::Uuid) -> i64 {
        diesel::sql_query("SELECT count(*) AS n FROM interactions WHERE organization_id = $1")
            .bind::<diesel::sql_types::Uuid, _>(org)
            .get_result::<Count>(conn)
            .await
            .unwrap()
            .n
    }
    assert_eq!(count(&mut conn, acme.id).await, 3);
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(deliver(acme.slug.clone(), format!("CA{:032}", 3)).await.0, 204);
    assert_eq!(count(&mut conn, acme.id).await, 4);
}
