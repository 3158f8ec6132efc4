//! The shaders as naga reads them, to learn what a kernel asks of an adapter before wgpu
//! builds it: each shader parsed and validated once per process, and one pipeline's
//! module, with its override constants applied as wgpu applies them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};

use super::shaders::Shader;
use crate::error::{Error, Result};

/// A shader's module and naga's validation of it.
pub struct ParsedShader {
    /// The parsed module.
    pub module: naga::Module,
    /// naga's validation of it.
    pub info: ModuleInfo,
    /// Whether it uses subgroup operations (it does not validate without them).
    pub subgroups: bool,
}

/// `shader` parsed and validated with every capability naga knows; parsed once.
pub fn parsed(shader: Shader) -> Result<Arc<ParsedShader>> {
    static PARSED: OnceLock<Mutex<HashMap<Shader, Arc<ParsedShader>>>> = OnceLock::new();
    let mut cache = PARSED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(p) = cache.get(&shader) {
        return Ok(p.clone());
    }
    let invalid = |message: String| Error::Shader {
        shader: shader.file_name().to_string(),
        message,
    };
    let module = naga::front::wgsl::parse_str(shader.source())
        .map_err(|e| invalid(e.emit_to_string(shader.source())))?;
    let info = Validator::new(ValidationFlags::all(), Capabilities::all())
        .validate(&module)
        .map_err(|e| invalid(e.emit_to_string(shader.source())))?;
    let portable = Capabilities::all()
        - Capabilities::SUBGROUP
        - Capabilities::SUBGROUP_BARRIER
        - Capabilities::SUBGROUP_VERTEX_STAGE;
    let subgroups = Validator::new(ValidationFlags::all(), portable)
        .validate(&module)
        .is_err();
    let p = Arc::new(ParsedShader {
        module,
        info,
        subgroups,
    });
    cache.insert(shader, p.clone());
    Ok(p)
}

impl ParsedShader {
    /// The module of one pipeline: entry point `entry` alone, with `constants` applied.
    pub fn pipeline(
        &self,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> std::result::Result<(naga::Module, ModuleInfo), String> {
        let constants: naga::back::PipelineConstants = constants
            .iter()
            .map(|(name, value)| (name.to_string(), *value))
            .collect();
        naga::back::pipeline_constants::process_overrides(
            &self.module,
            &self.info,
            Some((naga::ShaderStage::Compute, entry)),
            &constants,
        )
        .map(|(module, info)| (module.into_owned(), info.into_owned()))
        .map_err(|e| e.to_string())
    }
}
