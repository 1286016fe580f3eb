//! The scoring model: two small feed-forward heads (pCTR and pCVR) over the
//! same feature matrix, loaded from a JSON file (format in models/README.md)
//! and evaluated for all candidates of a request in one batch with ndarray.

mod features;

pub use features::{FEATURES, FeatureInput, N_FEATURES, feature_matrix};

use ndarray::{Array1, Array2, ArrayView2, Axis, CowArray, Ix2, ShapeBuilder};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The format tag a model file must carry.
pub const FORMAT: &str = "fairflow.mlp.v1";

/// The model shipped with the service, compiled into the binary.
pub const EMBEDDED_JSON: &str = include_str!("../../models/ranker-v1.json");
pub const EMBEDDED_ORIGIN: &str = "<embedded models/ranker-v1.json>";

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {reason}")]
    Invalid { file: String, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Activation {
    Identity,
    Relu,
    Sigmoid,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayer {
    /// Rows are inputs, columns outputs.
    weights: Vec<Vec<f32>>,
    bias: Vec<f32>,
    activation: Activation,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeads {
    pctr: Vec<RawLayer>,
    pcvr: Vec<RawLayer>,
}

#[derive(Deserialize)]
struct RawModel {
    format: String,
    version: String,
    features: Vec<String>,
    heads: RawHeads,
}

#[derive(Debug, Clone)]
struct Layer {
    weights: Array2<f32>,
    bias: Array1<f32>,
    activation: Activation,
}

/// A stack of dense layers ending in a sigmoid: a probability per row.
#[derive(Debug, Clone)]
struct Head {
    layers: Vec<Layer>,
}

impl Head {
    fn build(name: &str, raw: Vec<RawLayer>) -> Result<Head, String> {
        let mut inputs = N_FEATURES;
        let mut layers = Vec::with_capacity(raw.len());
        if raw.is_empty() {
            return Err(format!("heads.{name}: needs at least one layer"));
        }
        for (i, l) in raw.into_iter().enumerate() {
            let at = format!("heads.{name}[{i}]");
            if l.weights.len() != inputs {
                return Err(format!(
                    "{at}.weights: {} rows, expected {inputs} (one per input)",
                    l.weights.len()
                ));
            }
            let outputs = l.bias.len();
            if outputs == 0 {
                return Err(format!("{at}.bias: empty"));
            }
            if let Some(r) = l.weights.iter().position(|row| row.len() != outputs) {
                return Err(format!(
                    "{at}.weights[{r}]: expected {outputs} columns (the bias length)"
                ));
            }
            let flat: Vec<f32> = l.weights.into_iter().flatten().collect();
            if flat.iter().chain(&l.bias).any(|v| !v.is_finite()) {
                return Err(format!("{at}: weights must be finite"));
            }
            let weights = Array2::from_shape_vec((inputs, outputs), flat)
                .map_err(|e| format!("{at}: {e}"))?;
            layers.push(Layer {
                weights,
                bias: Array1::from(l.bias),
                activation: l.activation,
            });
            inputs = outputs;
        }
        let last = layers.last().expect("checked non-empty");
        if last.bias.len() != 1 || last.activation != Activation::Sigmoid {
            return Err(format!(
                "heads.{name}: the last layer must have one output and a sigmoid activation"
            ));
        }
        Ok(Head { layers })
    }

    /// One probability per row of `x`. Every layer works a column at a
    /// time: the rows' values of one input are contiguous in a column-major
    /// matrix, so each weight is one multiply-add over all rows, which the
    /// compiler vectorizes. (A general matrix product packs its operands
    /// first, and with one or two outputs that packing costs more than the
    /// arithmetic.)
    fn forward(&self, x: ArrayView2<f32>) -> Array1<f32> {
        let mut h = self.layers[0].apply(x);
        for layer in &self.layers[1..] {
            h = layer.apply(h.view());
        }
        h.index_axis_move(Axis(1), 0)
    }
}

impl Layer {
    /// `activation(x . weights + bias)` for column-major `x`, column-major out.
    fn apply(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let rows = x.nrows();
        let mut out = Array2::<f32>::zeros((rows, self.bias.len()).f());
        for (o, mut column) in out.columns_mut().into_iter().enumerate() {
            let acc = column
                .as_slice_mut()
                .expect("columns of a column-major array are contiguous");
            // Summed input by input, then the bias added, as a matrix
            // product would.
            for (input, w) in x.columns().into_iter().zip(self.weights.column(o)) {
                let input = input
                    .to_slice()
                    .expect("columns of a column-major array are contiguous");
                for (a, v) in acc.iter_mut().zip(input) {
                    *a += v * w;
                }
            }
            let b = self.bias[o];
            match self.activation {
                Activation::Identity => acc.iter_mut().for_each(|a| *a += b),
                Activation::Relu => acc.iter_mut().for_each(|a| *a = (*a + b).max(0.0)),
                Activation::Sigmoid => acc
                    .iter_mut()
                    .for_each(|a| *a = 1.0 / (1.0 + (-(*a + b)).exp())),
            }
        }
        out
    }
}

/// `x` as a column-major matrix, borrowed when it already is one.
fn column_major(x: ArrayView2<f32>) -> CowArray<f32, Ix2> {
    if x.t().is_standard_layout() {
        CowArray::from(x)
    } else {
        let mut owned = Array2::<f32>::zeros(x.raw_dim().f());
        owned.assign(&x);
        CowArray::from(owned)
    }
}

/// A loaded, validated model.
#[derive(Debug, Clone)]
pub struct Model {
    /// The file's own version plus a content hash, e.g. `sim-v1@1a2b3c4d`.
    version: String,
    pctr: Head,
    pcvr: Head,
}

/// Probabilities for a batch of candidates.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    pub pctr: Array1<f32>,
    pub pcvr: Array1<f32>,
}

/// Where the scoring model is loaded from at start.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    Embedded,
    File(PathBuf),
}

impl Model {
    pub fn from_json(text: &str, origin: &str) -> Result<Model, ModelError> {
        let invalid = |reason: String| ModelError::Invalid {
            file: origin.to_string(),
            reason,
        };
        let raw: RawModel = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if raw.format != FORMAT {
            return Err(invalid(format!(
                "format is `{}`, expected `{FORMAT}`",
                raw.format
            )));
        }
        if raw.features != FEATURES {
            return Err(invalid(format!(
                "features {:?} differ from the service's {:?}; retrain the model for this version",
                raw.features, FEATURES
            )));
        }
        let hash: String = Sha256::digest(text.as_bytes())
            .iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Model {
            version: format!("{}@{hash}", raw.version),
            pctr: Head::build("pctr", raw.heads.pctr).map_err(invalid)?,
            pcvr: Head::build("pcvr", raw.heads.pcvr).map_err(invalid)?,
        })
    }

    pub fn load(path: &Path) -> Result<Model, ModelError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Read {
            file: file.clone(),
            source,
        })?;
        Model::from_json(&text, &file)
    }

    /// The model `source` names: the one place a model is loaded.
    pub fn from_source(source: &ModelSource) -> Result<Model, ModelError> {
        match source {
            ModelSource::Embedded => Model::embedded(),
            ModelSource::File(path) => Model::load(path),
        }
    }

    pub fn embedded() -> Result<Model, ModelError> {
        Model::from_json(EMBEDDED_JSON, EMBEDDED_ORIGIN)
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// Scores a feature matrix (one row per candidate, [`N_FEATURES`] columns).
    pub fn score(&self, x: ArrayView2<f32>) -> Scores {
        assert_eq!(x.ncols(), N_FEATURES, "feature matrix has the wrong width");
        let x = column_major(x);
        let x = x.view();
        Scores {
            pctr: self.pctr.forward(x),
            pcvr: self.pcvr.forward(x),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Rules checked: the shipped model loads; malformed files are refused with
    //! the reason; batch scores equal row-by-row scores and are probabilities.
    use super::*;
    use ndarray::Array2;

    fn layer_json(rows: usize, cols: usize, w: f32, act: &str) -> String {
        let row = format!("[{}]", vec![w.to_string(); cols].join(","));
        format!(
            r#"{{"weights":[{}],"bias":[{}],"activation":"{act}"}}"#,
            vec![row; rows].join(","),
            vec!["0.1"; cols].join(",")
        )
    }

    fn model_json(pctr: &[String]) -> String {
        let feats = serde_json::to_string(&FEATURES).unwrap();
        let head = format!("[{}]", pctr.join(","));
        format!(
            r#"{{"format":"{FORMAT}","version":"t","features":{feats},"heads":{{"pctr":{head},"pcvr":{head}}}}}"#
        )
    }

    #[test]
    fn shipped_model_loads() {
        let m = Model::embedded().unwrap();
        assert!(m.version().starts_with("sim-v1@"), "{}", m.version());
        let prior = Model::from_json(include_str!("../../models/ranker-v0.json"), "v0").unwrap();
        assert!(prior.version().starts_with("prior-v0@"));
    }

    #[test]
    fn mlp_with_hidden_layer_loads_and_scores_in_batch_as_row_by_row() {
        let text = model_json(&[
            layer_json(N_FEATURES, 4, 0.05, "relu"),
            layer_json(4, 1, -0.3, "sigmoid"),
        ]);
        let m = Model::from_json(&text, "t.json").unwrap();
        let x = Array2::from_shape_fn((7, N_FEATURES), |(i, j)| ((i * 3 + j) % 5) as f32 / 5.0);
        let batch = m.score(x.view());
        for i in 0..7 {
            let one = m.score(x.slice(ndarray::s![i..i + 1, ..]));
            assert!((one.pctr[0] - batch.pctr[i]).abs() < 1e-6);
            assert!(batch.pctr[i] > 0.0 && batch.pctr[i] < 1.0);
        }
    }

    /// The column passes compute what the layers define: each output the
    /// activation of its bias plus the inputs times their weights, here
    /// against the sums done directly in f64, for a row-major input (copied)
    /// and a column-major one (read in place).
    #[test]
    fn column_passes_compute_the_layers_definition() {
        let text = model_json(&[
            layer_json(N_FEATURES, 3, 0.07, "relu"),
            layer_json(3, 2, -0.2, "identity"),
            layer_json(2, 1, 0.4, "sigmoid"),
        ]);
        let m = Model::from_json(&text, "t.json").unwrap();
        let value = |i: usize, j: usize| ((i * 7 + j * 3) % 11) as f32 / 5.0 - 1.0;
        let rows = Array2::from_shape_fn((9, N_FEATURES), |(i, j)| value(i, j));
        let columns = Array2::from_shape_fn((9, N_FEATURES).f(), |(i, j)| value(i, j));
        for i in 0..9 {
            let x: Vec<f64> = (0..N_FEATURES).map(|j| f64::from(value(i, j))).collect();
            // Every weight of a layer is the same, and every bias 0.1.
            let hidden = (0.1 + 0.07 * x.iter().sum::<f64>()).max(0.0);
            let second = 0.1 - 0.2 * 3.0 * hidden;
            let expected = 1.0 / (1.0 + (-(0.1 + 0.4 * 2.0 * second)).exp());
            for scores in [m.score(rows.view()), m.score(columns.view())] {
                assert!((f64::from(scores.pctr[i]) - expected).abs() < 1e-6);
                assert_eq!(scores.pctr[i], scores.pcvr[i]);
            }
        }
    }

    #[test]
    fn malformed_models_are_refused_with_reason() {
        let wrong_rows = model_json(&[layer_json(3, 1, 0.1, "sigmoid")]);
        let err = Model::from_json(&wrong_rows, "m.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("heads.pctr[0].weights: 3 rows, expected 15"),
            "{err}"
        );

        let not_sigmoid = model_json(&[layer_json(N_FEATURES, 1, 0.1, "relu")]);
        let err = Model::from_json(&not_sigmoid, "m.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sigmoid"), "{err}");

        let stale = model_json(&[layer_json(N_FEATURES, 1, 0.1, "sigmoid")])
            .replace("\"resolved\"", "\"old\"");
        let err = Model::from_json(&stale, "m.json").unwrap_err().to_string();
        assert!(err.contains("retrain"), "{err}");

        let err = Model::from_json("{}", "m.json").unwrap_err().to_string();
        assert!(err.starts_with("m.json: "), "{err}");
    }
}
