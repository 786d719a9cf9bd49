//! How fast tract runs the encoder on the general plan (symbolic batch and length) versus plans
//! built for one fixed shape, and what a fixed-shape plan costs in memory. This is the measurement
//! behind `classify-length-plans` (see bench/RESULTS.md).
//!
//!     cargo run --release -p agentic --features enable-system-alloc --example tract_shapes -- [model-dir]
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tract_onnx::prelude::*;

fn rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|x| x.parse::<u64>().ok()))
        .unwrap_or(0)
        * 4096
        / (1 << 20)
}

fn ms_per_text(plan: &Arc<TypedRunnableModel>, batch: usize, len: usize) -> TractResult<f64> {
    let t = |v: i64| Tensor::from_shape::<i64>(&[batch, len], &vec![v; batch * len]);
    let inputs = || -> TractResult<TVec<TValue>> { Ok(tvec![t(1000)?.into(), t(1)?.into(), t(0)?.into()]) };
    plan.run(inputs()?)?;
    let reps = (128 / batch).max(8);
    let t0 = Instant::now();
    for _ in 0..reps {
        plan.run(inputs()?)?;
    }
    Ok(t0.elapsed().as_secs_f64() * 1000.0 / (reps * batch) as f64)
}

fn main() -> TractResult<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "model/out/real".into());
    let mut model = tract_onnx::onnx().model_for_path(format!("{dir}/model.onnx"))?;
    let (b, s) = (model.sym("B"), model.sym("S"));
    for i in 0..model.inputs.len() {
        model = model.with_input_fact(i, i64::fact([b.to_dim(), s.to_dim()]).into())?;
    }
    let typed = model.into_typed()?.into_decluttered()?;
    let general = typed.clone().into_optimized()?.into_runnable()?;
    let fixed = |batch: i64, len: i64| -> TractResult<Arc<TypedRunnableModel>> {
        let subs: HashMap<Symbol, TDim> = [(b.clone(), TDim::from(batch)), (s.clone(), TDim::from(len))].into_iter().collect();
        typed.set_symbols(&subs)?.into_optimized()?.into_runnable()
    };
    println!("ms per text, one thread:");
    for (batch, len) in [(1usize, 32usize), (1, 54), (4, 54), (8, 54), (1, 100)] {
        let general_ms = ms_per_text(&general, batch, len)?;
        let fixed_ms = ms_per_text(&fixed(batch as i64, len as i64)?, batch, len)?;
        println!(
            "  batch {batch:>2}, {len:>3} tokens: general plan {general_ms:.2}, fixed-shape plan {fixed_ms:.2} ({:.2}x)",
            general_ms / fixed_ms
        );
    }
    let before = rss_mb();
    let plans: Vec<_> = (1..=8).map(|k| fixed(1, 8 * k)).collect::<TractResult<_>>()?;
    for (k, p) in plans.iter().enumerate() {
        ms_per_text(p, 1, 8 * (k + 1))?;
    }
    println!("8 fixed-length plans (8..64 tokens): +{} MB resident", rss_mb().saturating_sub(before));
    Ok(())
}
