//! The one list of attention forms: the enum configs and the command line name, and the
//! op each one runs. A new form is a variant here, its entry in `ALL` and its arm in
//! `op`; everything else about it lives in its own module.

use serde::{Deserialize, Serialize};

use super::form::{AttentionOp, FormSetup};
use super::{a2os2a, binary, ssa, ssa_bin};

/// The attention form of every block (docs/models.md sections 2-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AttentionForm {
    /// Spikformer's SSA: (Q K^T) V * 0.125.
    Ssa,
    /// BESTformer's binary map: LIF_soft(Q K^T) V * 0.125 * lambda.
    Binary,
    /// SSA_Bin: thresholded map with attention shift.
    SsaBin,
    /// A2OS2A: binary Q, ReLU K, ternary V.
    A2os2a,
}

impl AttentionForm {
    /// Every form.
    pub const ALL: [AttentionForm; 4] = [
        AttentionForm::Ssa,
        AttentionForm::Binary,
        AttentionForm::SsaBin,
        AttentionForm::A2os2a,
    ];

    /// The form's op for a model of `setup`'s sizes, with the settings the models use.
    pub fn op(self, setup: &FormSetup) -> Box<dyn AttentionOp> {
        match self {
            AttentionForm::Ssa => Box::new(ssa::Ssa::default()),
            AttentionForm::Binary => Box::new(binary::BinaryAttention::new(setup)),
            AttentionForm::SsaBin => Box::new(ssa_bin::SsaBin::new(setup)),
            AttentionForm::A2os2a => Box::new(a2os2a::A2os2a),
        }
    }
}
