//! Wire <-> domain conversions. Proto messages are destructured without `..`
//! so that a field added to the contract breaks the build here until it is
//! handled. Nothing in this module sees a `Request` or a `Status`: errors are
//! [`FieldError`]s, mapped in `status`.

use crate::catalog::{CatalogStats, Goods, QualityScores, Stream, Streamer};
use crate::domain::{ArmRef, Event, EventKind, Venue};
use crate::domain::{
    Channel, FieldError, ItemKind, Millis, Reason, Scene, StreamerKind, Tier, check_time,
};
use crate::domain::{TierThresholds, check_id, price_problem};
use crate::engine::{Candidate, RankQuery, Ranking, Slot};
use crate::proto::v1 as pb;

pub(crate) fn scene(value: i32) -> Result<Scene, FieldError> {
    match pb::Scene::try_from(value) {
        Ok(pb::Scene::Recommend) => Ok(Scene::Recommend),
        Ok(pb::Scene::Follow) => Ok(Scene::Follow),
        Ok(pb::Scene::Mall) => Ok(Scene::Mall),
        Ok(pb::Scene::Search) => Ok(Scene::Search),
        Ok(pb::Scene::Shop) => Ok(Scene::Shop),
        Ok(pb::Scene::Unspecified) => Err(FieldError::new("scene", "must be set")),
        Err(_) => Err(FieldError::new("scene", format!("unknown value {value}"))),
    }
}

pub(super) fn item_kind(field: impl Fn() -> String, value: i32) -> Result<ItemKind, FieldError> {
    match pb::ItemKind::try_from(value) {
        Ok(pb::ItemKind::LiveStream) => Ok(ItemKind::LiveStream),
        Ok(pb::ItemKind::Goods) => Ok(ItemKind::Goods),
        Ok(pb::ItemKind::Unspecified) => Err(FieldError::new(field(), "must be set")),
        Err(_) => Err(FieldError::new(field(), format!("unknown value {value}"))),
    }
}

fn item_kind_to_pb(kind: ItemKind) -> pb::ItemKind {
    match kind {
        ItemKind::LiveStream => pb::ItemKind::LiveStream,
        ItemKind::Goods => pb::ItemKind::Goods,
    }
}

pub(super) fn tier_to_pb(tier: Tier) -> pb::Tier {
    match tier {
        Tier::Top => pb::Tier::Top,
        Tier::Mid => pb::Tier::Mid,
        Tier::Small => pb::Tier::Small,
    }
}

fn reason_to_pb(reason: Reason) -> pb::ReasonCode {
    match reason {
        Reason::Organic => pb::ReasonCode::Organic,
        Reason::TierFloor => pb::ReasonCode::TierFloor,
        Reason::ExposureBoost => pb::ReasonCode::ExposureBoost,
        Reason::Chuanliu => pb::ReasonCode::Chuanliu,
        Reason::ColdStart => pb::ReasonCode::ColdStart,
        Reason::GatePenalty => pb::ReasonCode::GatePenalty,
        Reason::GateBoost => pb::ReasonCode::GateBoost,
        Reason::FlowReward => pb::ReasonCode::FlowReward,
    }
}

fn streamer_kind(value: i32) -> Result<StreamerKind, FieldError> {
    match pb::StreamerKind::try_from(value) {
        Ok(pb::StreamerKind::Influencer) => Ok(StreamerKind::Influencer),
        Ok(pb::StreamerKind::BrandSelf) => Ok(StreamerKind::BrandSelf),
        Ok(pb::StreamerKind::Unspecified) => Err(FieldError::new("kind", "must be set")),
        Err(_) => Err(FieldError::new("kind", format!("unknown value {value}"))),
    }
}

fn streamer_kind_to_pb(kind: StreamerKind) -> pb::StreamerKind {
    match kind {
        StreamerKind::Influencer => pb::StreamerKind::Influencer,
        StreamerKind::BrandSelf => pb::StreamerKind::BrandSelf,
    }
}

/// A rank request as the engine's query. `now` is used when the request
/// does not carry its own time.
pub fn rank_query(req: pb::RankRequest, now: Millis) -> Result<RankQuery, FieldError> {
    let pb::RankRequest {
        request_id,
        user_id,
        scene: scene_value,
        slots,
        candidates,
        request_time_ms,
    } = req;
    let candidates = candidates
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let pb::Candidate {
                item_id,
                kind,
                streamer_id,
                brand_id,
                price,
                pctr,
                pcvr,
                user_follows,
            } = c;
            Ok(Candidate {
                kind: item_kind(|| format!("candidates[{i}].kind"), kind)?,
                item_id: item_id.into(),
                streamer_id: streamer_id.map(Into::into),
                brand_id: brand_id.map(Into::into),
                price,
                pctr,
                pcvr,
                user_follows,
            })
        })
        .collect::<Result<Vec<_>, FieldError>>()?;
    Ok(RankQuery {
        request_id,
        user_id,
        scene: scene(scene_value)?,
        slots,
        candidates,
        now: match request_time_ms {
            Some(ms) => check_time("request_time_ms", ms)?,
            None => now,
        },
    })
}

/// The answer to a `Rank`, naming the experiment arms it ran under.
pub fn rank_response(ranking: Ranking, arms: &[ArmRef]) -> pb::RankResponse {
    let Ranking {
        request_id,
        slots,
        config_version,
        model_version,
        unresolved,
        ineligible,
    } = ranking;
    pb::RankResponse {
        request_id,
        slots: slots.into_iter().map(slot).collect(),
        config_version,
        model_version,
        unresolved_candidates: unresolved,
        ineligible_candidates: ineligible,
        arms: arms
            .iter()
            .map(|a| pb::ExperimentArm {
                experiment: a.experiment.clone(),
                arm: a.arm.clone(),
            })
            .collect(),
    }
}

fn slot(s: Slot) -> pb::RankedSlot {
    let Slot {
        position,
        candidate: _,
        item_id,
        kind,
        streamer_id,
        tier,
        score,
        expected_value,
        exposure,
        pctr,
        pcvr,
        reasons,
        resolved,
    } = s;
    pb::RankedSlot {
        position,
        item_id,
        kind: item_kind_to_pb(kind) as i32,
        streamer_id: streamer_id.unwrap_or_default(),
        tier: tier_to_pb(tier) as i32,
        score,
        expected_value,
        exposure,
        pctr,
        pcvr,
        reasons: reasons.iter().map(|r| reason_to_pb(r) as i32).collect(),
        resolved,
    }
}

/// An empty string on the wire means "not set" for optional ids.
fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// How far ahead of the server's clock a time may be (clock skew).
pub const MAX_AHEAD_MS: i64 = 3_600_000;

/// A streamer from the wire; `now` is the server's clock: an account cannot
/// have started selling in the future (it would keep its cold-start boost
/// for as long as it stays ahead).
pub fn streamer(s: pb::Streamer, now: Millis) -> Result<Streamer, FieldError> {
    let pb::Streamer {
        id,
        followers,
        kind,
        brand_id,
        product_score,
        shop_experience_score,
        reputation_score,
        created_at_ms,
        tier: _output_only,
    } = s;
    Ok(Streamer {
        id,
        followers,
        kind: streamer_kind(kind)?,
        brand_id: non_empty(brand_id),
        scores: QualityScores {
            product: product_score,
            shop_experience: shop_experience_score,
            reputation: reputation_score,
        },
        created_at: if created_at_ms == 0 {
            // Unset: an established account (no cold-start boost).
            Millis(0)
        } else {
            let created = check_time("created_at_ms", created_at_ms)?;
            if created.0 > now.0.saturating_add(MAX_AHEAD_MS) {
                return Err(FieldError::new(
                    "created_at_ms",
                    "is more than an hour ahead of the server's clock",
                ));
            }
            created
        },
    })
}

pub fn streamer_to_pb(s: &Streamer, tiers: &TierThresholds) -> pb::Streamer {
    let Streamer {
        id,
        followers,
        kind,
        brand_id,
        scores,
        created_at,
    } = s;
    pb::Streamer {
        id: id.clone(),
        followers: *followers,
        kind: streamer_kind_to_pb(*kind) as i32,
        brand_id: brand_id.clone().unwrap_or_default(),
        product_score: scores.product,
        shop_experience_score: scores.shop_experience,
        reputation_score: scores.reputation,
        created_at_ms: created_at.0,
        tier: tier_to_pb(tiers.classify(*followers)) as i32,
    }
}

pub fn goods(g: pb::Goods) -> Goods {
    let pb::Goods {
        id,
        brand_id,
        price,
        product_score,
        seller_id,
    } = g;
    Goods {
        id,
        brand_id,
        price,
        product_score,
        seller_id,
    }
}

pub fn goods_to_pb(g: &Goods) -> pb::Goods {
    let Goods {
        id,
        brand_id,
        price,
        product_score,
        seller_id,
    } = g;
    pb::Goods {
        id: id.clone(),
        brand_id: brand_id.clone(),
        price: *price,
        product_score: *product_score,
        seller_id: seller_id.clone(),
    }
}

pub fn stream(s: pb::Stream) -> Stream {
    let pb::Stream {
        id,
        streamer_id,
        live,
        goods_ids,
    } = s;
    Stream {
        id,
        streamer_id,
        live,
        goods_ids,
    }
}

pub fn stream_to_pb(s: &Stream) -> pb::Stream {
    let Stream {
        id,
        streamer_id,
        live,
        goods_ids,
    } = s;
    pb::Stream {
        id: id.clone(),
        streamer_id: streamer_id.clone(),
        live: *live,
        goods_ids: goods_ids.clone(),
    }
}

pub fn catalog_stats(s: CatalogStats) -> pb::CatalogStats {
    let CatalogStats {
        streamers,
        streams,
        live_streams,
        goods,
        per_tier,
        brand_self_streamers,
    } = s;
    pb::CatalogStats {
        streamers,
        streams,
        live_streams,
        goods,
        top_streamers: per_tier[Tier::Top.index()],
        mid_streamers: per_tier[Tier::Mid.index()],
        small_streamers: per_tier[Tier::Small.index()],
        brand_self_streamers,
    }
}

/// Checks a required id: present, at most `max` bytes.
fn required_id(field: &str, value: String, max: usize) -> Result<String, FieldError> {
    check_id(field, &value, max)?;
    Ok(value)
}

fn optional_id(field: &str, value: String, max: usize) -> Result<Option<String>, FieldError> {
    non_empty(value)
        .map(|v| required_id(field, v, max))
        .transpose()
}

/// One event, every field checked; field names are relative to the event
/// (`purchase.price`).
pub fn event(e: pb::Event, max_id: usize) -> Result<Event, FieldError> {
    let pb::Event {
        event_id,
        time_ms,
        user_id,
        kind,
    } = e;
    let event_id = required_id("event_id", event_id, max_id)?;
    check_time("time_ms", time_ms)?;
    let user_id = required_id("user_id", user_id, max_id)?;
    let kind = match kind {
        None => {
            return Err(FieldError::new(
                "kind",
                "one of purchase, impression, click must be set",
            ));
        }
        Some(pb::event::Kind::Purchase(p)) => {
            let pb::Purchase {
                item_id,
                brand_id,
                seller_streamer_id,
                channel,
                price,
                venue,
            } = p;
            let venue = match pb::SaleVenue::try_from(venue) {
                Ok(pb::SaleVenue::Unspecified) => None,
                Ok(pb::SaleVenue::LiveStream) => Some(Venue::LiveStream),
                Ok(pb::SaleVenue::Shelf) => Some(Venue::Shelf),
                Err(_) => {
                    return Err(FieldError::new(
                        "purchase.venue",
                        format!("{venue} is not a sale venue"),
                    ));
                }
            };
            let channel = match pb::SaleChannel::try_from(channel) {
                Ok(pb::SaleChannel::Distribution) => Channel::Influencer,
                Ok(pb::SaleChannel::SelfBroadcast) => Channel::BrandSelf,
                Ok(pb::SaleChannel::Unspecified) => {
                    return Err(FieldError::new("purchase.channel", "must be set"));
                }
                Err(_) => {
                    return Err(FieldError::new(
                        "purchase.channel",
                        format!("{channel} is not a sale channel"),
                    ));
                }
            };
            if let Some(reason) = price_problem(price) {
                return Err(FieldError::new("purchase.price", reason));
            }
            if price == 0.0 {
                return Err(FieldError::new(
                    "purchase.price",
                    "an order value must be above 0",
                ));
            }
            EventKind::Purchase {
                item_id: required_id("purchase.item_id", item_id, max_id)?,
                brand_id: required_id("purchase.brand_id", brand_id, max_id)?,
                seller_streamer_id: required_id(
                    "purchase.seller_streamer_id",
                    seller_streamer_id,
                    max_id,
                )?,
                channel,
                price,
                venue,
            }
        }
        Some(pb::event::Kind::Impression(i)) => {
            let pb::Impression {
                item_id,
                streamer_id,
                request_id,
                position,
            } = i;
            EventKind::Impression {
                item_id: required_id("impression.item_id", item_id, max_id)?,
                streamer_id: optional_id("impression.streamer_id", streamer_id, max_id)?,
                request_id: optional_id("impression.request_id", request_id, max_id)?,
                position,
                // Resolved against the catalog at intake.
                own_stream_of: None,
            }
        }
        Some(pb::event::Kind::Click(c)) => {
            let pb::Click {
                item_id,
                request_id,
            } = c;
            EventKind::Click {
                item_id: required_id("click.item_id", item_id, max_id)?,
                request_id: optional_id("click.request_id", request_id, max_id)?,
            }
        }
    };
    Ok(Event {
        event_id,
        time: Millis(time_ms),
        user_id,
        kind,
    })
}
