//! `ops::Neuron`, the one interface over every neuron, against the ops it dispatches to:
//! bit for bit, forward and backward, with T folded into the rows and not.

use bitspike::ops::{
    lif_backward, lif_forward, qsnn_backward, qsnn_forward, relu, relu_backward, ternary_backward,
    ternary_forward, threshold_backward, threshold_forward, LifConfig, LifOutputs, Neuron,
    QsnnConfig, Surrogate, ThresholdConfig,
};
use bitspike::{GpuContext, Tensor};

use crate::common::{assert_exact, ctx, Rng};

const T: usize = 3;

/// Every variant, with settings away from the defaults where a default could hide a
/// mix-up (soft reset, ATan, a threshold that is not 1).
fn neurons() -> Vec<Neuron> {
    let soft = LifConfig {
        tau: 2.5,
        v_th: 0.8,
        v_reset: None,
        surrogate: Surrogate::ATAN,
        ..LifConfig::default()
    };
    vec![
        Neuron::Lif(LifConfig::default()),
        Neuron::Lif(soft),
        Neuron::Ternary(soft),
        Neuron::Qsnn(QsnnConfig {
            bits: 4,
            ..QsnnConfig::default()
        }),
        Neuron::Threshold(ThresholdConfig {
            v_th: 0.7,
            surrogate: Surrogate::SIGMOID,
        }),
        Neuron::Relu,
    ]
}

fn bits(ctx: &GpuContext, t: &Tensor) -> Vec<u32> {
    ctx.download_f32(t)
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

/// The op each variant stands for, called directly on `x` seen as `[T, len / T]`:
/// (output, what backward reads, the input's gradient).
fn direct(ctx: &GpuContext, neuron: Neuron, x: &Tensor, ds: &Tensor) -> [Tensor; 3] {
    let flat = [T, x.len() / T];
    let (xf, dsf) = (x.reshape(&flat).unwrap(), ds.reshape(&flat).unwrap());
    let [out, saved, dx] = match neuron {
        Neuron::Lif(cfg) => {
            let f = lif_forward(ctx, &xf, T, &cfg, LifOutputs::TRAIN).unwrap();
            let h = f.h.unwrap();
            let dx = lif_backward(ctx, &dsf, &h, T, &cfg).unwrap();
            [f.spikes.unwrap(), h, dx]
        }
        Neuron::Ternary(cfg) => {
            let f = ternary_forward(ctx, &xf, T, &cfg, LifOutputs::TRAIN).unwrap();
            let h = f.h.unwrap();
            let dx = ternary_backward(ctx, &dsf, &h, T, &cfg).unwrap();
            [f.spikes.unwrap(), h, dx]
        }
        Neuron::Qsnn(cfg) => {
            let f = qsnn_forward(ctx, &xf, T, &cfg).unwrap();
            let dx = qsnn_backward(ctx, &dsf, &f.h, T, &cfg).unwrap();
            [f.spikes, f.h, dx]
        }
        Neuron::Threshold(cfg) => {
            let f = threshold_forward(ctx, x, &cfg, LifOutputs::TRAIN).unwrap();
            let dx = threshold_backward(ctx, ds, x, &cfg).unwrap();
            [f.spikes.unwrap(), f.h.unwrap(), dx]
        }
        Neuron::Relu => [
            relu(ctx, x).unwrap(),
            x.clone(),
            relu_backward(ctx, ds, x).unwrap(),
        ],
    };
    [out, saved, dx].map(|t| t.reshape(x.shape()).unwrap())
}

#[test]
fn every_neuron_matches_the_op_it_stands_for() {
    let ctx = ctx();
    let mut rng = Rng::new(51);
    // [T * B, N, D] (T folded into the images), [T, B, N, D], and a flat [T, n].
    for shape in [vec![T * 2, 5, 7], vec![T, 2, 5, 7], vec![T, 37]] {
        let len: usize = shape.iter().product();
        let x = ctx.upload_f32(&rng.vec(len, -1.5, 2.5), &shape).unwrap();
        let ds = ctx.upload_f32(&rng.vec(len, -1.0, 1.0), &shape).unwrap();
        for neuron in neurons() {
            let what = format!("{neuron:?} {shape:?}");
            let (out, saved) = neuron.forward(ctx, &x, T).unwrap();
            let dx = neuron.backward(ctx, &ds, &saved, T).unwrap();
            let want = direct(ctx, neuron, &x, &ds);
            for (name, (got, want)) in ["output", "saved", "dx"]
                .iter()
                .zip([&out, &saved, &dx].into_iter().zip(&want))
            {
                assert_eq!(got.shape(), &shape[..], "{what}: {name} shaped like x");
                let want = bits(ctx, want);
                let nonzero = want.iter().filter(|&&b| f32::from_bits(b) != 0.0).count();
                assert!(
                    nonzero > 0,
                    "{what}: {name} is all zeros, which tests nothing"
                );
                if *name == "output" {
                    assert!(nonzero < len, "{what}: every neuron fires");
                }
                assert_exact(&format!("{what} {name}"), &bits(ctx, got), &want);
            }
        }
    }
}

/// A stateful neuron refuses a tensor that does not split into T steps; the stateless
/// ones act elementwise.
#[test]
fn neurons_over_time_need_whole_steps() {
    let ctx = ctx();
    let x = ctx.upload_f32(&[0.5; 14], &[7, 2]).unwrap();
    for neuron in neurons() {
        let stateless = matches!(neuron, Neuron::Threshold(_) | Neuron::Relu);
        assert_eq!(neuron.forward(ctx, &x, T).is_ok(), stateless, "{neuron:?}");
    }
}
