//! Twilio voice status callbacks: signatures computed here, independently of the crate, per
//! Twilio's published algorithm; what is accepted, what is refused (and then nothing is
//! stored), and parallel delivery of the same call.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;
mod ingest_support;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use common::TestApp;
use futures_util::future::join_all;
use hmac::{Hmac, Mac};
use ingest_support::*;
use omnivox::auth::Role;
use omnivox::db;
use omnivox::kpi::query::Scope;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::json;
use sha1::Sha1;
use sha2::{Digest, Sha256};

const TOKEN: &str = "f3b2c1d0e9a8b7c6d5e4f3a2b1c0d9e8";
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const BASE: &str = "https://cc.example.com";

/// Twilio's algorithm, written out: HMAC-SHA1 over the URL followed by each parameter's name
/// and value, parameters sorted by name; base64.
fn sign(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut data = url.to_owned();
    for (name, value) in &sorted {
        data.push_str(name);
        data.push_str(value);
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn twilio_check_vector() {
    let params = pairs(&[
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ]);
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    assert_eq!(sign("12345", url, &params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    assert_eq!(
        omnivox::ingest::twilio::compute_signature("12345", url, &params),
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    );
}

fn rfc2822(at: DateTime<Utc>) -> String {
    at.to_rfc2822()
}

/// The parameters of one status callback.
fn callback(call_sid: &str, status: &str, at: DateTime<Utc>, sequence: u32) -> Vec<(String, String)> {
    let mut p = pairs(&[
        ("AccountSid", ACCOUNT),
        ("ApiVersion", "2010-04-01"),
        ("CallbackSource", "call-progress-events"),
        ("Called", "+441632960000"),
        ("Caller", "+447700900123"),
        ("Direction", "inbound"),
        ("From", "+447700900123"),
        ("To", "+441632960000"),
    ]);
    p.push(("CallSid".into(), call_sid.into()));
    p.push(("CallStatus".into(), status.into()));
    p.push(("Timestamp".into(), rfc2822(at)));
    p.push(("SequenceNumber".into(), sequence.to_string()));
    p
}

async fn configure(app: &TestApp, f: &Fixture, token: &str) -> serde_json::Value {
    let response = app
        .gql(
            Some(&f.admin),
            "mutation($i: TelephonySettingsInput!) { updateTelephonySettings(input: $i) {
                twilioAccountSid authTokenSet voiceStatusCallbackPath voiceStatusCallbackUrl } }",
            json!({ "i": { "twilioAccountSid": ACCOUNT, "twilioAuthToken": token } }),
        )
        .await;
    response.ok()["updateTelephonySettings"].clone()
}

fn path(f: &Fixture, query: &str) -> String {
    format!("/webhooks/twilio/{}/voice-status{query}", f.org.slug)
}

/// POSTs a form body to the app (the public URL is what the signature covers, not this).
async fn post(
    app: &TestApp,
    path_and_query: &str,
    params: &[(String, String)],
    signature: Option<&str>,
) -> (u16, String) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let mut request = app
        .http
        .post(app.url(path_and_query))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(signature) = signature {
        request = request.header("x-twilio-signature", signature);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

/// Signs for the public URL `base + path_and_query` and posts.
async fn deliver(app: &TestApp, base: &str, path_and_query: &str, params: &[(String, String)]) -> (u16, String) {
    let signature = sign(TOKEN, &format!("{base}{path_and_query}"), params);
    post(app, path_and_query, params, Some(&signature)).await
}

async fn app_behind(base: &'static str) -> TestApp {
    TestApp::spawn_with(|s| s.public_base_url = Some(base.to_owned())).await
}

#[tokio::test(flavor = "multi_thread")]
async fn telephony_settings_are_admin_only_write_only_and_audited() {
    let app = app_behind(BASE).await;
    let f = fixture(&app, "settings").await;
    let supervisor = app.token(&f.org, Role::Supervisor).await;
    let refused = app
        .gql(
            Some(&supervisor),
            "mutation { updateTelephonySettings(input: { twilioAuthToken: \"x\" }) { authTokenSet } }",
            json!({}),
        )
        .await;
    assert_eq!(refused.error_code(), Some("FORBIDDEN"));
    let settings = configure(&app, &f, TOKEN).await;
    assert_eq!(settings["twilioAccountSid"], ACCOUNT);
    assert_eq!(settings["authTokenSet"], true);
    assert_eq!(settings["voiceStatusCallbackPath"], path(&f, ""));
    assert_eq!(settings["voiceStatusCallbackUrl"], format!("{BASE}{}", path(&f, "")));
    let read = app
        .gql(
            Some(&f.admin),
            "{ telephonySettings { twilioAccountSid authTokenSet } }",
            json!({}),
        )
        .await;
    assert!(!read.body.to_string().contains(TOKEN));
    assert_eq!(read.ok()["telephonySettings"]["authTokenSet"], true);
    let bad = app
        .gql(
            Some(&f.admin),
            "mutation { updateTelephonySettings(input: { twilioAccountSid: \"AC123\" }) { authTokenSet } }",
            json!({}),
        )
        .await;
    assert_eq!(bad.error_code(), Some("BAD_USER_INPUT"));
    let mut conn = app.state.system_db.get().await.unwrap();
    let audit = omnivox::audit::recent(&mut conn, Some(f.org.id), 10).await.unwrap();
    let record = audit.iter().find(|r| r.action == "telephony.update").unwrap();
    assert_eq!(record.details["authTokenChanged"], true);
    assert!(
        !record.details.to_string().contains(TOKEN),
        "the audit record must not hold the token"
    );
    // No output type of the schema has a field that could return it.
    let sdl = omnivox::graphql::sdl();
    let output = sdl
        .split("\ntype TelephonySettings {")
        .nth(1)
        .unwrap()
        .split('}')
        .next()
        .unwrap();
    assert!(
        output.contains("authTokenSet") && !output.contains("twilioAuthToken"),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_callbacks_behind_a_proxy_are_stored_with_or_without_the_default_port() {
    let app = app_behind(BASE).await;
    let f = fixture(&app, "proxied").await;
    configure(&app, &f, TOKEN).await;
    let query = "?source=twilio&attempt=1";
    let first = callback("CA00000000000000000000000000000001", "ringing", t("09:00:00"), 0);
    assert_eq!(deliver(&app, BASE, &path(&f, query), &first).await.0, 204);
    // Signed over the URL with the default port added.
    let second = callback("CA00000000000000000000000000000002", "ringing", t("09:00:00"), 0);
    assert_eq!(
        deliver(&app, "https://cc.example.com:443", &path(&f, query), &second)
            .await
            .0,
        204
    );
    // A non-default port is another URL.
    let third = callback("CA00000000000000000000000000000003", "ringing", t("09:00:00"), 0);
    assert_eq!(
        deliver(&app, "https://cc.example.com:8443", &path(&f, query), &third)
            .await
            .0,
        403
    );
    assert_eq!(count_rows(&app, "interactions", f.org.id).await, 2);

    // Configured with the explicit default port, a signature without it is accepted too.
    let app = app_behind("https://cc.example.com:443").await;
    let f = fixture(&app, "proxied-port").await;
    configure(&app, &f, TOKEN).await;
    let call = callback("CA00000000000000000000000000000004", "queued", t("09:00:00"), 0);
    assert_eq!(deliver(&app, BASE, &path(&f, ""), &call).await.0, 204);
    assert_eq!(count_rows(&app, "interactions", f.org.id).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_base_url_the_request_host_is_the_url() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "direct").await;
    configure(&app, &f, TOKEN).await;
    let call = callback("CA00000000000000000000000000000005", "queued", t("09:00:00"), 0);
    let base = format!("http://{}", app.addr);
    assert_eq!(deliver(&app, &base, &path(&f, "?x=1"), &call).await.0, 204);
    assert_eq!(
        deliver(&app, BASE, &path(&f, "?x=1"), &call).await.0,
        403,
        "not the URL that was called"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_tampering_is_refused_and_nothing_is_stored() {
    let app = app_behind(BASE).await;
    let f = fixture(&app, "tamper").await;
    let other = fixture(&app, "tamper-other").await;
    configure(&app, &f, TOKEN).await;
    configure(&app, &other, "another-token-for-another-org").await;
    let target = path(&f, "?a=1");
    let url = format!("{BASE}{target}");
    let params = callback("CA00000000000000000000000000000006", "completed", t("09:00:00"), 3);
    let good = sign(TOKEN, &url, &params);

    let mut changed = params.clone();
    changed.iter_mut().find(|(k, _)| k == "CallStatus").unwrap().1 = "busy".into();
    let mut added = params.clone();
    added.push(("Extra".into(), "1".into()));
    let mut removed = params.clone();
    removed.retain(|(k, _)| k != "CallDuration" && k != "From");
    type Case = (&'static str, String, Vec<(String, String)>, Option<String>);
    let cases: Vec<Case> = vec![
        ("a parameter changed", target.clone(), changed, Some(good.clone())),
        ("a parameter added", target.clone(), added, Some(good.clone())),
        ("a parameter removed", target.clone(), removed, Some(good.clone())),
        ("the URL changed", path(&f, "?a=2"), params.clone(), Some(good.clone())),
        ("another path", path(&other, "?a=1"), params.clone(), Some(good.clone())),
        (
            "a wrong token",
            target.clone(),
            params.clone(),
            Some(sign("wrong-token", &url, &params)),
        ),
        (
            "another org's token",
            target.clone(),
            params.clone(),
            Some(sign("another-token-for-another-org", &url, &params)),
        ),
        (
            "http instead of https",
            target.clone(),
            params.clone(),
            Some(sign(TOKEN, &url.replace("https", "http"), &params)),
        ),
        ("no signature", target.clone(), params.clone(), None),
        (
            "an empty signature",
            target.clone(),
            params.clone(),
            Some(String::new()),
        ),
        (
            "garbage",
            target.clone(),
            params.clone(),
            Some("bm90IGEgc2lnbmF0dXJl".into()),
        ),
    ];
    for (what, to, body, signature) in &cases {
        let (status, _) = post(&app, to, body, signature.as_deref()).await;
        assert_eq!(status, 403, "{what}");
    }
    for org in [&f, &other] {
        assert_eq!(count_rows(&app, "call_events", org.org.id).await, 0);
        assert_eq!(count_rows(&app, "interactions", org.org.id).await, 0);
    }
    // The untampered request is accepted.
    assert_eq!(post(&app, &target, &params, Some(&good)).await.0, 204);
    assert_eq!(count_rows(&app, "interactions", f.org.id).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_4xx_and_store_nothing() {
    let app = app_behind(BASE).await;
    let f = fixture(&app, "bad").await;
    configure(&app, &f, TOKEN).await;
    let unconfigured = fixture(&app, "unconfigured").await;
    let sid = "CA00000000000000000000000000000007";
    let ok = callback(sid, "ringing", t("09:00:00"), 0);
    let with_param = |name: &str, value: &str| {
        let mut p = ok.clone();
        p.retain(|(k, _)| k != name);
        if !value.is_empty() {
            p.push((name.to_owned(), value.to_owned()));
        }
        p
    };

    let unknown_org = "/webhooks/twilio/no-such-org/voice-status";
    assert_eq!(deliver(&app, BASE, unknown_org, &ok).await.0, 404);
    assert_eq!(deliver(&app, BASE, &path(&unconfigured, ""), &ok).await.0, 403);
    let cases = [
        (
            "an unknown CallStatus",
            with_param("CallStatus", "exploded"),
            400,
            "CallStatus",
        ),
        ("no CallSid", with_param("CallSid", ""), 400, "CallSid"),
        (
            "a bad Timestamp",
            with_param("Timestamp", "yesterday"),
            400,
            "Timestamp",
        ),
        (
            "a Timestamp far in the future",
            with_param("Timestamp", &rfc2822(Utc::now() + TimeDelta::days(3))),
            400,
            "future",
        ),
        (
            "a Timestamp before the org existed",
            with_param("Timestamp", &rfc2822(at("2025-06-01T00:00:00Z"))),
            400,
            "before the organization",
        ),
        (
            "another AccountSid",
            with_param("AccountSid", "ACffffffffffffffffffffffffffffffff"),
            403,
            "forbidden",
        ),
    ];
    for (what, params, status, text) in &cases {
        let (got, body) = deliver(&app, BASE, &path(&f, ""), params).await;
        assert_eq!(got, *status, "{what}: {body}");
        assert!(body.contains(text), "{what}: {body}");
    }
    // Oversized, wrong content type, wrong method.
    let mut huge = ok.clone();
    huge.push(("Padding".into(), "x".repeat(100_000)));
    assert_eq!(deliver(&app, BASE, &path(&f, ""), &huge).await.0, 413);
    let signature = sign(TOKEN, &format!("{BASE}{}", path(&f, "")), &ok);
    let wrong_type = app
        .http
        .post(app.url(&path(&f, "")))
        .header("content-type", "text/plain")
        .header("x-twilio-signature", signature)
        .body("CallSid=CA1")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status().as_u16(), 415);
    assert_eq!(
        app.http
            .get(app.url(&path(&f, "")))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        405
    );
    assert_eq!(count_rows(&app, "call_events", f.org.id).await, 0);
    assert_eq!(count_rows(&app, "interactions", f.org.id).await, 0);
    // And the same callback, well-formed, is stored.
    assert_eq!(deliver(&app, BASE, &path(&f, ""), &ok).await.0, 204);
    assert_eq!(count_rows(&app, "call_events", f.org.id).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn json_bodies_are_verified_through_body_sha256() {
    let app = app_behind(BASE).await;
    let f = fixture(&app, "json").await;
    configure(&app, &f, TOKEN).await;
    let params = callback("CA00000000000000000000000000000008", "queued", t("09:00:00"), 0);
    let object: serde_json::Map<String, serde_json::Value> = params
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let body = serde_json::to_vec(&object).unwrap();
    let target = path(&f, &format!("?bodySHA256={}", hex::encode(Sha256::digest(&body))));
    let signature = sign(TOKEN, &format!("{BASE}{target}"), &[]);
    let send = |body: Vec<u8>| {
        app.http
            .post(app.url(&target))
            .header("content-type", "application/json")
            .header("x-twilio-signature", signature.clone())
            .body(body)
            .send()
    };
    let mut tampered = object.clone();
    tampered.insert("CallStatus".into(), "completed".into());
    assert_eq!(
        send(serde_json::to_vec(&tampered).unwrap())
            .await
            .unwrap()
            .status()
            .as_u16(),
        403
    );
    assert_eq!(count_rows(&app, "call_events", f.org.id).await, 0);
    assert_eq!(send(body).await.unwrap().status().as_u16(), 204);
    assert_eq!(count_rows(&app, "interactions", f.org.id).await, 1);
}

/// One call's callbacks: queued, ringing, in-progress, completed (60 s of talk).
fn lifecycle(call_sid: &str, start: DateTime<Utc>) -> Vec<Vec<(String, String)>> {
    let mut completed = callback(call_sid, "completed", start + TimeDelta::seconds(70), 3);
    completed.push(("CallDuration".into(), "60".into()));
    vec![
        callback(call_sid, "queued", start, 0),
        callback(call_sid, "ringing", start + TimeDelta::seconds(2), 1),
        callback(call_sid, "in-progress", start + TimeDelta::seconds(10), 2),
        completed,
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_deliveries_of_the_same_call_converge() {
    let app = app_behind(BASE).await;
    let f = fixture(&app, "parallel").await;
    configure(&app, &f, TOKEN).await;
    let sid = "CA0000000000000000000000000000000a";
    let start = t("09:59:40");
    let mut deliveries: Vec<Vec<(String, String)>> = lifecycle(sid, start)
        .into_iter()
        .flat_map(|p| std::iter::repeat_n(p, 8))
        .collect();
    deliveries.shuffle(&mut StdRng::seed_from_u64(5));
    let target = path(&f, "");
    let statuses = join_all(deliveries.iter().map(|p| deliver(&app, BASE, &target, p))).await;
    assert!(statuses.iter().all(|(s, _)| *s == 204), "{statuses:?}");
    assert_eq!(
        count_rows(&app, "call_events", f.org.id).await,
        4,
        "each distinct callback is stored once"
    );
    let mut conn = app.state.system_db.get().await.unwrap();
    let row = db::interactions::interaction_by_external_id(&mut conn, &f.tenant, sid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.outcome, "ANSWERED");
    assert_eq!(row.offered_at, start);
    assert_eq!(row.answered_at, Some(start + TimeDelta::seconds(10)));
    assert_eq!(row.ended_at, Some(start + TimeDelta::seconds(70)));
    assert_eq!((row.wait_ms, row.talk_ms), (Some(10_000), 60_000));
    assert_eq!(row.last_event_sequence, Some(3));
    assert_eq!(row.customer_number.as_deref(), Some("+447700900123"));
    assert_rollups_match_raw(&app, &f.tenant, &hours("09:00:00", 2), &Scope::default()).await;

    // Many calls at once, each call's callbacks shuffled and repeated.
    let mut all = Vec::new();
    for n in 0..24 {
        let sid = format!("CA{:032x}", 0x100 + n);
        let start = t("10:00:00") + TimeDelta::seconds(n * 97);
        for p in lifecycle(&sid, start) {
            all.push(p.clone());
            if n % 3 == 0 {
                all.push(p);
            }
        }
    }
    all.shuffle(&mut StdRng::seed_from_u64(11));
    let statuses = join_all(all.iter().map(|p| deliver(&app, BASE, &target, p))).await;
    assert!(statuses.iter().all(|(s, _)| *s == 204));
    assert_eq!(count_rows(&app, "interactions", f.org.id).await, 25);
    let counters = raw(&app, &f.tenant, t("10:00:00"), t("11:00:00")).await;
    assert_eq!((counters.answered, counters.answered_wait_ms), (24, 24 * 10_000));
    assert_rollups_match_raw(&app, &f.tenant, &hours("09:00:00", 3), &Scope::default()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_completed_only_callback_is_an_answered_call() {
    // Twilio sends only `completed` unless more events are asked for: CallDuration tells the
    // answer.
    let app = app_behind(BASE).await;
    let f = fixture(&app, "completed-only").await;
    configure(&app, &f, TOKEN).await;
    let sid = "CA0000000000000000000000000000000b";
    let completed = lifecycle(sid, t("09:00:00")).pop().unwrap();
    assert_eq!(deliver(&app, BASE, &path(&f, ""), &completed).await.0, 204);
    let mut conn = app.state.system_db.get().await.unwrap();
    let row = db::interactions::interaction_by_external_id(&mut conn, &f.tenant, sid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.outcome.as_str(), row.talk_ms), ("ANSWERED", 60_000));
    // A child leg is acknowledged and not stored.
    let mut child = callback("CA0000000000000000000000000000000c", "ringing", t("09:00:01"), 0);
    child.push(("ParentCallSid".into(), sid.into()));
    assert_eq!(deliver(&app, BASE, &path(&f, ""), &child).await.0, 204);
    assert_eq!(count_rows(&app, "interactions", f.org.id).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_auth_token_works_at_once_and_then_the_old_one_is_refused() {
    let app = app_behind(BASE).await;
    let f = fixture(&app, "rotation").await;
    configure(&app, &f, TOKEN).await;
    let target = path(&f, "");
    let first = callback("CA0000000000000000000000000000000d", "queued", t("09:00:00"), 0);
    assert_eq!(deliver(&app, BASE, &target, &first).await.0, 204);
    let new_token = "a-brand-new-token-after-rotation";
    configure(&app, &f, new_token).await;
    let second = callback("CA0000000000000000000000000000000e", "queued", t("09:00:00"), 0);
    let signature = sign(new_token, &format!("{BASE}{target}"), &second);
    assert_eq!(post(&app, &target, &second, Some(&signature)).await.0, 204);
    let third = callback("CA0000000000000000000000000000000f", "queued", t("09:00:00"), 0);
    assert_eq!(
        deliver(&app, BASE, &target, &third).await.0,
        403,
        "signed with the replaced token"
    );
    assert_eq!(count_rows(&app, "interactions", f.org.id).await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suspended_organization_s_callbacks_are_refused_until_it_is_resumed() {
    let app = app_behind(BASE).await;
    let f = fixture(&app, "paused").await;
    configure(&app, &f, TOKEN).await;
    let platform = app.create_org("platform").await;
    let staff = app.token(&platform, Role::SuperAdmin).await;
    let suspend = "mutation($o: ID!) { suspendOrganization(orgId: $o, reason: \"unpaid\") { id } }";
    let resume = "mutation($o: ID!) { resumeOrganization(orgId: $o) { id } }";
    app.gql(Some(&staff), suspend, json!({ "o": f.org.id })).await.ok();

    let call = callback("CA00000000000000000000000000000077", "queued", t("09:00:00"), 0);
    let (status, body) = deliver(&app, BASE, &path(&f, ""), &call).await;
    assert_eq!(status, 403);
    assert!(body.contains("ORGANIZATION_SUSPENDED"), "{body}");
    assert_eq!(count_rows(&app, "interactions", f.org.id).await, 0);

    // Resumed: the provider's retry of the same callback is stored at once.
    app.gql(Some(&staff), resume, json!({ "o": f.org.id })).await.ok();
    assert_eq!(deliver(&app, BASE, &path(&f, ""), &call).await.0, 204);
    assert_eq!(count_rows(&app, "interactions", f.org.id).await, 1);
}
