//! The scoring model: two small feed-forward heads (pCTR and pCVR) over the
//! same feature matrix, loaded from a JSON file (format in models/README.md)
//! and evaluated for all candidates of a request in one batch with ndarray.

mod features;

pub use features::{FEATURES, FeatureInput, N_FEATURES};

use ndarray::{Array1, Array2, ArrayView2, Axis};
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

    fn forward(&self, x: ArrayView2<f32>) -> Array1<f32> {
        let mut h = x.dot(&self.layers[0].weights);
        self.finish_layer(&mut h, 0);
        for (i, layer) in self.layers.iter().enumerate().skip(1) {
            h = h.dot(&layer.weights);
            self.finish_layer(&mut h, i);
        }
        h.index_axis_move(Axis(1), 0)
    }

    fn finish_layer(&self, h: &mut Array2<f32>, i: usize) {
        let layer = &self.layers[i];
        *h += &layer.bias;
        match layer.activation {
            Activation::Identity => {}
            Activation::Relu => h.mapv_inplace(|v| v.max(0.0)),
            Activation::Sigmoid => h.mapv_inplace(|v| 1.0 / (1.0 + (-v).exp())),
        }
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
