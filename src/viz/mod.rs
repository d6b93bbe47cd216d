//! Seeing inside: attention maps, training curves and charts, shown inline in evcxr (SVG) and
//! saved as SVG or PNG (rendered with resvg and a font the crate embeds, so the same on every
//! machine).
//!
//! - [`AttentionMap`]: a model's attention on a text → [`AttentionHeatmap`] (one head),
//!   [`AttentionGrid`] (all heads of a layer), [`HeadOverview`] (layers × heads statistics).
//! - [`TrainingCurves`]: loss (raw, and EMA-smoothed from 30 points on), eval loss, learning rate and grad norm of
//!   one or more runs, from a Trainer's log history or `trainer_state.json` files.
//! - [`TokenScores`]: text tinted by each token's probability or loss.
//! - [`ConfusionMatrix`]: classification results.
//! - [`EmbeddingPlot`] and [`Pca`]: embeddings projected to 2-D.
//!
//! Every chart has `width`, `height` and `title` builder methods, `to_svg`, `to_png`, `save`
//! (SVG), `save_png`, `describe` (a text description) and `evcxr_display`.
//!
//! ```
//! use massivetext::prelude::*;
//! let p = Tensor::new(&[[[0.7f32, 0.3], [0.4, 0.6]]], &Device::Cpu)?;
//! let map = AttentionMap::from_tensor(&p, &["[CLS]", "hello"])?;
//! let png = map.head(0, 0)?.width(320).height(300).to_png()?;
//! assert_eq!(&png[1..4], b"PNG");
//! # Ok::<(), massivetext::Error>(())
//! ```
mod attention;
mod attention_view;
mod chart;
mod confusion;
mod curves;
mod downsample;
mod embedding;
mod legend;
mod matrix;
mod pca;
mod style;
mod svg;
mod tokens;
mod trainer;

pub use attention::{AttentionMap, AttentionSource, HeadStats, TranslationAttention};
pub use attention_view::{AttentionGrid, AttentionHeatmap, HeadOverview};
pub use chart::{ChartOptions, svg_to_png};
pub use confusion::{ConfusionMatrix, Normalize};
pub use curves::{Run, TrainingCurves, auto_smoothing};
pub use downsample::{downsample_min_max, ema};
pub use embedding::{EmbeddingPlot, point_label};
pub use pca::Pca;
pub use style::{luminance, token_label};
pub use tokens::{ScoreKind, TokenScores};
