//! The GPU context: adapter choice, device with the adapter's own limits, error capture,
//! and the command recorder every op records into.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};

/// Which adapter to open. Empty fields mean "any"; the environment variables
/// `WGPU_BACKEND` and `WGPU_ADAPTER_NAME` fill them when the CLI leaves them unset.
#[derive(Debug, Clone, Default)]
pub struct AdapterChoice {
    /// One of `vulkan`, `metal`, `dx12`, `gl` (comma-separated list allowed).
    pub backend: Option<String>,
    /// Case-insensitive substring of the adapter name.
    pub adapter_name: Option<String>,
    /// Use only kernels that run on every adapter, even where faster subgroup kernels
    /// would run (for comparison and testing).
    pub portable_kernels: bool,
}

impl AdapterChoice {
    /// The choice that `WGPU_BACKEND` and `WGPU_ADAPTER_NAME` make (any adapter when unset).
    pub fn from_env() -> Self {
        Self {
            backend: std::env::var("WGPU_BACKEND").ok().filter(|s| !s.is_empty()),
            adapter_name: std::env::var("WGPU_ADAPTER_NAME")
                .ok()
                .filter(|s| !s.is_empty()),
            portable_kernels: false,
        }
    }

    fn backends(&self) -> Result<wgpu::Backends> {
        let Some(list) = &self.backend else {
            return Ok(wgpu::Backends::all());
        };
        let mut backends = wgpu::Backends::empty();
        for name in list.split(',').map(|s| s.trim().to_ascii_lowercase()) {
            backends |= match name.as_str() {
                "vulkan" | "vk" => wgpu::Backends::VULKAN,
                "metal" | "mtl" => wgpu::Backends::METAL,
                "dx12" | "d3d12" => wgpu::Backends::DX12,
                "gl" | "gles" | "opengl" => wgpu::Backends::GL,
                other => {
                    return Err(Error::InvalidArgument(format!(
                        "unknown backend '{other}' (expected vulkan, metal, dx12 or gl)"
                    )))
                }
            };
        }
        Ok(backends)
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(b) = &self.backend {
            parts.push(format!("backend '{b}'"));
        }
        if let Some(n) = &self.adapter_name {
            parts.push(format!("name containing '{n}'"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" matching {}", parts.join(" and "))
        }
    }
}

/// What `bitspike info` reports of one adapter.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdapterReport {
    /// The adapter's name.
    pub name: String,
    /// Its backend: vulkan, metal, dx12 or gl.
    pub backend: String,
    /// Discrete, integrated, virtual or CPU.
    pub device_type: String,
    /// The driver's name.
    pub driver: String,
    /// The driver's version string.
    pub driver_info: String,
    /// The largest storage buffer a binding may cover, in bytes.
    pub max_storage_buffer_binding_size: u64,
    /// The largest buffer, in bytes.
    pub max_buffer_size: u64,
    /// Workgroup memory per workgroup, in bytes.
    pub max_compute_workgroup_storage_size: u32,
    /// Invocations per workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Workgroups along one dispatch axis.
    pub max_compute_workgroups_per_dimension: u32,
    /// Storage buffers one shader may bind.
    pub max_storage_buffers_per_shader_stage: u32,
    /// Whether the adapter has subgroup operations.
    pub subgroups: bool,
    /// The smallest subgroup size it reports.
    pub subgroup_min_size: u32,
    /// The largest subgroup size it reports.
    pub subgroup_max_size: u32,
    /// All of the adapter's limits, which the kernels' needs are checked against.
    #[serde(skip)]
    pub limits: wgpu::Limits,
}

impl AdapterReport {
    fn of(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let limits = adapter.limits();
        Self {
            name: info.name,
            backend: info.backend.to_str().to_string(),
            device_type: format!("{:?}", info.device_type),
            driver: info.driver,
            driver_info: info.driver_info,
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_buffer_size: limits.max_buffer_size,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage,
            subgroups: adapter.features().contains(wgpu::Features::SUBGROUP),
            subgroup_min_size: info.subgroup_min_size,
            subgroup_max_size: info.subgroup_max_size,
            limits,
        }
    }

    /// Why the portable kernels run here rather than the subgroup variants, or `None`
    /// when the subgroup variants run: those need subgroups of one fixed size of at
    /// least 8, and the user may ask for the portable kernels (`portable_requested`).
    pub fn portable_reason(&self, portable_requested: bool) -> Option<&'static str> {
        if portable_requested {
            Some("asked for (--portable)")
        } else if !self.subgroups {
            Some("the adapter has no subgroup operations")
        } else if self.subgroup_min_size < 8 || self.subgroup_min_size != self.subgroup_max_size {
            Some("the adapter's subgroup size is not one fixed size of at least 8")
        } else {
            None
        }
    }

    /// Whether the adapter is a CPU driver (lavapipe, llvmpipe, SwiftShader, WARP): some
    /// kernels and operand layouts are chosen for its caches rather than for a GPU's.
    pub fn is_cpu(&self) -> bool {
        self.device_type == format!("{:?}", wgpu::DeviceType::Cpu)
    }
}

fn new_instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

/// Every adapter the chosen backends expose.
pub fn list_adapters(choice: &AdapterChoice) -> Result<Vec<AdapterReport>> {
    let instance = new_instance(choice.backends()?);
    let adapters = pollster::block_on(instance.enumerate_adapters(choice.backends()?));
    Ok(adapters
        .iter()
        .map(AdapterReport::of)
        .filter(|r| name_matches(&r.name, choice))
        .collect())
}

fn name_matches(name: &str, choice: &AdapterChoice) -> bool {
    choice
        .adapter_name
        .as_ref()
        .is_none_or(|want| name.to_lowercase().contains(&want.to_lowercase()))
}

/// Prefer real GPUs over software ones when the user did not name an adapter.
fn device_type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// Errors wgpu reports outside an error scope land here instead of wgpu's default
/// handler, which panics; they surface as `Error::Gpu` at the next synchronisation.
type ErrorSink = Arc<Mutex<Vec<String>>>;

/// An open device, its queue, the adapter's description and limits, and the pending
/// command encoder that ops record into until the next `flush`.
pub struct GpuContext {
    /// The wgpu device.
    pub device: wgpu::Device,
    /// Its command queue.
    pub queue: wgpu::Queue,
    /// What the adapter is and what it allows.
    pub adapter: AdapterReport,
    /// The limits the device was opened with.
    pub limits: wgpu::Limits,
    /// Whether the subgroup variants of kernels run here: the adapter has subgroups of a
    /// fixed size of at least 8 and the user did not ask for portable kernels.
    pub subgroup_kernels: bool,
    errors: ErrorSink,
    /// Present on GL, where wgpu-hal keeps one GL context per adapter behind a lock that
    /// panics when a thread waits over 6 s for it (wgpu-hal 30, gles/egl.rs), and
    /// llvmpipe runs each dispatch inside the submit that holds it: there, every call
    /// that reaches the GL context waits its turn here instead, for as long as it takes.
    gl_turn: Option<Mutex<()>>,
    pub(crate) pending: Mutex<crate::gpu::cache::Pending>,
    pub(crate) bind_groups: Mutex<crate::gpu::cache::BindGroupCache>,
    pub(crate) kernels: crate::gpu::cache::PipelineCache,
    pub(crate) pool: crate::gpu::cache::BufferPool,
    /// Per-kernel (dispatches, seconds) when BITSPIKE_PROFILE is set: each dispatch then
    /// runs alone and is waited for, so the figures locate time, at the cost of speed.
    pub(crate) profile: Option<Mutex<std::collections::HashMap<String, (u64, f64)>>>,
    /// BITSPIKE_PROFILE=detail: the profile also tells launches apart by their override
    /// constants, grid and uniform parameters (e.g. a matmul's M, N, K).
    pub(crate) profile_detail: bool,
}

impl GpuContext {
    /// Open the adapter the choice (or the environment) names, the best one otherwise.
    pub fn new(choice: &AdapterChoice) -> Result<Self> {
        Self::on_adapter(choice, 0)
    }

    /// The adapters the choice names, best first (the order `--devices` indexes).
    fn ranked_adapters(choice: &AdapterChoice) -> Result<Vec<wgpu::Adapter>> {
        let backends = choice.backends()?;
        let instance = new_instance(backends);
        let mut adapters: Vec<wgpu::Adapter> =
            pollster::block_on(instance.enumerate_adapters(backends))
                .into_iter()
                .filter(|a| name_matches(&a.get_info().name, choice))
                .collect();
        // GL last among equals: its compute support is the narrowest.
        adapters.sort_by_key(|a| {
            let info = a.get_info();
            (
                device_type_rank(info.device_type),
                info.backend == wgpu::Backend::Gl,
            )
        });
        Ok(adapters)
    }

    /// How many adapters `--devices all` opens: those of the best adapter's backend and
    /// kind (the GPUs when there is one, else the software adapters), so that one GPU
    /// seen through two backends counts once.
    pub fn distinct_adapters(choice: &AdapterChoice) -> Result<usize> {
        let adapters = Self::ranked_adapters(choice)?;
        let Some(best) = adapters.first().map(|a| a.get_info()) else {
            return Err(Error::NoAdapter {
                filter: choice.describe(),
            });
        };
        let is_cpu = |t| t == wgpu::DeviceType::Cpu;
        Ok(adapters
            .iter()
            .map(|a| a.get_info())
            .filter(|i| {
                i.backend == best.backend && is_cpu(i.device_type) == is_cpu(best.device_type)
            })
            .count())
    }

    /// Open a device on the `index`-th adapter the choice names, best first (0 is the one
    /// [`GpuContext::new`] opens). Each call opens a device of its own, also on an adapter
    /// already open.
    pub fn on_adapter(choice: &AdapterChoice, index: usize) -> Result<Self> {
        let adapters = Self::ranked_adapters(choice)?;
        let count = adapters.len();
        let adapter = adapters.into_iter().nth(index).ok_or_else(|| {
            if count == 0 {
                Error::NoAdapter {
                    filter: choice.describe(),
                }
            } else {
                Error::OutOfRange {
                    field: "device".into(),
                    value: index.to_string(),
                    allowed: format!("0..{count} (the adapters{})", choice.describe()),
                }
            }
        })?;
        let report = AdapterReport::of(&adapter);
        // The adapter's own limits: wgpu's defaults cap storage bindings at 128 MiB and
        // workgroup memory at 16 KiB, which real models exceed.
        let limits = adapter.limits();
        let features = adapter.features() & wgpu::Features::SUBGROUP;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("bitspike"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::DeviceRequest {
            adapter: report.name.clone(),
            reason: e.to_string(),
        })?;
        let errors: ErrorSink = Arc::default();
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut list) = sink.lock() {
                list.push(e.to_string());
            }
        }));
        let gl_turn = (adapter.get_info().backend == wgpu::Backend::Gl).then(Mutex::default);
        let subgroup_kernels = report.portable_reason(choice.portable_kernels).is_none();
        Ok(Self {
            device,
            queue,
            adapter: report,
            limits,
            subgroup_kernels,
            errors,
            gl_turn,
            pending: Mutex::default(),
            bind_groups: Mutex::default(),
            kernels: Default::default(),
            pool: Default::default(),
            profile: std::env::var_os("BITSPIKE_PROFILE").map(|_| Mutex::default()),
            profile_detail: std::env::var_os("BITSPIKE_PROFILE").is_some_and(|v| v == "detail"),
        })
    }

    /// Open the adapter named by `WGPU_BACKEND` / `WGPU_ADAPTER_NAME`, or the best one.
    pub fn from_env() -> Result<Self> {
        Self::new(&AdapterChoice::from_env())
    }

    /// The right to call into the device or queue, on GL (see `gl_turn`); nothing
    /// elsewhere. Taken after the `pending` lock, never before it.
    pub(crate) fn device_turn(&self) -> Option<MutexGuard<'_, ()>> {
        self.gl_turn
            .as_ref()
            .map(|turn| turn.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Run `f` on the pending command encoder, creating it if needed.
    pub(crate) fn record<R>(&self, f: impl FnOnce(&mut wgpu::CommandEncoder) -> R) -> R {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        f(self.encoder(&mut pending))
    }

    /// The pending encoder, created if needed.
    pub(crate) fn encoder<'a>(
        &self,
        pending: &'a mut crate::gpu::cache::Pending,
    ) -> &'a mut wgpu::CommandEncoder {
        pending.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        })
    }

    /// Submit everything recorded so far (without waiting for it).
    ///
    /// The lock is held until the submission is made: encoders must reach the queue in
    /// the order they were recorded, or a thread's dispatch could run before the upload
    /// another thread's flush took away (a pooled buffer reused across threads too).
    pub fn flush(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.encoder.is_some() {
            self.submit_pending(&mut pending);
        }
    }

    /// Submit everything recorded so far and return the submission's index, to wait on
    /// with [`GpuContext::wait_for`].
    pub fn submit(&self) -> wgpu::SubmissionIndex {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        self.submit_pending(&mut pending)
    }

    fn submit_pending(&self, pending: &mut crate::gpu::cache::Pending) -> wgpu::SubmissionIndex {
        let _turn = self.device_turn();
        // The uniform blocks land before the commands that read them.
        if let Some(arena) = pending.arena.take() {
            self.queue.write_buffer(&arena, 0, &pending.bytes);
            pending.bytes.clear();
            pending.filled.push(arena);
        }
        let index = self
            .queue
            .submit(pending.encoder.take().map(|e| e.finish()));
        pending.spare.append(&mut pending.filled);
        index
    }

    /// Wait until the GPU has finished the submission `index` and all before it (not what
    /// was submitted after): how a caller keeps the GPU at most a step ahead of it.
    pub fn wait_for(&self, index: wgpu::SubmissionIndex) -> Result<()> {
        self.wait(Some(index))
    }

    /// Submit and wait until the GPU has finished all work; report any GPU error.
    pub fn sync(&self) -> Result<()> {
        self.flush();
        self.wait(None)
    }

    /// Wait for `index` (everything submitted when `None`), then report any GPU error.
    fn wait(&self, index: Option<wgpu::SubmissionIndex>) -> Result<()> {
        loop {
            let polled = {
                let _turn = self.device_turn();
                self.device.poll(wgpu::PollType::Wait {
                    submission_index: index.clone(),
                    timeout: None,
                })
            };
            match polled {
                Ok(_) => return self.check_errors("GPU work"),
                // wgpu's GL backend waits at most about 2.1 s per poll (GL's sync timeout
                // is an i32 of nanoseconds) and then reports a timeout, asked for or not.
                Err(wgpu::PollError::Timeout) => continue,
                Err(e) => {
                    return Err(Error::Gpu {
                        context: "waiting for the GPU".into(),
                        message: e.to_string(),
                    })
                }
            }
        }
    }

    /// Whether the adapter is a CPU driver (see `AdapterReport::is_cpu`).
    pub fn is_cpu_adapter(&self) -> bool {
        self.adapter.is_cpu()
    }

    /// Kernel profile (name, dispatches, seconds), slowest first, when BITSPIKE_PROFILE is
    /// set; empty otherwise.
    pub fn profile_report(&self) -> Vec<(String, u64, f64)> {
        let Some(p) = &self.profile else {
            return Vec::new();
        };
        let map = p.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<(String, u64, f64)> =
            map.iter().map(|(k, (n, s))| (k.clone(), *n, *s)).collect();
        v.sort_by(|a, b| b.2.total_cmp(&a.2));
        v
    }

    /// Turn errors captured since the last check into a `Result`.
    pub fn check_errors(&self, context: &str) -> Result<()> {
        let mut list = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if list.is_empty() {
            return Ok(());
        }
        let message = list.join("; ");
        list.clear();
        if message.to_lowercase().contains("out of memory") {
            return Err(Error::OutOfMemory {
                context: context.into(),
            });
        }
        Err(Error::Gpu {
            context: context.into(),
            message,
        })
    }

    /// Run `f` inside a validation error scope and return its error as a `Result`.
    pub(crate) fn scoped<R>(&self, context: &str, f: impl FnOnce() -> R) -> Result<R> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        match pollster::block_on(scope.pop()) {
            None => Ok(value),
            Some(e) => Err(Error::Gpu {
                context: context.into(),
                message: e.to_string(),
            }),
        }
    }
}
