//! The calls of the model: an inbound caller queues until an agent is free or their patience
//! runs out; an outbound dial reaches a live person, a machine, nobody or a busy line, and a
//! live person is put through to an agent (the dialler paces itself to its agents) or dropped.
//!
//! The order of the random draws is part of the model's contract (same stream, same day): a
//! call draws what it needs in the order the code below reads, and nothing else.

use chrono::{DateTime, Utc};
use rand::Rng;

use super::curves::{customer_number, ms};
use super::{Campaign, Day, Pacing, WrapUp};
use crate::db::interactions::NewInteraction;
use crate::domain::{AnsweredBy, Direction, Outcome};

/// Callers who hang up at some random point of their wait, however fast the queue is.
pub const IMPATIENT_CALLER_SHARE: f64 = 0.08;
/// Shares of outbound dials by result; the rest are busy (and the share each campaign's dialler
/// drops by over-dialling, [`Campaign::dropped_share`]).
pub const OUTBOUND_HUMAN_SHARE: f64 = 0.60;
pub const OUTBOUND_MACHINE_SHARE: f64 = 0.15;
pub const OUTBOUND_NO_ANSWER_SHARE: f64 = 0.17;

/// A wrap-up drawn by weight (one draw); `None` only for an empty mix.
pub fn pick_wrapup<'w>(wrapups: &'w [WrapUp], rng: &mut impl Rng) -> Option<&'w WrapUp> {
    let total: u32 = wrapups.iter().map(|w| w.weight).sum();
    let mut x = rng.gen_range(0..total.max(1));
    wrapups.iter().find(|w| {
        if x < w.weight {
            true
        } else {
            x -= w.weight;
            false
        }
    })
}

impl Day<'_> {
    /// A call offered (inbound) or dialled (outbound) at `at` for `campaign`; `None` when it
    /// would not be over by `now` (a call in progress is left out), or when a pacing dialler has
    /// no agent to dial for ([`Pacing::WaitForAgent`]).
    pub fn call(&mut self, campaign: &Campaign, at: DateTime<Utc>) -> Option<NewInteraction> {
        let call = match campaign.direction {
            Direction::Inbound => self.inbound_call(campaign, at),
            Direction::Outbound => self.outbound_call(campaign, at),
        }?;
        let end = call.wrap_ended_at.or(call.ended_at).unwrap_or(call.offered_at);
        (end <= self.now).then_some(call)
    }

    fn base_call(&mut self, campaign: &Campaign, offered: DateTime<Utc>, outcome: Outcome) -> NewInteraction {
        NewInteraction {
            campaign_id: Some(campaign.id),
            customer_number: Some(customer_number(&mut self.rng)),
            ..NewInteraction::offered(String::new(), campaign.direction, offered, outcome)
        }
    }

    /// A call agent `i` (just popped from its pool) answers at `answered`: talk, sometimes hold,
    /// wrap-up. `None`, and the agent untouched, when it would not be wrapped up by `now`.
    fn agent_call(
        &mut self,
        i: usize,
        campaign: &Campaign,
        offered: DateTime<Utc>,
        answered: DateTime<Utc>,
    ) -> Option<NewInteraction> {
        let model = self.model;
        let scale = model.handle_time_scale;
        let mix = match campaign.direction {
            Direction::Inbound => &model.inbound,
            Direction::Outbound => &model.outbound,
        };
        let wrapup = pick_wrapup(&mix.wrapups, &mut self.rng).copied();
        let talk_ms = wrapup.map_or(60_000, |w| w.talk.sample_ms(&mut self.rng, scale));
        let hold_ms = if self.rng.gen_bool(mix.hold_share) {
            model.hold.sample_ms(&mut self.rng, scale)
        } else {
            0
        };
        let wrap_ms = model.wrap.sample_ms(&mut self.rng, scale);
        let ended = answered + ms(talk_ms + hold_ms);
        let wrap_ended = ended + ms(wrap_ms);
        if wrap_ended > self.now {
            self.push_agent(i);
            return None;
        }
        let agent_id = self.agents.get(i).map(|a| a.id);
        if let Some(agent) = self.agents.get_mut(i) {
            agent.take_call(super::agent_day::AgentCall {
                answered,
                ended,
                wrap_ended,
            });
        }
        self.push_agent(i);
        Some(NewInteraction {
            agent_id,
            answered_at: Some(answered),
            ended_at: Some(ended),
            wrap_ended_at: Some(wrap_ended),
            wait_ms: Some((answered - offered).num_milliseconds()),
            talk_ms,
            hold_ms,
            wrap_ms,
            disposition_id: wrapup.map(|w| w.disposition),
            answered_by: Some(AnsweredBy::Human),
            ..self.base_call(campaign, offered, Outcome::Answered)
        })
    }

    /// An inbound call: the caller waits until an agent is free or their patience runs out (a
    /// few hang up early whatever the queue, the rest wait [`super::Model::patient_wait_ms`]).
    fn inbound_call(&mut self, campaign: &Campaign, offered: DateTime<Utc>) -> Option<NewInteraction> {
        let queue_ms = self.rng.gen_range(2_000..=12_000);
        let patience_ms: i64 = if self.rng.gen_bool(IMPATIENT_CALLER_SHARE) {
            if self.rng.gen_bool(0.3) {
                self.rng.gen_range(1_000..5_000)
            } else {
                self.rng.gen_range(5_000..=180_000)
            }
        } else {
            self.rng.gen_range(self.model.patient_wait_ms.clone())
        };
        if let Some((i, start)) = self.pop_agent(Direction::Inbound, offered + ms(queue_ms)) {
            if start - offered <= ms(patience_ms) {
                return self.agent_call(i, campaign, offered, start);
            }
            self.push_agent(i);
        }
        Some(NewInteraction {
            ended_at: Some(offered + ms(patience_ms)),
            wait_ms: Some(patience_ms),
            ..self.base_call(campaign, offered, Outcome::Abandoned)
        })
    }

    /// An outbound dial planned at `planned`.
    fn outbound_call(&mut self, campaign: &Campaign, planned: DateTime<Utc>) -> Option<NewInteraction> {
        let d = self.model.dispositions;
        let roll: f64 = self.rng.gen();
        if roll < OUTBOUND_HUMAN_SHARE {
            let connect = ms(self.rng.gen_range(300..=1_500));
            if let Some((i, start)) = self.pop_agent(Direction::Outbound, planned + connect) {
                let in_time = match self.model.pacing {
                    Pacing::WaitForAgent => true,
                    Pacing::DropAfter(limit) => start - planned <= limit,
                };
                if in_time {
                    // The dialler paces itself: the dial goes out so it connects when the agent is free.
                    return self.agent_call(i, campaign, start - connect, start);
                }
                self.push_agent(i);
            }
            if self.model.pacing == Pacing::WaitForAgent {
                return None;
            }
            // A live person and no agent: the dialler plays its message and drops the call.
            return Some(self.dropped(campaign, planned));
        }
        if roll < OUTBOUND_HUMAN_SHARE + OUTBOUND_MACHINE_SHARE {
            // Answering-machine detection listens for a few seconds, then the dialler hangs up.
            let detect_ms = self.rng.gen_range(200..=800);
            let talk_ms = self.rng.gen_range(3_000..=12_000);
            let answered = planned + ms(detect_ms);
            return Some(NewInteraction {
                answered_at: Some(answered),
                ended_at: Some(answered + ms(talk_ms)),
                wait_ms: Some(detect_ms),
                talk_ms,
                answered_by: Some(AnsweredBy::Machine),
                disposition_id: Some(d.answering_machine),
                ..self.base_call(campaign, planned, Outcome::Answered)
            });
        }
        let dropped = campaign.dropped_share;
        if roll < OUTBOUND_HUMAN_SHARE + OUTBOUND_MACHINE_SHARE + dropped {
            return Some(self.dropped(campaign, planned));
        }
        let no_answer = roll < OUTBOUND_HUMAN_SHARE + OUTBOUND_MACHINE_SHARE + dropped + OUTBOUND_NO_ANSWER_SHARE;
        let (outcome, ring_ms, disposition) = if no_answer {
            (Outcome::NoAnswer, self.rng.gen_range(15_000..=35_000), d.no_answer)
        } else {
            (Outcome::Busy, self.rng.gen_range(1_000..=4_000), d.busy)
        };
        Some(NewInteraction {
            ended_at: Some(planned + ms(ring_ms)),
            disposition_id: Some(disposition),
            ..self.base_call(campaign, planned, outcome)
        })
    }

    /// A live person the dialler drops (over-dialled, or no agent in time): its message plays
    /// for a few seconds.
    fn dropped(&mut self, campaign: &Campaign, planned: DateTime<Utc>) -> NewInteraction {
        let wait_ms = self.rng.gen_range(2_000..=4_000);
        NewInteraction {
            ended_at: Some(planned + ms(wait_ms)),
            wait_ms: Some(wait_ms),
            answered_by: Some(AnsweredBy::Human),
            ..self.base_call(campaign, planned, Outcome::Abandoned)
        }
    }
}
