// Classification losses over logits [B, C], one invocation per row (C is small: the
// class count), each returning per-row losses and the gradient of the batch loss.
//
// cross_entropy: q = (1 - smoothing) onehot(label) + smoothing / C, p = softmax(z),
//   loss_b = -sum_c q_c log p_c, dz = weight * (p - q) / B      (mean over the batch)
// soft_cross_entropy (timm's SoftTargetCrossEntropy: mixup/cutmix targets q, each row
//   summing to 1): loss_b = -sum_c q_c log p_c, dz = weight * (p - q) / B
// distill_soft (DeiT's soft distillation, teacher logits t, temperature tau):
//   loss_b = tau^2 / (B C) * sum_c pt_c (log pt_c - log ps_c), ps = softmax(z / tau),
//   pt = softmax(t / tau), dz = weight * tau / (B C) * (ps - pt)
// argmax: the index of each row's largest logit (hard distillation labels, accuracy).

struct Params {
    rows: u32,
    classes: u32,
    smoothing: f32,
    weight: f32, // scales the gradient (e.g. 0.5 for each head of a two-head loss)
    tau: f32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;       // [B, C]
@group(0) @binding(1) var<storage, read> goal: array<u32>;       // [B] labels, or bitcast f32 [B, C] targets or teacher logits
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;   // [B]
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>; // [B, C]
@group(0) @binding(4) var<uniform> p: Params;

const WG: u32 = 64u;

fn row_max(base: u32, scale: f32) -> f32 {
    var m = -3.4e38;
    for (var c = 0u; c < p.classes; c++) {
        m = max(m, logits[base + c] * scale);
    }
    return m;
}

// log sum_c exp(z_c) of the row at `base`, shifted by its max for range.
fn log_sum_exp(base: u32) -> f32 {
    let m = row_max(base, 1.0);
    var sum = 0.0;
    for (var c = 0u; c < p.classes; c++) {
        sum += exp(logits[base + c] - m);
    }
    return m + log(sum);
}

@compute @workgroup_size(64)
fn cross_entropy(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    if (b >= p.rows) {
        return;
    }
    let base = b * p.classes;
    let log_z = log_sum_exp(base);
    let label = goal[b];
    let off = p.smoothing / f32(p.classes);
    var l = 0.0;
    for (var c = 0u; c < p.classes; c++) {
        let z = logits[base + c];
        let q = select(off, 1.0 - p.smoothing + off, c == label);
        l -= q * (z - log_z);
        dlogits[base + c] = p.weight * (exp(z - log_z) - q) / f32(p.rows);
    }
    loss[b] = l;
}

@compute @workgroup_size(64)
fn soft_cross_entropy(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    if (b >= p.rows) {
        return;
    }
    let base = b * p.classes;
    let log_z = log_sum_exp(base);
    var l = 0.0;
    for (var c = 0u; c < p.classes; c++) {
        let z = logits[base + c];
        let q = bitcast<f32>(goal[base + c]);
        l -= q * (z - log_z);
        dlogits[base + c] = p.weight * (exp(z - log_z) - q) / f32(p.rows);
    }
    loss[b] = l;
}

@compute @workgroup_size(64)
fn distill_soft(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    if (b >= p.rows) {
        return;
    }
    let base = b * p.classes;
    let inv_tau = 1.0 / p.tau;
    let ms = row_max(base, inv_tau);
    var mt = -3.4e38;
    for (var c = 0u; c < p.classes; c++) {
        mt = max(mt, bitcast<f32>(goal[base + c]) * inv_tau);
    }
    var ss = 0.0;
    var st = 0.0;
    for (var c = 0u; c < p.classes; c++) {
        ss += exp(logits[base + c] * inv_tau - ms);
        st += exp(bitcast<f32>(goal[base + c]) * inv_tau - mt);
    }
    let log_zs = ms + log(ss);
    let log_zt = mt + log(st);
    let norm = 1.0 / f32(p.rows * p.classes);
    var l = 0.0;
    for (var c = 0u; c < p.classes; c++) {
        let log_ps = logits[base + c] * inv_tau - log_zs;
        let log_pt = bitcast<f32>(goal[base + c]) * inv_tau - log_zt;
        l += exp(log_pt) * (log_pt - log_ps);
        dlogits[base + c] = p.weight * p.tau * norm * (exp(log_ps) - exp(log_pt));
    }
    loss[b] = p.tau * p.tau * norm * l;
}

@group(0) @binding(0) var<storage, read> am_logits: array<f32>;      // [B, C]
@group(0) @binding(1) var<storage, read_write> am_index: array<u32>; // [B]
@group(0) @binding(2) var<uniform> ap: Params;

@compute @workgroup_size(64)
fn argmax(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    if (b >= ap.rows) {
        return;
    }
    let base = b * ap.classes;
    var best = 0u;
    var best_v = am_logits[base];
    for (var c = 1u; c < ap.classes; c++) {
        let v = am_logits[base + c];
        if (v > best_v) {
            best = c;
            best_v = v;
        }
    }
    am_index[b] = best;
}
