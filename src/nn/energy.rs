//! Energy accounting as the papers do it (docs/energy.md): for every conv and linear
//! layer, the firing rate of its input, its multiply-accumulates, and the synaptic
//! operations (SOPs = rate x MACs, T included) of the layers fed by spikes; energy at
//! 0.9 pJ per accumulate for spike-driven layers and 4.6 pJ per MAC for the others (the
//! first conv, layers fed by real values). The attention products (`Q K^T`, `A V`) count
//! as spike-driven layers too: the first at the firing rate of Q, the second at the
//! firing rate of the map A that the attention op reports. Counting runs on the GPU;
//! nothing is read back until `report`.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::error::Result;
use crate::gpu::{DType, GpuContext, Tensor};
use crate::ops;
use crate::ops::attention::MapRate;

/// pJ per accumulate of a spike-driven layer.
pub const PJ_PER_AC: f64 = 0.9;
/// pJ per multiply-accumulate of a layer fed by real values.
pub const PJ_PER_MAC: f64 = 4.6;

struct Record {
    name: String,
    binary_weights: bool,
    macs: u64,
    input: Input,
}

/// What drives a recorded layer.
enum Input {
    /// A layer's input tensor.
    Tensor {
        elements: u64,
        /// u64 (two u32 words) count of the input's non-zero elements.
        nonzero: Tensor,
        /// f32 [1]: the input's sum (equal to the non-zero count exactly for {0,1}
        /// spikes).
        sum: Tensor,
    },
    /// An attention map, spike-driven at its firing rate.
    Map(MapRate),
}

/// Per-layer inputs recorded during forwards.
#[derive(Default)]
pub struct EnergyLog {
    records: RefCell<Vec<Record>>,
}

/// One layer's figures, summed over every recorded forward.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerEnergy {
    /// The layer's name (its weight's, or the attention product's).
    pub layer: String,
    /// 1-bit weights (its MACs are XNOR/AND-popcount operations).
    pub binary_weights: bool,
    /// Fraction of non-zero elements in the layer's input.
    pub firing_rate: f64,
    /// Whether the input is {0,1} spikes (energy per SOP) or real (per MAC).
    pub spike_driven: bool,
    /// Multiply-accumulates per image.
    pub macs: f64,
    /// Synaptic operations per image (the MACs of real-valued layers).
    pub sops: f64,
    /// Energy per image, in microjoules.
    pub energy_uj: f64,
}

impl EnergyLog {
    /// Record a layer `name` applying `macs` multiply-accumulates to input `x`.
    pub fn record(
        &self,
        ctx: &GpuContext,
        name: &str,
        binary_weights: bool,
        x: &Tensor,
        macs: u64,
    ) -> Result<()> {
        let nonzero = ops::attention::count_nonzero(ctx, x)?;
        let sum = ctx.empty(&[1], DType::F32)?;
        ops::channel_sum_into(ctx, &x.reshape(&[x.len(), 1])?, &sum, false)?;
        self.records.borrow_mut().push(Record {
            name: name.to_string(),
            binary_weights,
            macs,
            input: Input::Tensor {
                elements: x.len() as u64,
                nonzero,
                sum,
            },
        });
        Ok(())
    }

    /// Record an attention product `name` of `macs` multiply-accumulates driven by the
    /// attention map whose firing rate is `rate`.
    pub fn record_map(&self, name: &str, rate: &MapRate, macs: u64) {
        self.records.borrow_mut().push(Record {
            name: name.to_string(),
            binary_weights: false,
            macs,
            input: Input::Map(rate.clone()),
        });
    }

    /// Per-layer figures per image (`images` = images the recorded forwards saw), in the
    /// order layers were first seen.
    pub fn report(&self, ctx: &GpuContext, images: usize) -> Result<Vec<LayerEnergy>> {
        let mut order: Vec<(String, bool)> = Vec::new();
        let mut acc: BTreeMap<String, (f64, f64, f64, f64)> = BTreeMap::new();
        for r in self.records.borrow().iter() {
            let (elements, nonzero, sum) = match &r.input {
                Input::Tensor {
                    elements,
                    nonzero,
                    sum,
                } => {
                    let w: Vec<u32> = ctx.download_words(nonzero)?;
                    let nonzero = ((w[1] as u64) << 32 | w[0] as u64) as f64;
                    (*elements as f64, nonzero, ctx.download_f32(sum)?[0] as f64)
                }
                Input::Map(rate) => {
                    // Spike-driven by definition: its "sum" is its non-zero count.
                    let elements = rate.elements() as f64;
                    let nonzero = (rate.read(ctx)? * elements).round();
                    (elements, nonzero, nonzero)
                }
            };
            if !acc.contains_key(&r.name) {
                order.push((r.name.clone(), r.binary_weights));
            }
            let e = acc.entry(r.name.clone()).or_default();
            e.0 += r.macs as f64;
            e.1 += elements;
            e.2 += nonzero;
            e.3 += sum;
        }
        let per = images.max(1) as f64;
        Ok(order
            .into_iter()
            .map(|(name, binary_weights)| {
                let (macs, elements, nonzero, sum) = acc[&name];
                let rate = nonzero / elements.max(1.0);
                // {0,1} inputs sum to their non-zero count (to f32 rounding).
                let spike_driven = (sum - nonzero).abs() <= 1e-4 * nonzero.max(1.0);
                let sops = if spike_driven { rate * macs } else { macs };
                let pj = if spike_driven {
                    sops * PJ_PER_AC
                } else {
                    macs * PJ_PER_MAC
                };
                LayerEnergy {
                    layer: name,
                    binary_weights,
                    firing_rate: rate,
                    spike_driven,
                    macs: macs / per,
                    sops: sops / per,
                    energy_uj: pj / per / 1e6,
                }
            })
            .collect())
    }
}
