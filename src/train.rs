//! Fitting the scoring model on a traffic log: logistic heads for pCTR (on
//! impressions) and pCVR (on clicks), trained with full-batch Adam in
//! ndarray, evaluated on held-out requests against a popularity baseline.
//!
//! Features are computed by the same engine code that serves (`evaluate`),
//! against the catalog as the log's `stream_status` records evolve it, so a
//! trained model sees exactly the inputs it will get in production.
//!
//! Position bias: clicks depend on the slot, which is not a ranking feature.
//! The pCTR head is trained with an extra ln(1 + position) column that is
//! dropped on export; at position 0 it contributes nothing, so the exported
//! model predicts the click-through of the top slot and the position effect
//! does not leak into the item weights.

use crate::catalog::Catalog;
use crate::engine::{Engine, RankQuery};
use crate::model::{FEATURES, FORMAT, N_FEATURES};
use crate::traffic::{LogError, Record};
use foldhash::HashMap;
use ndarray::{Array1, Array2, ArrayView1, Axis};
use serde::Serialize;
use std::collections::VecDeque;

/// Events of a request arrive within this long after it (purchases up to
/// ~11 minutes after a click); older requests are forgotten.
const JOIN_WINDOW_MS: i64 = 3_600_000;

#[derive(Debug, Clone, PartialEq)]
pub struct TrainParams {
    pub iterations: usize,
    pub learning_rate: f64,
    pub l2: f64,
    /// One request in this many is held out for evaluation.
    pub holdout_every: u64,
    pub version: String,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            iterations: 600,
            learning_rate: 0.05,
            l2: 1e-4,
            holdout_every: 5,
            version: "sim-v1".into(),
        }
    }
}

/// Held-out quality of one head.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeadReport {
    pub train_examples: usize,
    pub test_examples: usize,
    pub positive_rate: f64,
    pub test_auc: f64,
    pub test_logloss: f64,
    /// AUC of ranking by the streamer's followers alone.
    pub popularity_auc: f64,
    /// Log-loss of predicting the training positive rate for everyone.
    pub constant_logloss: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainReport {
    pub requests: u64,
    pub pctr: HeadReport,
    pub pcvr: HeadReport,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Log(#[from] LogError),
    #[error("not enough data: {0}")]
    NotEnoughData(String),
}

/// Labeled rows for one head.
#[derive(Default)]
struct Examples {
    rows: Vec<f64>,
    labels: Vec<f64>,
    test: Vec<bool>,
    width: usize,
}

impl Examples {
    fn new(width: usize) -> Examples {
        Examples {
            width,
            ..Examples::default()
        }
    }

    fn push(&mut self, row: impl IntoIterator<Item = f64>, test: bool) -> usize {
        self.rows.extend(row);
        self.labels.push(0.0);
        self.test.push(test);
        self.labels.len() - 1
    }

    fn split(&self, test: bool) -> (Array2<f64>, Array1<f64>) {
        let idx: Vec<usize> = (0..self.labels.len())
            .filter(|&i| self.test[i] == test)
            .collect();
        let x = Array2::from_shape_fn((idx.len(), self.width), |(r, c)| {
            self.rows[idx[r] * self.width + c]
        });
        let y = idx.iter().map(|&i| self.labels[i]).collect();
        (x, y)
    }
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// Full-batch Adam on the logistic loss with L2; returns (weights, bias).
fn fit(x: &Array2<f64>, y: &Array1<f64>, p: &TrainParams) -> (Array1<f64>, f64) {
    let (n, d) = x.dim();
    let mut w = Array1::<f64>::zeros(d);
    let base = (y.sum() / n as f64).clamp(1e-6, 1.0 - 1e-6);
    let mut b = (base / (1.0 - base)).ln();
    let (mut mw, mut vw) = (Array1::<f64>::zeros(d), Array1::<f64>::zeros(d));
    let (mut mb, mut vb) = (0.0, 0.0);
    let (b1, b2, eps) = (0.9, 0.999, 1e-8);
    for t in 1..=p.iterations {
        let err = (x.dot(&w) + b).mapv(sigmoid) - y;
        let gw = x.t().dot(&err) / n as f64 + &w * p.l2;
        let gb = err.sum() / n as f64;
        mw = &mw * b1 + &gw * (1.0 - b1);
        vw = &vw * b2 + &gw.mapv(|g| g * g) * (1.0 - b2);
        mb = mb * b1 + gb * (1.0 - b1);
        vb = vb * b2 + gb * gb * (1.0 - b2);
        let (c1, c2) = (1.0 - b1.powi(t as i32), 1.0 - b2.powi(t as i32));
        w = &w - &((&mw / c1) / ((&vw / c2).mapv(f64::sqrt) + eps) * p.learning_rate);
        b -= p.learning_rate * (mb / c1) / ((vb / c2).sqrt() + eps);
    }
    (w, b)
}

/// Area under the ROC curve (ties count half).
pub fn auc(scores: ArrayView1<f64>, labels: ArrayView1<f64>) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += (i..=j).filter(|&k| labels[order[k]] > 0.5).count() as f64 * mid_rank;
        i = j + 1;
    }
    let pos = labels.iter().filter(|&&l| l > 0.5).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return f64::NAN;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

fn logloss(probs: ArrayView1<f64>, labels: ArrayView1<f64>) -> f64 {
    let n = labels.len().max(1) as f64;
    probs
        .iter()
        .zip(labels)
        .map(|(&p, &y)| {
            let p = p.clamp(1e-9, 1.0 - 1e-9);
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        })
        .sum::<f64>()
        / n
}

/// Fits a head and reports it; the weights cover the first `N_FEATURES`
/// columns (extra columns are nuisance terms, dropped).
fn fit_head(
    ex: &Examples,
    p: &TrainParams,
    name: &str,
) -> Result<(Vec<f64>, f64, HeadReport), TrainError> {
    let (x, y) = ex.split(false);
    let (xt, yt) = ex.split(true);
    let positives = y.sum();
    if x.nrows() < 100 || positives < 10.0 || xt.nrows() == 0 || yt.sum() == 0.0 {
        return Err(TrainError::NotEnoughData(format!(
            "{name}: {} training examples with {positives} positives, {} held out",
            x.nrows(),
            xt.nrows()
        )));
    }
    let (w, b) = fit(&x, &y, p);
    let probs = (xt.dot(&w) + b).mapv(sigmoid);
    let base = positives / y.len() as f64;
    let report = HeadReport {
        train_examples: x.nrows(),
        test_examples: xt.nrows(),
        positive_rate: base,
        test_auc: auc(probs.view(), yt.view()),
        test_logloss: logloss(probs.view(), yt.view()),
        popularity_auc: auc(xt.index_axis(Axis(1), 1), yt.view()),
        constant_logloss: logloss(Array1::from_elem(yt.len(), base).view(), yt.view()),
    };
    Ok((w.iter().take(N_FEATURES).copied().collect(), b, report))
}

/// Stable request -> held-out assignment.
fn held_out(request_id: &str, every: u64) -> bool {
    let h = request_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    every > 0 && h % every == 0
}

/// A served slot waiting for its impression, and the rows made from it.
struct Pending {
    features: Vec<(String, [f32; N_FEATURES])>,
    test: bool,
    ctr: HashMap<String, usize>,
    cvr: HashMap<String, usize>,
}

/// Trains on `records` (in log order). `engine` computes features; `catalog`
/// is the log's starting catalog. Returns the model file (JSON) and a report.
pub fn train(
    engine: &Engine,
    catalog: &mut Catalog,
    records: impl Iterator<Item = Result<Record, LogError>>,
    params: &TrainParams,
) -> Result<(serde_json::Value, TrainReport), TrainError> {
    let mut ctr = Examples::new(N_FEATURES + 1);
    let mut cvr = Examples::new(N_FEATURES);
    let mut pending: HashMap<String, Pending> = HashMap::default();
    let mut expiry: VecDeque<(i64, String)> = VecDeque::new();
    let mut requests = 0u64;
    let mut row = [0f32; N_FEATURES];

    for record in records {
        match record? {
            Record::StreamStatus(s) => {
                catalog.set_live(&s.stream_id, s.live);
            }
            Record::Rank(r) if !r.served.is_empty() => {
                while expiry
                    .front()
                    .is_some_and(|(t, _)| r.time.0 - t > JOIN_WINDOW_MS)
                {
                    let (_, id) = expiry.pop_front().expect("checked");
                    pending.remove(&id);
                }
                let query = RankQuery {
                    request_id: r.request_id.clone(),
                    user_id: r.user_id,
                    scene: r.scene,
                    slots: r.slots,
                    candidates: r.candidates,
                    now: r.time,
                };
                let Ok(evaluation) = engine.evaluate(catalog, &query, None) else {
                    continue;
                };
                let index: HashMap<(&str, crate::domain::ItemKind), usize> = query
                    .candidates
                    .iter()
                    .enumerate()
                    .map(|(i, c)| ((c.item_id.as_str(), c.kind), i))
                    .collect();
                let features = r
                    .served
                    .iter()
                    .filter_map(|s| {
                        let i = *index.get(&(s.item_id.as_str(), s.kind))?;
                        evaluation.features(i).write(&mut row);
                        Some((s.item_id.clone(), row))
                    })
                    .collect();
                requests += 1;
                expiry.push_back((r.time.0, r.request_id.clone()));
                pending.insert(
                    r.request_id.clone(),
                    Pending {
                        features,
                        test: held_out(&r.request_id, params.holdout_every),
                        ctr: HashMap::default(),
                        cvr: HashMap::default(),
                    },
                );
            }
            Record::Impression(imp) => {
                let Some(p) = pending.get_mut(&imp.request_id) else {
                    continue;
                };
                let Some((_, f)) = p.features.iter().find(|(id, _)| *id == imp.item_id) else {
                    continue;
                };
                let position = (1.0 + f64::from(imp.position)).ln();
                let i = ctr.push(f.iter().map(|&v| f64::from(v)).chain([position]), p.test);
                p.ctr.insert(imp.item_id, i);
            }
            Record::Click(click) => {
                let Some(p) = pending.get_mut(&click.request_id) else {
                    continue;
                };
                let Some(&i) = p.ctr.get(&click.item_id) else {
                    continue;
                };
                ctr.labels[i] = 1.0;
                let Some((_, f)) = p.features.iter().find(|(id, _)| *id == click.item_id) else {
                    continue;
                };
                let j = cvr.push(f.iter().map(|&v| f64::from(v)), p.test);
                p.cvr.insert(click.item_id, j);
            }
            Record::Purchase(buy) => {
                let (Some(request), Some(item)) = (&buy.request_id, &buy.slot_item_id) else {
                    continue;
                };
                if let Some(&j) = pending.get(request).and_then(|p| p.cvr.get(item)) {
                    cvr.labels[j] = 1.0;
                }
            }
            Record::Rank(_) | Record::Header(_) | Record::Unknown => {}
        }
    }

    let (wc, bc, pctr) = fit_head(&ctr, params, "pctr")?;
    let (wv, bv, pcvr) = fit_head(&cvr, params, "pcvr")?;
    let head = |w: &[f64], b: f64| {
        serde_json::json!([{
            "weights": w.iter().map(|v| [(*v * 1e6).round() / 1e6]).collect::<Vec<_>>(),
            "bias": [(b * 1e6).round() / 1e6],
            "activation": "sigmoid",
        }])
    };
    let model = serde_json::json!({
        "format": FORMAT,
        "version": params.version,
        "features": FEATURES,
        "heads": { "pctr": head(&wc, bc), "pcvr": head(&wv, bv) },
    });
    Ok((
        model,
        TrainReport {
            requests,
            pctr,
            pcvr,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn auc_of_perfect_random_and_tied_scores() {
        let labels = array![0.0, 0.0, 1.0, 1.0];
        assert_eq!(auc(array![0.1, 0.2, 0.8, 0.9].view(), labels.view()), 1.0);
        assert_eq!(auc(array![0.9, 0.8, 0.2, 0.1].view(), labels.view()), 0.0);
        assert_eq!(auc(array![0.5, 0.5, 0.5, 0.5].view(), labels.view()), 0.5);
    }

    #[test]
    fn fit_recovers_a_logistic_model() {
        // y ~ Bernoulli(sigmoid(2 x0 - x1 - 0.5)) on a deterministic grid.
        let n = 4000;
        let x = Array2::from_shape_fn((n, 2), |(i, j)| {
            ((i * (7 + 5 * j)) % 101) as f64 / 50.0 - 1.0
        });
        let y: Array1<f64> = (0..n)
            .map(|i| {
                let p = sigmoid(2.0 * x[[i, 0]] - x[[i, 1]] - 0.5);
                let u = ((i * 7919) % 1000) as f64 / 1000.0;
                if u < p { 1.0 } else { 0.0 }
            })
            .collect();
        let (w, b) = fit(&x, &y, &TrainParams::default());
        assert!((w[0] - 2.0).abs() < 0.4, "{w}");
        assert!((w[1] + 1.0).abs() < 0.4, "{w}");
        assert!((b + 0.5).abs() < 0.3, "{b}");
    }
}
