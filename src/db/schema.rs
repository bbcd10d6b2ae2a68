// @generated automatically by Diesel CLI.

diesel::table! {
    agent_skills (agent_id, skill_id) {
        organization_id -> Uuid,
        agent_id -> Uuid,
        skill_id -> Uuid,
        proficiency -> Int2,
    }
}

diesel::table! {
    agent_routing_transitions (organization_id, agent_id, at, external_id) {
        organization_id -> Uuid,
        agent_id -> Uuid,
        at -> Timestamptz,
        external_id -> Text,
        state -> Text,
    }
}

diesel::table! {
    agent_state_log (id) {
        id -> Int8,
        organization_id -> Uuid,
        agent_id -> Uuid,
        axis -> Text,
        state -> Text,
        reason -> Nullable<Text>,
        started_at -> Timestamptz,
        ended_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    agents (id) {
        id -> Uuid,
        organization_id -> Uuid,
        user_id -> Nullable<Uuid>,
        display_name -> Text,
        extension -> Nullable<Text>,
        team_id -> Nullable<Uuid>,
        presence -> Text,
        presence_reason -> Nullable<Text>,
        routing_state -> Text,
        state_since -> Timestamptz,
        active -> Bool,
        created_at -> Timestamptz,
        presence_since -> Timestamptz,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        organization_id -> Uuid,
        created_by -> Uuid,
        name -> Text,
        prefix -> Text,
        secret_hash -> Bytea,
        scopes -> Array<Text>,
        created_at -> Timestamptz,
        expires_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        revoked_by -> Nullable<Uuid>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Int8,
        organization_id -> Nullable<Uuid>,
        chain_seq -> Int8,
        occurred_at -> Timestamptz,
        actor_user_id -> Nullable<Uuid>,
        actor_role -> Nullable<Text>,
        action -> Text,
        target_type -> Nullable<Text>,
        target_id -> Nullable<Text>,
        details -> Jsonb,
        request_id -> Nullable<Text>,
        prev_hash -> Nullable<Bytea>,
        hash -> Bytea,
        client_addr -> Nullable<Text>,
    }
}

diesel::table! {
    business_settings (organization_id) {
        organization_id -> Uuid,
        version -> Int4,
        service_level_threshold_seconds -> Int4,
        service_level_target_percent -> Float8,
        service_level_variant -> Text,
        short_abandon_seconds -> Int4,
        max_abandon_rate_percent -> Float8,
        wrap_up_limit_seconds -> Int4,
        business_hours -> Jsonb,
        holidays -> Array<Nullable<Date>>,
        data_retention_days -> Int4,
        updated_at -> Timestamptz,
        updated_by -> Nullable<Uuid>,
        exclude_short_abandons_from_abandon_rate -> Bool,
        exclude_short_abandons_from_service_level -> Bool,
        audit_performance_reads -> Bool,
        history_horizon -> Nullable<Timestamptz>,
        supervisors_see_all_agents -> Bool,
    }
}

diesel::table! {
    call_events (id) {
        id -> Int8,
        organization_id -> Uuid,
        external_id -> Text,
        event_type -> Text,
        occurred_at -> Timestamptz,
        sequence_number -> Int8,
        source -> Text,
        direction -> Nullable<Text>,
        campaign_id -> Nullable<Uuid>,
        agent_id -> Nullable<Uuid>,
        customer_number -> Nullable<Text>,
        answered_by -> Nullable<Text>,
        end_reason -> Nullable<Text>,
        duration_ms -> Nullable<Int8>,
        disposition_id -> Nullable<Uuid>,
        notes -> Nullable<Text>,
        fingerprint -> Bytea,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    campaigns (id) {
        id -> Uuid,
        organization_id -> Uuid,
        name -> Text,
        direction -> Text,
        dial_mode -> Nullable<Text>,
        status -> Text,
        service_level_threshold_seconds -> Nullable<Int4>,
        service_level_target_percent -> Nullable<Float8>,
        max_abandon_rate_percent -> Nullable<Float8>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    coaching_sessions (id) {
        id -> Uuid,
        organization_id -> Uuid,
        agent_id -> Uuid,
        coach_user_id -> Nullable<Uuid>,
        topic -> Text,
        notes -> Nullable<Text>,
        scheduled_at -> Timestamptz,
        completed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        outcome -> Nullable<Text>,
        follow_up_on -> Nullable<Date>,
        acknowledged_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    coaching_session_interactions (session_id, interaction_id) {
        organization_id -> Uuid,
        session_id -> Uuid,
        interaction_id -> Uuid,
    }
}

diesel::table! {
    dispositions (id) {
        id -> Uuid,
        organization_id -> Uuid,
        code -> Text,
        label -> Text,
        human_answered -> Bool,
        contact -> Bool,
        success -> Bool,
        callback -> Bool,
        do_not_call -> Bool,
        answering_machine -> Bool,
        active -> Bool,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    interactions (id) {
        id -> Uuid,
        organization_id -> Uuid,
        campaign_id -> Nullable<Uuid>,
        agent_id -> Nullable<Uuid>,
        external_id -> Text,
        direction -> Text,
        customer_number -> Nullable<Text>,
        offered_at -> Timestamptz,
        answered_at -> Nullable<Timestamptz>,
        ended_at -> Nullable<Timestamptz>,
        wrap_ended_at -> Nullable<Timestamptz>,
        wait_ms -> Nullable<Int8>,
        talk_ms -> Int8,
        hold_ms -> Int8,
        wrap_ms -> Int8,
        outcome -> Text,
        disposition_id -> Nullable<Uuid>,
        answered_by -> Nullable<Text>,
        notes -> Nullable<Text>,
        last_event_sequence -> Nullable<Int8>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    kpi_agent_state_hourly (organization_id, agent_key, hour, axis, state) {
        organization_id -> Uuid,
        agent_key -> Uuid,
        hour -> Timestamptz,
        axis -> Text,
        state -> Text,
        us -> Int8,
    }
}

diesel::table! {
    kpi_agent_time_daily (organization_id, agent_key, day) {
        organization_id -> Uuid,
        agent_key -> Uuid,
        day -> Date,
        on_call_us -> Int8,
        wrap_up_us -> Int8,
        available_us -> Int8,
        logged_in_us -> Int8,
    }
}

diesel::table! {
    kpi_agent_time_hourly (organization_id, agent_key, hour) {
        organization_id -> Uuid,
        agent_key -> Uuid,
        hour -> Timestamptz,
        on_call_us -> Int8,
        wrap_up_us -> Int8,
        available_us -> Int8,
        logged_in_us -> Int8,
    }
}

diesel::table! {
    kpi_daily (organization_id, campaign_key, agent_key, day, direction) {
        organization_id -> Uuid,
        day -> Date,
        campaign_key -> Uuid,
        agent_key -> Uuid,
        direction -> Text,
        dials -> Int8,
        offered -> Int8,
        answered -> Int8,
        handled -> Int8,
        abandoned -> Int8,
        answered_within_sl -> Int8,
        abandoned_within_sl -> Int8,
        short_abandoned -> Int8,
        answered_wait_ms -> Int8,
        handled_talk_ms -> Int8,
        handled_hold_ms -> Int8,
        handled_wrap_ms -> Int8,
        max_wait_ms -> Nullable<Int8>,
        human_answered -> Int8,
        machine_answered -> Int8,
        drops -> Int8,
        contacts -> Int8,
        successes -> Int8,
        machine_detected -> Int8,
        short_abandoned_within_sl -> Int8,
    }
}

diesel::table! {
    kpi_hourly (organization_id, campaign_key, agent_key, hour, direction) {
        organization_id -> Uuid,
        hour -> Timestamptz,
        campaign_key -> Uuid,
        agent_key -> Uuid,
        direction -> Text,
        dials -> Int8,
        offered -> Int8,
        answered -> Int8,
        handled -> Int8,
        abandoned -> Int8,
        answered_within_sl -> Int8,
        abandoned_within_sl -> Int8,
        short_abandoned -> Int8,
        answered_wait_ms -> Int8,
        handled_talk_ms -> Int8,
        handled_hold_ms -> Int8,
        handled_wrap_ms -> Int8,
        max_wait_ms -> Nullable<Int8>,
        human_answered -> Int8,
        machine_answered -> Int8,
        drops -> Int8,
        contacts -> Int8,
        successes -> Int8,
        machine_detected -> Int8,
        short_abandoned_within_sl -> Int8,
    }
}

diesel::table! {
    kpi_hourly_disposition (organization_id, campaign_key, agent_key, hour, direction, disposition_id) {
        organization_id -> Uuid,
        hour -> Timestamptz,
        campaign_key -> Uuid,
        agent_key -> Uuid,
        direction -> Text,
        disposition_id -> Uuid,
        calls -> Int8,
        offered -> Int8,
        answered -> Int8,
        handled -> Int8,
        abandoned -> Int8,
        short_abandoned -> Int8,
    }
}

diesel::table! {
    kpi_daily_disposition (organization_id, campaign_key, agent_key, day, direction, disposition_id) {
        organization_id -> Uuid,
        day -> Date,
        campaign_key -> Uuid,
        agent_key -> Uuid,
        direction -> Text,
        disposition_id -> Uuid,
        calls -> Int8,
        offered -> Int8,
        answered -> Int8,
        handled -> Int8,
        abandoned -> Int8,
        short_abandoned -> Int8,
    }
}

diesel::table! {
    organizations (id) {
        id -> Uuid,
        slug -> Text,
        name -> Text,
        timezone -> Text,
        locale -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        suspended_at -> Nullable<Timestamptz>,
        suspension_reason -> Nullable<Text>,
    }
}

diesel::table! {
    presence_reason_codes (organization_id, code) {
        organization_id -> Uuid,
        code -> Text,
        presence -> Text,
        label -> Text,
        active -> Bool,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Uuid,
        user_id -> Uuid,
        family_id -> Uuid,
        token_hash -> Bytea,
        issued_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    report_files (run_id, chunk) {
        run_id -> Uuid,
        chunk -> Int4,
        data -> Bytea,
    }
}

diesel::table! {
    report_runs (id) {
        id -> Uuid,
        organization_id -> Uuid,
        report_id -> Uuid,
        report_version -> Int4,
        requested_by -> Nullable<Uuid>,
        api_key_id -> Nullable<Uuid>,
        schedule_id -> Nullable<Uuid>,
        fire_at -> Nullable<Timestamptz>,
        format -> Text,
        range_from -> Timestamptz,
        range_to -> Timestamptz,
        bom -> Bool,
        status -> Text,
        attempt -> Int4,
        max_attempts -> Int4,
        not_before -> Timestamptz,
        claimed_by -> Nullable<Text>,
        heartbeat_at -> Nullable<Timestamptz>,
        cancel_requested -> Bool,
        rows_written -> Int8,
        bytes -> Nullable<Int8>,
        content_type -> Nullable<Text>,
        filename -> Nullable<Text>,
        error -> Nullable<Text>,
        created_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        expires_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    reports (id) {
        id -> Uuid,
        organization_id -> Uuid,
        owner_id -> Uuid,
        title -> Text,
        description -> Nullable<Text>,
        shared -> Bool,
        definition -> Jsonb,
        template_key -> Nullable<Text>,
        version -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    skills (id) {
        id -> Uuid,
        organization_id -> Uuid,
        name -> Text,
        description -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    teams (id) {
        id -> Uuid,
        organization_id -> Uuid,
        name -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    telephony_settings (organization_id) {
        organization_id -> Uuid,
        twilio_account_sid -> Nullable<Text>,
        twilio_auth_token -> Nullable<Text>,
        updated_at -> Timestamptz,
        updated_by -> Nullable<Uuid>,
    }
}

diesel::table! {
    user_tokens (id) {
        id -> Uuid,
        organization_id -> Uuid,
        user_id -> Uuid,
        purpose -> Text,
        token_hash -> Bytea,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        organization_id -> Uuid,
        email -> Text,
        display_name -> Text,
        role -> Text,
        password_hash -> Text,
        active -> Bool,
        token_version -> Int4,
        last_login_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    report_schedules (id) {
        id -> Uuid,
        organization_id -> Uuid,
        report_id -> Uuid,
        owner_id -> Uuid,
        cron -> Text,
        timezone -> Text,
        format -> Text,
        recipients -> Array<Text>,
        webhook_url -> Nullable<Text>,
        webhook_secret -> Text,
        paused -> Bool,
        next_fire_at -> Nullable<Timestamptz>,
        last_fire_at -> Nullable<Timestamptz>,
        last_run_id -> Nullable<Uuid>,
        missed_fires -> Int8,
        last_error -> Nullable<Text>,
        version -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    report_deliveries (id) {
        id -> Uuid,
        organization_id -> Uuid,
        run_id -> Uuid,
        schedule_id -> Nullable<Uuid>,
        kind -> Text,
        target -> Text,
        status -> Text,
        attempts -> Int4,
        max_attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        response_status -> Nullable<Int4>,
        sent_link -> Bool,
        created_at -> Timestamptz,
        delivered_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    team_supervisors (team_id, user_id) {
        organization_id -> Uuid,
        team_id -> Uuid,
        user_id -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    dashboards (id) {
        id -> Uuid,
        organization_id -> Uuid,
        owner_id -> Uuid,
        title -> Text,
        description -> Nullable<Text>,
        visibility -> Text,
        team_id -> Nullable<Uuid>,
        version -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    dashboard_widgets (id) {
        id -> Uuid,
        organization_id -> Uuid,
        dashboard_id -> Uuid,
        position -> Int4,
        title -> Text,
        kind -> Text,
        spec -> Jsonb,
        grid_x -> Int4,
        grid_y -> Int4,
        grid_width -> Int4,
        grid_height -> Int4,
    }
}

diesel::table! {
    dashboard_defaults (organization_id, role) {
        organization_id -> Uuid,
        role -> Text,
        dashboard_id -> Uuid,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(agents -> organizations (organization_id));
diesel::joinable!(report_files -> report_runs (run_id));
diesel::joinable!(report_runs -> reports (report_id));
diesel::joinable!(report_schedules -> reports (report_id));
diesel::joinable!(report_deliveries -> report_runs (run_id));
diesel::joinable!(audit_log -> organizations (organization_id));
diesel::joinable!(business_settings -> organizations (organization_id));
diesel::joinable!(call_events -> organizations (organization_id));
diesel::joinable!(campaigns -> organizations (organization_id));
diesel::joinable!(dispositions -> organizations (organization_id));
diesel::joinable!(interactions -> organizations (organization_id));
diesel::joinable!(kpi_agent_state_hourly -> organizations (organization_id));
diesel::joinable!(kpi_agent_time_daily -> organizations (organization_id));
diesel::joinable!(kpi_agent_time_hourly -> organizations (organization_id));
diesel::joinable!(kpi_daily -> organizations (organization_id));
diesel::joinable!(kpi_hourly -> organizations (organization_id));
diesel::joinable!(kpi_daily_disposition -> organizations (organization_id));
diesel::joinable!(kpi_hourly_disposition -> organizations (organization_id));
diesel::joinable!(presence_reason_codes -> organizations (organization_id));
diesel::joinable!(api_keys -> organizations (organization_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(reports -> organizations (organization_id));
diesel::joinable!(skills -> organizations (organization_id));
diesel::joinable!(teams -> organizations (organization_id));
diesel::joinable!(telephony_settings -> organizations (organization_id));
diesel::joinable!(users -> organizations (organization_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_keys,
    agent_routing_transitions,
    agent_skills,
    agent_state_log,
    agents,
    audit_log,
    business_settings,
    call_events,
    campaigns,
    coaching_session_interactions,
    coaching_sessions,
    dashboard_defaults,
    dashboard_widgets,
    dashboards,
    dispositions,
    interactions,
    kpi_agent_state_hourly,
    kpi_agent_time_daily,
    kpi_agent_time_hourly,
    kpi_daily,
    kpi_daily_disposition,
    kpi_hourly,
    kpi_hourly_disposition,
    organizations,
    presence_reason_codes,
    refresh_tokens,
    report_deliveries,
    report_files,
    report_runs,
    report_schedules,
    reports,
    skills,
    team_supervisors,
    teams,
    telephony_settings,
    user_tokens,
    users,
);
